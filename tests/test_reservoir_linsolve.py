"""The pure-JAX direct solvers (twins/reservoir/linsolve.py block Thomas / cyclic reduction and
twins/reservoir/redblack.py red-black + level-set Thomas) against SciPy's sparse LU, an independent solver.

Real Newton Jacobians of the shipped decks (2-D quarter five-spot, 3-D layered 15x15x3 with EQUIL and
capillary pressure, and the quarter five-spot with ACTNUM holes), synthetic matrices with 3 unknowns per
cell, batches under ``jax.vmap``, the transposed solve and gradients through ``custom_linear_solve``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opm")
jax = pytest.importorskip("jax")
sp = pytest.importorskip("scipy.sparse")
spla = pytest.importorskip("scipy.sparse.linalg")

pytestmark = pytest.mark.usefixtures("reservoir_x64")

import jax.numpy as jnp  # noqa: E402

from pipelines.sources.reservoir import read_deck_full  # noqa: E402
from twins.reservoir.adapter import build  # noqa: E402
from twins.reservoir.linsolve import BlockSolver, cell_ordering  # noqa: E402
from twins.reservoir.redblack import (  # noqa: E402
    RedBlackSolver,
    block_inverse,
    level_inverse,
    level_sets,
    small_matmul,
)
from twins.reservoir.solver import Options  # noqa: E402

CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "reservoir"
METHODS = ("thomas", "cyclic", "redblack")


def _solver(method: str, rows, cols, n: int, k: int, nw: int, a, b):
    if method == "redblack":
        return RedBlackSolver(rows, cols, n, k, nw, a, b)
    return BlockSolver(rows, cols, n, k, nw, a, b, method=method)


def _holes_deck(tmp_path: Path) -> Path:
    """The quarter five-spot with inactive cells: a 4x4 hole in the middle and a broken diagonal strip."""
    act = np.ones((20, 20), int)
    act[8:12, 8:12] = 0
    for i in range(3, 17, 2):
        act[i, 19 - i] = 0
    text = (CATALOG / "QFS_WATERFLOOD.DATA").read_text()
    values = " ".join(str(v) for v in act.ravel())
    path = tmp_path / "QFS_HOLES.DATA"
    path.write_text(text.replace("PORO\n", f"ACTNUM\n {values} /\nPORO\n", 1))
    return path


def _residual_fun(deck: Path, perm_mult: float = 1.0, dt_days: float = 5.0):
    """``(sim, fun, v)``: a Newton residual function of the deck's first step and the point to take
    its Jacobian at (the initial state with a few cells of mobile water)."""
    case = build(read_deck_full(deck), Options(linear_solver="superlu"))
    sim = case.sim
    model, trans = sim._setup(case.model, case.params(perm_mult))
    ctrl = jax.tree_util.tree_map(lambda a: a[0], case.controls)
    x = case.x0
    x = x._replace(sw=x.sw + 0.05 * (np.arange(sim.n) % 7 == 0))  # a few cells with mobile water
    rho = sim._well_density(model, x, ctrl)
    dt = jnp.asarray(dt_days * 86400.0)

    def fun(v: jnp.ndarray) -> jnp.ndarray:
        return sim.residual(model, trans, sim._unpack(v), x, dt, ctrl, rho)[0]

    return sim, fun, sim._pack(x)


@functools.lru_cache(maxsize=8)
def _jacobian(deck: Path, perm_mult: float = 1.0, dt_days: float = 5.0):
    """A Newton Jacobian (nonzeros), residual and simulator at the deck's initial state."""
    sim, fun, v = _residual_fun(deck, perm_mult, dt_days)
    r, vals = jax.jit(lambda v: sim.jacobian_values(fun, v))(v)
    return sim, np.asarray(vals), np.asarray(r)


def _scipy(sim, vals: np.ndarray) -> sp.csc_matrix:
    size = 2 * sim.n + sim.nw
    return sp.csc_matrix((vals, (sim.rows, sim.cols)), shape=(size, size))


@pytest.fixture(scope="module", params=["QFS_WATERFLOOD", "LAYERED_WATERFLOOD", "QFS_HOLES"])
def deck_jacobian(request, tmp_path_factory):
    from twins.reservoir.run import x64_scope

    with x64_scope():
        deck = (
            _holes_deck(tmp_path_factory.mktemp("holes"))
            if request.param == "QFS_HOLES"
            else CATALOG / f"{request.param}.DATA"
        )
        return (request.param, *_jacobian(deck))


@pytest.mark.parametrize("method", METHODS)
def test_matches_superlu_on_deck_jacobians(deck_jacobian, method: str) -> None:
    """J x = r and J^T x = r to a relative residual of 1e-12 and SuperLU's solution to 1e-9."""
    name, sim, vals, r = deck_jacobian
    solver = _solver(method, sim.rows, sim.cols, sim.n, 2, sim.nw, sim.conn_a, sim.conn_b)
    mat = _scipy(sim, vals)
    solve = jax.jit(solver.solve, static_argnums=2)
    for transpose, a in ((False, mat), (True, mat.T.tocsc())):
        x = np.asarray(solve(jnp.asarray(vals), jnp.asarray(r), transpose))
        ref = spla.spsolve(a, r)
        assert np.linalg.norm(a @ x - r) / np.linalg.norm(r) < 1e-12, (name, transpose)
        assert np.max(np.abs(x - ref)) / np.max(np.abs(ref)) < 1e-9, (name, transpose)
    if (
        name == "LAYERED_WATERFLOOD" and method != "redblack"
    ):  # 3-D: RCM beats the natural (layer-major) order
        assert solver.b < 15 * 15
    if method == "redblack":  # black level blocks: never larger than the bandwidth chunks
        assert solver.m <= 2 * cell_ordering(sim.n, sim.conn_a, sim.conn_b)[1]


def test_factor_then_apply_matches_superlu(deck_jacobian) -> None:
    """The red-black solver's factorisation (explicit level inverses), applied by matrix products,
    solves J x = r as SciPy's sparse LU does: relative residual below 1e-10, solution within 1e-9;
    the factors serve several right-hand sides."""
    name, sim, vals, r = deck_jacobian
    solver = RedBlackSolver(sim.rows, sim.cols, sim.n, 2, sim.nw, sim.conn_a, sim.conn_b)
    mat = _scipy(sim, vals)
    factors = jax.jit(solver.factor)(jnp.asarray(vals))
    apply = jax.jit(solver.apply)
    for rhs in (r, np.random.default_rng(5).standard_normal(r.size)):
        x = np.asarray(apply(factors, jnp.asarray(rhs)))
        assert np.linalg.norm(mat @ x - rhs) / np.linalg.norm(rhs) < 1e-10, name
        ref = spla.spsolve(mat, rhs)
        assert np.max(np.abs(x - ref)) / np.max(np.abs(ref)) < 1e-9, name


def test_vmapped_factor_matches_superlu_and_pivoted_lu(deck_jacobian) -> None:
    """An ensemble's factorisation (``factor`` under ``vmap``: on the CPU its level blocks up to 64
    unknowns are inverted by Gauss-Jordan without pivoting between cells) solves the deck Jacobian as
    SciPy's sparse LU does in float64 (solution within 1e-9), and in float32, as the adaptive run uses
    it, is as accurate as the unbatched factorisation with LAPACK's pivoted LU (within 4x its error)."""
    name, sim, vals, r = deck_jacobian
    solver = RedBlackSolver(sim.rows, sim.cols, sim.n, 2, sim.nw, sim.conn_a, sim.conn_b)
    ref = spla.spsolve(_scipy(sim, vals), r)
    batch = jnp.asarray(np.stack([vals, vals]))
    rhs = jnp.asarray(np.stack([r, r]))
    errors = {}
    for dtype in (jnp.float64, jnp.float32):
        factors = jax.jit(jax.vmap(solver.factor))(batch.astype(dtype))
        x = np.asarray(jax.jit(jax.vmap(solver.apply))(factors, rhs.astype(dtype)), float)
        one = solver.apply(jax.jit(solver.factor)(batch[0].astype(dtype)), rhs[0].astype(dtype))
        errors[dtype] = [
            np.max(np.abs(y - ref)) / np.max(np.abs(ref)) for y in (x[0], np.asarray(one, float))
        ]
    assert max(errors[jnp.float64]) < 1e-9, name
    batched32, single32 = errors[jnp.float32]
    assert batched32 < 4 * max(single32, 1e-6), (name, batched32, single32)


@pytest.mark.parametrize("method", ("thomas", "redblack"))
def test_vmap_over_a_batch_of_jacobians(method: str) -> None:
    """A vmapped solve over Jacobians of different permeabilities/time steps equals SuperLU member by member."""
    members = [
        _jacobian(CATALOG / "QFS_WATERFLOOD.DATA", m, d) for m, d in ((0.5, 1.0), (1.0, 5.0), (2.0, 30.0))
    ]
    sim = members[0][0]
    vals = jnp.asarray(np.stack([m[1] for m in members]))
    rhs = jnp.asarray(np.stack([m[2] for m in members]))
    solver = _solver(method, sim.rows, sim.cols, sim.n, 2, sim.nw, sim.conn_a, sim.conn_b)
    x = np.asarray(jax.jit(jax.vmap(solver.linear_solve))(vals, rhs))
    for i, (s, v, r) in enumerate(members):
        ref = spla.spsolve(_scipy(s, v), r)
        assert np.max(np.abs(x[i] - ref)) / np.max(np.abs(ref)) < 1e-9


@pytest.mark.parametrize("method", ("thomas", "redblack"))
def test_gradient_through_the_solve(method: str) -> None:
    """Reverse-mode gradients (transpose solve) equal the adjoint formulas evaluated with SuperLU.

    For L = g . x with J x = r: dL/dr = J^-T g and dL/dJ_ij = -lambda_i x_j, lambda = J^-T g.
    """
    sim, vals, r = _jacobian(CATALOG / "QFS_WATERFLOOD.DATA")
    solver = _solver(method, sim.rows, sim.cols, sim.n, 2, sim.nw, sim.conn_a, sim.conn_b)
    g = np.cos(np.arange(r.size))

    def loss(v: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
        return jnp.dot(jnp.asarray(g), solver.linear_solve(v, b))

    d_vals, d_r = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(vals), jnp.asarray(r))
    mat = _scipy(sim, vals)
    lam = spla.spsolve(mat.T.tocsc(), g)
    x = spla.spsolve(mat, r)
    np.testing.assert_allclose(np.asarray(d_r), lam, rtol=1e-8, atol=1e-10 * np.max(np.abs(lam)))
    expect = -lam[sim.rows] * x[sim.cols]
    np.testing.assert_allclose(np.asarray(d_vals), expect, rtol=1e-7, atol=1e-9 * np.max(np.abs(expect)))


def _grid_pattern(nx: int, ny: int, nz: int, k: int, perf: np.ndarray):
    """Connections and the Jacobian pattern of k unknowns per cell on an nx x ny x nz grid (one perf per well)."""
    idx = np.arange(nx * ny * nz).reshape(nz, ny, nx)
    a = np.concatenate([idx[:, :, :-1].ravel(), idx[:, :-1, :].ravel(), idx[:-1].ravel()])
    b = np.concatenate([idx[:, :, 1:].ravel(), idx[:, 1:, :].ravel(), idx[1:].ravel()])
    n, nw = idx.size, perf.size
    rr, cc = [], []
    for i in range(k):
        for j in range(k):
            for x, y in ((np.arange(n), np.arange(n)), (a, b), (b, a)):
                rr.append(x + i * n)
                cc.append(y + j * n)
            rr += [perf + i * n, k * n + np.arange(nw)]
            cc += [k * n + np.arange(nw), perf + j * n]
    rr.append(k * n + np.arange(nw))
    cc.append(k * n + np.arange(nw))
    mat = sp.coo_matrix(
        (np.ones(sum(map(len, rr))), (np.concatenate(rr), np.concatenate(cc))), shape=(k * n + nw,) * 2
    )
    mat = mat.tocsr()
    mat.sum_duplicates()
    coo = mat.tocoo()
    return a, b, coo.row, coo.col


@pytest.mark.parametrize(("dims", "wells"), [((9, 7, 3), (0, 37, 100, 188)), ((12, 5, 1), ())])
def test_three_unknowns_per_cell(dims: tuple[int, int, int], wells: tuple[int, ...]) -> None:
    """Generic k: a 3-unknown (black-oil layout) system with and without well rows matches SuperLU
    (cell 37 of the 9x7x3 grid lies an odd number of steps from every corner: a red, eliminated cell)."""
    perf = np.asarray(wells, np.int64)
    a, b, rows, cols = _grid_pattern(*dims, 3, perf)
    n = int(np.prod(dims))
    if perf.size:
        assert np.any(level_sets(n, a, b)[perf] % 2 == 1)  # a perforation in a red cell
    rng = np.random.default_rng(3)
    vals = rng.uniform(-1.0, 1.0, rows.size)
    vals[rows == cols] += 12.0
    mat = sp.csc_matrix((vals, (rows, cols)), shape=(3 * n + perf.size,) * 2)
    rhs = rng.standard_normal(mat.shape[0])
    for method in METHODS:
        solver = _solver(method, rows, cols, n, 3, perf.size, a, b)
        if method != "redblack":
            assert solver.m == 3 * solver.b
        x = np.asarray(jax.jit(solver.solve)(jnp.asarray(vals), jnp.asarray(rhs)))
        np.testing.assert_allclose(x, spla.spsolve(mat, rhs), rtol=1e-10, atol=1e-12)
        if method == "redblack":  # factor once, apply: the same solution
            x = np.asarray(solver.apply(jax.jit(solver.factor)(jnp.asarray(vals)), jnp.asarray(rhs)))
            np.testing.assert_allclose(x, spla.spsolve(mat, rhs), rtol=1e-10, atol=1e-12)


def test_ordering_bandwidth_and_bad_input() -> None:
    """RCM bandwidth of a 3-D grid is one layer-column plane; non-neighbour couplings are refused."""
    a, b, rows, cols = _grid_pattern(15, 15, 3, 2, np.array([0]))
    order, band = cell_ordering(675, a, b)
    assert sorted(order.tolist()) == list(range(675))
    assert band <= 15 * 3 + 3  # vs 225 in the natural (layer-major) order
    rows_bad = np.concatenate([rows, [0]])
    cols_bad = np.concatenate([cols, [674]])  # couples the first and the last cell: not a connection
    with pytest.raises(ValueError, match="not neighbours"):
        BlockSolver(rows_bad, cols_bad, 675, 2, 1, a, b)
    with pytest.raises(ValueError, match="not neighbours"):
        RedBlackSolver(rows_bad, cols_bad, 675, 2, 1, a, b)
    # cells 0 and 3 of a row are three steps apart (one red, one black) and not connected
    with pytest.raises(ValueError, match="not neighbours"):
        RedBlackSolver(np.concatenate([rows, [0]]), np.concatenate([cols, [3]]), 675, 2, 1, a, b)
    with pytest.raises(ValueError, match="linear_solver"):
        Options(linear_solver="lu")


def test_red_black_counts_a_repeated_connection_once() -> None:
    """A connection listed twice (e.g. an NNC repeating a neighbour pair) gives the same solution."""
    a, b, rows, cols = _grid_pattern(6, 5, 2, 2, np.array([7]))
    rng = np.random.default_rng(5)
    vals = rng.uniform(-1.0, 1.0, rows.size)
    vals[rows == cols] += 10.0
    rhs = rng.standard_normal(2 * 60 + 1)
    once = RedBlackSolver(rows, cols, 60, 2, 1, a, b)
    twice = RedBlackSolver(rows, cols, 60, 2, 1, np.concatenate([a, b]), np.concatenate([b, a]))
    ref = spla.spsolve(sp.csc_matrix((vals, (rows, cols)), shape=(121, 121)), rhs)
    for solver in (once, twice):
        np.testing.assert_allclose(
            np.asarray(solver.solve(jnp.asarray(vals), jnp.asarray(rhs))), ref, rtol=1e-10, atol=1e-12
        )


def test_level_sets_red_black_split() -> None:
    """Breadth-first levels of a grid from a corner are its diagonals (i + j + k); a triangle is refused."""
    a, b, rows, cols = _grid_pattern(6, 4, 2, 2, np.array([5]))
    level = level_sets(48, a, b)
    assert np.all(np.abs(level[a] - level[b]) == 1)
    i, j, k = np.arange(48) % 6, (np.arange(48) // 6) % 4, np.arange(48) // 24
    corner = int(np.argmin(level))
    dist = np.abs(i - i[corner]) + np.abs(j - j[corner]) + np.abs(k - k[corner])
    np.testing.assert_array_equal(level, dist)  # Manhattan distance from the start corner
    assert dist.max() == 5 + 3 + 1  # the start is a corner (peripheral)
    solver = RedBlackSolver(rows, cols, 48, 2, 1, a, b)
    assert sorted(solver.red.tolist() + solver.black.tolist()) == list(range(48))
    assert np.all(level[solver.red] % 2 == 1)
    with pytest.raises(ValueError, match="not bipartite"):  # a non-neighbour connection closing an odd cycle
        level_sets(3, np.array([0, 1, 0]), np.array([1, 2, 2]))


def test_auto_falls_back_for_a_non_bipartite_grid() -> None:
    """``linear_solver="auto"`` uses red-black on a Cartesian grid, the bandwidth solver when an NNC
    closes an odd cycle; asking for red-black there is refused by name."""
    from twins.reservoir import geometry
    from twins.reservoir.solver import Simulator

    ones = np.ones((1, 3, 3))
    static = {"permx": ones, "permy": ones, "permz": ones, "dx": ones, "dy": ones, "dz": ones, "ntg": ones,
              "actnum": ones, "multx": ones, "multy": ones, "multz": ones}  # fmt: skip
    conn = geometry.connections(static)
    perf = np.array([0])
    assert isinstance(Simulator(9, 1, conn, perf, perf, False, Options()).block, RedBlackSolver)
    nnc = conn._replace(
        **{
            f: np.append(getattr(conn, f), v)
            for f, v in zip(conn._fields, (0, 4, 1.0, 1.0, 1.0), strict=True)
        }
    )
    sim = Simulator(9, 1, nnc, perf, perf, False, Options())
    assert isinstance(sim.block, BlockSolver)
    with pytest.raises(ValueError, match="not bipartite"):
        Simulator(9, 1, nnc, perf, perf, False, Options(linear_solver="redblack"))


@pytest.mark.parametrize("deck", ["QFS_WATERFLOOD", "LAYERED_WATERFLOOD"])
def test_coloured_jacobian_equals_dense_autodiff(deck: str) -> None:
    """The compressed (coloured-JVP) Jacobian equals jax.jacfwd's dense one entry by entry, with
    nothing outside the pattern; the colouring is a valid distance-2 colouring, and on the 2-D grid it
    reaches the lower bound of 10: two unknowns times 5, as the five-point stencil's closed
    neighbourhood of an interior cell is a clique of the conflict graph ((i + 2j) mod 5 attains it;
    the wells, in corner cells, fit in)."""
    from twins.reservoir.run import x64_scope

    with x64_scope():
        sim, fun, v = _residual_fun(CATALOG / f"{deck}.DATA")
        vals = np.asarray(jax.jit(lambda v: sim.jacobian_values(fun, v)[1])(v))
        dense = np.asarray(jax.jacfwd(fun)(v))
    scale = np.max(np.abs(dense))
    assert np.max(np.abs(dense[sim.rows, sim.cols] - vals)) < 1e-12 * scale
    outside = dense.copy()
    outside[sim.rows, sim.cols] = 0.0
    assert np.max(np.abs(outside)) == 0.0
    size = dense.shape[0]
    mat = sp.csr_matrix((np.ones(sim.rows.size), (sim.rows, sim.cols)), shape=(size, size))
    colors = sim.colors
    gram = (mat.T @ mat).tocoo()
    off = gram.row != gram.col
    assert not np.any(colors[gram.row[off]] == colors[gram.col[off]])  # a valid distance-2 colouring
    assert sim.n_colors == colors.max() + 1
    if deck == "QFS_WATERFLOOD":
        assert sim.n_colors == 2 * 5


@pytest.mark.parametrize("k", [1, 2, 3])
def test_small_matmul_is_numpy_matmul_with_broadcasting(k: int) -> None:
    """The unrolled products of the red elimination equal NumPy's matmul, batch axes broadcast."""
    rng = np.random.default_rng(k)
    a, b = rng.normal(size=(5, 1, 4, k)), rng.normal(size=(1, 3, k, 2))
    np.testing.assert_allclose(np.asarray(small_matmul(jnp.asarray(a), jnp.asarray(b))), a @ b, rtol=1e-13)


@pytest.mark.parametrize(("k", "m"), [(1, 6), (2, 12), (2, 40), (3, 27)])
def test_block_inverse_equals_numpy_inverse(k: int, m: int) -> None:
    """Block Gauss-Jordan (cell blocks as pivots; unrolled for 12 x 12, a ``fori_loop`` for 40 x 40)
    equals NumPy's LU inverse, under ``vmap`` too, also where a cell block's leading entry is tiny
    (scalar elimination without pivoting would divide by it)."""
    rng = np.random.default_rng(m)
    a = rng.normal(size=(3, m, m)) + 2.0 * np.sqrt(m) * np.eye(m)
    if k > 1:
        a[:, 0, 0] = 1e-14  # the first cell's own block [[~0, x], [y, z]] stays well conditioned
        a[:, 0, 1], a[:, 1, 0] = 3.0 * np.sqrt(m), 3.0 * np.sqrt(m)
    out = np.asarray(jax.vmap(lambda s: block_inverse(s, k))(jnp.asarray(a)))
    np.testing.assert_allclose(out, np.linalg.inv(a), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="not a multiple"):
        block_inverse(jnp.eye(5), 2)


@pytest.mark.parametrize("m", [12, 80])
def test_level_inverse_alone_and_under_vmap(m: int) -> None:
    """A level block's inverse is NumPy's for one matrix (LAPACK) and for a vmapped batch (block
    Gauss-Jordan up to 64 unknowns, LAPACK above), also inside ``jit`` and nested ``vmap``."""
    rng = np.random.default_rng(m)
    a = rng.normal(size=(2, 3, m, m)) + 2.0 * np.sqrt(m) * np.eye(m)
    ref = np.linalg.inv(a)
    one = np.asarray(jax.jit(lambda s: level_inverse(s, 2))(jnp.asarray(a[0, 0])))
    batch = np.asarray(jax.jit(jax.vmap(lambda s: level_inverse(s, 2)))(jnp.asarray(a[0])))
    nested = np.asarray(jax.vmap(jax.vmap(lambda s: level_inverse(s, 2)))(jnp.asarray(a)))
    np.testing.assert_allclose(one, ref[0, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batch, ref[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(nested, ref, rtol=1e-9, atol=1e-12)
    # which method ran: LAPACK's LU shows as triangular solves; Gauss-Jordan has none
    batched = str(jax.make_jaxpr(jax.vmap(lambda s: level_inverse(s, 2)))(jnp.asarray(a[0])))
    single = str(jax.make_jaxpr(lambda s: level_inverse(s, 2))(jnp.asarray(a[0, 0])))
    assert "triangular_solve" in single
    if jax.default_backend() == "cpu":  # Gauss-Jordan is the CPU backend's batched path only
        assert ("triangular_solve" not in batched) == (m <= 64)
