"""Icebergs feel the current averaged over their draft when the forcing cube has z levels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from jax import enable_x64

from pipelines.cube import make_cube
from tests.test_ice_support import EQC0, forcing_cube, grid
from twins.ice import simulate
from twins.ice.adapter import keel_weights
from twins.ice.physics import IceParams

DEPTHS = np.array([0.0, 10.0, 50.0, 100.0])
U_LEVELS = np.array([0.4, 0.2, 0.1, -0.3])  # eastward current per level, m/s


def test_keel_weights_by_hand():
    w = keel_weights(DEPTHS[:3], np.array([40.0, 3.0, 500.0]))
    # layers [0, 5], [5, 30], [30, inf)
    np.testing.assert_allclose(w[:, 0], np.array([5, 25, 10]) / 40)
    np.testing.assert_allclose(w[:, 1], [1, 0, 0])
    np.testing.assert_allclose(w[:, 2], np.array([5, 25, 470]) / 500)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)


def _layered_cube(vo_below_floor: bool = False):
    """Equatorial (f ~ 0) cube, no wind, eastward current varying with depth, uniform in space."""
    g = grid(EQC0, -200_000, -200_000, 40, 40, 10_000)
    base = forcing_cube(g, uo=0.0, vo=0.0, u10=0.0, v10=0.0, sea_ice_concentration=0.0)
    times = base["time"].values
    shape = (len(times), len(DEPTHS), 40, 40)
    uo = np.broadcast_to(U_LEVELS[None, :, None, None], shape).copy()
    vo = np.zeros(shape)
    if vo_below_floor:  # the deepest level is below the sea floor everywhere
        uo[:, -1] = np.nan
        vo[:, -1] = np.nan
    depth = xr.DataArray(
        DEPTHS, dims="depth", attrs={"units": "m", "positive": "down", "standard_name": "depth"}
    )
    data = {
        name: xr.DataArray(
            arr,
            dims=("time", "depth", "y", "x"),
            coords={"time": times, "depth": depth},
            attrs={"units": "m s-1", "long_name": name},
        )
        for name, arr in (("uo", uo), ("vo", vo))
    }
    for name in ("u10", "v10", "sea_ice_concentration"):
        data[name] = base[name]
    return make_cube(data, g)


def _speed(cube, draft: float) -> float:
    seeds = pd.DataFrame({"x": [0.0], "y": [0.0], "draft": [draft], "sail": [10.0]})
    params = {"coriolis_factor": 0.0, "added_mass": 0.0}
    with enable_x64(True):
        out = simulate(cube, seeds, model="iceberg", duration="48h", dt="1h", params=params)
    x = out["x"].values[0]
    return (x[-1] - x[24]) / (24 * 3600.0)  # mean speed over the second day (steady by then)


@pytest.mark.parametrize("draft", [3.0, 40.0, 90.0, 200.0])
def test_berg_drifts_with_the_draft_averaged_current(draft):
    """No wind and no Coriolis: in steady state the keel drag balances the sail drag against still
    air, ``Dw (Uk - V)^2 = Da V^2``, so ``V = Uk / (1 + sqrt(Da / Dw))`` with ``Uk`` the current
    averaged over the draft (hand-computed layer weights)."""
    cube = _layered_cube()
    layer_top = np.array([0.0, 5.0, 30.0, 75.0])
    layer_bottom = np.array([5.0, 30.0, 75.0, np.inf])
    w = np.clip(np.minimum(draft, layer_bottom) - layer_top, 0, None) / draft
    uk = float(w @ U_LEVELS)
    length, width, sail = 100.0, 30.0, 10.0  # OpenBerg defaults of the seeds
    p = IceParams()  # OpenBerg's drag coefficients: form drag on the keel/sail, skin drag on the base/top
    dw = 0.5 * p.rho_water * p.berg_water_form_drag * length * draft
    dw += p.rho_water * p.berg_water_skin_drag * length * width
    da = (
        0.5 * p.rho_air * p.berg_air_form_drag * length * sail
        + p.rho_air * p.berg_air_skin_drag * length * width
    )
    want = uk / (1 + np.sqrt(da / dw))
    assert _speed(cube, draft) == pytest.approx(want, rel=2e-3, abs=1e-4)


def test_levels_below_the_sea_floor_take_the_deepest_level_above():
    """A 200 m keel with the 100 m level missing (below the floor) feels the 50 m current there."""
    full, holed = _layered_cube(), _layered_cube(vo_below_floor=True)
    patched = full.copy()
    patched["uo"] = full["uo"].where(full["depth"] < 100, full["uo"].sel(depth=50.0))
    assert _speed(holed, 200.0) == pytest.approx(_speed(patched, 200.0), rel=1e-9)


def test_arctic20_z_levels_through_the_pipeline(shared_data, tmp_path):
    """Arctic20's 17 z levels kept to 300 m by the gridded source (``level: {max_depth: 300}``): the
    cube has dim ``depth``; a 1 m keel (inside the top layer) drifts exactly as on the surface-only
    cube, and a 250 m keel drifts differently (the deep current is weaker and turned)."""
    import yaml

    from pipelines import open_cube
    from pipelines.build import build_region
    from tests.conftest import REPO, shared_file

    nc = shared_file(shared_data, "ocean_ice/Arctic20_1to5Feb_2016.nc")
    cfg = yaml.safe_load((REPO / "catalogs" / "demo" / "barents.yaml").read_text())
    cfg["time"] = {"start": "2016-02-01T12:00", "end": "2016-02-02T12:00", "freq": "6h"}
    src = cfg["sources"][0]
    src["path"] = str(nc)
    src["variables"] = {k: v for k, v in src["variables"].items() if k in ("uo", "vo")}
    cubes = {}
    for name, level in (("surface", "surface"), ("z", {"max_depth": 300})):
        src["options"]["level"] = level
        cfg["name"] = f"barents_{name}"
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        build_region(path, tmp_path / "store")
        cubes[name] = open_cube(tmp_path / "store", f"barents_{name}").load()
    z = cubes["z"]
    assert z["uo"].dims == ("time", "depth", "y", "x")
    np.testing.assert_array_equal(z["depth"].values, [0, 3, 10, 15, 25, 50, 75, 100, 150, 200, 250, 300])
    np.testing.assert_allclose(z["uo"].isel(depth=0).values, cubes["surface"]["uo"].values, equal_nan=True)
    wet = np.isfinite(cubes["surface"]["uo"].values).all(axis=0) & np.isfinite(z["uo"].values[:, 7]).all(
        axis=0
    )
    iy, ix = np.nonzero(wet)
    pick = np.linspace(0, iy.size - 1, 12).astype(int)
    seeds = pd.DataFrame({"x": z["x"].values[ix[pick]], "y": z["y"].values[iy[pick]]})
    params = {"wind": "none"}

    def run(cube, draft):
        s = seeds.assign(draft=draft)
        out = simulate(cube, s, model="iceberg", duration="24h", dt="1h", params=params)
        return np.stack([out["x"].values[:, -1], out["y"].values[:, -1]])

    np.testing.assert_allclose(run(z, 1.0), run(cubes["surface"], 1.0), rtol=0, atol=1e-3)
    deep = np.hypot(*(run(z, 250.0) - run(cubes["surface"], 250.0)))
    assert np.median(deep) > 100.0  # metres after 24 h: the keel current matters
