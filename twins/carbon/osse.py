"""Observing-system simulation experiments: a hidden "true" emission field and synthetic sensor data."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .inversion import Prior, b_sqrt


def make_truth(
    prior: Prior,
    sector_scale: Sequence[float],
    point_scale: float = 1.0,
    perturbation: float = 0.0,
    seed: int = 0,
) -> jnp.ndarray:
    """A true state that differs from the prior.

    Each area sector ``k`` is the prior × ``sector_scale[k]``, point sources × ``point_scale``, plus
    ``perturbation`` × a draw from the prior error distribution (spatially correlated), clipped at 0.
    """
    k, ny, nx = prior.sd_area.shape
    if len(sector_scale) != k:
        raise ValueError(f"sector_scale: expected {k} values (one per area sector), got {len(sector_scale)}")
    na = k * ny * nx
    scale = jnp.concatenate(
        [
            jnp.repeat(jnp.asarray(sector_scale, dtype=prior.x.dtype), ny * nx),
            jnp.full(prior.x.size - na, point_scale),
        ]
    )
    draw = b_sqrt(prior, jax.random.normal(jax.random.key(seed), prior.x.shape, dtype=prior.x.dtype))
    return jnp.maximum(prior.x * scale + perturbation * draw, 0.0)


def simulate(H: jnp.ndarray, x_true: jnp.ndarray, noise_sd: float, seed: int = 1) -> np.ndarray:
    """Synthetic observations ``H x_true + ε``, ``ε ~ N(0, noise_sd²)``."""
    y = H @ x_true
    return np.asarray(y + noise_sd * jax.random.normal(jax.random.key(seed), y.shape, dtype=y.dtype))
