"""The ice twin on real forcing: MET Norway Arctic20 (shared/data) through the cube pipeline.

Facts checked: passive drift on the real cube matches an independent integration (scipy solve_ivp,
scipy RegularGridInterpolator, analytic polar-stereographic directions and PROJ's scale factor) to
within 50 m after 48 h; the demo ice-hazard run writes its cubes, conserves particles and gives
probabilities that never decrease with lead time.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from jax import enable_x64
from pyproj import Proj

from tests.conftest import REPO
from tests.test_ice_support import build_barents_store
from twins.ice import simulate


@pytest.fixture(scope="module")
def barents(shared_data, tmp_path_factory):
    return build_barents_store(shared_data, tmp_path_factory.mktemp("ice_real"))


def _reference_drift(cube, x0, y0, hours):
    """Independent RK45 integration of the cube's east/north currents on EPSG:3413."""
    from scipy.integrate import solve_ivp
    from scipy.interpolate import RegularGridInterpolator

    t = (cube["time"].values - cube["time"].values[0]) / np.timedelta64(1, "s")
    y = cube["y"].values[::-1]  # ascending for scipy
    x = cube["x"].values
    interp = {
        v: RegularGridInterpolator((t, y, x), cube[v].values[:, ::-1, :].astype(float), bounds_error=True)
        for v in ("uo", "vo")
    }
    proj = Proj("EPSG:3413")

    def rhs(tt, p):
        xx, yy = p
        ue = interp["uo"]((tt, yy, xx))
        vn = interp["vo"]((tt, yy, xx))
        rho = np.hypot(xx, yy)
        lon, lat = proj(xx, yy, inverse=True)
        k = proj.get_factors(lon, lat).parallel_scale
        # north polar stereographic: east = (-y, x)/rho, north = (-x, -y)/rho in grid coordinates
        return [k * (ue * -yy + vn * -xx) / rho, k * (ue * xx + vn * -yy) / rho]

    sol = solve_ivp(rhs, (0, hours * 3600.0), [x0, y0], rtol=1e-9, atol=1e-3, method="DOP853")
    return sol.y[:, -1]


def test_passive_drift_matches_independent_integration(barents):
    _, cube = barents
    # open-water seeds: every cell within 40 km wet at all times (the reference has no land handling)
    wet = np.isfinite(cube["uo"].values).all(axis=0)
    from scipy.ndimage import binary_erosion

    deep = binary_erosion(wet, np.ones((9, 9), bool))
    iy, ix = np.nonzero(deep)
    pick = np.linspace(0, iy.size - 1, 5).astype(int)
    seeds = pd.DataFrame({"x": cube["x"].values[ix[pick]], "y": cube["y"].values[iy[pick]]})
    with enable_x64(True):
        r = simulate(
            cube.astype({v: "float64" for v in cube.data_vars}),
            seeds,
            model="passive",
            duration="48h",
            dt="1h",
        )
    assert (r["status"].values[:, -1] == 0).all()
    for k in range(len(seeds)):
        xr_, yr_ = _reference_drift(cube, seeds.x[k], seeds.y[k], 48)
        moved = np.hypot(xr_ - seeds.x[k], yr_ - seeds.y[k])
        err = np.hypot(r["x"].values[k, -1] - xr_, r["y"].values[k, -1] - yr_)
        assert moved > 1_000  # the currents move it
        assert err < 50.0, (k, moved, err)


def test_demo_hazard_run(barents, tmp_path):
    from pipelines import list_cubes, open_cube
    from twins.ice.run import run_config

    store, _ = barents
    cfg = (
        (REPO / "catalogs" / "ice" / "demo.yaml")
        .read_text()
        .replace("duration: 72h", "duration: 48h")
        .replace("members: 20", "members: 8")
    )
    (tmp_path / "demo.yaml").write_text(cfg)
    (tmp_path / "barents_platform_zone.geojson").write_text(
        (REPO / "catalogs" / "ice" / "barents_platform_zone.geojson").read_text()
    )
    summary = run_config(tmp_path / "demo.yaml", store=store, out=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["zone"] == "barents_demo_platform"
    assert {"ice_trajectories", "ice_hazard", "ice_presence_probability"} <= set(list_cubes(store))
    traj = open_cube(store, "ice_trajectories")
    hazard = open_cube(store, "ice_hazard")
    assert traj.sizes["trajectory"] == summary["n_particles"] and traj.sizes["member"] == 8
    assert not np.isnan(traj["x"].values).any()  # every particle kept (released at t0)
    p = hazard["p_reach"].values[0]
    assert np.all(np.diff(p) >= 0) and 0 <= p.min() and p.max() <= 1
    assert np.all(hazard["p_present"].values <= hazard["p_reach"].values + 1e-7)
    arrivals = hazard["arrival_lead_time"].values[0]
    if summary["earliest_arrival_lead_h"] is None:
        assert np.isnan(arrivals).all() and p[-1] == 0
    else:
        assert np.nanmin(arrivals) == pytest.approx(summary["earliest_arrival_lead_h"])
        assert p[-1] == pytest.approx(np.isfinite(arrivals).mean())
    assert "taken as zero" in summary["wind"]
