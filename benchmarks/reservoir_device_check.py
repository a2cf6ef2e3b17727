"""Same reservoir runs on any JAX device: timings and end-of-run vectors to compare machines.

Runs the three decks of ``catalogs/reservoir`` (and an optional SPE1 deck) with the red-black solver
(``linear_solver="auto"``) and with block cyclic reduction (``"cyclic"``), warm (best of two calls
after compilation), plus a 100-member permeability-multiplier ensemble of the quarter five-spot in one
vmapped call, and saves every run's final cumulatives and pressures to an ``.npz``. Run it on the CPU
here and on a GPU machine, then ``--compare A.npz B.npz`` prints the largest relative difference of
the same vectors. OPM Flow is not needed (the OPM side is :mod:`benchmarks.reservoir`, CPU only).
The last line printed is one JSON object.

Usage: ``python benchmarks/reservoir_device_check.py OUT.npz [--spe1 DECK] [--members N]`` or
``python benchmarks/reservoir_device_check.py --compare A.npz B.npz``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DECKS = ["QFS_WATERFLOOD", "LAYERED_WATERFLOOD", "GAS_DEPLETION"]
SOLVERS = ("auto", "cyclic")


def _timed(fn) -> tuple[object, float]:
    import jax

    jax.block_until_ready(fn())  # compile
    best, out = float("inf"), None
    for _ in range(2):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return out, best


def run(out: Path, spe1: Path | None, members: int, solvers: tuple[str, ...] = SOLVERS) -> dict:
    import jax
    import jax.numpy as jnp

    from pipelines.sources.reservoir import read_deck_full
    from twins.reservoir.adapter import build
    from twins.reservoir.solver import Options

    jax.config.update("jax_enable_x64", True)
    decks = {d: ROOT / "catalogs/reservoir" / f"{d}.DATA" for d in DECKS}
    if spe1 is not None:
        decks["SPE1"] = spe1
    saved, times = {}, {}
    for name, deck in decks.items():
        for solver in solvers:
            case = build(read_deck_full(deck), Options(linear_solver=solver))
            rep, wall = _timed(case.run)
            used = "superlu" if case.sim.block is None else case.sim.block.method
            times[f"{name}_{solver}_s"] = wall
            times[f"{name}_{solver}_method"] = used
            for field in rep._fields:
                if field == "p" or field.startswith("cum"):
                    saved[f"{name}_{solver}_{field}"] = np.asarray(getattr(rep, field))[-1]
    case = build(read_deck_full(decks["QFS_WATERFLOOD"]), Options())
    mults = jnp.exp(jnp.linspace(jnp.log(0.5), jnp.log(2.0), members))

    def member(m: jnp.ndarray) -> jnp.ndarray:
        return case.sim.run(case.model, case.x0, case.controls, case.dts, case.params(m)).cum_h[-1]

    batched = jax.jit(jax.vmap(member))
    ens, wall = _timed(lambda: batched(mults))
    times[f"ensemble_{members}_s"] = wall
    saved["ensemble_cum_h"] = np.asarray(ens)
    np.savez(out, **saved)
    dev = jax.devices()[0]
    return {"device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "saved": str(out), **times}


def compare(a: Path, b: Path) -> dict:
    """Largest relative difference (over every saved vector) between two runs."""
    x, y = np.load(a), np.load(b)
    worst = {}
    for key in sorted(set(x.files) & set(y.files)):
        scale = max(float(np.max(np.abs(x[key]))), 1e-30)
        worst[key] = float(np.max(np.abs(x[key] - y[key]))) / scale
    for key, err in worst.items():
        print(f"{key:40s} {err:.2e}")
    return {"max_rel_diff": max(worst.values(), default=float("nan")), "vectors": len(worst)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--spe1", type=Path, default=None, help="an SPE1 deck to run as well (black oil)")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument(
        "--solvers", default=",".join(SOLVERS), help="comma-separated Options.linear_solver values"
    )
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        print(json.dumps(compare(*args.compare)))
    elif args.out is None:
        parser.error("give OUT.npz or --compare A.npz B.npz")
    else:
        print(json.dumps(run(args.out, args.spe1, args.members, tuple(args.solvers.split(",")))))


if __name__ == "__main__":
    main()
