"""The fast sampling paths of the ice kernel: corner stencils, packed complex channels and the
free-drift velocity evaluated on the forcing grid (``params["velocity_field"] = "grid"``)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax import enable_x64

from tests.test_ice_support import ST80, forcing_cube, grid
from twins.core import (
    GridSpec,
    bilinear,
    bilinear_stencil,
    corner_stencil,
    packed_stencil,
    sample_packed,
    sample_snapshot,
)
from twins.ice import simulate


@pytest.mark.parametrize("shape", [(7, 9), (1, 6), (5, 1)])
def test_corner_stencil_bilinear_equals_four_corner_bilinear(shape):
    rng = np.random.default_rng(1)
    with enable_x64(True):
        field = jnp.asarray(rng.standard_normal(shape))
        ny, nx = shape
        # interior, edges, corners and points outside (clamped)
        gx = jnp.asarray(np.concatenate([rng.uniform(-1, nx, 200), [0.0, nx - 1.0, nx - 1.0, 0.0]]))
        gy = jnp.asarray(np.concatenate([rng.uniform(-1, ny, 200), [0.0, ny - 1.0, 0.0, ny - 1.0]]))
        want = np.asarray(bilinear(field[None], gx, gy)[0])
        got = np.asarray(bilinear_stencil(corner_stencil(field), gx, gy))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)


def test_packed_channels_match_per_channel_sampling_for_an_odd_channel_count():
    rng = np.random.default_rng(2)
    with enable_x64(True):
        field = jnp.asarray(rng.standard_normal((5, 12, 10)))
        grid_ = GridSpec(*(jnp.asarray(v) for v in (100.0, 50.0, 10.0, -5.0)))
        x = jnp.asarray(rng.uniform(90.0, 200.0, 300))
        y = jnp.asarray(rng.uniform(-10.0, 55.0, 300))
        want, ok_want = sample_snapshot(field, grid_, x, y)
        vals, ok = sample_packed(packed_stencil(field), grid_, x, y)
    assert len(vals) == 6  # 5 channels + 1 zero padding channel
    np.testing.assert_allclose(np.stack(vals[:5]), np.asarray(want), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(np.asarray(vals[5]), 0.0)
    np.testing.assert_array_equal(np.asarray(ok), np.asarray(ok_want))


def _smooth_cube(res: float):
    """Smooth, steady wind and current on a polar stereographic grid (same fields at any res).

    Steady, so that the comparison isolates the spatial interpolation error (with time-varying
    forcing the two paths also differ by the time interpolation of a nonlinear function, O(dt_f^2))."""
    g = grid(ST80, -200_000, -200_000, int(400_000 / res), int(400_000 / res), res)
    k = 2 * np.pi / 300_000
    return forcing_cube(
        g,
        uo=lambda t, y, x: 0.15 * np.sin(k * y),
        vo=lambda t, y, x: 0.10 * np.cos(k * x),
        u10=lambda t, y, x: 8.0 + 3.0 * np.sin(k * (x + y)),
        v10=lambda t, y, x: -5.0 + 2.0 * np.cos(k * x),
        sea_ice_concentration=0.9,
    )


def test_grid_velocity_converges_to_per_particle_free_drift_at_second_order():
    """Solving free drift on the grid and interpolating the velocity differs from solving it at the
    interpolated forcing only by interpolation error: halving the grid spacing divides the difference
    of the 24 h end positions by ~4 (second order), and it is small next to the drift itself."""
    rng = np.random.default_rng(3)
    seeds = pd.DataFrame({"x": rng.uniform(-60_000, 60_000, 40), "y": rng.uniform(-60_000, 60_000, 40)})
    diffs, drift = [], None
    with enable_x64(True):
        for res in (20_000.0, 10_000.0):
            cube = _smooth_cube(res)
            ends = {}
            for where in ("grid", "particles"):
                out = simulate(
                    cube, seeds, model="sea_ice", duration="24h", dt="1h", params={"velocity_field": where}
                )
                assert out.attrs["velocity_field"] == where
                ends[where] = np.stack([out["x"].values[:, -1], out["y"].values[:, -1]])
            diffs.append(np.max(np.hypot(*(ends["grid"] - ends["particles"]))))
            drift = np.median(
                np.hypot(ends["grid"][0] - seeds["x"].values, ends["grid"][1] - seeds["y"].values)
            )
    assert drift > 10_000  # the floes moved ~1.5 % of 8-11 m/s wind for a day
    assert diffs[1] < 0.002 * drift
    assert 2.8 < diffs[0] / diffs[1] < 5.5, diffs


def test_grid_and_particle_paths_agree_exactly_for_uniform_fields():
    g = grid(ST80, -50_000, -50_000, 10, 10, 10_000)
    cube = forcing_cube(g, uo=0.1, vo=-0.05, u10=10.0, v10=0.0, sea_ice_concentration=1.0)
    seeds = pd.DataFrame({"x": [0.0, 5_000.0], "y": [0.0, -5_000.0]})
    with enable_x64(True):
        ends = [
            simulate(cube, seeds, model="sea_ice", duration="6h", dt="1h", params={"velocity_field": w})
            for w in ("grid", "particles")
        ]
    np.testing.assert_allclose(ends[0]["x"].values, ends[1]["x"].values, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ends[0]["y"].values, ends[1]["y"].values, rtol=0, atol=1e-4)


def test_unknown_velocity_field_is_a_clear_error():
    g = grid(ST80, -50_000, -50_000, 4, 4, 10_000)
    cube = forcing_cube(g, uo=0.1, vo=0.0, u10=0.0, v10=0.0, sea_ice_concentration=1.0)
    with pytest.raises(ValueError, match="velocity_field"):
        simulate(
            cube,
            pd.DataFrame({"x": [0.0], "y": [0.0]}),
            duration="1h",
            dt="1h",
            params={"velocity_field": "x"},
        )


def test_auto_picks_the_path_with_fewer_physics_evaluations():
    """1 forcing time x 20 x 20 cells = 400 grid evaluations against 4 stages x particles x 2 steps."""
    g = grid(ST80, -100_000, -100_000, 20, 20, 10_000)
    cube = forcing_cube(g, uo=0.1, vo=0.0, u10=5.0, v10=0.0, sea_ice_concentration=1.0)
    few = pd.DataFrame({"x": [0.0] * 10, "y": [0.0] * 10})  # 80 particle evaluations < 400
    many = pd.DataFrame({"x": [0.0] * 60, "y": [0.0] * 60})  # 480 >= 400
    for seeds, want in ((few, "particles"), (many, "grid")):
        out = simulate(cube, seeds, model="sea_ice", duration="2h", dt="1h")
        assert out.attrs["velocity_field"] == want


def test_particles_split_across_devices_give_the_same_trajectories(tmp_path):
    """With two (virtual CPU) devices the particles are sharded across them; the result equals the
    single-device run bit for bit (particles are independent)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    script = tmp_path / "run.py"
    script.write_text(
        "import sys, numpy as np, pandas as pd, jax\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from tests.test_ice_support import ST80, forcing_cube, grid\n"
        "from twins.ice import simulate\n"
        "g = grid(ST80, -100_000, -100_000, 20, 20, 10_000)\n"
        "cube = forcing_cube(g, uo=lambda t, y, x: 0.1 + 1e-6 * y, vo=0.0, u10=8.0, v10=-3.0, sea_ice_concentration=1.0)\n"
        "rng = np.random.default_rng(0)\n"
        "seeds = pd.DataFrame({'x': rng.uniform(-50e3, 50e3, 64), 'y': rng.uniform(-50e3, 50e3, 64)})\n"
        "out = simulate(cube, seeds, model=sys.argv[2], duration='6h', dt='1h')\n"
        "np.save(sys.argv[1], np.stack([out['x'].values, out['y'].values]))\n"
        "print(len(jax.devices()))\n"
    )
    ends = {}
    for ndev in (1, 2):
        for model in ("sea_ice", "iceberg"):
            env = dict(__import__("os").environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={ndev}")
            out = tmp_path / f"{model}{ndev}.npy"
            res = subprocess.run(
                [sys.executable, str(script), str(out), model],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            assert res.stdout.strip().splitlines()[-1] == str(ndev)
            ends[model, ndev] = np.load(out)
    for model in ("sea_ice", "iceberg"):
        np.testing.assert_array_equal(ends[model, 1], ends[model, 2])
