"""Ice-hazard forecast: arrival times and probabilities against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from jax import enable_x64

from pipelines.config import ConfigError
from tests.test_ice_support import EQC0, forcing_cube, grid
from twins.ice.hazard import ice_hazard, seeds_from_concentration


@pytest.fixture(scope="module")
def eastward():
    """0.25 m/s eastward current everywhere; ice (concentration 0.8) only west of x = -30 km."""
    g = grid(EQC0, -100_000, -50_000, 40, 20, 5_000)
    return forcing_cube(
        g,
        uo=0.25,
        vo=0.0,
        u10=0.0,
        v10=0.0,
        sea_ice_concentration=lambda t, y, x: np.where(x < -30_000, 0.8, 0.0),
    )


def test_seeding_from_concentration(eastward):
    zone = shapely.box(20_000, -10_000, 40_000, 10_000)
    s = seeds_from_concentration(eastward, zone, threshold=0.15, max_distance_m=70_000)
    # ice cells: x centres -97.5..-32.5 km; within 70 km of the zone's west edge (x = 20 km): x >= -50 km
    assert set(np.unique(s["x"])) == {-47_500.0, -42_500.0, -37_500.0, -32_500.0}
    # rows within reach: |y| - 10 km <= sqrt(70² - dx²) km with dx = 52.5, 57.5, 62.5, 67.5 km
    # -> |y| <= 56.3, 49.9, 41.5, 28.5 km -> 20, 20, 16, 12 of the 5 km rows (centres ±2.5 .. ±47.5 km)
    assert len(s) == 20 + 20 + 16 + 12
    np.testing.assert_allclose(s["concentration"], 0.8)


def test_arrival_time_and_probability(eastward):
    """The nearest ice (x = -32.5 km) reaches the zone edge (x = 20 km) after 52.5 km / 0.25 m/s = 58.3 h."""
    zone = shapely.box(20_000, -10_000, 40_000, 10_000)
    seeds = pd.DataFrame({"x": [-32_500.0, -47_500.0], "y": [2_500.0, -2_500.0]})
    with enable_x64(True):
        res = ice_hazard(
            eastward,
            zone,
            seeds=seeds,
            model="passive",
            duration="72h",
            dt="1h",
            members=4,
            params={"perturb_position_m": 0.0},
        )
    s = res["summary"]
    assert s["earliest_arrival_lead_h"] == 59.0  # first hourly output inside: ceil(58.33)
    assert s["p_reach_by_lead_h"]["48"] == 0.0 and s["p_reach_final"] == 1.0
    hz = res["hazard"]
    assert hz.sizes["lead_time"] == 73 and hz["arrival_lead_time"].shape == (1, 4)
    np.testing.assert_array_equal(hz["arrival_lead_time"].values[0], 59.0)
    # the second floe enters at (20 + 47.5) km / 0.25 m/s = 75 h: after the horizon, one floe inside at 72 h
    assert hz["particles_in_zone"].values[0, -1] == pytest.approx(1.0)


def test_run_config_rejects_bad_members(tmp_path):
    from twins.ice.run import run_config

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: x\nforcing: {cube: barents, store: s}\nzone: {path: z.geojson}\nmembers: -2\n")
    with pytest.raises(ConfigError, match="members"):
        run_config(cfg)


def test_run_config_with_an_iceberg_table(eastward, tmp_path):
    """An iceberg list drives the forecast; the result cubes round-trip through the store."""
    import json

    from pipelines import open_cube
    from pipelines.store import write_cube
    from twins.ice.run import run_config

    store = tmp_path / "store"
    write_cube(store, "synthetic", eastward.assign(u10=eastward["u10"] + 10.0))
    pd.DataFrame(
        {"lon": [-0.2, -0.3], "lat": [0.0, 0.01], "length": [200.0, 80.0], "draft": [120.0, 60.0]}
    ).to_csv(tmp_path / "bergs.csv", index=False)
    zone = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0.15, -0.1], [0.35, -0.1], [0.35, 0.1], [0.15, 0.1], [0.15, -0.1]]],
                },
            }
        ],
    }
    (tmp_path / "zone.geojson").write_text(json.dumps(zone))
    (tmp_path / "run.yaml").write_text(
        "name: bergs\nforcing: {cube: synthetic}\nzone: {path: zone.geojson, name: box}\n"
        "seeding: {table: bergs.csv}\nmodel: iceberg\nmembers: 3\nduration: 24h\ndt: 1h\n"
    )
    summary = run_config(tmp_path / "run.yaml", store=store)
    assert summary["n_particles"] == 2 and summary["members"] == 3 and summary["model"] == "iceberg"
    traj = open_cube(store, "ice_trajectories")
    assert traj.sizes == {"member": 3, "trajectory": 2, "time": 25}
    assert traj.attrs["featureType"] == "trajectory" and traj.attrs["model"] == "iceberg"
    # 0.25 m/s current + 10 m/s wind push both bergs east, never west
    assert np.all(np.diff(traj["x"].values, axis=-1) > 0)
