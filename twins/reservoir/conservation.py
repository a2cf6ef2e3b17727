"""Globally conservative Newton updates for the reservoir simulator's GMRES steps.

Within an adaptive time step, Newton's later iterations solve with a few GMRES iterations
(:meth:`.solver.Simulator._reused_factorisation`), so their linear residual is not zero, and its
weighted sum over the cells is a first-order mass imbalance of each phase. Newton's stopping test
asks the step's mass balance to ``mb_tol`` = 1e-9 but each cell only to ``cnv_tol``, so without a
correction the last iteration of a step is often spent on those two global sums alone.

The correction is a two-level one with constants as coarse space: a uniform shift of every pressure
unknown (cells and wells) and a water-saturation shift of the cells whose water is mobile cancel the
two sums through a 2 x 2 coarse matrix, computed once per step from the masses in place and the
perforation rates (the fluxes cancel in global sums). ``J dv`` comes from GMRES's Arnoldi relation
(:func:`.krylov.gmres` with ``product=True``), so the correction costs no residual or JVP per
iteration.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import props
from .assembly import PERFORATION_TERMS, take


class Conservation(NamedTuple):
    """One time step's globally conservative correction (:func:`step_conservation`)."""

    weights: jnp.ndarray  # (2, N): each cell equation's factor to its phase's mass imbalance
    coarse: jnp.ndarray  # (phase, shift): d imbalance / d shift at the step's first iterate
    shifts: jnp.ndarray  # (2, size): uniform pressure shift; water saturation where water is mobile


def step_conservation(
    sim: Any,
    model: Any,
    dt: jnp.ndarray,
    ctrl: Any,
    rho_well: jnp.ndarray,
    x_old: Any,
    v0: jnp.ndarray,
) -> Conservation:
    """What :func:`conserving` needs for one time step of ``sim`` (a :class:`.solver.Simulator`;
    the other arguments as its ``_substep`` has them) (:class:`Conservation`): each cell
    equation's weight to its phase's mass imbalance (``sim.imbalance_weights``); the two shifts, every
    pressure unknown (cells and wells) by one and the water saturation by one in the cells where
    water is mobile at ``v0`` (``k_rw > 0``: a shift must not make connate water flow); and the
    2 x 2 coarse matrix ``d imbalance_phase / d shift`` at ``v0``. The fluxes cancel in the global
    sums (each leaves one cell and enters another), so the coarse matrix is the derivative of the
    masses in place and the perforation rates alone: two JVPs of those."""
    c, w, n = sim.perf_cell, sim.perf_well, sim.n

    def imbalance(v: jnp.ndarray) -> jnp.ndarray:
        x = sim._unpack(v)
        q = sim._cell_terms(model, x.p, x.sw)
        rates = sim._perforation_rates(model, take(q, PERFORATION_TERMS, c), x.bhp[w], ctrl, rho_well)
        return jnp.stack(
            [jnp.sum(q["mass_w"]) + dt * jnp.sum(rates[0]), jnp.sum(q["mass_h"]) + dt * jnp.sum(rates[1])]
        )

    mobile = (props.relperm(model.fluid, v0[n : 2 * n])[0] > 0).astype(v0.dtype)
    ones, zeros = jnp.ones(n, v0.dtype), jnp.zeros(n, v0.dtype)
    shifts = jnp.stack(
        [
            jnp.concatenate([ones, zeros, jnp.ones(sim.nw, v0.dtype)]),
            jnp.concatenate([zeros, mobile, jnp.zeros(sim.nw, v0.dtype)]),
        ]
    )
    coarse = jax.vmap(lambda t: jax.jvp(imbalance, (v0,), (t,))[1], out_axes=1)(shifts)
    return Conservation(sim.imbalance_weights(model, x_old), coarse, shifts)


def conserving(sim: Any, conservation: Conservation, dv: jnp.ndarray, lin_res: jnp.ndarray) -> jnp.ndarray:
    """The Newton update ``dv`` made globally conservative: the multiples of the pressure and
    saturation shifts of :func:`step_conservation` that cancel each phase's linearised mass
    imbalance, the weighted sum of the linear residual ``lin_res = r + J dv`` over its cell
    equations, through the 2 x 2 coarse matrix (a two-level correction with constants as coarse
    space), unless that asks for a shift larger than the largest change of ``dv`` itself (a
    near-singular coarse matrix). Newton's stopping test asks the step's mass balance to
    ``mb_tol`` = 1e-9 but each cell only to ``cnv_tol``, so without it the last iteration of a
    step is often spent on the global sums alone."""
    weights, coarse, shifts = conservation
    n = sim.n
    g = jnp.stack([jnp.dot(weights[0], lin_res[:n]), jnp.dot(weights[1], lin_res[n : 2 * n])])
    det = coarse[0, 0] * coarse[1, 1] - coarse[0, 1] * coarse[1, 0]
    shift_p = (coarse[0, 1] * g[1] - coarse[1, 1] * g[0]) / det  # Cramer's rule, coarse @ shift = -g
    shift_s = (coarse[1, 0] * g[0] - coarse[0, 0] * g[1]) / det
    # safeguard: a (near-)singular coarse matrix (incompressible fluids with BHP-controlled wells:
    # a uniform pressure shift changes no mass; no mobile water) asks for shifts larger than the
    # update itself; then the update stays as GMRES left it
    ok = (jnp.abs(shift_p) <= jnp.max(jnp.abs(dv[:n]))) & (
        jnp.abs(shift_s) <= jnp.max(jnp.abs(dv[n : 2 * n]))
    )
    return dv + jnp.where(ok, shift_p * shifts[0] + shift_s * shifts[1], 0.0)
