"""The ice twin's public interface: cube in/out, CF trajectory attributes, land/outside handling,
release times, ensembles, presence probability, map geometry, dtypes and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from jax import enable_x64 as _enable_x64
from pyproj import CRS, Proj

from pipelines.cube import verify_cube
from tests.test_ice_support import EQC0, forcing_cube, grid
from twins.ice import presence_probability, simulate
from twins.ice.adapter import ForcingError, SeedError, geometry_channels


def x64():
    return _enable_x64(True)


def _coast(t, y, x):
    """0.2 m/s eastward, land (NaN) east of x = 20 km."""
    return np.where(x > 20_000, np.nan, 0.2 + 0 * y)


@pytest.fixture(scope="module")
def coast_cube():
    g = grid(EQC0, -50_000, -50_000, 20, 20, 5_000)
    return forcing_cube(g, uo=_coast, vo=0.0, u10=0.0, v10=0.0, sea_ice_concentration=0.5)


def test_trajectory_cube_is_cf_dsg_and_particles_strand(coast_cube):
    seeds = pd.DataFrame({"x": [-10_000.0, -5_000.0, 0.0], "y": [0.0, 30_000.0, -20_000.0]})
    with x64():
        r = simulate(coast_cube, seeds, model="passive", duration="48h", dt="1h")
    verify_cube(r)
    assert r.attrs["featureType"] == "trajectory"
    assert r["trajectory"].attrs["cf_role"] == "trajectory_id"
    assert r["status"].attrs["flag_meanings"].split()[:3] == ["active", "stranded", "outside"]
    assert r.sizes == {"trajectory": 3, "time": 49}
    st = r["status"].values
    assert np.all(st[:, -1] == 1)  # all reached the coast (0.2 m/s x 48 h = 34.6 km)
    x = r["x"].values
    for k in range(3):
        first = np.argmax(st[k] == 1)
        assert np.all(x[k, first:] == x[k, first])  # stranded particles stay put
        # they stop at their last position where the bilinear wet fraction is >= 0.5 (x <= 22.5 km)
        assert 15_000 < x[k, first] <= 22_500
    assert not np.isnan(x).any()  # never dropped


def test_particles_leaving_the_grid_are_flagged_outside():
    g = grid(EQC0, -50_000, -50_000, 20, 20, 5_000)
    f = forcing_cube(g, uo=0.0, vo=0.5)
    with x64():
        r = simulate(f, pd.DataFrame({"x": [0.0], "y": [30_000.0]}), model="passive", duration="24h", dt="1h")
    st = r["status"].values[0]
    k = np.argmax(st == 2)
    assert k > 0 and np.all(st[k:] == 2)
    y = r["y"].values[0]
    assert y[-1] <= 47_500 and np.all(y[k:] == y[k])  # kept at the last inside position


def test_release_times(coast_cube):
    seeds = pd.DataFrame({"x": [-40_000.0], "y": [0.0], "release_time": [pd.Timestamp("2016-02-01T15:00")]})
    with x64():
        r = simulate(coast_cube, seeds, model="passive", duration="6h", dt="1h")
    st, x = r["status"].values[0], r["x"].values[0]
    assert list(st[:3]) == [3, 3, 3] and np.isnan(x[:3]).all()
    assert st[3] == 0 and x[3] == -40_000.0
    assert x[-1] - x[3] == pytest.approx(0.2 * 3 * 3600, rel=1e-6)


def test_ensemble_members_and_presence_probability(coast_cube):
    seeds = pd.DataFrame({"x": [-40_000.0, -30_000.0], "y": [0.0, 10_000.0]})
    with x64():
        one = simulate(coast_cube, seeds, model="sea_ice", duration="12h", dt="1h", params={"wind": "none"})
        ens = simulate(
            coast_cube,
            seeds,
            model="sea_ice",
            duration="12h",
            dt="1h",
            members=6,
            params={"wind": "none", "perturb_drag": 0.0, "perturb_position_m": 2_000.0, "seed": 3},
        )
    assert ens.sizes == {"member": 6, "trajectory": 2, "time": 13}
    np.testing.assert_array_equal(ens["x"].values[0], one["x"].values)  # member 0 is the control
    assert np.ptp(ens["x"].values[:, :, 0], axis=0).min() > 0  # release positions perturbed
    assert "taken as zero" in one.attrs["geotwin_wind"]
    p = presence_probability(ens, coast_cube)
    verify_cube(p)
    assert p["ice_presence_probability"].dims == ("time", "y", "x")
    prob = p["ice_presence_probability"].values
    assert np.all(np.isin(np.round(prob * 6), np.arange(7)))  # multiples of 1/6
    # each member contributes at least one and at most two occupied cells per time
    total = prob.sum(axis=(1, 2)) * 6
    assert np.all((total >= 6) & (total <= 12))
    p1 = presence_probability(one, coast_cube)["ice_presence_probability"].values
    ix = np.rint((one["x"].values[:, 0] + 47_500) / 5_000).astype(int)
    iy = np.rint((one["y"].values[:, 0] - 47_500) / -5_000).astype(int)
    assert np.all(p1[0, iy, ix] == 1) and p1[0].sum() == 2


def test_map_jacobian_matches_pyproj_factors():
    """EPSG:3413: |d(grid)/d(north metre)| is PROJ's meridional scale, |.../east| the parallel scale."""
    crs = CRS.from_epsg(3413)
    x = np.array([-1_500_000.0, 0.0, 1_000_000.0, 2_000_000.0])
    y = np.array([-2_000_000.0, -500_000.0, 0.5e6])
    g = geometry_channels(crs, x, y)
    xx, yy = np.meshgrid(x, y)
    lon, lat = g["lat"] * 0 + Proj(crs)(xx, yy, inverse=True)[0], g["lat"]
    fac = Proj(crs).get_factors(lon, lat)
    np.testing.assert_allclose(np.hypot(g["jnx"], g["jny"]), fac.meridional_scale, rtol=2e-6)
    np.testing.assert_allclose(np.hypot(g["jex"], g["jey"]), fac.parallel_scale, rtol=2e-6)
    np.testing.assert_allclose(
        g["jex"] * g["jnx"] + g["jey"] * g["jny"], 0, atol=5e-6
    )  # conformal (FD error ~1e-6)
    # 90° east of the central meridian (-45°) on the x axis, north points to the pole: -x
    gq = geometry_channels(crs, np.array([1_000_000.0, 1_000_001.0]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(gq["jnx"][0, 0] / np.hypot(gq["jnx"][0, 0], gq["jny"][0, 0]), -1.0, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_end_to_end(dtype):
    g = grid(EQC0, -50_000, -50_000, 20, 20, 5_000)
    f = forcing_cube(g, dtype=dtype, uo=0.1, vo=0.1, u10=5.0, v10=0.0)
    with x64():
        r = simulate(f, pd.DataFrame({"x": [0.0], "y": [0.0]}), model="sea_ice", duration="2h", dt="1h")
    assert r["x"].dtype == np.dtype(dtype) and r["y"].dtype == np.dtype(dtype)


def test_float32_without_x64_is_close_to_float64():
    g = grid(EQC0, -50_000, -50_000, 20, 20, 5_000)
    f = forcing_cube(g, uo=0.1, vo=-0.05, u10=8.0, v10=3.0)
    seeds = pd.DataFrame({"x": [0.0], "y": [0.0]})
    r32 = simulate(f, seeds, model="sea_ice", duration="6h", dt="1h")
    with x64():
        r64 = simulate(f, seeds, model="sea_ice", duration="6h", dt="1h")
    assert r32["x"].dtype == np.float32
    np.testing.assert_allclose(r32["x"].values, r64["x"].values, atol=0.05)  # metres


def test_clear_errors(coast_cube):
    seeds = pd.DataFrame({"x": [0.0], "y": [0.0]})
    no_wind = coast_cube.drop_vars(["u10", "v10"])
    with pytest.raises(ForcingError, match=r"needs variable\(s\) \['u10', 'v10'\].*wind': 'none'"):
        simulate(no_wind, seeds, model="sea_ice", duration="1h", dt="1h")
    with pytest.raises(SeedError, match="outside the forcing grid.*rows \\[1\\]"):
        simulate(coast_cube, pd.DataFrame({"x": [0.0, 9e6], "y": [0.0, 0.0]}), duration="1h", dt="1h")
    with pytest.raises(ValueError, match="members must be a positive integer"):
        simulate(coast_cube, seeds, duration="1h", dt="1h", members=-3)
    with pytest.raises(ValueError, match="unknown params \\['drag'\\]"):
        simulate(coast_cube, seeds, duration="1h", dt="1h", params={"drag": 1})
    with pytest.raises(ValueError, match="not a multiple"):
        simulate(coast_cube, seeds, duration="90min", dt="1h")
    pct = coast_cube.assign(sea_ice_concentration=coast_cube["sea_ice_concentration"] * 100)
    with pytest.raises(ForcingError, match="not percent"):
        simulate(pct, seeds, duration="1h", dt="1h")
    with pytest.raises(SeedError, match="need columns x, y"):
        simulate(coast_cube, pd.DataFrame({"a": [1.0]}), duration="1h", dt="1h")
    times = pd.date_range("2016-02-01T12:00", periods=2, freq="6h")
    g = grid(EQC0, -50_000, -50_000, 20, 20, 5_000)
    short = forcing_cube(g, times=times, uo=0.1, vo=0.0)
    with pytest.raises(ForcingError, match="covers .* the run needs"):
        simulate(short, seeds, duration="12h", dt="1h")


def test_lonlat_seeds_are_projected():
    g = grid("EPSG:3413", 0, -1_000_000, 50, 50, 10_000)
    f = forcing_cube(g, uo=0.0, vo=0.0)
    r = simulate(f, pd.DataFrame({"lon": [-20.0], "lat": [82.0]}), duration="1h", dt="1h")
    assert float(r["lon"][0, 0]) == pytest.approx(-20.0, abs=1e-4)
    assert float(r["lat"][0, 0]) == pytest.approx(82.0, abs=1e-4)


def test_output_decimation_keeps_the_same_states(coast_cube):
    """``output_every`` records a subset of the same states (the steps in between are still taken);
    ``"final"`` keeps only the release and the end; a record interval that does not divide the run
    is rejected. Stranding against the coast happens between records, so the status is checked too."""
    seeds = pd.DataFrame({"x": [-10_000.0, -40_000.0], "y": [0.0, 30_000.0]})
    with x64():
        full = simulate(coast_cube, seeds, model="passive", duration="48h", dt="1h")
        dec = simulate(
            coast_cube, seeds, model="passive", duration="48h", dt="1h", params={"output_every": 6}
        )
        fin = simulate(
            coast_cube, seeds, model="passive", duration="48h", dt="1h", params={"output_every": "final"}
        )
    assert dec.sizes["time"] == 9 and fin.sizes["time"] == 2
    sub = full.isel(time=slice(None, None, 6))
    np.testing.assert_array_equal(dec["time"].values, sub["time"].values)
    for v in ("x", "y", "status"):
        np.testing.assert_array_equal(dec[v].values, sub[v].values)
        np.testing.assert_array_equal(fin[v].values, full[v].isel(time=[0, -1]).values)
    assert fin["status"].values[0, -1] == 1  # the first seed reaches the coast 30 km east in 48 h
    with pytest.raises(ValueError, match="output_every"):
        simulate(coast_cube, seeds, model="passive", duration="48h", dt="1h", params={"output_every": 5})
