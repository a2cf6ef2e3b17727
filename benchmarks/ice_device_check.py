"""Same ice-drift runs on any JAX device: save the end positions to compare machines.

Runs ``sea_ice``, ``passive`` and ``iceberg`` (float32, the benchmark forcing of
:mod:`benchmarks.ice_drift`, 5,000 particles, 48 hourly steps) and writes their end positions to an
``.npz``. Run it on the CPU here and on a GPU machine, then ``--compare A.npz B.npz`` prints the largest
distance between the same particles (metres, approximately: degrees x 111 km). Needs only jax,
xarray and pyproj. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ("sea_ice", "passive", "iceberg")


def run(out: Path, n: int = 5_000) -> dict:
    import jax
    from ice_drift import STEPS, forcing_cube, seeds

    from twins.ice.simulate import prepare, run_prepared

    cube, table, ends = forcing_cube(), seeds(n), {}
    for model in MODELS:
        prep = prepare(cube, table, model=model, duration=STEPS * 3600, dt=3600)
        final, _ = jax.block_until_ready(run_prepared(prep))
        lon, lat = prep.meta.to_lonlat(np.asarray(final.x)[0], np.asarray(final.y)[0])
        ends[f"{model}_lon"], ends[f"{model}_lat"] = lon, lat
        ends[f"{model}_status"] = np.asarray(final.status)[0]
    np.savez(out, **ends)
    dev = jax.devices()[0]
    return {"device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "saved": str(out), "n": n}


def compare(a: Path, b: Path) -> dict:
    za, zb = np.load(a), np.load(b)
    res = {}
    for model in MODELS:
        dlat = (za[f"{model}_lat"] - zb[f"{model}_lat"]) * 111_195.0
        dlon = (za[f"{model}_lon"] - zb[f"{model}_lon"]) * 111_195.0 * np.cos(np.deg2rad(za[f"{model}_lat"]))
        res[f"{model}_max_m"] = round(float(np.nanmax(np.hypot(dlat, dlon))), 3)
        res[f"{model}_status_equal"] = bool(np.array_equal(za[f"{model}_status"], zb[f"{model}_status"]))
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("ice_ends.npz"))
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = ap.parse_args(argv)
    res = compare(*args.compare) if args.compare else run(args.out)
    print(json.dumps(res), flush=True)
    return res


if __name__ == "__main__":
    main()
