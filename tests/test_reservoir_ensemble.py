"""Ensembles mapped in vmapped blocks (twins.reservoir.ensemble.map_members) against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from twins.reservoir.ensemble import CPU_BLOCK, default_block, map_members  # noqa: E402


def _member(x: dict) -> dict:
    """A nonlinear member computation with a pytree input and output and an inner loop."""
    y = jax.lax.fori_loop(0, 3, lambda _, v: jnp.sin(v) + x["shift"], x["v"])
    return {"sum": jnp.sum(y * y), "y": y}


@pytest.mark.parametrize("block", [1, 3, 7, 20, None, "auto"])
def test_blocks_equal_a_loop_over_members(block: int | str | None) -> None:
    """Every block size (dividing the members or not, larger than the ensemble, one vmap, the
    backend's default) gives each member exactly what it gives alone."""
    rng = np.random.default_rng(0)
    members = {"v": jnp.asarray(rng.normal(size=(7, 5))), "shift": jnp.asarray(rng.normal(size=7))}
    out = jax.jit(lambda m: map_members(_member, m, block))(members)
    for i in range(7):
        alone = _member({"v": members["v"][i], "shift": members["shift"][i]})
        np.testing.assert_allclose(np.asarray(out["y"][i]), np.asarray(alone["y"]), rtol=1e-6)
        np.testing.assert_allclose(float(out["sum"][i]), float(alone["sum"]), rtol=1e-6)


def test_default_block_and_bad_input() -> None:
    """Blocks on the CPU backend only; a non-positive block or an empty pytree is refused by name."""
    assert default_block() == (CPU_BLOCK if jax.default_backend() == "cpu" else None)
    with pytest.raises(ValueError, match="block must be a positive"):
        map_members(jnp.sin, jnp.ones(4), 0)
    with pytest.raises(ValueError, match="at least one array"):
        map_members(lambda x: x, {}, 2)
