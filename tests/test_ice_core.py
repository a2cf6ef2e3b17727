"""twins.core: interpolation and integrators (shared by the twins) against exact results."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twins.core import GridSpec, make_step, sample, time_weights


def test_bilinear_linear_in_time_is_exact_for_affine_fields():
    """f(t, x, y) = 1 + 2x - 3y + 0.5t is reproduced exactly (bilinear/linear interpolation of an affine field)."""
    with jax.enable_x64(True):
        x = np.linspace(0.0, 9.0, 10)
        y = np.linspace(20.0, 2.0, 7)  # descending rows, like north-up rasters
        t = np.array([0.0, 10.0, 30.0])  # irregular times
        tt, yy, xx = np.meshgrid(t, y, x, indexing="ij")
        f = np.stack([1 + 2 * xx - 3 * yy + 0.5 * tt, 0 * xx + 7.0], axis=1)  # (nt, nv=2, ny, nx)
        grid = GridSpec(*map(jnp.asarray, (x[0], y[0], x[1] - x[0], y[1] - y[0])))
        px = np.array([0.0, 4.3, 9.0, 8.99])
        py = np.array([20.0, 7.7, 2.0, 11.1])
        vals, ok = sample(jnp.asarray(f), jnp.asarray(t), grid, jnp.asarray(px), jnp.asarray(py), 17.0)
        vals = np.asarray(vals)
        outside_x = jnp.asarray([-0.1, 9.2])
        _, ok_out = sample(jnp.asarray(f), jnp.asarray(t), grid, outside_x, jnp.asarray([5.0, 5.0]), 0.0)
    np.testing.assert_allclose(vals[0], 1 + 2 * px - 3 * py + 0.5 * 17.0, rtol=1e-12)
    np.testing.assert_allclose(vals[1], 7.0)
    assert bool(ok.all())
    assert not bool(ok_out.any())


def test_time_weights_clamp_and_steady():
    i, w = time_weights(jnp.asarray([0.0, 10.0, 30.0]), 40.0)
    assert int(i) == 1 and float(w) == 1.0  # clamped to the last interval's end
    i, w = time_weights(jnp.asarray([5.0]), 123.0)
    assert int(i) == 0 and float(w) == 0.0  # one time step: steady


def test_rk4_is_fourth_order_and_euler_first_order():
    """dx/dt = x on [0, 1]: the error at t = 1 drops by 2^p when dt halves."""

    def vel(pos, t, c):
        return (pos[0],)

    with jax.enable_x64(True):
        for scheme, order in (("rk4", 4), ("rk2", 2), ("euler", 1)):
            step = make_step(vel, scheme)
            errs = []
            for n in (16, 32):
                pos = (jnp.asarray(1.0),)
                for k in range(n):
                    pos = step(pos, k / n, 1.0 / n)
                errs.append(abs(float(pos[0]) - np.e))
            assert np.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.15)
