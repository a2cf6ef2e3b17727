"""Carbon-twin benchmark: footprint (Jacobian H) construction and the Bayesian inversion, side by side.

Problem: one city of ``--cells`` square cells (200 m), ``--sensors`` sensors, ``--hours`` hourly
observations (seeded random winds and stability classes), one area sector with a separable exponential
prior-error correlation (L = 1 km, 40 % relative sd), R = (1 ppm)^2, synthetic observations from a
"true" field. Three comparisons, each on one problem solved by all parties (their posteriors are
compared, max relative difference printed):

1. ``h_build_vs_numpy`` - evaluating H (sensors x hours x cells) with the JAX kernel
   (:func:`twins.carbon.transport.area_footprint`, jit + vmap) vs the same plume formula in vectorised
   NumPy, over all ``--hours`` (in chunks, nothing kept).
2. ``inversion_vs_numpy_same_algorithm`` - the whole streamed state-space inversion on the full problem
   (H built chunk by chunk and folded into ``I + Hcᵀ R⁻¹ Hc``, Cholesky, posterior mean and sector-total
   covariance): :func:`twins.carbon.inversion.solve_state_space_streamed` vs the same algorithm in
   NumPy/SciPy (float32 both).
3. ``inversion_vs_numpy`` and ``inversion_vs_fips`` - given H for the first ``--peer-hours`` hours, the
   posterior mean and uncertainty: ours (:func:`twins.carbon.inversion.solve`, Kronecker-factored B,
   float32) vs the textbook closed form ``x_b + B Hᵀ (H B Hᵀ + R)⁻¹ (y − H x_b)`` with a dense B and full
   posterior covariance in NumPy/SciPy (float64), and vs ``fips.estimators.BayesianSolver`` (``x_hat``,
   ``S_hat``; dense, float64). The peers cannot take the full year (``H B Hᵀ`` would be 10 sensors x 8760
   hours squared = 61 GB), hence the shorter window; this ratio therefore measures algorithm and
   implementation together.

Memory: ``peak_rss_mb_jax`` after our runs, ``peak_rss_mb`` after everything (peers included).

Usage::

    python benchmarks/carbon.py            # 10 sensors, 10,000 cells, 8760 hours (~15 min on 2 cores:
                                           # the normal matrix costs hours x sensors x cells^2 flops)
    python benchmarks/carbon.py --h-only   # the full year, H construction only (minutes)
    python benchmarks/carbon.py --cells 10000 --hours 240 --peer-hours 168   # what the README reports
    python benchmarks/carbon.py --quick    # 10 sensors, 2,500 cells, 720 hours, peers on 72 hours

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg as sla

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CELL = 200.0
LENGTH = 1000.0
REL_SD = 0.4
OBS_SD = 1.0
FLUX_SCALE = 1e-6


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best(fn, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def problem(sensors: int, cells: int, hours: int, seed: int = 0) -> dict[str, Any]:
    side = int(round(np.sqrt(cells)))
    rng = np.random.default_rng(seed)
    x = CELL / 2 + np.arange(side) * CELL
    y = side * CELL - CELL / 2 - np.arange(side) * CELL
    xx, yy = np.meshgrid(x, y)
    centre = side * CELL / 2
    sens = np.column_stack(
        [centre + rng.uniform(-0.35, 0.35, (sensors, 2)) * side * CELL, np.full(sensors, 3.0)]
    )
    speed = rng.uniform(1.5, 7.0, hours)
    direction = rng.uniform(0, 2 * np.pi, hours)
    stab = rng.integers(0, 6, hours).astype(np.int32)
    blob = np.exp(-(((xx - centre) ** 2 + (yy - centre) ** 2) / (2 * (0.25 * side * CELL) ** 2)))
    prior_flux = (0.2 + blob) * 1e-6 / FLUX_SCALE  # state units: 1e-6 kg m-2 s-1
    return {
        "side": side, "x": x, "y": y, "cells": np.column_stack([xx.ravel(), yy.ravel()]), "sensors": sens,
        "u": -speed * np.sin(direction), "v": -speed * np.cos(direction), "stab": stab,
        "xb": prior_flux.ravel(), "sd": REL_SD * prior_flux, "truth": (prior_flux * (1.3 + 0.3 * blob)).ravel(),
    }  # fmt: skip


# ---------------------------------------------------------------- NumPy peer (same formulas, no JAX)
_URBAN = np.array(
    [[0.32, 4e-4, 0.24, 1e-3, 0.5], [0.32, 4e-4, 0.24, 1e-3, 0.5], [0.22, 4e-4, 0.20, 0.0, 0.0],
     [0.16, 4e-4, 0.14, 3e-4, -0.5], [0.11, 4e-4, 0.08, 1.5e-3, -0.5], [0.11, 4e-4, 0.08, 1.5e-3, -0.5]]
)  # fmt: skip
PPM = 1e6 * 28.9647e-3 / (44.0095e-3 * (101325.0 * 28.9647e-3 / (8.314462618 * 288.15)))


def numpy_footprint(p: dict[str, Any], hours: slice, dtype=np.float32) -> np.ndarray:
    """(S, T, C) footprint, urban Briggs, release 10 m, receptor 3 m: vectorised NumPy."""
    u, v, k = p["u"][hours].astype(dtype), p["v"][hours].astype(dtype), p["stab"][hours]
    speed = np.hypot(u, v)
    ex, ey = (u / speed)[None, :, None], (v / speed)[None, :, None]
    dx = (p["sensors"][:, 0:1] - p["cells"][:, 0][None, :])[:, None, :].astype(dtype)
    dy = (p["sensors"][:, 1:2] - p["cells"][:, 1][None, :])[:, None, :].astype(dtype)
    down = dx * ex + dy * ey
    cross = -dx * ey + dy * ex
    half = CELL / 2
    down = np.where(down > -half, np.maximum(down, half), down)
    a, b, c, d, e = (_URBAN.astype(dtype)[k, i][None, :, None] for i in range(5))
    xd = np.maximum(down, 1.0)
    sy = a * xd / np.sqrt(1 + b * xd)  # same cheap roots as the JAX kernel (a fair peer)
    t = 1 + d * xd
    root = np.sqrt(t)
    sz = c * xd * np.where(e == 0, 1.0, np.where(e == 0.5, root, np.where(e == -0.5, 1 / root, 1 / t)))
    z, h = 3.0, 10.0
    lat = (cross / sy) ** 2
    conc = (CELL * CELL) / (2 * np.pi * np.maximum(speed, 0.5)[None, :, None] * sy * sz)
    conc = conc * (np.exp(-0.5 * (lat + ((z - h) / sz) ** 2)) + np.exp(-0.5 * (lat + ((z + h) / sz) ** 2)))
    return (np.where(down > 0, conc, 0.0) * PPM).astype(dtype)


def numpy_factors(p: dict[str, Any], dtype) -> tuple[np.ndarray, np.ndarray]:
    cy = np.exp(-np.abs(p["y"][:, None] - p["y"][None, :]) / LENGTH)
    cx = np.exp(-np.abs(p["x"][:, None] - p["x"][None, :]) / LENGTH)
    return np.linalg.cholesky(cy).astype(dtype), np.linalg.cholesky(cx).astype(dtype)


def numpy_streamed(p: dict[str, Any], hours: int, chunk: int, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Same algorithm as solve_state_space_streamed, NumPy/SciPy float32."""
    ly, lx = numpy_factors(p, np.float32)
    side, n = p["side"], p["side"] ** 2
    sd = p["sd"].astype(np.float32)
    xb = p["xb"].astype(np.float32)
    a = np.eye(n, dtype=np.float32)
    b = np.zeros(n, dtype=np.float32)
    for i, start in enumerate(range(0, hours, chunk)):
        h = numpy_footprint(p, slice(start, start + chunk)).reshape(-1, n) * np.float32(FLUX_SCALE)
        hc = np.einsum("ji,mjl,lk->mik", ly, (h.reshape(-1, side, side) * sd), lx, optimize=True).reshape(
            -1, n
        )
        a += hc.T @ hc / np.float32(OBS_SD**2)
        b += hc.T @ ((y[i] - h @ xb) / np.float32(OBS_SD**2))
    chol = sla.cho_factor(a, lower=True)
    chi = sla.cho_solve(chol, b)
    x = xb + (sd * (ly @ chi.reshape(side, side) @ lx.T)).ravel()
    g = (ly.T @ (sd * np.ones((side, side), np.float32)) @ lx).ravel()  # B^{T/2} 1 for the city total
    return x, float(g @ sla.cho_solve(chol, g))


def textbook(H: np.ndarray, y: np.ndarray, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Dense closed form as written: x_b + B Hᵀ (H B Hᵀ + R)⁻¹ (y − H x_b), A = B − B Hᵀ S⁻¹ H B."""
    cy = np.exp(-np.abs(p["y"][:, None] - p["y"][None, :]) / LENGTH)
    cx = np.exp(-np.abs(p["x"][:, None] - p["x"][None, :]) / LENGTH)
    sd = p["sd"].ravel()
    B = np.outer(sd, sd) * np.kron(cy, cx)
    bht = B @ H.T
    S = H @ bht + OBS_SD**2 * np.eye(H.shape[0])
    chol = sla.cho_factor(S, lower=True)
    x = p["xb"] + bht @ sla.cho_solve(chol, y - H @ p["xb"])
    A = B - bht @ sla.cho_solve(chol, bht.T)
    return x, np.sqrt(np.diag(A))


def fips_solve(H: np.ndarray, y: np.ndarray, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    from fips.estimators import BayesianSolver

    cy = np.exp(-np.abs(p["y"][:, None] - p["y"][None, :]) / LENGTH)
    cx = np.exp(-np.abs(p["x"][:, None] - p["x"][None, :]) / LENGTH)
    sd = p["sd"].ravel()
    B = np.outer(sd, sd) * np.kron(cy, cx)
    est = BayesianSolver(z=y, x_0=p["xb"], H=H, S_0=B, S_z=OBS_SD**2 * np.eye(H.shape[0]))
    return est.x_hat, np.sqrt(np.diag(est.S_hat))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sensors", type=int, default=10)
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--hours", type=int, default=8760)
    ap.add_argument("--peer-hours", type=int, default=168)
    ap.add_argument("--chunk", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument(
        "--quick", action="store_true", help="2,500 cells, 720 hours, peers on 72 hours, best of 3"
    )
    ap.add_argument("--skip-numpy-full", action="store_true", help="skip the NumPy streamed inversion")
    ap.add_argument("--h-only", action="store_true", help="only the H construction (inversion keys null)")
    args = ap.parse_args(argv)
    if args.quick:
        args.cells, args.hours, args.peer_hours = 2500, 720, 72
        args.repeat = max(args.repeat, 3)
    args.hours -= args.hours % args.chunk
    import jax
    import jax.numpy as jnp

    from twins.carbon.inversion import Prior, exponential_cholesky, solve, solve_state_space_streamed
    from twins.carbon.transport import area_footprint

    p = problem(args.sensors, args.cells, args.hours)
    n, s, nchunk = p["side"] ** 2, args.sensors, args.hours // args.chunk
    out: dict[str, Any] = {"sensors": s, "cells": n, "hours": args.hours, "peer_hours": args.peer_hours}
    print(
        f"carbon benchmark: {s} sensors x {n} cells x {args.hours} hours; peers on {args.peer_hours} hours",
        flush=True,
    )

    sens, cells = jnp.asarray(p["sensors"], jnp.float32), jnp.asarray(p["cells"], jnp.float32)
    u, v, k = (jnp.asarray(p[a]).reshape(nchunk, args.chunk) for a in ("u", "v", "stab"))
    u, v = u.astype(jnp.float32), v.astype(jnp.float32)

    def rows(uc, vc, kc):
        return area_footprint(sens, cells, CELL, uc, vc, kc, 10.0, "urban").reshape(-1, n) * FLUX_SCALE

    # synthetic observations from the truth (not timed), chunk-major like the streamed solver
    truth = jnp.asarray(p["truth"], jnp.float32)
    noise = np.random.default_rng(1).normal(0, OBS_SD, (nchunk, s * args.chunk)).astype(np.float32)
    y = np.stack([np.asarray(jax.jit(rows)(u[i], v[i], k[i]) @ truth) for i in range(nchunk)]) + noise

    # 1. H construction
    build = jax.jit(lambda uc, vc, kc: area_footprint(sens, cells, CELL, uc, vc, kc, 10.0, "urban"))
    build(u[0], v[0], k[0]).block_until_ready()

    def jax_h():
        for i in range(nchunk):  # evaluate every chunk, keep none (H for a year is 3.5 GB)
            build(u[i], v[i], k[i]).block_until_ready()

    def numpy_h():
        for i in range(nchunk):
            numpy_footprint(p, slice(i * args.chunk, (i + 1) * args.chunk))

    t_jax_h, _ = best(jax_h, args.repeat)
    t_np_h, _ = best(numpy_h, args.repeat)
    ref = numpy_footprint(p, slice(0, args.chunk))
    out["h_max_rel_diff"] = float(np.abs(np.asarray(build(u[0], v[0], k[0])) - ref).max() / ref.max())
    out.update(h_build_jax_s=t_jax_h, h_build_numpy_s=t_np_h, h_build_vs_numpy=t_np_h / t_jax_h)
    print(f"H build: jax {t_jax_h:.2f} s, numpy {t_np_h:.2f} s, ratio {t_np_h / t_jax_h:.1f}", flush=True)

    if args.h_only:
        out.update(inversion_vs_numpy=None, inversion_vs_fips=None, peak_rss_mb=rss_mb())
        print(json.dumps(out))
        return out

    # 2. full streamed inversion, same algorithm
    prior = Prior(
        jnp.asarray(p["xb"], jnp.float32), jnp.asarray(p["sd"][None], jnp.float32),
        exponential_cholesky(jnp.asarray(p["y"], jnp.float32), LENGTH), exponential_cholesky(jnp.asarray(p["x"], jnp.float32), LENGTH),
        jnp.zeros(0, jnp.float32),
    )  # fmt: skip
    agg = jnp.ones((n, 1), jnp.float32)
    r = jnp.full(y.shape, OBS_SD**2, jnp.float32)

    def ours_full():
        post = solve_state_space_streamed(rows, (u, v, k), jnp.asarray(y), r, prior, agg)
        return jax.block_until_ready(post)

    ours_full()  # compile
    t_jax_inv, post = best(ours_full, args.repeat)
    out["peak_rss_mb_jax"] = rss_mb()
    out.update(inversion_full_jax_s=t_jax_inv, city_total_truth=float(p["truth"].sum()), city_total_prior=float(p["xb"].sum()),
               city_total_posterior_jax=float(post.x.sum()))  # fmt: skip
    print(f"full streamed inversion (jax): {t_jax_inv:.2f} s", flush=True)
    if not args.skip_numpy_full:
        t_np_inv, (x_np, _) = best(lambda: numpy_streamed(p, args.hours, args.chunk, y), args.repeat)
        out.update(inversion_full_numpy_s=t_np_inv, inversion_vs_numpy_same_algorithm=t_np_inv / t_jax_inv,
                   inversion_full_max_rel_diff=float(np.abs(np.asarray(post.x) - x_np).max() / np.abs(x_np).max()))  # fmt: skip
        print(f"full streamed inversion (numpy): {t_np_inv:.2f} s", flush=True)

    # 3. peer window: H given, closed forms
    ph = args.peer_hours
    Hp = np.asarray(area_footprint(sens, cells, CELL, jnp.asarray(p["u"][:ph], jnp.float32), jnp.asarray(p["v"][:ph], jnp.float32),
                                   jnp.asarray(p["stab"][:ph]), 10.0, "urban")).reshape(-1, n) * FLUX_SCALE  # fmt: skip
    yp = Hp @ p["truth"] + np.random.default_rng(2).normal(0, OBS_SD, Hp.shape[0])
    Hj, yj, rj = (
        jnp.asarray(Hp, jnp.float32),
        jnp.asarray(yp, jnp.float32),
        jnp.full(Hp.shape[0], OBS_SD**2, jnp.float32),
    )

    def ours_peer():
        return jax.block_until_ready(solve(Hj, yj, rj, prior, agg))

    ours_peer()
    t_ours, pj = best(ours_peer, args.repeat)
    out["peak_rss_mb_jax"] = rss_mb()
    t_tb, (x_tb, sd_tb) = best(lambda: textbook(Hp.astype(np.float64), yp, p), args.repeat)
    out.update(inversion_peer_jax_s=t_ours, inversion_peer_numpy_s=t_tb, inversion_vs_numpy=t_tb / t_ours,
               inversion_peer_max_rel_diff_numpy=float(np.abs(np.asarray(pj.x) - x_tb).max() / np.abs(x_tb).max()),
               posterior_sd_max_rel_diff_numpy=float(np.abs(np.asarray(pj.sd) - sd_tb).max() / sd_tb.max()))  # fmt: skip
    print(f"peer window inversion: jax {t_ours:.3f} s, numpy textbook {t_tb:.2f} s", flush=True)
    try:
        t_fips, (x_f, _) = best(lambda: fips_solve(Hp.astype(np.float64), yp, p), args.repeat)
        out.update(inversion_peer_fips_s=t_fips, inversion_vs_fips=t_fips / t_ours,
                   inversion_peer_max_rel_diff_fips=float(np.abs(np.asarray(pj.x) - x_f).max() / np.abs(x_f).max()))  # fmt: skip
        print(f"peer window inversion: fips {t_fips:.2f} s", flush=True)
    except ImportError as err:
        out.update(inversion_vs_fips=None, fips_error=f"fips not importable: {err}")
    out["peak_rss_mb"] = rss_mb()
    out["device"] = str(jax.devices()[0])
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
