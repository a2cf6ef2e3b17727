"""End-to-end carbon runs: OSSE recovery on a small city, result cubes, config errors, the real demo city."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from pipelines import open_cube
from pipelines.config import ConfigError
from pipelines.cube import make_cube
from pipelines.sources.facilities import FacilityError
from pipelines.store import write_cube
from tests.conftest import REPO, shared_file
from twins.carbon.adapter import CarbonInputError
from twins.carbon.inventory import InventoryError
from twins.carbon.run import load_config, run_config

X0, Y1, RES, N = 560_000.0, 4_186_000.0, 200.0, 30


def _city(tmp_path):
    """A 30 x 30 city (6 km) of 200 m cells: a built-up block and two roads; written to a store."""
    gb = GeoBox((N, N), Affine(RES, 0, X0, 0, -RES, Y1), "EPSG:32610")
    yy, xx = np.mgrid[0:N, 0:N]
    built = np.clip(1.0 - np.hypot(yy - 14, xx - 15) / 7.0, 0, 1) * 0.6
    roads = np.zeros((N, N))
    roads[12, 3:27] = 0.02
    roads[4:26, 18] = 0.015
    attrs = {"units": "1", "long_name": "building area fraction"}
    cube = make_cube(
        {
            "building_fraction": xr.DataArray(built.astype("float32"), dims=("y", "x"), attrs=attrs),
            "road_length_density": xr.DataArray(
                roads.astype("float32"),
                dims=("y", "x"),
                attrs={"units": "m m-2", "long_name": "road length density"},
            ),
        },
        gb,
    )
    store = tmp_path / "store"
    write_cube(store, "city", cube)
    # sensors in a ring around the centre (x, y in UTM -> lat/lon through the CSV)
    import geopandas as gpd

    cx, cy = X0 + 15.5 * RES, Y1 - 14.5 * RES
    ang = np.deg2rad(np.arange(0, 360, 45))
    xs = np.append(cx + 1300 * np.cos(ang), X0 + 10.5 * RES)  # S8 sits on the centre of cell (y 20, x 10)
    ys = np.append(cy + 1300 * np.sin(ang), Y1 - 20.5 * RES)
    pts = gpd.GeoSeries(gpd.points_from_xy(xs, ys), crs=32610).to_crs(4326)
    sites = tmp_path / "sites.csv"
    pd.DataFrame(
        {"site_id": [f"S{i}" for i in range(9)], "latitude": pts.y, "longitude": pts.x, "height_m": 3.0}
    ).to_csv(sites, index=False)
    steel = gpd.GeoSeries(gpd.points_from_xy([cx - 1000], [cy + 600]), crs=32610).to_crs(4326)
    fac = tmp_path / "factories.csv"
    fac.write_text(
        f"name,latitude,longitude,co2_t_per_year,sector\nSteel,{steel.y[0]},{steel.x[0]},40000,ippu\n"
    )
    return store, sites, fac


def _config(store, sites, fac, **over):
    cfg = {
        "name": "testcity",
        "cube": "city",
        "store": str(store),
        "timezone": "America/Los_Angeles",
        "period": {"start": "2024-07-01T00:00", "end": "2024-07-03T23:00"},
        "sectors": ["stationary_energy", "transport", "ippu"],
        "sector_totals_t_per_year": {"stationary_energy": 60000.0, "transport": 40000.0, "ippu": 50000.0},
        "proxies": {"stationary_energy": "building_fraction", "transport": "road_length_density", "ippu": "building_fraction"},
        "facilities": str(fac),
        "prior_uncertainty": {"stationary_energy": 0.4, "transport": 0.4, "ippu": 0.4, "facilities": 0.3},
        "wind": {"speed_m_s": 4.0, "from_deg": list(np.linspace(0, 345, 24))},
        "sensors": str(sites),
        "obs_error_ppm": 0.5,
        "osse": {"sector_scale": {"stationary_energy": 1.35, "transport": 0.8, "ippu": 1.2}, "facility_scale": 1.25,
                 "perturbation": 0.1, "noise_ppm": 0.5, "seed": 3},
    }  # fmt: skip
    cfg.update(over)
    return cfg


def test_osse_recovers_city_total_and_writes_cubes(tmp_path):
    store, sites, fac = _city(tmp_path)
    table = run_config(_config(store, sites, fac), store=store)
    total = table.set_index("sector").loc["total"]
    assert abs(total["prior"] - total["truth"]) / total["truth"] > 0.10  # the prior is off by more than 10 %
    assert abs(total["posterior"] - total["truth"]) / total["truth"] < 0.10  # the inversion recovers it
    assert np.all(table["uncertainty"] <= table["prior_uncertainty"] * (1 + 1e-6))
    assert list(table.columns[:5]) == ["sector", "prior", "posterior", "uncertainty", "reduction"]
    # the prior sector totals are the declared ones (downscaling conserves them)
    prior = table.set_index("sector")["prior"]
    for s, v in {"stationary_energy": 60000.0, "transport": 40000.0, "ippu": 50000.0}.items():
        assert prior[s] == pytest.approx(v, rel=1e-5)
    flux = open_cube(store, "testcity_flux_prior")
    assert (
        flux["co2_flux"].dims == ("time", "sector", "y", "x")
        and flux["co2_flux"].attrs["units"] == "kg m-2 s-1"
    )
    np.testing.assert_allclose(flux["sector_total"].values, prior.values[:3], rtol=1e-5)
    sens = open_cube(store, "testcity_sensors")
    assert (
        sens.attrs["featureType"] == "timeSeries" and sens.sizes["station"] == 9 and sens.sizes["time"] == 72
    )
    # observations were simulated from the truth: the posterior fits them better than the prior
    obs, pri, pos = (sens[v].values for v in ("co2_observed", "co2_prior", "co2_posterior"))
    assert np.sqrt(np.mean((pos - obs) ** 2)) < np.sqrt(np.mean((pri - obs) ** 2))
    conc = open_cube(store, "testcity_concentration")
    assert conc["co2_enhancement_prior"].dims == ("time", "y", "x")
    # the map (FFT convolution + stacks on the grid) equals the sensor Jacobian at a cell-centre sensor
    for which in ("prior", "posterior"):
        on_map = conc[f"co2_enhancement_{which}"].values[:, 20, 10]
        at_sensor = sens[f"co2_{which}"].sel(station="S8").values
        np.testing.assert_allclose(on_map, at_sensor, rtol=2e-3, atol=2e-3 * at_sensor.max())


@pytest.mark.slow  # the solver identity itself is in test_carbon_inversion; this is the run-level check
def test_gradient_solver_matches_closed_form_run(tmp_path):
    store, sites, fac = _city(tmp_path)
    cfg = _config(store, sites, fac, period={"start": "2024-07-01T00:00", "end": "2024-07-01T23:00"})
    closed = run_config(cfg).set_index("sector")
    grad = run_config({**cfg, "solver": "gradient"}).set_index("sector")
    np.testing.assert_allclose(grad["posterior"], closed["posterior"], rtol=2e-3)
    np.testing.assert_allclose(grad["prior_uncertainty"], closed["prior_uncertainty"], rtol=1e-5)
    assert grad["uncertainty"].isna().all()  # L-BFGS gives the mean only; no made-up uncertainty


def test_observation_files_round_trip_the_osse(tmp_path):
    """Observations given as a CSV (absolute ppm, background 420) reproduce the OSSE's posterior."""
    store, sites, fac = _city(tmp_path)
    cfg = _config(store, sites, fac, period={"start": "2024-07-01T00:00", "end": "2024-07-01T23:00"})
    out = tmp_path / "out"
    osse_table = run_config(cfg, store=out).set_index("sector")
    sens = open_cube(out, "testcity_sensors")
    obs = sens["co2_observed"].to_dataframe().reset_index()
    obs = obs.rename(columns={"station": "site_id"})[["time", "site_id", "co2_observed"]]
    obs["co2_ppm"] = obs.pop("co2_observed") + 420.0
    obs.loc[::7, "co2_ppm"] = -999.0  # missing values are dropped from the inversion
    path = tmp_path / "obs.csv"
    obs.to_csv(path, index=False)
    real = dict(cfg, observations=str(path), background_ppm=420.0, osse=None)
    table = run_config(real).set_index("sector")
    assert "truth" not in table.columns
    np.testing.assert_allclose(table["prior"], osse_table["prior"], rtol=1e-6)
    # fewer data (1 in 7 dropped): close to, but less certain than, the full-data posterior
    np.testing.assert_allclose(table["posterior"], osse_table["posterior"], rtol=0.05)
    assert table.loc["total", "uncertainty"] >= osse_table.loc["total", "uncertainty"] * (1 - 1e-4)


def test_gas_field_flares_are_point_sources(tmp_path):
    """Flares (a gas field's rates x flare efficiency) join the facilities; sector totals stay conserved."""
    import geopandas as gpd

    from twins.carbon.inventory import flaring_emissions
    from twins.carbon.run import build

    store, sites, fac = _city(tmp_path)
    pt = gpd.GeoSeries(gpd.points_from_xy([X0 + 2500.0], [Y1 - 4000.0]), crs=32610).to_crs(4326)
    flares = tmp_path / "flares.csv"
    flares.write_text(
        f"name,latitude,longitude,gas_rate_sm3_per_day,flare_efficiency\nW1,{pt.y[0]},{pt.x[0]},20000,0.95\n"
    )
    cfg, base = load_config(
        _config(
            store,
            sites,
            fac,
            flares=str(flares),
            period={"start": "2024-07-01T00:00", "end": "2024-07-01T02:00"},
        )
    )
    p = build(cfg, base, open_cube(store, "city").load())
    co2, _ = flaring_emissions(np.array([20000.0]), 0.95)
    assert p["point_sector"] == ["ippu", "stationary_energy"]
    np.testing.assert_allclose(p["q_t"], [40000.0, co2[0]], rtol=1e-12)
    agg, x = np.asarray(p["agg"], dtype=float), np.asarray(p["prior"].x, dtype=float)
    np.testing.assert_allclose(agg.T @ x, [60000.0, 40000.0, 50000.0], rtol=1e-5)


def test_config_errors(tmp_path):
    store, sites, fac = _city(tmp_path)
    with pytest.raises(InventoryError, match="do not match the declared sectors"):
        load_config(_config(store, sites, fac, sector_totals_t_per_year={"transport": 1.0}))
    with pytest.raises(InventoryError, match="proxies"):
        load_config(_config(store, sites, fac, proxies={"transport": "road_length_density"}))
    with pytest.raises(ConfigError, match="observations"):
        load_config(_config(store, sites, fac, osse=None))
    far = tmp_path / "far.csv"
    far.write_text("site_id,latitude,longitude\nFAR,37.0,-121.0\n")
    with pytest.raises(CarbonInputError, match=r"sensors \['FAR'\] lie outside the city grid"):
        run_config(_config(store, sites, fac, sensors=str(far)))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,latitude,longitude,co2_t_per_year,fuel\nX,37.8,-122.3,5,kryptonite\n")
    with pytest.raises(FacilityError, match="unknown fuel"):
        run_config(_config(store, sites, bad))
    with pytest.raises(CarbonInputError, match="proxy variable 'population'"):
        run_config(
            _config(
                store,
                sites,
                fac,
                proxies={"stationary_energy": "population", "transport": "uniform", "ippu": "uniform"},
            )
        )


def test_demo_city_real_osm_and_gppd(tmp_path):
    """The Oakland demo as `geotwin demo` builds it: real OSM buildings/roads and GPPD plants feed the run."""
    from pipelines.build import build_region
    from twins.carbon.run import build, invert, summary_table

    build_region(REPO / "catalogs" / "demo" / "oakland.yaml", tmp_path / "demo")
    cube = open_cube(tmp_path / "demo", "oakland").load()
    assert cube.sizes == {"y": 100, "x": 100}
    # the OSM extract covers a few blocks only: some buildings and roads, mostly empty cells
    bf, rl = cube["building_fraction"].values, cube["road_length_density"].values
    assert 0 < (bf > 0).sum() < 100 and 0 < (rl > 0).sum() < 200
    cfg, base = load_config(REPO / "catalogs" / "carbon" / "demo.yaml")
    p = build(cfg, base, cube)
    gppd = pd.read_csv(REPO / "catalogs/demo/data/gppd_oakland.csv")
    emitting = gppd["primary_fuel"].isin(["Gas", "Oil", "Coal"]) & (gppd["generation_gwh_2019"] > 0)
    assert len(p["q_t"]) == int(emitting.sum())  # every fossil plant with generation is a point source
    post, _, x_true = invert(p, cfg)
    total = summary_table(p, post, x_true).set_index("sector").loc["total"]
    assert abs(total["prior"] - total["truth"]) / total["truth"] > 0.10
    assert abs(total["posterior"] - total["truth"]) / total["truth"] < 0.10


def test_demo_facilities_are_the_shared_gppd_rows(shared_data):
    """The demo's plants are real GPPD rows: reading the full shared USA file in the bbox gives the same."""
    import warnings

    from pipelines.sources.facilities import read_gppd

    full = shared_file(shared_data, "emissions/gppd_database_USA.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        demo = read_gppd(REPO / "catalogs/demo/data/gppd_oakland.csv")
        bbox = demo.total_bounds
        sub = read_gppd(full, bbox=(bbox[0] - 1e-6, bbox[1] - 1e-6, bbox[2] + 1e-6, bbox[3] + 1e-6))
    assert set(demo["facility_id"]) <= set(sub["facility_id"])
    merged = demo.merge(sub, on="facility_id", suffixes=("", "_full"))
    np.testing.assert_allclose(merged["generation_mwh"], merged["generation_mwh_full"])


def test_winds_from_cube_or_stated():
    from twins.carbon.adapter import hourly_winds

    times = pd.date_range("2024-07-01", periods=3, freq="h")
    # stated: from the west (270 deg) blows towards +x; from the north (0 deg) towards -y
    u, v, src = hourly_winds(None, times, {"speed_m_s": 4.0, "from_deg": 270.0}, "UTC")
    np.testing.assert_allclose(u, 4.0)
    np.testing.assert_allclose(v, 0.0, atol=1e-12)
    assert "assumption" in src
    cycle = {"speed_m_s": list(range(1, 25)), "from_deg": 0.0}
    u, v, _ = hourly_winds(None, times, cycle, "America/Los_Angeles")  # 00 UTC = 17 h local (PDT)
    np.testing.assert_allclose(v, [-18.0, -19.0, -20.0])
    np.testing.assert_allclose(u, 0.0, atol=1e-12)
    # cube winds: the city mean of u10/v10 at each hour
    data = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    ds = xr.Dataset(
        {"u10": (("time", "y", "x"), data), "v10": (("time", "y", "x"), -data)},
        coords={"time": times, "y": [1.0, 0.0], "x": [0.0, 1.0]},
    )
    u, v, src = hourly_winds(ds, times, None, "UTC")
    np.testing.assert_allclose(u, data.mean(axis=(1, 2)))
    np.testing.assert_allclose(v, -u)
    assert "cube" in src
    with pytest.raises(CarbonInputError, match="do not cover the period"):
        hourly_winds(ds, pd.date_range("2025-01-01", periods=2, freq="h"), None, "UTC")
    with pytest.raises(CarbonInputError, match="24 hourly"):
        hourly_winds(None, times, {"speed_m_s": [1.0, 2.0]}, "UTC")
