"""Inversion: closed forms vs a dense NumPy transcription, gradient solution, variance, perfect data."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from twins.carbon.inversion import (
    Prior,
    exponential_cholesky,
    solve,
    solve_gradient,
    solve_obs_space,
    solve_state_space,
    solve_state_space_streamed,
)

pytestmark = pytest.mark.usefixtures("jax_x64")


def _problem(m=40, k=2, ny=6, nx=7, p=3, seed=1, length=500.0):
    rng = np.random.default_rng(seed)
    n = k * ny * nx + p
    yc, xc = np.arange(ny) * 200.0, np.arange(nx) * 200.0
    sd = rng.random((k, ny, nx)) + 0.5
    sdp = rng.random(p) + 0.5
    prior = Prior(
        jnp.asarray(rng.random(n)),
        jnp.asarray(sd),
        exponential_cholesky(jnp.asarray(yc), length),
        exponential_cholesky(jnp.asarray(xc), length),
        jnp.asarray(sdp),
    )
    H = rng.random((m, n))
    y = rng.random(m) * 10
    r = rng.random(m) + 0.1
    agg = np.zeros((n, k + 1))
    for i in range(k):
        agg[i * ny * nx : (i + 1) * ny * nx, i] = 1.0
    agg[-p:, k] = 1.0
    # dense B, written independently: per sector D (C_y kron C_x) D with exp(-|d|/L), points diagonal
    cy = np.exp(-np.abs(yc[:, None] - yc[None, :]) / length)
    cx = np.exp(-np.abs(xc[:, None] - xc[None, :]) / length)
    B = np.zeros((n, n))
    for i in range(k):
        s = slice(i * ny * nx, (i + 1) * ny * nx)
        d = sd[i].ravel()
        B[s, s] = np.outer(d, d) * np.kron(cy, cx)
    B[-p:, -p:] = np.diag(sdp**2)
    return prior, H, y, r, agg, B


def _dense(prior, H, y, r, B):
    xb = np.asarray(prior.x)
    S = H @ B @ H.T + np.diag(r)
    K = B @ H.T @ np.linalg.inv(S)
    return xb + K @ (y - H @ xb), B - K @ H @ B


@pytest.mark.parametrize("m", [30, 200])  # fewer and more observations than state elements (n = 87)
def test_closed_forms_match_dense_formula(m):
    prior, H, y, r, agg, B = _problem(m=m)
    x_ref, a_ref = _dense(prior, H, y, r, B)
    for fn in (solve_obs_space, solve_state_space, solve):
        post = fn(jnp.asarray(H), jnp.asarray(y), jnp.asarray(r), prior, jnp.asarray(agg))
        np.testing.assert_allclose(post.x, x_ref, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(post.sd, np.sqrt(np.diag(a_ref)), rtol=1e-9)
        np.testing.assert_allclose(post.agg_cov, agg.T @ a_ref @ agg, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(post.agg_cov_prior, agg.T @ B @ agg, rtol=1e-12)


def test_gradient_solution_equals_closed_form():
    prior, H, y, r, agg, _ = _problem(m=60)
    post = solve_obs_space(jnp.asarray(H), jnp.asarray(y), jnp.asarray(r), prior, jnp.asarray(agg))
    x_grad, iterations = solve_gradient(jnp.asarray(H), jnp.asarray(y), jnp.asarray(r), prior, tol=1e-12)
    assert 0 < int(iterations) < 1000
    np.testing.assert_allclose(x_grad, post.x, rtol=1e-6, atol=1e-8 * float(jnp.abs(post.x).max()))


def test_streamed_equals_dense_state_space():
    prior, H, y, r, agg, _ = _problem(m=120)
    ref = solve_state_space(jnp.asarray(H), jnp.asarray(y), jnp.asarray(r), prior, jnp.asarray(agg))
    chunks = jnp.asarray(H).reshape(4, 30, -1)
    post = solve_state_space_streamed(
        lambda h: h,
        (chunks,),
        jnp.asarray(y).reshape(4, 30),
        jnp.asarray(r).reshape(4, 30),
        prior,
        jnp.asarray(agg),
        True,
    )
    np.testing.assert_allclose(post.x, ref.x, rtol=1e-10)
    np.testing.assert_allclose(post.sd, ref.sd, rtol=1e-10)


def test_posterior_variance_never_exceeds_prior():
    prior, H, y, r, agg, B = _problem(m=50, seed=7)
    post = solve(jnp.asarray(H), jnp.asarray(y), jnp.asarray(r), prior, jnp.asarray(agg))
    assert np.all(np.asarray(post.sd) ** 2 <= np.diag(B) * (1 + 1e-12))
    assert np.all(np.diag(post.agg_cov) <= np.diag(post.agg_cov_prior) * (1 + 1e-12))


def test_perfect_noiseless_data_recovers_truth():
    prior, H, _, _, agg, _ = _problem(m=300, seed=11)  # full column rank H, more data than unknowns
    rng = np.random.default_rng(5)
    x_true = np.asarray(prior.x) * (1 + 0.5 * rng.standard_normal(prior.x.shape))
    y = H @ x_true
    r = np.full(H.shape[0], 1e-12)
    post = solve(jnp.asarray(H), jnp.asarray(y), jnp.asarray(r), prior, jnp.asarray(agg))
    np.testing.assert_allclose(post.x, x_true, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(agg.T @ np.asarray(post.x), agg.T @ x_true, rtol=1e-8)
