"""Bayesian linear inversion of sensor data for emissions (JAX).

State ``x`` = area fluxes of ``K`` sectors on the ``(ny, nx)`` grid (flattened) followed by ``P`` point
sources. Prior error covariance ``B`` is block diagonal: per sector ``B_k = D_k (C_y ⊗ C_x) D_k`` with
``D_k`` the prior standard deviations and ``C_y``, ``C_x`` exponential correlations along each axis
(a separable exponential, ``exp(-(|dx| + |dy|) / L)``); point sources are uncorrelated. ``B`` is never
formed: its square root ``B^{1/2} = D (L_y ⊗ L_x)`` (Cholesky factors) is applied by two small matmuls.

Three solvers give the same posterior:

- :func:`solve_obs_space`: ``x̂ = x_b + B Hᵀ (H B Hᵀ + R)⁻¹ (y − H x_b)``, for few observations;
- :func:`solve_state_space`: the same in control variables ``x = x_b + B^{1/2} χ``,
  ``(I + B^{T/2} Hᵀ R⁻¹ H B^{1/2}) χ̂ = B^{T/2} Hᵀ R⁻¹ (y − H x_b)``, for many observations
  (:func:`solve_state_space_streamed` builds ``H`` chunk by chunk inside one ``lax.scan``);
- :func:`solve_gradient`: minimises the cost ``J(χ) = ½|χ|² + ½ (H x − y)ᵀ R⁻¹ (H x − y)`` with
  ``jax.grad`` and optax L-BFGS, needing only products with ``H`` (for problems too large for the others).

``R`` is diagonal (variances ``r``). Aggregates (sector city totals) come with their posterior covariance
``Gᵀ Â G`` for an aggregation matrix ``G``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import optax


class Prior(NamedTuple):
    """Prior mean and the factors of its error covariance (a pytree)."""

    x: jnp.ndarray  # (n,) prior mean: K*ny*nx area fluxes, then P point sources
    sd_area: jnp.ndarray  # (K, ny, nx) standard deviations of area fluxes
    ly: jnp.ndarray  # (ny, ny) Cholesky factor of the y correlation
    lx: jnp.ndarray  # (nx, nx) Cholesky factor of the x correlation
    sd_point: jnp.ndarray  # (P,) standard deviations of point sources


class Posterior(NamedTuple):
    """Posterior mean, standard deviations and aggregate covariances (prior and posterior)."""

    x: jnp.ndarray
    sd: jnp.ndarray | None
    agg_cov_prior: jnp.ndarray
    agg_cov: jnp.ndarray


def exponential_cholesky(coord: jnp.ndarray, length: float) -> jnp.ndarray:
    """Cholesky factor of ``exp(-|c_i - c_j| / length)`` (positive definite in 1-D for any length > 0)."""
    corr = jnp.exp(-jnp.abs(coord[:, None] - coord[None, :]) / length)
    return jnp.linalg.cholesky(corr)


def _split(prior: Prior, v: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    na = prior.sd_area.size
    return v[:na].reshape(prior.sd_area.shape), v[na:]


def b_sqrt(prior: Prior, chi: jnp.ndarray) -> jnp.ndarray:
    """``B^{1/2} χ``."""
    a, p = _split(prior, chi)
    area = prior.sd_area * jnp.einsum("ij,kjl,ml->kim", prior.ly, a, prior.lx)
    return jnp.concatenate([area.ravel(), prior.sd_point * p])


def b_sqrt_t(prior: Prior, w: jnp.ndarray) -> jnp.ndarray:
    """``B^{T/2} w``."""
    a, p = _split(prior, w)
    area = jnp.einsum("ji,kjl,lm->kim", prior.ly, prior.sd_area * a, prior.lx)
    return jnp.concatenate([area.ravel(), prior.sd_point * p])


def b_apply(prior: Prior, w: jnp.ndarray) -> jnp.ndarray:
    """``B w``."""
    return b_sqrt(prior, b_sqrt_t(prior, w))


def b_diag(prior: Prior) -> jnp.ndarray:
    """Diagonal of ``B`` (prior variances; correlations have unit diagonal)."""
    return jnp.concatenate([(prior.sd_area**2).ravel(), prior.sd_point**2])


_rows = jax.vmap(b_apply, in_axes=(None, 0))
_rows_sqrt_t = jax.vmap(b_sqrt_t, in_axes=(None, 0))
_rows_sqrt = jax.vmap(b_sqrt, in_axes=(None, 0))


@jax.jit
def aggregate_prior_cov(prior: Prior, agg: jnp.ndarray) -> jnp.ndarray:
    """Prior covariance ``Gᵀ B G`` of the aggregates ``Gᵀ x`` (``agg`` is ``(n, g)``)."""
    gt = _rows_sqrt_t(prior, agg.T)
    return gt @ gt.T


@jax.jit
def solve_obs_space(
    H: jnp.ndarray, y: jnp.ndarray, r: jnp.ndarray, prior: Prior, agg: jnp.ndarray
) -> Posterior:
    """Closed form in observation space; ``H`` is ``(m, n)``, ``agg`` is ``(n, g)``."""
    hb = _rows(prior, H)  # (m, n) = H B
    chol = jnp.linalg.cholesky(H @ hb.T + jnp.diag(r))
    x = prior.x + hb.T @ jsl.cho_solve((chol, True), y - H @ prior.x)
    w = jsl.solve_triangular(chol, hb, lower=True)  # diag(HB^T S^-1 HB) = column sums of (L^-1 HB)^2
    sd = jnp.sqrt(jnp.maximum(b_diag(prior) - jnp.sum(w * w, axis=0), 0.0))
    bg = _rows(prior, agg.T)  # (g, n)
    prior_cov = agg.T @ bg.T
    hbg = H @ bg.T
    return Posterior(x, sd, prior_cov, prior_cov - hbg.T @ jsl.cho_solve((chol, True), hbg))


def _state_space_finish(a, b, prior, agg, variances):
    chol = jnp.linalg.cholesky(a)
    chi = jsl.cho_solve((chol, True), b)
    x = prior.x + b_sqrt(prior, chi)
    gt = _rows_sqrt_t(prior, agg.T)  # (g, n) = (B^{T/2} G)^T
    post = gt @ jsl.cho_solve((chol, True), gt.T)
    sd = None
    if variances:
        linv = jsl.solve_triangular(chol, jnp.eye(a.shape[0], dtype=a.dtype), lower=True)
        sd = jnp.sqrt(jnp.sum(_rows_sqrt(prior, linv) ** 2, axis=0))
    return Posterior(x, sd, gt @ gt.T, post)


@partial(jax.jit, static_argnames=("variances",))
def solve_state_space(
    H: jnp.ndarray, y: jnp.ndarray, r: jnp.ndarray, prior: Prior, agg: jnp.ndarray, variances: bool = True
) -> Posterior:
    """Closed form in control variables (cost ``m n²``); same posterior as :func:`solve_obs_space`."""
    hc = _rows_sqrt_t(prior, H)  # (m, n) = H B^{1/2}
    a = jnp.eye(hc.shape[1], dtype=hc.dtype) + hc.T @ (hc / r[:, None])
    b = hc.T @ ((y - H @ prior.x) / r)
    return _state_space_finish(a, b, prior, agg, variances)


def solve_state_space_streamed(
    rows_fn: Callable[..., jnp.ndarray],
    chunk_args: tuple[jnp.ndarray, ...],
    y: jnp.ndarray,
    r: jnp.ndarray,
    prior: Prior,
    agg: jnp.ndarray,
    variances: bool = False,
) -> Posterior:
    """:func:`solve_state_space` without storing ``H``: ``rows_fn(*args_c) -> H_c`` per chunk.

    ``chunk_args`` arrays and ``y``, ``r`` have a leading chunk axis ``(n_chunks, ...)``; the rows of
    ``H`` are built and folded into ``I + Hcᵀ R⁻¹ Hc`` and ``Hcᵀ R⁻¹ (y − H x_b)`` in one ``lax.scan``.
    """
    n = prior.x.shape[0]

    @jax.jit
    def run(chunk_args, y, r, prior, agg):
        def body(carry, inp):
            a, b = carry
            args, yc, rc = inp
            h = rows_fn(*args)
            hc = _rows_sqrt_t(prior, h)
            return (a + hc.T @ (hc / rc[:, None]), b + hc.T @ ((yc - h @ prior.x) / rc)), None

        init = (jnp.eye(n, dtype=prior.x.dtype), jnp.zeros(n, dtype=prior.x.dtype))
        (a, b), _ = jax.lax.scan(body, init, (chunk_args, y, r))
        return _state_space_finish(a, b, prior, agg, variances)

    return run(chunk_args, y, r, prior, agg)


def solve(H: jnp.ndarray, y: jnp.ndarray, r: jnp.ndarray, prior: Prior, agg: jnp.ndarray) -> Posterior:
    """Closed-form posterior, in observation space when ``m <= n`` and in state space otherwise."""
    if H.shape[0] <= H.shape[1]:
        return solve_obs_space(H, y, r, prior, agg)
    return solve_state_space(H, y, r, prior, agg)


@partial(jax.jit, static_argnames=("max_iter",))
def solve_gradient(
    H: jnp.ndarray, y: jnp.ndarray, r: jnp.ndarray, prior: Prior, max_iter: int = 1000, tol: float = 1e-9
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Posterior mean by L-BFGS on the preconditioned cost; returns ``(x̂, iterations)``.

    Only products ``H v`` are used (``jax.grad`` supplies ``Hᵀ``); the stopping rule is a gradient norm
    below ``tol`` relative to the gradient at the prior.
    """
    d = y - H @ prior.x

    def cost(chi):
        res = H @ b_sqrt(prior, chi) - d
        return 0.5 * jnp.vdot(chi, chi) + 0.5 * jnp.sum(res * res / r)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(cost)
    chi0 = jnp.zeros_like(prior.x)
    g0 = jnp.linalg.norm(jax.grad(cost)(chi0))

    def step(carry):
        chi, state = carry
        value, grad = value_and_grad(chi, state=state)
        updates, state = opt.update(grad, state, chi, value=value, grad=grad, value_fn=cost)
        return optax.apply_updates(chi, updates), state

    def more(carry):
        _, state = carry
        count = optax.tree_utils.tree_get(state, "count")
        grad = optax.tree_utils.tree_get(state, "grad")
        return (count == 0) | ((count < max_iter) & (optax.tree_utils.tree_norm(grad) >= tol * g0))

    chi, state = jax.lax.while_loop(more, step, (chi0, opt.init(chi0)))
    return prior.x + b_sqrt(prior, chi), optax.tree_utils.tree_get(state, "count")
