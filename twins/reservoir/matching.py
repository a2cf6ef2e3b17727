"""History matching: recover permeability multipliers from observed well data.

Parameters are log permeability multipliers per zone (``zones``: one integer per active cell).
Observations are well vectors per report step (BHP in Pa, surface rates in m3/s) with standard
deviations. Two methods:

- :func:`match_gradient`: minimise the weighted least-squares mismatch with ``jax.grad`` through the
  fixed-step simulator (``lax.scan`` throughout) and optax Adam, plus a Gaussian prior term;
- :func:`es_mda`: ensemble smoother with multiple data assimilation (Emerick & Reynolds 2013) with
  the adaptive solver ``jax.vmap``-ed over the ensemble (in blocks, :mod:`.ensemble`).

Both return the matched log multipliers; :func:`observe` gives the simulated observation vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from .ensemble import map_members

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import Case
    from .solver import Report

#: observable vectors: BHP of every well, water and hydrocarbon rates of every well
VECTORS = ("bhp", "qw", "qh")


def observe(rep: Report, steps: np.ndarray, vectors: Sequence[str] = VECTORS) -> jnp.ndarray:
    """Flattened observation vector of the report steps ``steps`` (SI)."""
    return jnp.concatenate([getattr(rep, v)[steps].reshape(-1) for v in vectors])


def default_sigma(
    obs: np.ndarray, n_wells: int, n_steps: int, rel: float = 0.02, vectors: Sequence[str] = VECTORS
) -> np.ndarray:
    """Observation errors: ``rel`` of each vector's magnitude (at least 1 bar / 0.1 m3/day)."""
    floors = {"bhp": 1e5, "qw": 0.1 / 86400, "qh": 0.1 / 86400}
    out = []
    k = 0
    for v in vectors:
        block = np.asarray(obs[k : k + n_wells * n_steps])
        out.append(np.maximum(rel * np.abs(block), floors[v]))
        k += n_wells * n_steps
    return np.concatenate(out)


def _mults(theta: jnp.ndarray, zones: np.ndarray) -> jnp.ndarray:
    return jnp.exp(theta[zones])


def mismatch_fn(
    case: Case, zones: np.ndarray, obs: np.ndarray, sigma: np.ndarray, steps: np.ndarray, prior_sd: float = 1.0,
    substeps: int = 2, iterations: int = 6, vectors: Sequence[str] = VECTORS,
) -> Any:  # fmt: skip
    """``J(theta) = 0.5 |(d(theta) - obs)/sigma|^2 / n + 0.5 |theta/prior_sd|^2 / n`` (fixed-step solver)."""
    obs, sigma = jnp.asarray(obs), jnp.asarray(sigma)
    n = obs.size

    def loss(theta: jnp.ndarray) -> jnp.ndarray:
        rep = case.sim.run_fixed(
            case.model,
            case.x0,
            case.controls,
            case.dts,
            case.params(_mults(theta, zones)),
            substeps=substeps,
            iterations=iterations,
        )
        r = (observe(rep, steps, vectors) - obs) / sigma
        return 0.5 * (jnp.sum(r * r) + jnp.sum((theta / prior_sd) ** 2)) / n

    return loss


def match_gradient(
    case: Case, zones: np.ndarray, obs: np.ndarray, sigma: np.ndarray, steps: np.ndarray, n_iter: int = 15,
    learning_rate: float = 0.1, **kw: Any,
) -> tuple[np.ndarray, list[float]]:  # fmt: skip
    """Gradient-based match (jax.value_and_grad + optax Adam); returns (theta, loss history)."""
    import optax

    loss = jax.jit(jax.value_and_grad(mismatch_fn(case, zones, obs, sigma, steps, **kw)))
    theta = jnp.zeros(int(zones.max()) + 1)
    opt = optax.adam(learning_rate)
    state = opt.init(theta)
    history = []
    for _ in range(n_iter):
        value, grad = loss(theta)
        history.append(float(value))
        updates, state = opt.update(grad, state)
        theta = optax.apply_updates(theta, updates)
    history.append(float(loss(theta)[0]))
    return np.asarray(theta), history


def ensemble_observe(case: Case, zones: np.ndarray, thetas: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Observation vectors of an ensemble of log multipliers (one compiled adaptive run, members vmapped
    in blocks: :func:`.ensemble.map_members`)."""

    def member(theta: jnp.ndarray) -> jnp.ndarray:
        rep = case.sim.run(case.model, case.x0, case.controls, case.dts, case.params(_mults(theta, zones)))
        return observe(rep, steps)

    return np.asarray(map_members(member, jnp.asarray(thetas)))


def es_mda(
    case: Case, zones: np.ndarray, obs: np.ndarray, sigma: np.ndarray, steps: np.ndarray, members: int = 24,
    assimilations: int = 4, prior_sd: float = 1.0, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """ES-MDA with equal inflation factors ``alpha = assimilations``; returns (posterior mean, ensemble)."""
    rng = np.random.default_rng(seed)
    n_par = int(zones.max()) + 1
    theta = rng.normal(0.0, prior_sd, size=(members, n_par))
    alpha = float(assimilations)
    obs = np.asarray(obs)
    sigma = np.asarray(sigma)
    for _ in range(assimilations):
        d = ensemble_observe(case, zones, theta, steps)
        ok = np.all(np.isfinite(d), axis=1)
        theta, d = theta[ok], d[ok]
        dt = theta - theta.mean(axis=0)
        dd = d - d.mean(axis=0)
        m = theta.shape[0]
        c_md = dt.T @ dd / (m - 1)
        c_dd = dd.T @ dd / (m - 1)
        perturbed = obs + np.sqrt(alpha) * sigma * rng.standard_normal(d.shape)
        gain = np.linalg.solve(c_dd + alpha * np.diag(sigma**2), c_md.T).T
        theta = theta + (perturbed - d) @ gain.T
    return theta.mean(axis=0), theta
