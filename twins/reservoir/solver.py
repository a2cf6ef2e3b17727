"""Fully implicit two-phase (water + oil or dry gas) TPFA simulator in JAX.

Unknowns per cell: hydrocarbon-phase pressure ``p`` (bar in the unknown vector) and water saturation
``s_w``; per well: bottom-hole pressure. Residuals are the surface-volume balances of each phase,
divided by the cell's reference pore volume (so that they read as saturation errors, like OPM's CNV)::

    R_a,i = [A_a,i(x) - A_a,i(x_old) + dt (sum_j F_a,ij + Q_a,i)] / pv_i,   A_a = pv(p) s_a / B_a(p)

with upstream-weighted mobilities and a gravity term in each flux, and the well equations of
:mod:`.wells`. Newton's Jacobian comes from JAX forward-mode autodiff of the residual's
local pieces (cells, connections, perforations, wells; :mod:`.assembly`), or, where a pair of cells is
joined twice and for black oil, of the whole residual compressed by a distance-2 colouring of its
known sparsity (one JVP per colour, 10-18 colours on the decks), and each Newton system is
solved by a direct method (``Options.linear_solver``: the pure-JAX red-black / level-set solver of
:mod:`.redblack` or block solver of :mod:`.linsolve`, which batch under ``vmap``, or SuperLU through
``jax.pure_callback``) wrapped in ``lax.custom_linear_solve``,
so gradients flow through the solves. In the adaptive run with the red-black solver, the Jacobian is
factorised once per time step, at its first iterate, and the later Newton systems are solved by a few
GMRES iterations (:mod:`.krylov`) on the exact Jacobian applied matrix-free, preconditioned by that
factorisation (``Options.krylov_iterations``). Time steps adapt (growth limited by the saturation change) and
are halved when Newton fails. The report-step loop is ``lax.scan``, the sub-steps ``lax.while_loop``;
a fixed-step variant (``lax.scan`` throughout) is reverse-differentiable for history matching.

Float64 is required (pressures of 1e7 Pa with 1e-8 relative updates): call
``twins.reservoir.run.x64_scope()`` (the run entry points do).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import krylov, linsolve, props, wells
from .assembly import (
    FLUX_TERMS,
    PERFORATION_TERMS,
    AssemblyPlan,
    incident_connections,
    local_derivatives,
    net_outflow,
    take,
)
from .conservation import conserving, step_conservation
from .geometry import Connections, transmissibility
from .redblack import RedBlackSolver

P_UNIT = 1e5  # the pressure unknown is in bar


class Model(NamedTuple):
    """Static arrays of a reservoir model (pytree; SI)."""

    pv_ref: jnp.ndarray  # (N,) reference pore volume m3
    depth: jnp.ndarray  # (N,) cell-centre depth m
    conn: Connections  # TPFA connections (numpy index arrays, half transmissibilities)
    perf_cell: np.ndarray  # (P,) active-cell index of each perforation
    perf_well: np.ndarray  # (P,) well index of each perforation
    wi: jnp.ndarray  # (P,) Peaceman well index m3
    ref_depth: jnp.ndarray  # (W,) BHP reference depth m
    fluid: props.Fluid


class State(NamedTuple):
    """Simulation state: pressure (Pa), water saturation, BHP (Pa)."""

    p: jnp.ndarray
    sw: jnp.ndarray
    bhp: jnp.ndarray


class Report(NamedTuple):
    """Outputs per report step (rates in surface m3/s, production positive; pressures Pa)."""

    p: jnp.ndarray
    sw: jnp.ndarray
    bhp: jnp.ndarray
    qw: jnp.ndarray  # (W,) water rate
    qh: jnp.ndarray  # (W,) hydrocarbon rate
    cum_w: jnp.ndarray  # (W,) cumulative water (signed)
    cum_h: jnp.ndarray
    mb_error: jnp.ndarray  # max relative mass-balance error over the sub-steps
    substeps: jnp.ndarray
    newton: jnp.ndarray
    failed: jnp.ndarray  # sub-steps chopped


@dataclass(frozen=True)
class Options:
    """Solver options (static)."""

    # Newton stops when (as OPM's CNV and MB tests, tighter) every cell's scaled residual (saturation
    # units) is below cnv_tol, the step's relative mass-balance error of each phase below mb_tol, and
    # every well equation below 10 tol; cnv_tol=None: every cell below tol instead (no MB test).
    # OPM's defaults are CNV 1e-2, MB 1e-7
    tol: float = 1e-7
    cnv_tol: float | None = 1e-3
    mb_tol: float = 1e-9
    max_newton: int = 12
    dt_init: float = 86400.0  # s
    dt_max: float = 365.0 * 86400.0
    growth: float = 3.0
    ds_target: float = 0.2  # saturation change per step used to size the next step
    ds_max_newton: float = 0.2  # Appleyard limit per Newton update
    dp_target: float = 20.0  # bar of pressure change per step used to size the next step
    dp_rel_newton: float = 0.3  # relative pressure change limit per Newton update (as OPM's dpMaxRel)
    max_substeps: int = 2000
    # Newton's linear solver: "redblack" (.redblack: red-black elimination + level-set block Thomas,
    # pure JAX, batches under vmap; bipartite cell graphs such as Cartesian grids), "block" (.linsolve
    # block Thomas over bandwidth chunks, any graph), "cyclic" (.linsolve block cyclic reduction: fewer,
    # larger kernels, for accelerators), "superlu" (SciPy on the host, members of a vmap one after
    # another) or "auto": "redblack" when the graph is bipartite and its level blocks are at most
    # AUTO_REDBLACK_MAX unknowns, else "block" when its chunks are at most AUTO_BLOCK_MAX, else "superlu"
    linear_solver: str = "auto"
    # precision of the adaptive run's Newton solves with the pure-JAX solvers ("float32": inexact Newton
    # steps, the same iterations and converged states, as the residual, state and stopping test stay
    # float64; 1.4x faster on CPU). "auto": float32 on the CPU backend, float64 elsewhere (XLA's GPU
    # GEMM fusion aborts on the float32 solve, XLA 0.11.2). The fixed-step (differentiated) run always
    # solves in float64
    linear_precision: str = "auto"
    # Newton within an adaptive time step: with the red-black solver, the Jacobian is factorised once,
    # at the step's first iterate, and every Newton iteration solves with this many GMRES iterations
    # (exact Jacobian applied matrix-free, that factorisation as preconditioner); 0: factorise the
    # Jacobian at every Newton iteration (exact Newton with the direct solve)
    krylov_iterations: int = 4
    # make those GMRES steps globally conservative (a uniform pressure and saturation shift cancels
    # each phase's linearised mass imbalance); False: plain GMRES steps
    conservative_krylov: bool = True

    def __post_init__(self) -> None:
        if self.linear_solver not in LINEAR_SOLVERS:
            raise ValueError(
                f"Options.linear_solver must be one of {', '.join(map(repr, LINEAR_SOLVERS))}, "
                f"got {self.linear_solver!r}"
            )
        if self.krylov_iterations < 0:
            raise ValueError(f"Options.krylov_iterations must be >= 0, got {self.krylov_iterations}")
        if self.linear_precision not in ("auto", "float32", "float64"):
            raise ValueError(
                f"Options.linear_precision must be 'auto', 'float32' or 'float64', got {self.linear_precision!r}"
            )

    @property
    def single_precision_solves(self) -> bool:
        """Whether the adaptive run's Newton solves work in float32 (see ``linear_precision``)."""
        if self.linear_precision == "auto":
            return jax.default_backend() == "cpu"
        return self.linear_precision == "float32"


LINEAR_SOLVERS = ("auto", "redblack", "block", "cyclic", "superlu")
AUTO_REDBLACK_MAX = 256  # red-black vs SuperLU, warm: m = 120 (60x220) 2.3x, m = 198 (100x100) 1.9x faster,
# m = 318 (160x160) about even and 40 s longer to compile
AUTO_BLOCK_MAX = 100  # measured crossover: m = 90 (15x15x3) block 1.4x faster, m = 120 (60x220) SuperLU 1.8x


def column_colouring(mat: Any) -> np.ndarray:
    """Colour the columns of a sparsity pattern so that no two columns of one colour share a row.

    Such columns can share one JVP seed (compressed Jacobian: Curtis, Powell and Reid). The conflict
    graph is ``mat^T mat`` (distance-2 in the row-column graph); it is coloured by DSATUR (Brelaz
    1979: always the uncoloured column with the most distinct colours among its neighbours, ties by
    degree), which finds the optimum on Cartesian grids where a greedy sweep in index order does
    not: 10 colours instead of 14 on a 2-D five-point grid with two unknowns per cell.
    """
    import heapq

    import scipy.sparse as sp

    pattern = sp.csr_matrix(mat, copy=True)
    pattern.data[:] = 1.0
    gram = (pattern.T @ pattern).tocsr()
    gram.setdiag(0)
    gram.eliminate_zeros()
    size = gram.shape[0]
    colors = np.full(size, -1, dtype=np.int64)
    seen: list[set[int]] = [set() for _ in range(size)]
    degree = np.diff(gram.indptr)
    heap = [(0, -int(degree[i]), i) for i in range(size)]
    heapq.heapify(heap)
    while heap:
        neg_sat, _, col = heapq.heappop(heap)
        if colors[col] >= 0 or -neg_sat != len(seen[col]):
            continue  # coloured already, or a stale entry (its saturation has grown since)
        c = 0
        while c in seen[col]:
            c += 1
        colors[col] = c
        for nb in gram.indices[gram.indptr[col] : gram.indptr[col + 1]]:
            if colors[nb] < 0 and c not in seen[nb]:
                seen[nb].add(c)
                heapq.heappush(heap, (-len(seen[nb]), -int(degree[nb]), int(nb)))
    return colors


class Simulator:
    """Two-phase simulator of one model layout (sparsity and colouring fixed at construction).

    Parameters
    ----------
    n_cells, n_wells
        Sizes.
    conn, perf_cell, perf_well
        Connectivity (numpy index arrays).
    tabulated
        Whether the hydrocarbon PVT is a table (PVDO/PVDG) or PVCDO.
    options
        :class:`Options`.
    """

    k: int = 2  # unknowns per cell (subclasses with more set this before ``__init__``)
    auto_block: bool = True  # "auto" may fall back to .linsolve's block solver (else SuperLU)

    def __init__(
        self,
        n_cells: int,
        n_wells: int,
        conn: Connections,
        perf_cell: np.ndarray,
        perf_well: np.ndarray,
        tabulated: bool,
        options: Options | None = None,
    ) -> None:
        self.n, self.nw = int(n_cells), int(n_wells)
        self.tabulated = bool(tabulated)
        self.options = options or Options()
        self.conn_a, self.conn_b = np.asarray(conn.a), np.asarray(conn.b)
        self.perf_cell, self.perf_well = np.asarray(perf_cell), np.asarray(perf_well)
        self.first_perf = np.array([np.flatnonzero(self.perf_well == k)[0] for k in range(self.nw)], np.int64)
        self.first_cell = self.perf_cell[self.first_perf].astype(np.int64)
        self.rows, self.cols = self._pattern()
        # each cell's incident connections (.assembly.incident_connections), for the divergence
        self.incident = incident_connections(self.conn_a, self.conn_b, self.n)
        self.assembly: AssemblyPlan | None = None
        if self.k == 2:  # two-phase: the Jacobian is assembled from local derivatives (.assembly)
            try:
                self.assembly = AssemblyPlan(
                    self.n, self.nw, self.conn_a, self.conn_b, self.perf_cell, self.perf_well, self.incident
                )
            except ValueError:  # a pair of cells joined twice: colour and differentiate the residual
                pass
            else:
                size = self.k * self.n + self.nw
                same = np.array_equal(
                    np.sort(self.assembly.rows * size + self.assembly.cols), self.rows * size + self.cols
                )
                assert same, "the assembly plan's sparsity differs from the residual's"
                self.rows, self.cols = self.assembly.rows, self.assembly.cols
        self.block: linsolve.BlockSolver | RedBlackSolver | None = None
        method = self.options.linear_solver
        if method in ("auto", "redblack"):
            try:
                self.block = RedBlackSolver(
                    self.rows, self.cols, self.n, self.k, self.nw, self.conn_a, self.conn_b,
                    max_block=AUTO_REDBLACK_MAX if method == "auto" else None,
                )  # fmt: skip
            except ValueError:  # not bipartite, or (auto) level blocks too large
                if method == "redblack":
                    raise
        if method == "auto" and self.block is None:
            band = linsolve.cell_ordering(self.n, self.conn_a, self.conn_b)[1]
            method = "block" if self.auto_block and self.k * band <= AUTO_BLOCK_MAX else "superlu"
        if method in ("block", "cyclic"):
            self.block = linsolve.BlockSolver(
                self.rows, self.cols, self.n, self.k, self.nw, self.conn_a, self.conn_b,
                method="thomas" if method == "block" else "cyclic",
            )  # fmt: skip
        self.run = jax.jit(self._run)
        self.run_fixed = jax.jit(self._run_fixed, static_argnames=("substeps", "iterations"))

    # ---------------------------------------------------------------- sparsity and colouring
    def _pattern(self) -> tuple[np.ndarray, np.ndarray]:
        """The Jacobian's nonzero coordinates (rows, cols), CSR order."""
        import scipy.sparse as sp

        n, nw, k = self.n, self.nw, self.k
        offsets = [m * n for m in range(k)]
        cell_pairs = [np.arange(n), np.arange(n)], [self.conn_a, self.conn_b], [self.conn_b, self.conn_a]
        r_list, c_list = [], []
        for r, c in cell_pairs:
            for dr in offsets:
                for dc in offsets:
                    r_list.append(np.asarray(r) + dr)
                    c_list.append(np.asarray(c) + dc)
        wcol = k * n + self.perf_well
        for dr in offsets:
            r_list.append(self.perf_cell + dr)
            c_list.append(wcol)
        for dc in offsets:
            r_list.append(wcol)
            c_list.append(self.perf_cell + dc)
        r_list.append(k * n + np.arange(nw))
        c_list.append(k * n + np.arange(nw))
        size = k * n + nw
        mat = sp.coo_matrix(
            (np.ones(sum(len(r) for r in r_list)), (np.concatenate(r_list), np.concatenate(c_list))),
            shape=(size, size),
        ).tocsr()
        mat.sum_duplicates()
        mat.data[:] = 1.0
        coo = mat.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)

    @cached_property
    def colors(self) -> np.ndarray:
        """Distance-2 colouring of the Jacobian's columns (:func:`column_colouring`), computed on first
        use: only :meth:`jacobian_values` needs it (black oil, and two-phase without an assembly plan)."""
        import scipy.sparse as sp

        size = self.k * self.n + self.nw
        return column_colouring(
            sp.csr_matrix((np.ones(self.rows.size), (self.rows, self.cols)), shape=(size, size))
        )

    @property
    def n_colors(self) -> int:
        """Number of colours of :attr:`colors` (JVPs per coloured Jacobian)."""
        return int(self.colors.max(initial=0)) + 1

    def initial_bhp(self, model: Model, x: State, ctrl: wells.WellControls) -> jnp.ndarray:
        """BHP that meets each rate target with the state's mobilities (clamped to the BHP limit)."""
        ph = self._phase_state(model, x.p, x.sw)
        c, w = self.perf_cell, self.perf_well
        mob = jnp.where(
            ctrl.is_inj[w] > 0,
            ph["mob_t"][c] * jnp.where(ctrl.inj_water[w] > 0, ph["bw"][c], ph["bh"][c]),
            ctrl.w_water[w] * ph["lam_w"][c] + ctrl.w_hc[w] * ph["lam_h"][c],
        )
        conductance = jax.ops.segment_sum(model.wi * mob, w, self.nw)
        p_mean = jax.ops.segment_sum(model.wi * x.p[c], w, self.nw) / jax.ops.segment_sum(
            model.wi, w, self.nw
        )
        finite = ctrl.rate < 0.5 * wells.BIG
        dp = jnp.where(finite, ctrl.rate, 0.0) / jnp.maximum(conductance, 1e-30)
        inj = jnp.minimum(p_mean + dp, ctrl.bhp)
        prod = jnp.maximum(p_mean - dp, ctrl.bhp)
        guess = jnp.where(ctrl.is_inj > 0, inj, prod)
        return jnp.where(finite & (ctrl.is_open > 0), guess, jnp.where(ctrl.is_open > 0, ctrl.bhp, x.bhp))

    # ---------------------------------------------------------------- residual
    def _phase_state(self, model: Model, p: jnp.ndarray, sw: jnp.ndarray) -> dict[str, jnp.ndarray]:
        f = model.fluid
        bw, bwmu = props.water_pvt(f, p)
        bh, bhmu = props.hydrocarbon_pvt(f, p, self.tabulated)
        krw, krh, pc = props.relperm(f, sw)
        return {
            "bw": bw, "bh": bh, "lam_w": krw * bwmu, "lam_h": krh * bhmu,
            "mob_t": krw * bwmu / bw + krh * bhmu / bh, "pc": pc,
            "rho_w": f.rho_w * bw, "rho_h": f.rho_h * bh,
        }  # fmt: skip

    def _perforation_rates(
        self, model: Model, qc: dict, bhp_p: jnp.ndarray, ctrl: wells.WellControls, rho_well: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Surface rates of every perforation from its cell's terms ``qc`` and its well's BHP ``bhp_p`` (Pa)."""
        c, w = self.perf_cell, self.perf_well
        z = model.depth[c] - model.ref_depth[w]
        dp = qc["p"] - (bhp_p + rho_well[w] * props.GRAVITY * z)
        return wells.perforation_rates(
            model.wi * ctrl.is_open[w], dp, dp - qc["pc"], qc["lam_w"], qc["lam_h"],
            qc["mob_t"] * qc["bw"], qc["mob_t"] * qc["bh"], ctrl.is_inj[w], ctrl.inj_water[w],
        )  # fmt: skip

    def _well_density(self, model: Model, x_old: State, ctrl: wells.WellControls) -> jnp.ndarray:
        """Mixture density in each wellbore from the previous state (explicit), kg/m3."""
        ph = self._phase_state(model, x_old.p, x_old.sw)
        c, w = self.perf_cell, self.perf_well
        lw, lh = ph["lam_w"][c] / ph["bw"][c], ph["lam_h"][c] / ph["bh"][c]
        num = jax.ops.segment_sum(model.wi * (lw * ph["rho_w"][c] + lh * ph["rho_h"][c]), w, self.nw)
        den = jax.ops.segment_sum(model.wi * (lw + lh), w, self.nw)
        prod_rho = num / jnp.maximum(den, 1e-30)
        rho_w_max = jax.ops.segment_max(ph["rho_w"][c], w, self.nw)
        rho_h_max = jax.ops.segment_max(ph["rho_h"][c], w, self.nw)
        inj_rho = jnp.where(ctrl.inj_water > 0, rho_w_max, rho_h_max)
        return jnp.where(ctrl.is_inj > 0, inj_rho, prod_rho)

    def imbalance_weights(self, model: Model, x_old: State) -> jnp.ndarray:
        """Each cell equation's factor to its phase's mass imbalance, ``pv_ref B(x_old)`` (2, N):
        the residual's cell equations are the imbalances divided by it (saturation units)."""
        old = self._phase_state(model, x_old.p, x_old.sw)
        return model.pv_ref * jnp.stack([old["bw"], old["bh"]])

    def _cell_terms(self, model: Model, p: jnp.ndarray, sw: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Everything the residual needs of each cell at pressure ``p`` (Pa) and saturation ``sw``:
        the phase state, the water-phase pressure and the phases' masses (surface volumes)."""
        ph = self._phase_state(model, p, sw)
        pv = props.pore_volume(model.fluid, model.pv_ref, p)
        return {
            **ph, "p": p, "pw": p - ph["pc"], "mass_w": pv * sw * ph["bw"], "mass_h": pv * (1 - sw) * ph["bh"],
        }  # fmt: skip

    def _fluxes(
        self, trans: jnp.ndarray, gdz: jnp.ndarray, qa: dict, qb: dict
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Water and hydrocarbon fluxes (a to b) of every connection from its cells' terms, upstream
        mobilities, ``gdz = g (depth_a - depth_b)``."""
        dphi_h = qa["p"] - qb["p"] - 0.5 * (qa["rho_h"] + qb["rho_h"]) * gdz
        dphi_w = qa["pw"] - qb["pw"] - 0.5 * (qa["rho_w"] + qb["rho_w"]) * gdz
        flux_h = trans * jnp.where(dphi_h > 0, qa["lam_h"], qb["lam_h"]) * dphi_h
        flux_w = trans * jnp.where(dphi_w > 0, qa["lam_w"], qb["lam_w"]) * dphi_w
        return flux_w, flux_h

    def residual(
        self,
        model: Model,
        trans: jnp.ndarray,
        x: State,
        x_old: State,
        dt: jnp.ndarray,
        ctrl: wells.WellControls,
        rho_well: jnp.ndarray,
    ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """Scaled residual vector ``[R_w (N), R_h (N), well (W)]`` and the well rates."""
        q = self._cell_terms(model, x.p, x.sw)
        q0 = self._cell_terms(model, x_old.p, x_old.sw)
        a, b, c, w, n = self.conn_a, self.conn_b, self.perf_cell, self.perf_well, self.n
        gdz = props.GRAVITY * (model.depth[a] - model.depth[b])
        flux_w, flux_h = self._fluxes(trans, gdz, take(q, FLUX_TERMS, a), take(q, FLUX_TERMS, b))
        qw, qh = self._perforation_rates(model, take(q, PERFORATION_TERMS, c), x.bhp[w], ctrl, rho_well)
        src_w = jax.ops.segment_sum(qw, c, n)
        src_h = jax.ops.segment_sum(qh, c, n)
        imb_w = q["mass_w"] - q0["mass_w"] + dt * (self.divergence(flux_w) + src_w)
        imb_h = q["mass_h"] - q0["mass_h"] + dt * (self.divergence(flux_h) + src_h)
        # scaled by the old-state B: residuals read as saturation errors (CNV-like) for both phases
        r_w = imb_w / (model.pv_ref * jax.lax.stop_gradient(q0["bw"]))
        r_h = imb_h / (model.pv_ref * jax.lax.stop_gradient(q0["bh"]))
        qw_well = jax.ops.segment_sum(qw, w, self.nw)
        qh_well = jax.ops.segment_sum(qh, w, self.nw)
        r_well = wells.control_equation(ctrl, x.bhp, qw_well, qh_well, x.p[self.first_cell])
        info = {
            "qw": qw_well,
            "qh": qh_well,
            "mass_w": q["mass_w"],
            "mass_h": q["mass_h"],
            "imb_w": jnp.sum(imb_w),
            "imb_h": jnp.sum(imb_h),
        }
        return jnp.concatenate([r_w, r_h, r_well]), info

    def _local_jacobian(self, *step: Any) -> Any:
        """``v -> nonzeros`` of one time step's Jacobian by :meth:`local_jacobian` (``step``: its
        arguments before ``v``), or ``None`` where the assembly does not apply (then Newton colours)."""
        return None if self.assembly is None else partial(self.local_jacobian, *step)

    def local_jacobian(
        self,
        model: Model,
        trans: jnp.ndarray,
        x_old: State,
        dt: jnp.ndarray,
        ctrl: wells.WellControls,
        rho_well: jnp.ndarray,
        v: jnp.ndarray,
    ) -> jnp.ndarray:
        """Nonzeros of the Jacobian of :meth:`residual` at the unknown vector ``v`` (``self.rows/cols``
        order), from derivatives of its local pieces (:func:`.assembly.local_derivatives`): two
        tangents per cell, four per connection, three per perforation, four per well, instead of one
        residual JVP per colour."""
        assert self.assembly is not None
        step = (model, trans, x_old, dt, ctrl, rho_well)
        return self.assembly.values(local_derivatives(self, step, v, P_UNIT))

    def divergence(self, flux: jnp.ndarray) -> jnp.ndarray:
        """Net outflow of every cell, ``sum_j F_ij``, from the connection fluxes ``F`` (a to b positive)."""
        return net_outflow(flux, flux, self.incident)

    # ---------------------------------------------------------------- linear algebra
    def _pack(self, x: State) -> jnp.ndarray:
        return jnp.concatenate([x.p / P_UNIT, x.sw, x.bhp / P_UNIT])

    def _unpack(self, v: jnp.ndarray) -> State:
        n = self.n
        return State(v[:n] * P_UNIT, v[n : 2 * n], v[2 * n :] * P_UNIT)

    def jacobian_values(self, fun: Any, v: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Residual and the Jacobian's nonzeros (in ``self.rows/cols`` order) by coloured JVPs."""
        seeds = jnp.asarray(np.eye(self.n_colors)[self.colors].T, v.dtype)  # (n_colors, size)
        r = fun(v)
        compressed = jax.vmap(lambda s: jax.jvp(fun, (v,), (s,))[1])(seeds)
        return r, compressed[self.colors[self.cols], self.rows]

    def solve(self, vals: jnp.ndarray, rhs: jnp.ndarray, single: bool = False) -> jnp.ndarray:
        """Solve ``J x = rhs``, differentiable via ``custom_linear_solve`` (``Options.linear_solver``).

        ``"redblack"``: :class:`.redblack.RedBlackSolver`; ``"block"``/``"cyclic"``:
        :class:`.linsolve.BlockSolver` (both pure JAX, batched under ``vmap``);
        ``"superlu"``: SciPy's sparse LU on the host through ``jax.pure_callback`` (members of a vmap
        one after another). ``single``: the pure-JAX solvers work in float32 (a Newton step needs no
        more: the residual and the stopping test stay float64); SuperLU always works in float64.
        """
        if self.block is not None and single:
            low = self.block.linear_solve(vals.astype(jnp.float32), rhs.astype(jnp.float32))
            return low.astype(rhs.dtype)
        if self.block is not None:
            return self.block.linear_solve(vals, rhs)
        rows, cols, size = self.rows, self.cols, self.k * self.n + self.nw

        def host_solve(values: np.ndarray, b: np.ndarray, transpose: bool) -> np.ndarray:
            import scipy.sparse as sp
            import scipy.sparse.linalg as spla

            r, c = (cols, rows) if transpose else (rows, cols)
            mat = sp.csc_matrix((np.asarray(values), (r, c)), shape=(size, size))
            # SuperLU with its COLAMD ordering (MMD(A^T+A) fills badly: 8x slower at 13 200 cells)
            out = spla.spsolve(mat, np.asarray(b))
            return np.asarray(out, dtype=b.dtype)

        def make(transpose: bool):
            def _solve(_matvec: Any, b: jnp.ndarray) -> jnp.ndarray:
                shape = jax.ShapeDtypeStruct(b.shape, b.dtype)
                return jax.pure_callback(
                    partial(host_solve, transpose=transpose), shape, vals, b, vmap_method="sequential"
                )

            return _solve

        def matvec(u: jnp.ndarray) -> jnp.ndarray:
            return jax.ops.segment_sum(vals * u[cols], rows, size)

        return jax.lax.custom_linear_solve(matvec, rhs, make(False), make(True))

    def newton_update(self, fun: Any, v: jnp.ndarray, jac: Any = None) -> jnp.ndarray:
        """One damped Newton update with a direct float64 solve (the fixed-step, differentiated run);
        ``jac(v)``: the Jacobian's nonzeros (default: :meth:`jacobian_values` of ``fun``)."""
        r, vals = self.jacobian_values(fun, v) if jac is None else (fun(v), jac(v))
        return self.updated(v, -self.solve(vals, r))

    def updated(self, v: jnp.ndarray, dv: jnp.ndarray) -> jnp.ndarray:
        """``v`` moved by the Newton update ``dv``, damped (:meth:`damped_pressure_and_water`)."""
        p_new, sw_new = self.damped_pressure_and_water(v, dv)
        return jnp.concatenate([p_new, sw_new, v[2 * self.n :] + dv[2 * self.n :]])

    def newton_loop(
        self, res: Any, v0: jnp.ndarray, cond: Any, updated: Any, jac: Any = None, conservation: Any = None
    ) -> tuple:
        """Newton's ``lax.while_loop`` from ``v0``: the final ``(v, r, info, iterations, finite)``.

        ``res(v) -> (r, info)``; ``cond(carry)`` keeps iterating; ``updated(v, dv)`` applies a
        (damped) update; ``jac(v)`` gives the Jacobian's nonzeros (default: :meth:`jacobian_values`
        of the residual). With :attr:`reuses_factorisation` the Jacobian at ``v0`` is factorised once:
        the first iteration applies it, the later ones run GMRES (:meth:`_reused_factorisation`,
        globally conservative with ``conservation``); otherwise every iteration solves its own Jacobian
        directly.
        """

        def fun(v: jnp.ndarray) -> jnp.ndarray:
            return res(v)[0]

        if jac is None:

            def jac(v: jnp.ndarray) -> jnp.ndarray:
                return self.jacobian_values(fun, v)[1]

        def step(c: tuple, delta: Any) -> tuple:
            # the residual (and rates) of each iterate is carried, so a converged iterate costs no
            # Jacobian or solve and the last one is not evaluated again
            v, r, _, it, _ = c
            v_new = updated(v, delta(v, r))
            return v_new, *res(v_new), it + 1, jnp.all(jnp.isfinite(v_new))

        start = (v0, *res(v0), 0, True)
        if self.reuses_factorisation:
            direct, krylov_step = self._reused_factorisation(fun, jac(v0), conservation)
            first = step(start, direct)
            start = jax.tree_util.tree_map(partial(jnp.where, cond(start)), first, start)
            body = partial(step, delta=krylov_step)
        else:

            def exact(v: jnp.ndarray, r: jnp.ndarray) -> jnp.ndarray:
                return -self.solve(jac(v), r, self.options.single_precision_solves)

            body = partial(step, delta=exact)
        return jax.lax.while_loop(cond, body, start)

    @property
    def reuses_factorisation(self) -> bool:
        """Whether adaptive steps factorise once and iterate with GMRES (``Options.krylov_iterations``)."""
        return self.options.krylov_iterations > 0 and isinstance(self.block, RedBlackSolver)

    def _reused_factorisation(self, fun: Any, vals: jnp.ndarray, conservation: Any = None) -> tuple[Any, Any]:
        """Newton solvers of one time step that factorise the Jacobian (nonzeros ``vals``, at the
        step's first iterate) once: ``(direct, krylov)``, each ``(v, r) -> dv``. ``direct`` applies
        the factors (the exact Newton step there); ``krylov`` runs ``krylov_iterations`` GMRES
        iterations on the Jacobian at ``v`` (applied matrix-free through ``jax.linearize``)
        preconditioned by them. The linear solves are inexact; the residual, state and stopping test
        stay float64. With ``conservation`` (:func:`.conservation.step_conservation`) the GMRES step
        is made globally conservative (:func:`.conservation.conserving`)."""
        assert isinstance(self.block, RedBlackSolver)
        low = jnp.float32 if self.options.single_precision_solves else vals.dtype
        factors = self.block.factor(vals.astype(low))

        def precond(u: jnp.ndarray) -> jnp.ndarray:
            return self.block.apply(factors, u.astype(low)).astype(u.dtype)

        def direct(_v: jnp.ndarray, r: jnp.ndarray) -> jnp.ndarray:
            return -precond(r)

        def krylov_step(v: jnp.ndarray, r: jnp.ndarray) -> jnp.ndarray:
            matvec = jax.linearize(fun, v)[1]
            if conservation is None:
                return krylov.gmres(matvec, precond, -r, self.options.krylov_iterations)[0]
            dv, _, j_dv = krylov.gmres(matvec, precond, -r, self.options.krylov_iterations, product=True)
            return conserving(self, conservation, dv, r + j_dv)

        return direct, krylov_step

    def damped_pressure_and_water(self, v: jnp.ndarray, dv: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """New pressure and water saturation of a Newton update ``dv`` at ``v``: the pressure change
        limited relative to the pressure, the saturation change by ``ds_max_newton`` (Appleyard), and
        the saturation kept in [0, 1]."""
        n, o = self.n, self.options
        dp_lim = o.dp_rel_newton * jnp.abs(v[:n])
        dp = jnp.clip(dv[:n], -dp_lim, dp_lim)
        ds = jnp.clip(dv[n : 2 * n], -o.ds_max_newton, o.ds_max_newton)
        return v[:n] + dp, jnp.clip(v[n : 2 * n] + ds, 0.0, 1.0)

    # ---------------------------------------------------------------- time stepping
    def _setup(self, model: Model, params: tuple[jnp.ndarray, jnp.ndarray]) -> tuple[Model, jnp.ndarray]:
        if jax.dtypes.canonicalize_dtype(np.float64) != np.float64:  # checked when traced
            raise RuntimeError(
                "the reservoir simulator needs JAX float64 (pressures in Pa, mass balance to 1e-9): run it "
                "inside twins.reservoir.run.x64_scope() or set jax.config.update('jax_enable_x64', True)"
            )
        perm_mult, poro_mult = params
        trans = transmissibility(model.conn, perm_mult)
        model = model._replace(pv_ref=model.pv_ref * poro_mult, wi=model.wi * perm_mult[self.perf_cell])
        return model, trans

    def _mb_error(self, info: dict) -> jnp.ndarray:
        """Relative mass-balance error of the step, the worse of the two phases."""
        err_w = jnp.abs(info["imb_w"]) / jnp.maximum(jnp.sum(info["mass_w"]), 1e-30)
        err_h = jnp.abs(info["imb_h"]) / jnp.maximum(jnp.sum(info["mass_h"]), 1e-30)
        return jnp.maximum(err_w, err_h)

    def _residual_met(self, r: jnp.ndarray, cell_tol: float) -> jnp.ndarray:
        """Every cell's scaled residual below ``cell_tol`` and every well equation below ``10 tol``."""
        m = self.k * self.n
        cells_met = jnp.max(jnp.abs(r[:m])) < cell_tol
        return cells_met & (jnp.max(jnp.abs(r[m:]), initial=0.0) < 10 * self.options.tol)

    def _converged(self, r: jnp.ndarray, info: dict) -> jnp.ndarray:
        """Newton's stopping test: every cell's scaled residual below ``cnv_tol`` and the step's
        mass-balance error below ``mb_tol`` (``cnv_tol=None``: every cell below ``tol``, no MB test),
        every well equation below ``10 tol``."""
        o = self.options
        if o.cnv_tol is None:
            return self._residual_met(r, o.tol)
        return self._residual_met(r, o.cnv_tol) & (self._mb_error(info) < o.mb_tol)

    def _substep(
        self,
        model: Model,
        trans: jnp.ndarray,
        x_old: State,
        dt: jnp.ndarray,
        ctrl: wells.WellControls,
        guess: State | None = None,
    ):
        """Newton solve of one implicit step: (new state, converged, iterations, info).

        Newton starts from ``guess`` (default: ``x_old``); the time loop passes the state extrapolated
        along the last accepted step.
        """
        rho_well = self._well_density(model, x_old, ctrl)

        def res(v: jnp.ndarray) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
            return self.residual(model, trans, self._unpack(v), x_old, dt, ctrl, rho_well)

        def cond(c: tuple) -> jnp.ndarray:
            v, r, info, it, ok = c
            return (~self._converged(r, info)) & ok & (it < self.options.max_newton)

        v0 = self._pack(x_old if guess is None else guess)
        conservation = None
        if self.options.conservative_krylov and self.reuses_factorisation:
            conservation = step_conservation(self, model, dt, ctrl, rho_well, x_old, v0)
        jac = self._local_jacobian(model, trans, x_old, dt, ctrl, rho_well)
        v, r, info, its, ok = self.newton_loop(res, v0, cond, self.updated, jac, conservation)
        return self._unpack(v), self._converged(r, info) & ok, its, info

    def _report_step(
        self, model: Model, trans: jnp.ndarray, carry: tuple, inputs: tuple
    ) -> tuple[tuple, Report]:
        ctrl, t_len = inputs
        o = self.options
        zero_w = jnp.zeros(self.nw)

        def cond(c: tuple) -> jnp.ndarray:
            t, dt, x, cw, ch, qw, qh, mb, nsub, nnew, nfail, rate = c
            return (t < t_len * (1 - 1e-12)) & (nsub + nfail < o.max_substeps)

        def body(c: tuple) -> tuple:
            t, dt, x, cw, ch, qw, qh, mb, nsub, nnew, nfail, rate = c
            dt_try = jnp.minimum(dt, t_len - t)
            guess = State(
                x.p + dt_try * rate.p, jnp.clip(x.sw + dt_try * rate.sw, 0.0, 1.0), x.bhp + dt_try * rate.bhp
            )
            x_new, conv, its, info = self._substep(model, trans, x, dt_try, ctrl, guess)
            new_rate = jax.tree_util.tree_map(
                lambda a, b, old: jnp.where(conv, (a - b) / dt_try, old), x_new, x, rate
            )
            ds = jnp.max(jnp.abs(x_new.sw - x.sw))
            dpx = jnp.max(jnp.abs(x_new.p - x.p)) / P_UNIT
            fac = jnp.minimum(o.ds_target / jnp.maximum(ds, 1e-12), o.dp_target / jnp.maximum(dpx, 1e-12))
            dt_next = jnp.minimum(jnp.minimum(dt_try * o.growth, dt_try * fac), o.dt_max)
            dt_next = jnp.maximum(dt_next, jnp.where(dt_try < dt, dt, 0.0))
            accept = jax.tree_util.tree_map(lambda a, b: jnp.where(conv, a, b), x_new, x)
            return (
                jnp.where(conv, t + dt_try, t),
                jnp.where(conv, dt_next, dt_try / 2),
                accept,
                jnp.where(conv, cw + dt_try * info["qw"], cw),
                jnp.where(conv, ch + dt_try * info["qh"], ch),
                jnp.where(conv, info["qw"], qw),
                jnp.where(conv, info["qh"], qh),
                jnp.where(conv, jnp.maximum(mb, self._mb_error(info)), mb),
                nsub + conv.astype(int),
                nnew + its,
                nfail + (~conv).astype(int),
                new_rate,
            )

        x, dt, cw, ch, rate = carry
        init = (jnp.asarray(0.0), dt, x, cw, ch, zero_w, zero_w, jnp.asarray(0.0), 0, 0, 0, rate)
        t, dt, x, cw, ch, qw, qh, mb, nsub, nnew, nfail, rate = jax.lax.while_loop(cond, body, init)
        failed = jnp.where(t < t_len * (1 - 1e-12), jnp.nan, 0.0)  # NaN marks an unfinished report step
        rep = Report(x.p + failed, x.sw, x.bhp, qw, qh, cw, ch, mb, nsub, nnew, nfail)
        return (x, dt, cw, ch, rate), rep

    def _run(
        self, model: Model, x0: State, controls: wells.WellControls, dts: jnp.ndarray, params: tuple
    ) -> Report:
        """Simulate the report steps ``dts`` (s) with per-step ``controls`` (leading axis = step)."""
        model, trans = self._setup(model, params)
        rate = jax.tree_util.tree_map(jnp.zeros_like, x0)
        carry = (x0, jnp.asarray(self.options.dt_init), jnp.zeros(self.nw), jnp.zeros(self.nw), rate)
        _, rep = jax.lax.scan(partial(self._report_step, model, trans), carry, (controls, dts))
        return rep

    def _run_fixed(
        self,
        model: Model,
        x0: State,
        controls: wells.WellControls,
        dts: jnp.ndarray,
        params: tuple,
        substeps: int = 4,
        iterations: int = 6,
    ) -> Report:
        """Fixed sub-steps and Newton iterations (``lax.scan`` only): reverse-differentiable."""
        model, trans = self._setup(model, params)

        def sub(carry: tuple, _: Any, ctrl: wells.WellControls, dt: jnp.ndarray) -> tuple:
            x, cw, ch, mb = carry
            rho_well = self._well_density(model, x, ctrl)

            def fun(v: jnp.ndarray) -> jnp.ndarray:
                return self.residual(model, trans, self._unpack(v), x, dt, ctrl, rho_well)[0]

            jac = self._local_jacobian(model, trans, x, dt, ctrl, rho_well)
            v, _ = jax.lax.scan(
                lambda v, _: (self.newton_update(fun, v, jac), None), self._pack(x), None, length=iterations
            )
            x_new = self._unpack(v)
            info = self.residual(model, trans, x_new, x, dt, ctrl, rho_well)[1]
            mb = jnp.maximum(mb, self._mb_error(info))
            return (x_new, cw + dt * info["qw"], ch + dt * info["qh"], mb), (info["qw"], info["qh"])

        def report(carry: tuple, inputs: tuple) -> tuple:
            ctrl, t_len = inputs
            x, cw, ch = carry
            (x, cw, ch, mb), (qw, qh) = jax.lax.scan(
                partial(sub, ctrl=ctrl, dt=t_len / substeps), (x, cw, ch, 0.0), None, length=substeps
            )
            n_it = jnp.asarray(substeps * iterations)
            return (x, cw, ch), Report(
                x.p, x.sw, x.bhp, qw[-1], qh[-1], cw, ch, mb, jnp.asarray(substeps), n_it, jnp.asarray(0)
            )

        _, rep = jax.lax.scan(report, (x0, jnp.zeros(self.nw), jnp.zeros(self.nw)), (controls, dts))
        return rep
