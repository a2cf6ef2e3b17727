"""Reservoir twin vs OPM Flow, side by side on the same decks.

For each deck in ``catalogs/reservoir`` (quarter five-spot waterflood, layered 3-D waterflood in FIELD
units, dry-gas depletion) this runs OPM Flow (Debian's ``flow``, one thread) and the JAX simulator,
compares every summary vector both write (rates, cumulatives, FPR, BHP) as the maximum over report
steps of ``|ours - OPM| / max_t |OPM|`` and times both (ours: warm run after jit compilation; the
compile time is printed separately). The ensemble part runs N permeability-multiplier members in one
jitted call (members vmapped in blocks, :mod:`twins.reservoir.ensemble`; one ``jax.vmap`` over all
members is timed as well) against N sequential OPM runs of the quarter five-spot (each with its own
MULTIPLY'd deck); ours is the best of ``--repeats`` calls, OPM's one pass of the 100 runs. ``--spe10`` adds a 60 x 220 single-layer case with SPE10 layer dimensions (the SPE10
model 2 PERM/PHI includes are not in shared data, so its permeability is a synthetic log-normal field,
clearly not the SPE10 values) and reports its run time and peak memory.

Both sides run on one thread: OPM with ``--threads-per-process=1``, JAX with XLA's intra-op thread
pool off and OpenBLAS (the LAPACK behind ``jnp.linalg`` on CPU) at one thread, set below before any
import (set ``OPENBLAS_NUM_THREADS``/``XLA_FLAGS`` yourself to override). Single-run wall times are the
best of ``--repeats`` runs for both sides; for the ensemble, ours is the best of ``--repeats`` calls and
OPM's one pass of the 100 runs. ``--solver`` picks ``Options.linear_solver`` (default ``auto``);
each deck is also timed with SuperLU for reference.

Usage: ``python benchmarks/reservoir.py [--quick] [--members N] [--spe10] [--solver S] [--repeats R]``.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one thread, like OPM's run (before numpy loads BLAS)
if "intra_op_parallelism_threads" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    ).strip()
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DECKS = ["QFS_WATERFLOOD", "LAYERED_WATERFLOOD", "GAS_DEPLETION"]


def run_opm(deck: Path, out: Path, repeats: int = 1) -> float:
    """Run OPM Flow on one thread; return the best wall seconds of ``repeats`` runs."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            ["flow", str(deck), f"--output-dir={out}", "--threads-per-process=1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        best = min(best, time.perf_counter() - t0)
    return best


def opm_summary(out: Path, stem: str, keys: list[str]) -> dict[str, np.ndarray]:
    from opm.io.ecl import ESmry

    smry = ESmry(str(out / f"{stem}.SMSPEC"))
    have = set(smry.keys())
    return {k: np.asarray(smry[k, True], float) for k in keys if k in have}


def compare(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Max over report steps of |ours - ref| / max|ref| for every vector with a non-zero reference."""
    errs = {}
    for k, r in ref.items():
        scale = np.max(np.abs(r))
        if k == "TIME" or scale == 0:
            continue
        errs[k] = float(np.max(np.abs(ours[k] - r)) / scale)
    return errs


def run_ours(
    deck: Path, solver: str = "auto", repeats: int = 1
) -> tuple[dict[str, np.ndarray], float, float, str]:
    """Our summary (deck units), best warm wall time, first-call (compile + run) time, solver used."""
    import jax

    from pipelines.sources.reservoir import read_deck_full
    from twins.reservoir.adapter import build
    from twins.reservoir.solver import Options
    from twins.reservoir.summary import summary_table

    t0 = time.perf_counter()
    case = build(read_deck_full(deck), Options(linear_solver=solver))
    rep = jax.block_until_ready(case.run())
    first = time.perf_counter() - t0
    warm = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        rep = jax.block_until_ready(case.run())  # warm: the compiled run is reused
        warm = min(warm, time.perf_counter() - t0)
    table = summary_table(case, rep)
    used = "superlu" if case.sim.block is None else f"block-{case.sim.block.method} (m={case.sim.block.m})"
    return {k: table[k].to_numpy() for k in table.columns}, warm, first, used


def ensemble(
    deck: Path, members: int, work: Path, solver: str = "auto", repeats: int = 1
) -> tuple[float, float, float, float, dict[str, list[float]]]:
    """(ours wall, OPM sequential wall, last member's FOPT error vs OPM, ours as one wide vmap, every
    timed call of ours): permeability multipliers 0.5..2. Ours is one jitted call, members vmapped in
    blocks (:func:`twins.reservoir.ensemble.map_members`, the twin's default); the same ensemble as one
    ``jax.vmap`` over all members is timed too (compile excluded for both; the best of ``repeats``
    calls, as for the single runs). OPM's side is one pass of 100 sequential runs: a sum over 100
    runs, whose per-run mean stays within a few percent of OPM's best single-run time."""
    import jax
    import jax.numpy as jnp

    from pipelines.sources.reservoir import read_deck_full
    from twins.reservoir.adapter import build
    from twins.reservoir.ensemble import map_members
    from twins.reservoir.solver import Options

    mults = np.exp(np.linspace(np.log(0.5), np.log(2.0), members))
    case = build(read_deck_full(deck), Options(linear_solver=solver))

    def member(m: jnp.ndarray):
        rep = case.sim.run(case.model, case.x0, case.controls, case.dts, case.params(m))
        return rep.cum_h[-1]

    walls, outs, runs = [], [], {}
    for block, name in (("auto", "blocks"), (None, "one_vmap")):
        batched = jax.jit(lambda ms, block=block: map_members(member, ms, block))
        jax.block_until_ready(batched(jnp.asarray(mults[:1].repeat(members))))  # compile
        runs[name] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = np.asarray(jax.block_until_ready(batched(jnp.asarray(mults))))
            runs[name].append(time.perf_counter() - t0)
        outs.append(out)
        walls.append(min(runs[name]))
    (t_ours, t_wide), ours = walls, outs[0]
    text = deck.read_text()
    t_opm = 0.0
    for i, m in enumerate(mults):
        d = work / f"ens{i}" / deck.name
        d.parent.mkdir(parents=True, exist_ok=True)
        d.write_text(
            text.replace("PROPS\n", f"MULTIPLY\n PERMX {m} /\n PERMY {m} /\n PERMZ {m} /\n/\nPROPS\n", 1)
        )
        t_opm += run_opm(d, d.parent)
    # consistency of the last member's cumulative oil with OPM (m3)
    ref = opm_summary(d.parent, deck.stem, ["FOPT"])["FOPT"][-1]
    err = abs(float(np.sum(ours[-1])) - ref) / ref
    return t_ours, t_opm, err, t_wide, runs


def spe10_layer(work: Path, solver: str = "auto") -> dict[str, float]:
    """60 x 220 x 1 layer (SPE10 model 2 dimensions, synthetic log-normal permeability), five-spot."""
    import jax

    from pipelines.sources.reservoir import read_deck_full
    from twins.reservoir.adapter import build

    nx, ny = 60, 220
    n = nx * ny
    rng = np.random.default_rng(10)
    field = rng.standard_normal((ny + 8, nx + 8))
    kernel = np.ones((9, 9)) / 81.0  # moving average: correlated field
    smooth = np.array([[np.sum(field[j : j + 9, i : i + 9] * kernel) for i in range(nx)] for j in range(ny)])
    perm = 100.0 * np.exp(2.0 * (smooth - smooth.mean()) / smooth.std())
    values = "\n".join(
        " " + " ".join(f"{v:.3f}" for v in perm.reshape(-1)[i : i + 10]) for i in range(0, n, 10)
    )
    qfs = (ROOT / "catalogs/reservoir/QFS_WATERFLOOD.DATA").read_text()
    text = (
        qfs.split("GRID\n")[0].replace("20 20 1 /", f"{nx} {ny} 1 /")
        + f"""GRID
DX
 {n}*6.096 /
DY
 {n}*3.048 /
DZ
 {n}*0.6096 /
TOPS
 {n}*3657.6 /
PERMX
{values} /
COPY
 PERMX PERMY /
 PERMX PERMZ /
/
PORO
 {n}*0.2 /
PROPS"""
        + qfs.split("PROPS")[1]
    )
    text = (
        text.replace("400*", f"{n}*")
        .replace("'PROD' 'G1' 20 20", f"'PROD' 'G1' {nx} {ny}")
        .replace("'PROD' 20 20 1  1", f"'PROD' {nx} {ny} 1  1")
    )
    text = text.replace("2002.5", "1*")  # BHP reference depth: the completion's own depth
    text = text.replace("'RATE' 50 1* 400", "'RATE' 20 1* 400").replace(
        "'LRAT' 3* 50 1* 150", "'LRAT' 3* 20 1* 150"
    )
    deck = work / "SPE10_LAYER.DATA"
    if os.environ.get("GEOTWIN_KEEP_SPE10"):
        Path(os.environ["GEOTWIN_KEEP_SPE10"]).write_text(text)
    deck.write_text(text)
    from twins.reservoir.solver import Options

    t0 = time.perf_counter()
    case = build(read_deck_full(deck), Options(linear_solver=solver))
    rep = jax.block_until_ready(case.run())
    wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = jax.block_until_ready(case.run())
    warm = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MiB (Linux reports KiB)
    opm_wall = run_opm(deck, work / "spe10_opm") if shutil.which("flow") else float("nan")
    ref = opm_summary(work / "spe10_opm", "SPE10_LAYER", ["FOPT"]) if shutil.which("flow") else {}
    ours_fopt = float(np.sum(np.asarray(rep.cum_h)[-1, 1])) * 1.0
    return {
        "spe10_cells": n, "spe10_wall_s": wall, "spe10_warm_wall_s": warm, "spe10_peak_rss_mib": peak, "spe10_opm_wall_s": opm_wall,
        "spe10_fopt_rel_err": abs(ours_fopt - ref["FOPT"][-1]) / ref["FOPT"][-1] if ref and ref["FOPT"][-1] > 0 else float("nan"),
        "spe10_fopt_ours_m3": ours_fopt, "spe10_fopt_opm_m3": float(ref["FOPT"][-1]) if ref else float("nan"),
        "spe10_newton": int(np.sum(rep.newton)), "spe10_steps": int(np.sum(rep.substeps)),
        "spe10_solver": "superlu" if case.sim.block is None else f"block-{case.sim.block.method}",
    }  # fmt: skip


def main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="ensemble of 10 members instead of 100")
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--spe10", action="store_true", help="also run the 60x220 layer case")
    parser.add_argument(
        "--solver", default="auto", choices=["auto", "redblack", "block", "cyclic", "superlu"]
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per deck (best is reported)")
    args = parser.parse_args()
    members = args.members or (10 if args.quick else 100)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if not shutil.which("flow"):
        raise SystemExit("OPM Flow ('flow') is not installed: apt-get install libopm-simulators-bin")
    result: dict[str, object] = {}
    max_err, speeds, cells = 0.0, [], 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for stem in DECKS:
            deck = ROOT / "catalogs/reservoir" / f"{stem}.DATA"
            t_opm = run_opm(deck, work / stem, args.repeats)
            ours, t_ours, t_first, used = run_ours(deck, args.solver, args.repeats)
            _, t_slu, _, _ = run_ours(deck, "superlu", args.repeats)
            errs = compare(ours, opm_summary(work / stem, stem, list(ours)))
            worst = max(errs, key=errs.get)
            max_err = max(max_err, errs[worst])
            speeds.append(t_opm / t_ours)
            from pipelines.sources.reservoir import read_deck

            n = int(np.prod(list(read_deck(deck)[0].sizes.values())))
            cells = max(cells, n)
            print(f"{stem}: {n} cells; OPM {t_opm:.2f} s, ours {t_ours:.2f} s warm with {used} ({t_first:.1f} s with "
                  f"compile; SuperLU {t_slu:.2f} s); speed ratio OPM/ours {t_opm / t_ours:.2f}; worst vector {worst} "
                  f"{errs[worst]:.4f}")  # fmt: skip
            for k, v in sorted(errs.items()):
                print(f"    {k:14s} max rel err {v:.5f}")
            result[f"{stem.lower()}_max_rel_err"] = errs[worst]
            result[f"{stem.lower()}_speed_vs_opm"] = t_opm / t_ours
            result[f"{stem.lower()}_wall_s"] = {"opm": t_opm, "ours": t_ours, "ours_superlu": t_slu}
        t_ens, t_opm_ens, ens_err, t_wide, ens_runs = ensemble(
            ROOT / "catalogs/reservoir/QFS_WATERFLOOD.DATA", members, work, args.solver, args.repeats
        )
        print(f"ensemble of {members}: ours (one call, vmapped blocks) {t_ens:.2f} s (one vmap over all "
              f"{t_wide:.2f} s), OPM sequential {t_opm_ens:.2f} s, speedup {t_opm_ens / t_ens:.1f}x "
              f"({t_opm_ens / t_wide:.1f}x as one vmap); last member FOPT vs OPM rel err {ens_err:.4f}")  # fmt: skip
        if args.spe10:
            spe = spe10_layer(work, args.solver)
            print(f"SPE10-size layer: {spe}")
            result.update(spe)
            cells = max(cells, int(spe["spe10_cells"]))
    result.update(
        {
            "max_rel_err_vs_opm": max_err,
            "speed_vs_opm": float(np.min(speeds)),
            "speed_vs_opm_per_deck": [float(s) for s in speeds],
            "ensemble_speedup_vs_opm": t_opm_ens / t_ens,
            "ensemble_speedup_one_vmap_vs_opm": t_opm_ens / t_wide,
            "ensemble_wall_s": {"opm": t_opm_ens, "ours": t_ens, "ours_one_vmap": t_wide},
            "ensemble_ours_runs_s": ens_runs,
            "ensemble_members": members,
            "cells": cells,
            "opm": "flow 2022.10 (Debian libopm-simulators-bin), one thread",
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
