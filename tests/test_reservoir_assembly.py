"""The two-phase Jacobian assembled from local derivatives (twins/reservoir/assembly.py,
``Simulator.local_jacobian``) against two independent computations of the same matrix: forward-mode
autodiff of the whole residual compressed by a distance-2 colouring (``Simulator.jacobian_values``),
and central finite differences of the residual.

States are taken off the initial equilibrium (random pressure and saturation changes, so that
upwind directions, capillary pressure and relative permeabilities vary), on the shipped decks: the
2-D quarter five-spot, the 3-D layered deck in FIELD units (gravity, EQUIL, capillary pressure), the
dry-gas deck (tabulated PVDG) and the quarter five-spot with ACTNUM holes; with the wells as the deck
sets them and with one well shut (its equation pins the BHP to its first perforated cell).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opm")
jax = pytest.importorskip("jax")

pytestmark = pytest.mark.usefixtures("reservoir_x64")

import jax.numpy as jnp  # noqa: E402

from pipelines.sources.reservoir import read_deck_full  # noqa: E402
from twins.reservoir.adapter import build  # noqa: E402
from twins.reservoir.assembly import AssemblyPlan, incident_connections  # noqa: E402
from twins.reservoir.solver import Options, Simulator  # noqa: E402

from .test_reservoir_linsolve import _holes_deck  # noqa: E402

CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "reservoir"


def _step(deck: Path, shut_first_well: bool, seed: int = 0, with_step: bool = False):
    """``(sim, fun, jac, v)``: one time step's residual, its local Jacobian and a perturbed point
    (``with_step``: and the step's ``(model, trans, x_old, dt, ctrl, rho_well)``)."""
    case = build(read_deck_full(deck), Options())
    sim = case.sim
    model, trans = sim._setup(case.model, case.params(1.3))
    ctrl = jax.tree_util.tree_map(lambda a: a[0], case.controls)
    if shut_first_well:
        ctrl = ctrl._replace(is_open=ctrl.is_open.at[0].set(0.0))
    x_old = case.x0
    rng = np.random.default_rng(seed)
    rho = sim._well_density(model, x_old, ctrl)
    dt = jnp.asarray(7 * 86400.0)
    v = np.array(sim._pack(x_old))
    n = sim.n
    v[:n] += rng.normal(0.0, 3.0, n)  # bar
    v[n : 2 * n] = np.clip(v[n : 2 * n] + rng.uniform(0.0, 0.5, n), 0.0, 1.0)
    v[2 * n :] += rng.normal(0.0, 5.0, sim.nw)

    def fun(v: jnp.ndarray) -> jnp.ndarray:
        return sim.residual(model, trans, sim._unpack(v), x_old, dt, ctrl, rho)[0]

    jac = jax.jit(lambda v: sim.local_jacobian(model, trans, x_old, dt, ctrl, rho, v))
    if with_step:
        return sim, fun, jac, jnp.asarray(v), (model, trans, x_old, dt, ctrl, rho)
    return sim, fun, jac, jnp.asarray(v)


def _deck_path(name: str, tmp_path: Path) -> Path:
    """A shipped deck, or the quarter five-spot with ACTNUM holes (``QFS_HOLES``) written to ``tmp_path``."""
    return _holes_deck(tmp_path) if name == "QFS_HOLES" else CATALOG / f"{name}.DATA"


DECKS = ["QFS_WATERFLOOD", "LAYERED_WATERFLOOD", "GAS_DEPLETION", "QFS_HOLES"]


@pytest.mark.parametrize("shut", [False, True], ids=["deck-controls", "first-well-shut"])
@pytest.mark.parametrize("name", DECKS)
def test_local_jacobian_equals_coloured_autodiff(name: str, shut: bool, tmp_path: Path) -> None:
    """Every nonzero within 1e-12 of its row's largest entry of the coloured-JVP Jacobian."""
    sim, fun, jac, v = _step(_deck_path(name, tmp_path), shut)
    assert sim.assembly is not None
    local = np.asarray(jac(v))
    coloured = np.asarray(jax.jit(lambda v: sim.jacobian_values(fun, v)[1])(v))
    row_max = np.zeros(2 * sim.n + sim.nw)
    np.maximum.at(row_max, sim.rows, np.abs(coloured))
    assert np.all(row_max > 0)
    assert np.max(np.abs(local - coloured) / row_max[sim.rows]) < 1e-12


@pytest.mark.parametrize("name", ["QFS_WATERFLOOD", "LAYERED_WATERFLOOD"])
def test_local_jacobian_columns_match_finite_differences(name: str) -> None:
    """Columns of a perforated cell (pressure, saturation), an interior cell and each well's BHP
    against central differences of the residual (relative 1e-6 of the column's largest entry)."""
    sim, fun, jac, v = _step(CATALOG / f"{name}.DATA", shut_first_well=False)
    size = 2 * sim.n + sim.nw
    dense = np.zeros((size, size))
    dense[sim.rows, sim.cols] = np.asarray(jac(v))
    cell = int(sim.perf_cell[0])
    columns = [cell, sim.n + cell, sim.n // 2, sim.n + sim.n // 2] + [2 * sim.n + w for w in range(sim.nw)]
    f = jax.jit(fun)
    for col in columns:
        h = 1e-6 * max(1.0, abs(float(v[col])))
        e = jnp.zeros(size).at[col].set(h)
        fd = (np.asarray(f(v + e)) - np.asarray(f(v - e))) / (2 * h)
        scale = np.max(np.abs(fd))
        assert scale > 0
        assert np.max(np.abs(dense[:, col] - fd)) < 1e-6 * scale, col


def test_plan_refuses_a_pair_joined_twice_and_the_simulator_colours_instead() -> None:
    """A duplicated connection cannot be assembled in place: AssemblyPlan says so, and the simulator
    falls back to the coloured Jacobian (whose matrix then counts both connections)."""
    from twins.reservoir.geometry import Connections

    a, b = np.array([0, 1, 1]), np.array([1, 2, 2])
    with pytest.raises(ValueError, match="at most one connection"):
        AssemblyPlan(3, 1, a, b, np.array([0]), np.array([0]), incident_connections(a, b, 3))
    a_loop, b_loop = np.array([0, 1]), np.array([0, 2])
    with pytest.raises(ValueError, match="at most one connection"):
        AssemblyPlan(
            3, 1, a_loop, b_loop, np.array([0]), np.array([0]), incident_connections(a_loop, b_loop, 3)
        )
    ones = np.ones(3)
    sim = Simulator(3, 1, Connections(a, b, ones, ones, ones), np.array([0]), np.array([0]), False)
    assert sim.assembly is None
