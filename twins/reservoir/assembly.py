"""Assembly of the two-phase Jacobian from local derivatives (cells, connections, perforations, wells).

The residual of a TPFA scheme is local: a cell's accumulation depends on its own unknowns, a
connection's flux on its two cells, a perforation's rate on its cell and its well's BHP, and a well
equation on the well's rates, BHP and first perforated cell. Differentiating these pieces where they
live (two tangents per cell, four per connection, three per perforation, four per well) costs less
than differentiating the whole residual once per colour of a distance-2 colouring (10-18 colours),
and gives the same nonzeros.

:class:`AssemblyPlan` also fixes the order of the nonzeros so that assembling them is mostly
concatenation (XLA's CPU gathers and scatters cost several nanoseconds per element, as much as
the derivatives themselves): first the cells' diagonal ``2 x 2`` blocks (accumulation, plus each
cell's connections summed by one gather over its incident connections, as the residual's divergence,
plus its perforations), then every connection's two off-diagonal blocks in the order the flux
derivatives come in, then the few well entries. The solvers take any order (they build their own
index maps from ``rows``/``cols``).

Unknown and equation order is the simulator's: ``[p (N), s_w (N), bhp (W)]`` and ``[R_w (N), R_h (N),
well (W)]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import props, wells
from .redblack import gather_sum, padded_groups

FLUX_TERMS = ("p", "pw", "rho_w", "rho_h", "lam_w", "lam_h")  # cell terms that a connection's fluxes use
PERFORATION_TERMS = ("p", "pc", "lam_w", "lam_h", "mob_t", "bw", "bh")  # ... and a perforation's rates
LOCAL_TERMS = tuple(dict.fromkeys(FLUX_TERMS + PERFORATION_TERMS + ("mass_w", "mass_h")))


class LocalDerivatives(NamedTuple):
    """Local derivatives (pytree), in the unknowns' units. ``x`` runs over ``(p, s_w)``, ``ph`` over
    ``(water, hydrocarbon)``; flux and perforation terms already multiplied by the time step."""

    accumulation: jnp.ndarray  # (ph, x, N): d mass_ph,i / d x_i
    flux: jnp.ndarray  # (side, x, ph, C): d dt F_ph,c / d x of the connection's a (0) or b (1) cell
    perforation: jnp.ndarray  # (x|bhp, ph, P): d dt q_ph,p / d (x of its cell | its well's BHP)
    well_cells: jnp.ndarray  # (x, P): d R_well / d x of perforation p's cell
    well_bhp: jnp.ndarray  # (P,): d R_well / d bhp through perforation p's rates
    well_diagonal: jnp.ndarray  # (W,): the direct d R_well / d bhp
    cell_scale: jnp.ndarray  # (ph, N): factor of every cell equation (1 / (pv_ref B_old))


class AssemblyPlan:
    """The Jacobian's sparsity (``rows``, ``cols``) in assembly order and how to fill it.

    Parameters
    ----------
    n_cells, n_wells
        Cells ``N`` and wells ``W``.
    conn_a, conn_b
        The two cells of every connection; a pair of cells may be joined once only, and a cell not to
        itself (else ``ValueError``: the caller differentiates the whole residual instead).
    perf_cell, perf_well
        Cell and well of every perforation.
    incident
        :func:`incident_connections` of the connections.
    """

    def __init__(
        self,
        n_cells: int,
        n_wells: int,
        conn_a: np.ndarray,
        conn_b: np.ndarray,
        perf_cell: np.ndarray,
        perf_well: np.ndarray,
        incident: np.ndarray,
    ) -> None:
        n, nw = int(n_cells), int(n_wells)
        a, b = np.asarray(conn_a, np.int64), np.asarray(conn_b, np.int64)
        c, w = np.asarray(perf_cell, np.int64), np.asarray(perf_well, np.int64)
        n_conn, n_perf = a.size, c.size
        pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
        if np.any(a == b) or np.unique(pairs, axis=0).shape[0] != n_conn:
            raise ValueError(
                "local Jacobian assembly needs every pair of cells joined by at most one connection"
            )
        ph, x, cell = np.meshgrid(np.arange(2), np.arange(2), np.arange(n), indexing="ij")
        diag_rows, diag_cols = (ph * n + cell).ravel(), (x * n + cell).ravel()
        x, ph, conn = np.meshgrid(np.arange(2), np.arange(2), np.arange(n_conn), indexing="ij")
        off_rows = np.concatenate([(ph * n + a[conn]).ravel(), (ph * n + b[conn]).ravel()])
        off_cols = np.concatenate([(x * n + b[conn]).ravel(), (x * n + a[conn]).ravel()])
        # the few well entries sum terms of [perforation-BHP (ph, P), well-cell (x, P), well BHP via
        # perforations (P), well BHP direct (W), 0] through a small padded table
        wrow, pidx = 2 * n + w, np.arange(n_perf)
        term_rows = np.concatenate([c, n + c, wrow, wrow, wrow, 2 * n + np.arange(nw)])
        term_cols = np.concatenate([2 * n + w, 2 * n + w, c, n + c, 2 * n + w, 2 * n + np.arange(nw)])
        size = 2 * n + nw
        keys, group = np.unique(term_rows * size + term_cols, return_inverse=True)
        n_terms = term_rows.size
        self.well_table = padded_groups(group.ravel(), np.arange(n_terms), n_terms, keys.size)[0]
        self.rows = np.concatenate([diag_rows, off_rows, keys // size]).astype(np.int64)
        self.cols = np.concatenate([diag_cols, off_cols, keys % size]).astype(np.int64)
        self.incident = incident
        # where each perforation's (x, ph) cell derivative lands in the flat (ph, x, N) diagonal
        x, ph, perf = np.meshgrid(np.arange(2), np.arange(2), pidx, indexing="ij")
        self.perf_diagonal = (ph * 2 * n + x * n + c[perf]).ravel()
        self.conn_a, self.conn_b, self.perf_cell = a, b, c

    def values(self, d: LocalDerivatives) -> jnp.ndarray:
        """The Jacobian's nonzeros, in the order of ``rows``/``cols``, from the local derivatives."""
        from_flux = net_outflow(d.flux[0], d.flux[1], self.incident)  # (x, ph, N)
        diag = (d.accumulation + jnp.swapaxes(from_flux, 0, 1)).reshape(-1)
        diag = diag.at[self.perf_diagonal].add(d.perforation[:2].reshape(-1))
        diag = diag.reshape(d.accumulation.shape) * d.cell_scale[:, None, :]
        scale_a, scale_b = d.cell_scale[:, self.conn_a], d.cell_scale[:, self.conn_b]
        well_terms = jnp.concatenate(
            [
                (d.perforation[2] * d.cell_scale[:, self.perf_cell]).reshape(-1),
                d.well_cells.reshape(-1),
                d.well_bhp,
                d.well_diagonal,
                jnp.zeros(1, d.flux.dtype),
            ]
        )
        return jnp.concatenate(
            [
                diag.reshape(-1),
                (d.flux[1] * scale_a).reshape(-1),
                (-d.flux[0] * scale_b).reshape(-1),
                gather_sum(well_terms, self.well_table),
            ]
        )


def incident_connections(conn_a: np.ndarray, conn_b: np.ndarray, n_cells: int) -> np.ndarray:
    """Every cell's connections, padded: indices into ``[side a (C), side b (C), pad]`` of
    :func:`net_outflow` (a cell's row lists ``c`` where it is ``conn_a[c]``, ``C + c`` where it is
    ``conn_b[c]``)."""
    n_conn = np.asarray(conn_a).size
    return padded_groups(np.concatenate([conn_a, conn_b]), np.arange(2 * n_conn), 2 * n_conn, n_cells)[0]


def net_outflow(from_a: jnp.ndarray, from_b: jnp.ndarray, incident: np.ndarray) -> jnp.ndarray:
    """Per cell, the sum of ``from_a`` over the connections where it is the ``a`` cell minus the sum
    of ``from_b`` where it is the ``b`` cell (last axis: connections -> cells), by one gather
    (XLA's CPU scatter-add, which ``segment_sum`` lowers to, is several times slower). With both the
    connection fluxes (a to b) it is each cell's net outflow."""
    zero = jnp.zeros(from_a.shape[:-1] + (1,), from_a.dtype)
    signed = jnp.concatenate([from_a, -from_b, zero], axis=-1)
    return jnp.moveaxis(gather_sum(jnp.moveaxis(signed, -1, 0), incident), 0, -1)


def take(terms: dict, keys: tuple, index: np.ndarray) -> dict:
    """The cell terms ``keys`` at the cells ``index``."""
    return {k: terms[k][index] for k in keys}


def local_derivatives(sim: Any, step: tuple, v: jnp.ndarray, p_unit: float) -> LocalDerivatives:
    """Local derivatives of the two-phase residual of ``sim`` (a :class:`.solver.Simulator`) at the
    unknown vector ``v``: ``step = (model, trans, x_old, dt, ctrl, rho_well)`` as its residual takes
    them, ``p_unit`` the pressure unknowns' unit (Pa). Each piece is differentiated with forward-mode
    JVPs batched over its few seeds: cells over ``(p, s_w)``, connections over the four unknowns of
    their two cells (seeded with the cells' derivatives), perforations over their cell and BHP, and
    the well equations over their arguments (elementwise over wells), chained by hand."""
    model, trans, x_old, dt, ctrl, rho_well = step
    n, nw, a, b, c, w = sim.n, sim.nw, sim.conn_a, sim.conn_b, sim.perf_cell, sim.perf_well
    p_bar, sw, bhp_bar = v[:n], v[n : 2 * n], v[2 * n :]

    def cells(p_bar: jnp.ndarray, sw: jnp.ndarray) -> dict:
        q = sim._cell_terms(model, p_bar * p_unit, sw)
        return {k: q[k] for k in LOCAL_TERMS}

    # the JVPs are batched over their seeds; the primal, the same for every seed, comes out once
    one, zero = jnp.ones(n, v.dtype), jnp.zeros(n, v.dtype)
    q, dq = jax.vmap(lambda tp, ts: jax.jvp(cells, (p_bar, sw), (tp, ts)), out_axes=(None, 0))(
        jnp.stack([one, zero]), jnp.stack([zero, one])
    )
    accumulation = jnp.stack([dq["mass_w"], dq["mass_h"]])  # (ph, x, N)

    gdz = props.GRAVITY * (model.depth[a] - model.depth[b])
    qa, qb = take(q, FLUX_TERMS, a), take(q, FLUX_TERMS, b)
    da = {k: dq[k][:, a] for k in FLUX_TERMS}
    db = {k: dq[k][:, b] for k in FLUX_TERMS}
    none = {k: jnp.zeros_like(da[k]) for k in FLUX_TERMS}
    seeds_a = {k: jnp.concatenate([da[k], none[k]]) for k in FLUX_TERMS}
    seeds_b = {k: jnp.concatenate([none[k], db[k]]) for k in FLUX_TERMS}

    def flux(qa: dict, qb: dict) -> jnp.ndarray:
        return jnp.stack(sim._fluxes(trans, gdz, qa, qb))

    dflux = jax.vmap(lambda ta, tb: jax.jvp(flux, (qa, qb), (ta, tb))[1])(seeds_a, seeds_b)

    qc = take(q, PERFORATION_TERMS, c)
    n_perf = c.size
    seeds_c = {k: jnp.concatenate([dq[k][:, c], jnp.zeros((1, n_perf), v.dtype)]) for k in PERFORATION_TERMS}
    seeds_bhp = jnp.zeros((3, n_perf), v.dtype).at[2].set(1.0)

    def perforations(qc: dict, bhp_p: jnp.ndarray) -> jnp.ndarray:
        return jnp.stack(sim._perforation_rates(model, qc, bhp_p * p_unit, ctrl, rho_well))

    rates, dperf = jax.vmap(
        lambda tc, tb: jax.jvp(perforations, (qc, bhp_bar[w]), (tc, tb)), out_axes=(None, 0)
    )(seeds_c, seeds_bhp)

    def well_equations(bhp_bar: jnp.ndarray, qw: jnp.ndarray, qh: jnp.ndarray, ref_bar: jnp.ndarray):
        return wells.control_equation(ctrl, bhp_bar * p_unit, qw, qh, ref_bar * p_unit)

    primal = (bhp_bar, *(jax.ops.segment_sum(r, w, nw) for r in rates), p_bar[sim.first_cell])
    eye = jnp.eye(4, dtype=v.dtype)[:, :, None] * jnp.ones(nw, v.dtype)
    d_bhp, d_qw, d_qh, d_ref = jax.vmap(lambda t: jax.jvp(well_equations, primal, tuple(t))[1])(eye)
    well_cells = d_qw[w] * dperf[:2, 0] + d_qh[w] * dperf[:2, 1]  # (x, P)
    well_cells = well_cells.at[0, sim.first_perf].add(d_ref)
    cell_scale = 1.0 / sim.imbalance_weights(model, x_old)
    return LocalDerivatives(
        accumulation,
        dt * dflux.reshape(2, 2, 2, -1),
        dt * dperf,
        well_cells,
        d_qw[w] * dperf[2, 0] + d_qh[w] * dperf[2, 1],
        d_bhp,
        cell_scale,
    )
