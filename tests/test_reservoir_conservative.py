"""The globally conservative GMRES step (twins/reservoir/conservation.py: ``step_conservation``,
``conserving``; ``Options.conservative_krylov``) against independent computations.

Within a time step Newton's later iterations solve with a few GMRES iterations, so their linear
residual is not zero, and its weighted sum over the cells is what is left of each phase's mass
imbalance to first order. The correction adds a uniform pressure shift (cells and wells) and a
uniform water-saturation shift that cancel those two sums through a 2 x 2 coarse matrix. Checked
here: the weights turn the scaled residual into the step's mass imbalance (the residual's own global
sums); the coarse matrix, computed from the masses and perforation rates alone, equals the weighted
column sums of the full assembled Jacobian (the fluxes cancel); and a corrected update leaves no
linearised imbalance, with the correction a uniform shift. States are the perturbed ones of
``tests/test_reservoir_assembly.py``, on the four test grids, in float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opm")
jax = pytest.importorskip("jax")

pytestmark = pytest.mark.usefixtures("reservoir_x64")

import jax.numpy as jnp  # noqa: E402

from twins.reservoir.conservation import conserving, step_conservation  # noqa: E402

from .test_reservoir_assembly import DECKS, _deck_path, _step  # noqa: E402


def _conservation(name: str, tmp_path: Path):
    """``(sim, fun, dense J, v, Conservation, info, fluid)`` at a perturbed state of deck ``name``."""
    sim, fun, jac, v, step = _step(_deck_path(name, tmp_path), shut_first_well=False, with_step=True)
    model, trans, x_old, dt, ctrl, rho = step
    n = sim.n
    v = v.at[n : 2 * n : 2].set(x_old.sw[::2])  # every other cell back at its initial (connate) water
    cons = step_conservation(sim, model, dt, ctrl, rho, x_old, v)
    size = v.size
    dense = np.zeros((size, size))
    np.add.at(dense, (sim.rows, sim.cols), np.asarray(jac(v)))
    info = sim.residual(model, trans, sim._unpack(v), x_old, dt, ctrl, rho)[1]
    return sim, fun, dense, v, cons, info, model.fluid


def _phase_sums(sim, weights: np.ndarray, r: np.ndarray) -> np.ndarray:
    n = sim.n
    return np.array([weights[0] @ r[:n], weights[1] @ r[n : 2 * n]])


@pytest.mark.parametrize("name", DECKS)
def test_weights_and_coarse_matrix(name: str, tmp_path: Path) -> None:
    """The weighted sums of the scaled residual are the step's mass imbalance of each phase (1e-12);
    the coarse matrix equals ``weights J P`` of the whole assembled Jacobian, with ``P`` the
    uniform pressure shift and the saturation shift of the cells with mobile water, within 1e-9 of
    its largest entry; that shift covers exactly the cells where ``k_rw > 0``."""
    sim, fun, dense, v, cons, info, fluid = _conservation(name, tmp_path)
    weights, coarse, shifts = (np.asarray(a) for a in cons)
    sums = _phase_sums(sim, weights, np.asarray(fun(v)))
    expected = np.array([float(info["imb_w"]), float(info["imb_h"])])
    assert np.allclose(sums, expected, rtol=1e-12, atol=1e-12 * np.max(np.abs(expected)))
    n, nw = sim.n, sim.nw
    sw = np.asarray(v[n : 2 * n])
    mobile = np.interp(sw, np.asarray(fluid.sat_sw), np.asarray(fluid.sat_krw)) > 0  # the SWOF table
    assert 0 < mobile.sum() < n  # the perturbed state has cells of both kinds
    expected_shifts = np.zeros((2, 2 * n + nw))
    expected_shifts[0, :n] = expected_shifts[0, 2 * n :] = 1.0
    expected_shifts[1, n : 2 * n] = mobile
    assert np.array_equal(shifts, expected_shifts)
    weighted = np.stack([weights[0] @ dense[:n], weights[1] @ dense[n : 2 * n]]) @ shifts.T
    assert np.max(np.abs(coarse - weighted)) <= 1e-9 * np.max(np.abs(weighted))
    assert abs(np.linalg.det(weighted)) > 0


@pytest.mark.parametrize("name", DECKS)
def test_corrected_update_leaves_no_linearised_imbalance(name: str, tmp_path: Path) -> None:
    """An inexact Newton update (half the exact one plus noise) is corrected so that ``r + J dv``
    has zero weighted sums (1e-10 of those of ``r``), by a uniform shift of every pressure unknown
    (cells and BHPs) and of the saturations of the cells with mobile water, nothing else."""
    sim, fun, dense, v, cons, _, _ = _conservation(name, tmp_path)
    weights, shifts = np.asarray(cons.weights), np.asarray(cons.shifts)
    r = np.asarray(fun(v))
    rng = np.random.default_rng(3)
    dv = -0.5 * np.linalg.solve(dense, r) + 1e-3 * rng.standard_normal(r.size)
    lin = r + dense @ dv
    assert np.all(np.abs(_phase_sums(sim, weights, lin)) > 1e-6 * np.abs(_phase_sums(sim, weights, r)))
    corrected = np.asarray(conserving(sim, cons, jnp.asarray(dv), jnp.asarray(lin)))
    left = _phase_sums(sim, weights, r + dense @ corrected)
    assert np.all(np.abs(left) <= 1e-10 * np.abs(_phase_sums(sim, weights, r)))
    n, change = sim.n, corrected - dv
    pressures = np.concatenate([change[:n], change[2 * n :]])
    assert np.ptp(pressures) <= 1e-12 * max(np.max(np.abs(pressures)), 1e-300)
    mobile = shifts[1, n : 2 * n] > 0
    assert np.all(change[n : 2 * n][~mobile] == 0.0)
    assert np.ptp(change[n : 2 * n][mobile]) <= 1e-12 * max(np.max(np.abs(change[n : 2 * n])), 1e-300)


def test_singular_coarse_matrix_leaves_the_update_alone(tmp_path: Path) -> None:
    """Incompressible fluids with BHP-controlled wells make a uniform pressure shift change no mass
    (a zero column of the coarse matrix): the correction would be unbounded, so the GMRES update is
    returned as it is (finite, unchanged); a well-posed coarse matrix still corrects it."""
    sim, fun, dense, v, cons, _, _ = _conservation("QFS_WATERFLOOD", tmp_path)
    r = np.asarray(fun(v))
    dv = -0.5 * np.linalg.solve(dense, r)
    lin = jnp.asarray(r + dense @ dv)
    singular = cons._replace(coarse=cons.coarse.at[:, 0].set(0.0))
    out = np.asarray(conserving(sim, singular, jnp.asarray(dv), lin))
    assert np.array_equal(out, dv)
    out = np.asarray(conserving(sim, cons, jnp.asarray(dv), lin))
    assert not np.array_equal(out, dv)
