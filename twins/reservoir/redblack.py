"""Direct solver for reservoir Jacobians in pure JAX: red-black elimination, then block Thomas over level sets.

The cell graph of a Cartesian (or any bipartite) grid splits into breadth-first level sets from a
peripheral cell, with every connection joining two consecutive levels. Cells on odd levels ("red")
never touch each other, so the red unknowns are eliminated exactly with one ``k x k`` inverse per red
cell (``k`` unknowns per cell); what remains couples only the even ("black") levels, each to itself and
to the next black level. That reduced system is block-tridiagonal with blocks as large as the black
levels, each its own size (a square grid's diagonals grow and shrink), and is solved by a block Thomas
elimination unrolled over the levels; the red unknowns follow by back substitution. Well unknowns
are kept out by a Schur complement, as in :mod:`.linsolve`::

    J = [[A, B],      A x_c + B x_w = r_c
         [C, D]]      x_w = (D - C A^-1 B)^-1 (r_w - C A^-1 r_c)

For a 20 x 20 grid the level blocks hold at most 20 cells and only half the levels remain, so the
dense work is about a quarter of :class:`.linsolve.BlockSolver`'s (whose chunks all have the bandwidth's
size); on a 15 x 15 x 3 grid it is about a fifth. No pivoting happens between cells (partial pivoting
inside each level block's LU), as in :mod:`.linsolve`, except that an ensemble's factorisations on the
CPU invert their level blocks by Gauss-Jordan elimination with the cells' own ``k x k`` blocks as
pivots (:func:`level_inverse`, :func:`block_inverse`: 3-5x faster there than jaxlib's batched LU,
which runs member after member). Both are checked against SciPy's sparse LU in
``tests/test_reservoir_linsolve.py``. Everything traced is plain ``jax.numpy``: it batches under
``jax.vmap``, runs under ``jax.jit`` on any backend and :meth:`RedBlackSolver.solve` differentiates
(``custom_linear_solve``).
A graph that is not bipartite (non-neighbour connections closing an odd cycle) is refused with a
``ValueError`` at set-up; the caller then uses :class:`.linsolve.BlockSolver`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .linsolve import DirectSolver


def level_sets(n: int, conn_a: np.ndarray, conn_b: np.ndarray) -> np.ndarray:
    """Breadth-first level of every cell from a peripheral cell of its connected component.

    Raises ``ValueError`` when a connection joins two cells of the same level (the graph is not
    bipartite, so red-black elimination does not apply).
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components, shortest_path

    a, b = np.asarray(conn_a, np.int64), np.asarray(conn_b, np.int64)
    graph = sp.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n)).tocsr()
    graph = (graph + graph.T).tocsr()
    n_comp, label = connected_components(graph, directed=False)
    level = np.zeros(n, np.int64)
    for c in range(n_comp):
        members = np.flatnonzero(label == c)
        start = members[0]
        for _ in range(2):  # two sweeps: the farthest cell from the farthest cell is peripheral
            dist = shortest_path(graph, unweighted=True, indices=start)
            start = members[np.argmax(dist[members])]
        dist = shortest_path(graph, unweighted=True, indices=start)
        level[members] = dist[members].astype(np.int64)
    if a.size and np.any(np.abs(level[a] - level[b]) != 1):
        raise ValueError("cell graph is not bipartite (a connection joins two cells of one level)")
    return level


class RedBlackSolver(DirectSolver):
    """Exact solver of ``J x = r`` for one fixed Jacobian sparsity (see the module docstring).

    Parameters
    ----------
    rows, cols
        Coordinates of the Jacobian's nonzeros (no duplicates); ``vals`` follow this order.
    n_cells, k, n_wells
        Cells, unknowns per cell (laid out variable-major: unknown ``var * n + cell``), well unknowns.
    conn_a, conn_b
        Cell connections; every cell-cell nonzero must lie on the diagonal or on a connection.
    max_block
        Refuse (``ValueError``, before any further set-up) when the largest level block would hold more
        unknowns than this.
    """

    method = "redblack"

    def __init__(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        n_cells: int,
        k: int,
        n_wells: int,
        conn_a: np.ndarray,
        conn_b: np.ndarray,
        max_block: int | None = None,
    ) -> None:
        self._set_pattern(rows, cols, n_cells, k, n_wells)
        n, k, rows, cols = self.n, self.k, self.rows, self.cols
        level = level_sets(n, conn_a, conn_b)
        self.red = np.flatnonzero(level % 2 == 1)
        black = np.flatnonzero(level % 2 == 0)
        order = np.argsort(level[black], kind="stable")
        self.black = black[order]
        chunk_of = level[self.black] // 2
        self.sizes = np.bincount(chunk_of).astype(np.int64)  # cells per black level
        self.m = int(k * self.sizes.max(initial=1))  # largest dense block (reported like BlockSolver.m)
        if max_block is not None and self.m > max_block:
            raise ValueError(f"level blocks of up to {self.m} unknowns exceed max_block={max_block}")
        # black cell -> (chunk, position in chunk)
        self.chunk = np.full(n, -1, np.int64)
        self.pos = np.full(n, -1, np.int64)
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.chunk[self.black] = chunk_of
        self.pos[self.black] = np.arange(self.black.size) - starts[chunk_of]
        # red cell neighbours (black cells), padded with -1; a pair listed twice counts once
        a, b = np.asarray(conn_a, np.int64), np.asarray(conn_b, np.int64)
        pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0).reshape(-1, 2)
        is_red = np.zeros(n, bool)
        is_red[self.red] = True
        r_of = np.where(is_red[pairs[:, 0]], pairs[:, 0], pairs[:, 1])
        t_of = np.where(is_red[pairs[:, 0]], pairs[:, 1], pairs[:, 0])
        red_index = np.full(n, -1, np.int64)
        red_index[self.red] = np.arange(self.red.size)
        self.nbr = padded_groups(red_index[r_of], t_of, -1, self.red.size)[0].astype(np.int64)
        self.dmax = self.nbr.shape[1]
        to_black = np.full(n + 1, self.black.size, np.int64)  # cell -> black index (n, padding -> dump)
        to_black[self.black] = np.arange(self.black.size)
        self.nbr_black = to_black[np.where(self.nbr >= 0, self.nbr, n)]  # (nr, d); padding -> n_black
        # for every black cell, the (red cell, neighbour slot) terms it receives (padding -> nr * d)
        flat_nbr = self.nbr_black.reshape(-1)
        real = flat_nbr < self.black.size
        self.red_terms = padded_groups(
            flat_nbr[real], np.flatnonzero(real), self.red.size * self.dmax, self.black.size
        )[0]
        self.cell_slot = np.empty(n, np.int64)  # cell -> row of [x_black, x_red]
        self.cell_slot[self.black] = np.arange(self.black.size)
        self.cell_slot[self.red] = self.black.size + np.arange(self.red.size)
        self._check_pattern(pairs)
        self._level_layout()
        self.maps = self._maps(rows, cols), self._maps(cols, rows)

    # ---------------------------------------------------------------- set-up (numpy)
    def _check_pattern(self, pairs: np.ndarray) -> None:
        """Every off-diagonal cell-cell nonzero must couple two connected cells (else it would be lost)."""
        import scipy.sparse as sp

        nc, n = self.k * self.n, self.n
        sel = (self.rows < nc) & (self.cols < nc)
        ca, cb = self.rows[sel] % n, self.cols[sel] % n
        adj = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
        adj = adj + adj.T + sp.identity(n, format="csr")
        linked = np.asarray(adj[ca, cb]).ravel() > 0
        if not np.all(linked):
            bad = np.flatnonzero(sel)[np.flatnonzero(~linked)[0]]
            raise ValueError(
                f"Jacobian entry ({self.rows[bad]}, {self.cols[bad]}) couples two cells that are not neighbours "
                "in the connection list"
            )

    def _level_layout(self) -> None:
        """Flat storage of the black level blocks: for level j its diagonal (m_j x m_j), lower
        (m_j x m_j-1) and upper (m_j x m_j+1) block, in that order; ``block_offset[kind, j]`` and
        ``block_width[kind, j]`` (kind 0, 1, 2 = D, L, U) locate them, ``layout`` names them."""
        m = self.k * self.sizes
        nb = m.size
        prev = np.concatenate([[0], m[:-1]])
        nxt = np.concatenate([m[1:], [0]])
        widths = np.stack([m, prev, nxt])  # (3, nb)
        sizes = (m * widths).T.reshape(-1)  # level-major: D_0, L_0, U_0, D_1, ...
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).reshape(nb, 3).T
        self.block_offset, self.block_width, self.total = offsets, widths, int(sizes.sum())
        self.layout = {
            (name, j): (int(offsets[code, j]), (int(m[j]), int(widths[code, j])))
            for code, name in enumerate("DLU")
            for j in range(nb)
        }

    def _maps(self, rows: np.ndarray, cols: np.ndarray) -> dict[str, Any]:
        """Gather/scatter indices for the matrix with nonzeros at (rows, cols) (``J`` or ``J^T``)."""
        import scipy.sparse as sp

        n, k, nnz, nc = self.n, self.k, self.nnz, self.k * self.n
        lookup = sp.csr_matrix((np.arange(nnz) + 1.0, (rows, cols)), shape=(self.size, self.size))

        def entry(r: np.ndarray, c: np.ndarray) -> np.ndarray:
            """Index in [vals, 0] of entry (r, c); missing entries and negative (padding) cells -> nnz."""
            if r.size == 0:
                return np.zeros(r.shape, np.int32)
            valid = (r >= 0) & (c >= 0)
            rr, cc = np.where(valid, r, 0).reshape(-1), np.where(valid, c, 0).reshape(-1)
            out = np.asarray(lookup[rr, cc]).reshape(r.shape).astype(np.int64) - 1
            return np.where(valid & (out >= 0), out, nnz).astype(np.int32)

        var = np.arange(k)

        def block(cr: np.ndarray, cc: np.ndarray) -> np.ndarray:
            """(..., k, k) entry indices of the k x k coupling block of cells cr (rows) to cc (cols)."""
            ur = np.where(cr[..., None] >= 0, var * n + cr[..., None], -1)
            uc = np.where(cc[..., None] >= 0, var * n + cc[..., None], -1)
            return entry(*np.broadcast_arrays(ur[..., :, None], uc[..., None, :]))

        red, nbr = self.red, self.nbr
        maps: dict[str, Any] = {
            "rr": block(red, red),  # (nr, k, k)
            "rb": block(np.repeat(red[:, None], self.dmax, 1), nbr),  # (nr, d, k, k)
            "br": block(nbr, np.repeat(red[:, None], self.dmax, 1)),  # (nr, d, k, k)
        }

        def flat(cr: np.ndarray, cc: np.ndarray) -> np.ndarray:
            """Flat storage position of every entry of the k x k blocks (cr, cc) (black cells; -1: dump)."""
            jr, jc = self.chunk[np.maximum(cr, 0)], self.chunk[np.maximum(cc, 0)]
            kind = np.where(jc == jr, 0, np.where(jc == jr - 1, 1, 2))  # D, L, U
            base, width = self.block_offset[kind, jr], self.block_width[kind, jr]
            pr, pc = self.pos[np.maximum(cr, 0)], self.pos[np.maximum(cc, 0)]
            out = (
                base[..., None, None]
                + (pr[..., None, None] * k + var[:, None]) * width[..., None, None]
                + pc[..., None, None] * k
                + var[None, :]
            )
            ok = (cr >= 0) & (cc >= 0) & (np.abs(jr - jc) <= 1)
            return np.where(ok[..., None, None], out, self.total)

        black = self.black
        nbr_s = np.repeat(nbr[:, :, None], self.dmax, 2)
        nbr_t = np.repeat(nbr[:, None, :], self.dmax, 1)
        # the level blocks are filled by gathers only (XLA's scatter-add is ~10x slower on CPU): every
        # nonzero position sums its original entry and the red cells' Schur terms, read from
        # [vals, schur terms, 0] through a padded index table, then the dense storage gathers them
        n_schur = self.red.size * self.dmax**2 * k * k
        zero = nnz + n_schur
        pos = np.concatenate([flat(black, black).reshape(-1), flat(nbr_s, nbr_t).reshape(-1)])
        own = block(black, black).reshape(-1)
        own = np.where(own == nnz, zero, own)  # a missing entry of the Jacobian reads the zero slot
        src = np.concatenate([own, nnz + np.arange(n_schur)])
        keep = pos < self.total
        maps["nz_src"], nz_pos = padded_groups(pos[keep], src[keep], zero)
        inv = np.full(self.total, nz_pos.size, np.int64)
        inv[nz_pos] = np.arange(nz_pos.size)
        maps["dense"] = inv.astype(np.int32)
        # wells: B (cell unknowns x wells), C (wells x cell unknowns), D (wells x wells)
        cu, wu = np.arange(nc), nc + np.arange(self.nw)
        maps["B"] = entry(*np.broadcast_arrays(cu[:, None], wu[None, :]))
        maps["C"] = entry(*np.broadcast_arrays(wu[:, None], cu[None, :]))
        maps["D"] = entry(*np.broadcast_arrays(wu[:, None], wu[None, :]))
        return maps

    # ---------------------------------------------------------------- traced (jax)
    def _eliminate(self, src: jnp.ndarray, maps: dict) -> tuple[jnp.ndarray, ...]:
        """Red elimination: ``A_rr^-1``, ``G = A_rr^-1 A_rb``, ``A_br`` and the black level blocks
        (flat storage of :meth:`_level_layout`) of the Schur complement ``A_bb - A_br G``."""
        a_rr, a_rb, a_br = src[maps["rr"]], src[maps["rb"]], src[maps["br"]]
        r_inv = _small_inverse(a_rr)
        g_mat = small_matmul(r_inv[:, None], a_rb)  # (nr, d, k, k): A_rr^-1 A_rb
        schur = -small_matmul(a_br[:, :, None], g_mat[:, None, :, :, :])  # (nr, d, d, k, k)
        terms = jnp.concatenate([src[:-1], schur.reshape(-1), jnp.zeros(1, src.dtype)])
        nonzeros = gather_sum(terms, maps["nz_src"])
        flat = jnp.concatenate([nonzeros, jnp.zeros(1, src.dtype)])[maps["dense"]]
        return r_inv, g_mat, a_br, flat

    def _cells(self, src: jnp.ndarray, maps: dict, rhs: jnp.ndarray) -> jnp.ndarray:
        """Solve ``A X = rhs`` for the cell block ``A`` (rhs: (k n, q), variable-major rows)."""
        r_inv, g_mat, a_br, flat = self._eliminate(src, maps)
        g_rhs, f_black = self._forward_red(r_inv, a_br, rhs)
        x_black = self._thomas(flat, f_black, rhs.shape[-1])  # (n_black, k, q)
        return self._back_red(g_mat, g_rhs, x_black)

    def _forward_red(
        self, r_inv: jnp.ndarray, a_br: jnp.ndarray, rhs: jnp.ndarray
    ) -> tuple[jnp.ndarray, ...]:
        """``A_rr^-1 r_red`` and the black right-hand side that the red elimination leaves."""
        n, k, q = self.n, self.k, rhs.shape[-1]
        per_cell = rhs.reshape(k, n, q).transpose(1, 0, 2)  # (n, k, q)
        g_rhs = small_matmul(r_inv, per_cell[self.red])  # (nr, k, q)
        sent = small_matmul(a_br, g_rhs[:, None]).reshape(-1, k, q)
        sent = jnp.concatenate([-sent, jnp.zeros((1, k, q), rhs.dtype)])
        return g_rhs, per_cell[self.black] + gather_sum(sent, self.red_terms)

    def _back_red(self, g_mat: jnp.ndarray, g_rhs: jnp.ndarray, x_black: jnp.ndarray) -> jnp.ndarray:
        """Red unknowns by back substitution; all cell unknowns, variable-major (k n, q)."""
        n, k, q = self.n, self.k, x_black.shape[-1]
        xb_pad = jnp.concatenate([x_black, jnp.zeros((1, k, q), x_black.dtype)])
        if q == 1:  # one contraction over (neighbour, unknown): the fastest for one vector
            x_red = g_rhs - jnp.einsum("rdij,rdjq->riq", g_mat, xb_pad[self.nbr_black])
        else:  # several columns (the wells' A^-1 B): a product term per neighbour and unknown, 4x faster
            x_red = g_rhs
            for d in range(self.dmax):
                x_d = xb_pad[self.nbr_black[:, d]]
                for j in range(k):
                    x_red = x_red - g_mat[:, d, :, j : j + 1] * x_d[:, j : j + 1, :]
        out = jnp.concatenate([x_black, x_red])[self.cell_slot]
        return out.transpose(1, 0, 2).reshape(k * n, q)

    def _block(self, flat: jnp.ndarray, name: str, j: int) -> jnp.ndarray:
        off, shape = self.layout[name, j]
        return flat[off : off + shape[0] * shape[1]].reshape(shape)

    def _thomas(self, flat: jnp.ndarray, f_black: jnp.ndarray, q: int) -> jnp.ndarray:
        """Block Thomas over the black levels (unrolled: every level has its own size)."""
        nb = self.sizes.size
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        ws, ys = [], []
        for j in range(nb):
            f = f_black[starts[j] : starts[j + 1]].reshape(-1, q)
            s = self._block(flat, "D", j)
            if j:
                lo = self._block(flat, "L", j)
                s = s - lo @ ws[-1]
                f = f - lo @ ys[-1]
            up = self._block(flat, "U", j) if j + 1 < nb else jnp.zeros((s.shape[0], 0), s.dtype)
            sol = jnp.linalg.solve(s, jnp.concatenate([up, f], axis=-1))
            ws.append(sol[:, : up.shape[1]])
            ys.append(sol[:, up.shape[1] :])
        return self._back_levels(ws, ys)

    def _back_levels(self, ws: list, ys: list) -> jnp.ndarray:
        """``x_j = y_j - W_j x_{j+1}`` from the last level up; (n_black, k, q)."""
        xs = [ys[-1]]
        for j in range(len(ys) - 2, -1, -1):
            xs.append(ys[j] - ws[j] @ xs[-1])
        return jnp.concatenate(xs[::-1]).reshape(-1, self.k, ys[0].shape[-1])

    def solve(self, vals: jnp.ndarray, rhs: jnp.ndarray, transpose: bool = False) -> jnp.ndarray:
        """Solve ``J x = rhs`` (or ``J^T x = rhs``) for the Jacobian with nonzeros ``vals``."""
        maps = self.maps[1 if transpose else 0]
        src = jnp.concatenate([vals, jnp.zeros(1, vals.dtype)])
        nc = self.k * self.n
        if self.nw == 0:
            return self._cells(src, maps, rhs[:nc, None])[:, 0]
        b_mat, c_mat, d_mat = src[maps["B"]], src[maps["C"]], src[maps["D"]]
        sol = self._cells(src, maps, jnp.concatenate([rhs[:nc, None], b_mat], axis=1))
        y, z = sol[:, 0], sol[:, 1:]
        x_w = _small_inverse(d_mat - c_mat @ z) @ (rhs[nc:] - c_mat @ y)
        return jnp.concatenate([y - z @ x_w, x_w])

    # ---------------------------------------------------------------- factor once, apply often
    def factor(self, vals: jnp.ndarray) -> Factors:
        """Factors of ``J`` (nonzeros ``vals``) for repeated :meth:`apply`: the red elimination, the
        black levels' explicit inverses ``S_j^-1`` and ``W_j = S_j^-1 U_j``, and the wells' Schur
        complement. A factorisation costs about one :meth:`solve`; an application is matrix-vector
        products only (about a fortieth of the flops on a 20 x 20 grid). Not reverse-differentiable
        (:func:`level_inverse`); the differentiated runs solve with :meth:`solve`."""
        maps = self.maps[0]
        src = jnp.concatenate([vals, jnp.zeros(1, vals.dtype)])
        r_inv, g_mat, a_br, flat = self._eliminate(src, maps)
        nb = self.sizes.size
        s_inv, ws, lows = [], [], []
        for j in range(nb):
            s = self._block(flat, "D", j)
            if j:
                lows.append(self._block(flat, "L", j))
                s = s - lows[-1] @ ws[-1]
            inv = level_inverse(s, self.k)
            s_inv.append(inv)
            if j + 1 < nb:
                ws.append(inv @ self._block(flat, "U", j))
        cells = Factors(r_inv, g_mat, a_br, tuple(s_inv), tuple(ws), tuple(lows), None, None, None)
        if self.nw == 0:
            return cells
        b_mat, c_mat, d_mat = src[maps["B"]], src[maps["C"]], src[maps["D"]]
        z = self._apply_cells(cells, b_mat)  # A^-1 B
        # closed form for up to three wells (LAPACK runs member by member)
        return cells._replace(z=z, c_mat=c_mat, w_inv=_small_inverse(d_mat - c_mat @ z))

    def _apply_cells(self, fac: Factors, rhs: jnp.ndarray) -> jnp.ndarray:
        """``A^-1 rhs`` for the cell block from its factors (rhs: (k n, q))."""
        q = rhs.shape[-1]
        g_rhs, f_black = self._forward_red(fac.r_inv, fac.a_br, rhs)
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        ys: list[jnp.ndarray] = []
        for j, inv in enumerate(fac.s_inv):
            f = f_black[starts[j] : starts[j + 1]].reshape(-1, q)
            if j:
                f = f - fac.lows[j - 1] @ ys[-1]
            ys.append(inv @ f)
        return self._back_red(fac.g_mat, g_rhs, self._back_levels(list(fac.ws), ys))

    def apply(self, fac: Factors, rhs: jnp.ndarray) -> jnp.ndarray:
        """``J^-1 rhs`` from :meth:`factor`'s factors (rhs: one vector)."""
        nc = self.k * self.n
        y = self._apply_cells(fac, rhs[:nc, None])[:, 0]
        if self.nw == 0:
            return y
        x_w = fac.w_inv @ (rhs[nc:] - fac.c_mat @ y)
        return jnp.concatenate([y - fac.z @ x_w, x_w])


class Factors(NamedTuple):
    """Factors of a Jacobian from :meth:`RedBlackSolver.factor` (pytree)."""

    r_inv: jnp.ndarray  # (nr, k, k) red diagonal blocks' inverses
    g_mat: jnp.ndarray  # (nr, d, k, k) A_rr^-1 A_rb
    a_br: jnp.ndarray  # (nr, d, k, k)
    s_inv: tuple  # per black level: S_j^-1
    ws: tuple  # W_j = S_j^-1 U_j
    lows: tuple  # L_j (levels 1..)
    z: jnp.ndarray | None  # A^-1 B (cell unknowns x wells)
    c_mat: jnp.ndarray | None
    w_inv: jnp.ndarray | None  # (D - C A^-1 B)^-1


def padded_groups(
    key: np.ndarray, value: np.ndarray, pad: int, n_keys: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Group ``value`` by ``key``: ``(table, keys)`` with ``table[i]`` the values of ``keys[i]`` padded with
    ``pad`` (``n_keys``: every key ``0..n_keys-1`` gets a row, else only the keys present)."""
    order = np.argsort(key, kind="stable")
    key, value = key[order], value[order]
    keys = np.arange(n_keys) if n_keys is not None else np.unique(key)
    row = np.searchsorted(keys, key)
    start = np.searchsorted(key, keys)
    col = np.arange(key.size) - start[row]
    table = np.full((keys.size, max(int(col.max(initial=0)) + 1, 1)), pad, np.int64)
    table[row, col] = value
    return table.astype(np.int32), keys


def gather_sum(values: jnp.ndarray, table: np.ndarray) -> jnp.ndarray:
    """``values[table].sum(axis=1)`` for a padded group table (:func:`padded_groups`, ``table`` of shape
    ``(groups, width)`` indexing the leading axis of ``values``) as ``width`` gathers added in turn,
    which XLA fuses into one elementwise loop; as a gather then a reduction, XLA's CPU backend runs
    the reduction as a separate YNNPACK kernel, several times slower for these short rows."""
    out = values[table[:, 0]]
    for j in range(1, table.shape[1]):
        out = out + values[table[:, j]]
    return out


def small_matmul(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``a @ b`` for stacks of small matrices (inner dimension ``k``, a few unknowns per cell) as ``k``
    broadcast products that XLA fuses into one elementwise loop; its CPU ``dot`` on thousands of
    2 x 2 blocks per ensemble member costs 4-12x more (measured under ``vmap`` on 100 members)."""
    out = a[..., :, :1] * b[..., :1, :]
    for j in range(1, a.shape[-1]):
        out = out + a[..., :, j : j + 1] * b[..., j : j + 1, :]
    return out


def level_inverse(s: jnp.ndarray, k: int) -> jnp.ndarray:
    """``S^-1`` of one black level block: LAPACK (``jnp.linalg.solve(S, I)``) for one matrix, and
    under ``jax.vmap`` on the CPU backend :func:`block_inverse` for blocks of up to
    :data:`GAUSS_JORDAN_MAX` unknowns (a ``custom_vmap`` rule picks it).

    jaxlib's batched LU on CPU runs LAPACK member after member; for a batch of 20 float32 blocks
    block Gauss-Jordan is 3-5x faster up to 52 x 52 and 1.3x at 60-70, slower at 84 x 84, while for
    one matrix LAPACK is 1.3-5x faster at every size (measured here, one thread). Forward-mode
    derivatives pass through; reverse mode does not (``custom_vmap`` has no transpose rule): it serves
    :meth:`RedBlackSolver.factor` only, the adaptive run's preconditioner, never differentiated; the
    differentiated direct solve (:meth:`RedBlackSolver.solve`) keeps LAPACK."""
    if s.shape[-1] > GAUSS_JORDAN_MAX or s.shape[-1] % k:
        return _lapack_inverse(s)
    return _batched_gauss_jordan(k)(s)


GAUSS_JORDAN_MAX = 64  # level_inverse: largest batched block inverted by block Gauss-Jordan


@functools.cache
def _batched_gauss_jordan(k: int) -> Any:
    """``S -> S^-1`` by LAPACK, with a ``vmap`` rule that inverts a batch by :func:`block_inverse`
    on the CPU backend (elsewhere the batched LAPACK-style solver of that backend)."""

    inverse = jax.custom_batching.custom_vmap(_lapack_inverse)

    @inverse.def_vmap
    def _batched(axis_size: int, in_batched: list, s: jnp.ndarray) -> tuple[jnp.ndarray, bool]:
        if not in_batched[0]:
            return inverse(s), False
        if jax.default_backend() != "cpu":
            return _lapack_inverse(s), True
        # vmapped, not called on the batch directly: the batched form XLA gets is 4.5x faster
        return jax.vmap(functools.partial(block_inverse, k=k))(s), True

    return inverse


def _lapack_inverse(s: jnp.ndarray) -> jnp.ndarray:
    """``S^-1`` (leading axes batch) by LU with partial pivoting: ``jnp.linalg.solve(S, I)``."""
    return jnp.linalg.solve(s, jnp.broadcast_to(jnp.eye(s.shape[-1], dtype=s.dtype), s.shape))


def block_inverse(a: jnp.ndarray, k: int) -> jnp.ndarray:
    """Inverse of ``a`` (m x m, m a multiple of ``k``) by in-place Gauss-Jordan elimination with its
    ``k x k`` diagonal blocks (one cell's unknowns) as pivots, no pivoting between blocks.

    Each of the ``m / k`` steps is one rank-``k`` update made of broadcast products, which XLA fuses
    into one elementwise loop; more than :data:`UNROLL_STEPS` steps run in a ``lax.fori_loop`` (as fast
    from 20 x 20 up, and its compile time does not grow with ``m``). A level block of the red-black
    Schur complement (up to 38 x 38 on a 20 x 20 grid, float32, 20 members under ``vmap``) inverts
    about 4x faster than through LAPACK's batched LU and triangular solves
    (``jnp.linalg.solve(s, I)``, member after member). A cell's own block is inverted in closed form,
    so a small entry inside it (a water equation's pressure derivative where water is immobile) needs
    no pivoting.
    """
    m = a.shape[-1]
    if m % k:
        raise ValueError(f"block_inverse: size {m} is not a multiple of the block size {k}")
    index = jnp.arange(m)

    def step(i: Any, a: jnp.ndarray) -> jnp.ndarray:
        lo = i * k
        rows = jax.lax.dynamic_slice_in_dim(a, lo, k, -2)  # (k, m): the pivot rows
        pivot_inv = _small_inverse(jax.lax.dynamic_slice_in_dim(rows, lo, k, -1))
        row = jax.lax.dynamic_update_slice_in_dim(small_matmul(pivot_inv, rows), pivot_inv, lo, -1)
        in_step = (index >= lo) & (index < lo + k)
        col = jnp.where(in_step[:, None], 0.0, jax.lax.dynamic_slice_in_dim(a, lo, k, -1))  # (m, k)
        a = jnp.where(in_step[None, :], 0.0, a) - small_matmul(col, row)
        return jax.lax.dynamic_update_slice_in_dim(a, row, lo, -2)

    if m // k > UNROLL_STEPS:
        return jax.lax.fori_loop(0, m // k, step, a)
    for i in range(m // k):
        a = step(i, a)
    return a


UNROLL_STEPS = 8  # block_inverse: Python-unrolled up to this many steps (10 x 10: 16 against 29 us)


def _small_inverse(a: jnp.ndarray) -> jnp.ndarray:
    """Inverse of a stack of small (k x k) matrices: closed form for k <= 3, LU otherwise."""
    k = a.shape[-1]
    if k == 1:
        return 1.0 / a
    if k == 2:
        det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
        adj = jnp.stack(
            [jnp.stack([a[..., 1, 1], -a[..., 0, 1]], -1), jnp.stack([-a[..., 1, 0], a[..., 0, 0]], -1)], -2
        )
        return adj / det[..., None, None]
    if k == 3:  # adjugate (cofactors), no LAPACK call per block
        c = [[a[..., (i + 1) % 3, (j + 1) % 3] * a[..., (i + 2) % 3, (j + 2) % 3]
              - a[..., (i + 1) % 3, (j + 2) % 3] * a[..., (i + 2) % 3, (j + 1) % 3] for j in range(3)]
             for i in range(3)]  # fmt: skip
        det = a[..., 0, 0] * c[0][0] + a[..., 0, 1] * c[0][1] + a[..., 0, 2] * c[0][2]
        adj = jnp.stack([jnp.stack([c[j][i] for j in range(3)], -1) for i in range(3)], -2)
        return adj / det[..., None, None]
    return jnp.linalg.inv(a)
