"""GMRES with a fixed iteration count (twins/reservoir/krylov.py) against its defining property.

GMRES's m-th iterate minimises ``|b - A M y|`` over the Krylov space ``span{b, (AM) b, ...,
(AM)^{m-1} b}`` (Saad and Schultz 1986). The tests build that space with NumPy and solve the
least-squares problem with ``numpy.linalg.lstsq``, an independent computation, and check the
exact-preconditioner and breakdown cases, in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

pytestmark = pytest.mark.usefixtures("reservoir_x64")

import jax.numpy as jnp  # noqa: E402

from twins.reservoir.krylov import gmres  # noqa: E402


def _convection_diffusion(n: int, peclet: float) -> np.ndarray:
    """Upwinded 1-D convection-diffusion matrix (non-symmetric, the kind a saturation equation gives)."""
    main = (2.0 + peclet) * np.ones(n)
    return np.diag(main) - np.diag(np.ones(n - 1), 1) - np.diag((1.0 + peclet) * np.ones(n - 1), -1)


def _minimal_residual(a: np.ndarray, m_mat: np.ndarray, b: np.ndarray, m: int) -> float:
    """``min |b - A M y|`` over the m-dimensional Krylov space of ``A M`` and ``b``, by least squares."""
    op = a @ m_mat
    basis = [b / np.linalg.norm(b)]
    for _ in range(m - 1):
        w = op @ basis[-1]
        for v in basis:  # orthogonalise twice: a well-conditioned basis of the same space
            w = w - (v @ w) * v
        for v in basis:
            w = w - (v @ w) * v
        basis.append(w / np.linalg.norm(w))
    k = np.stack(basis, axis=1)
    coef = np.linalg.lstsq(op @ k, b, rcond=None)[0]
    return float(np.linalg.norm(b - op @ k @ coef))


@pytest.mark.parametrize("iterations", [1, 3, 6])
def test_iterate_minimises_the_residual_over_the_krylov_space(iterations: int) -> None:
    """With a diagonal (Jacobi) preconditioner the m-th iterate's residual equals the least-squares
    minimum over the Krylov space within 1e-10 relative, and the returned estimate is that residual."""
    a = _convection_diffusion(40, peclet=3.0)
    m_mat = np.diag(1.0 / np.diag(a))
    b = np.random.default_rng(0).standard_normal(40)
    x, estimate = jax.jit(
        lambda b: gmres(lambda u: jnp.asarray(a) @ u, lambda u: jnp.asarray(m_mat) @ u, b, iterations)
    )(jnp.asarray(b))
    true = np.linalg.norm(b - a @ np.asarray(x))
    assert true == pytest.approx(_minimal_residual(a, m_mat, b, iterations), rel=1e-10)
    assert float(estimate) == pytest.approx(true / np.linalg.norm(b), rel=1e-8)
    assert true < np.linalg.norm(b)  # GMRES never increases the residual


def test_exact_preconditioner_and_breakdown() -> None:
    """``M = A^-1``: one iteration solves the system (relative residual ~1e-15); further iterations hit
    a breakdown (the next basis vector is zero) and leave the solution unchanged, with no NaN. A zero
    right-hand side gives zero."""
    a = _convection_diffusion(30, peclet=1.0) + np.diag(np.linspace(0.0, 1.0, 30))
    inv = np.linalg.inv(a)
    b = np.random.default_rng(1).standard_normal(30)
    for iterations in (1, 4):
        x, estimate = gmres(
            lambda u: jnp.asarray(a) @ u, lambda u: jnp.asarray(inv) @ u, jnp.asarray(b), iterations
        )
        assert np.all(np.isfinite(np.asarray(x)))
        assert np.linalg.norm(b - a @ np.asarray(x)) / np.linalg.norm(b) < 1e-13
        assert float(estimate) < 1e-13
    x, estimate = gmres(lambda u: jnp.asarray(a) @ u, lambda u: u, jnp.zeros(30), 3)
    assert np.array_equal(np.asarray(x), np.zeros(30)) and float(estimate) == 0.0
    with pytest.raises(ValueError, match="at least one iteration"):
        gmres(lambda u: u, lambda u: u, jnp.ones(3), 0)


def test_product_is_the_matrix_times_the_iterate() -> None:
    """``product=True`` also returns ``A x`` from the Arnoldi relation ``A Z = V H``; it equals the
    explicit product with the iterate within 1e-12 relative, before and at a breakdown."""
    a = _convection_diffusion(40, peclet=3.0)
    m_mat = np.diag(1.0 / np.diag(a))
    b = np.random.default_rng(2).standard_normal(40)
    for precond, iterations in ((m_mat, 3), (m_mat, 6), (np.linalg.inv(a), 4)):
        x, estimate, ax = gmres(
            lambda u: jnp.asarray(a) @ u,
            lambda u, p=precond: jnp.asarray(p) @ u,
            jnp.asarray(b),
            iterations,
            product=True,
        )
        explicit = a @ np.asarray(x)
        assert np.max(np.abs(np.asarray(ax) - explicit)) <= 1e-12 * np.max(np.abs(explicit))
        assert float(estimate) == pytest.approx(
            np.linalg.norm(b - explicit) / np.linalg.norm(b), rel=1e-6, abs=1e-13
        )
