"""Right-preconditioned GMRES with a fixed number of iterations, in pure JAX (batches under ``vmap``).

Newton's later iterations within a time step solve ``J(v) dx = -r`` with the exact Jacobian applied
matrix-free (one JVP per iteration) and, as preconditioner, a factorisation of the Jacobian taken at
the step's first iterate (:meth:`.redblack.RedBlackSolver.factor`). The Jacobian changes little over a
step, so ``J M`` is close to the identity and a few iterations reduce the linear residual by orders
of magnitude. The iteration count is fixed, not adaptive: under ``vmap`` every member would wait for
the slowest anyway, and a fixed count keeps the cost of an ensemble's Newton iteration known.

Arnoldi with modified Gram-Schmidt builds the Krylov basis; Givens rotations reduce the small
least-squares problem ``min ||beta e_1 - H y||`` (Saad and Schultz 1986). A breakdown (the basis
spans the solution exactly) is handled by zeroing the next basis vector, which adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

TINY = 1e-300


def gmres(
    matvec: Callable[[jnp.ndarray], jnp.ndarray],
    precond: Callable[[jnp.ndarray], jnp.ndarray],
    b: jnp.ndarray,
    iterations: int,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Approximate solution of ``A x = b`` after ``iterations`` steps of right-preconditioned GMRES
    from ``x = 0``, and the norm of its residual ``b - A x`` relative to ``|b|``.

    Parameters
    ----------
    matvec
        ``u -> A u``.
    precond
        ``u -> M u`` with ``M`` close to ``A^-1``.
    b
        Right-hand side (1-D).
    iterations
        Krylov dimension ``m >= 1`` (static).
    """
    if iterations < 1:
        raise ValueError(f"gmres needs at least one iteration, got {iterations}")
    beta = jnp.linalg.norm(b)
    basis = [b / jnp.maximum(beta, TINY)]
    search: list[jnp.ndarray] = []
    g = [beta] + [jnp.zeros_like(beta)] * iterations  # rotated right-hand side beta e_1
    cs: list[jnp.ndarray] = []
    sn: list[jnp.ndarray] = []
    r_cols: list[list[jnp.ndarray]] = []  # columns of the triangular factor R
    for j in range(iterations):
        z = precond(basis[j])
        w = matvec(z)
        h = []
        for v in basis:
            hij = jnp.vdot(v, w)
            w = w - hij * v
            h.append(hij)
        h_next = jnp.linalg.norm(w)
        basis.append(jnp.where(h_next > TINY, w / jnp.maximum(h_next, TINY), 0.0))
        search.append(z)
        for i in range(j):  # earlier rotations
            h[i], h[i + 1] = cs[i] * h[i] + sn[i] * h[i + 1], -sn[i] * h[i] + cs[i] * h[i + 1]
        den = jnp.sqrt(h[j] ** 2 + h_next**2)
        safe = jnp.maximum(den, TINY)
        c, s = jnp.where(den > TINY, h[j] / safe, 1.0), jnp.where(den > TINY, h_next / safe, 0.0)
        cs.append(c)
        sn.append(s)
        h[j] = c * h[j] + s * h_next
        g[j], g[j + 1] = c * g[j], -s * g[j]
        r_cols.append(h[: j + 1])
    # back substitution R y = g[:m]
    y: list[jnp.ndarray] = [jnp.zeros_like(beta)] * iterations
    for i in range(iterations - 1, -1, -1):
        acc = g[i] - sum((r_cols[j][i] * y[j] for j in range(i + 1, iterations)), jnp.zeros_like(beta))
        diag = r_cols[i][i]
        y[i] = jnp.where(jnp.abs(diag) > TINY, acc / jnp.where(jnp.abs(diag) > TINY, diag, 1.0), 0.0)
    x = sum((yi * zi for yi, zi in zip(y, search, strict=True)), jnp.zeros_like(b))
    return x, jnp.abs(g[iterations]) / jnp.maximum(beta, TINY)
