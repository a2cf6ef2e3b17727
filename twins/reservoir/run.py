"""Entry points of the reservoir twin used by the CLI (``geotwin run reservoir``) and the Python API.

- :func:`run_deck` simulates an Eclipse deck as it stands and writes ``DIR/summary.csv`` (Eclipse
  summary vectors in the deck's units, one row per report step) plus the result cubes
  ``DIR/state.zarr`` (pressure, saturations: time, layer, y, x) and ``DIR/wells.zarr`` (time, well).
- :func:`run_config` reads a YAML config (deck, optional economics and ensemble) and also writes
  ``DIR/economics.json`` and, with an ensemble, P10/P50/P90 of NPV.

Both run with float64 enabled in JAX for their duration only (:func:`x64_scope`: reservoir pressures
need it, and the other twins keep their float32 default in the same process).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def x64_scope() -> Iterator[None]:
    """Enable JAX float64 for the duration of a block, then restore the caller's setting.

    The flag is set process-wide, not with the thread-local ``jax.enable_x64`` context: the sparse LU
    runs in a host callback on another thread, whose float64 result would otherwise be canonicalised
    to float32. Restoring it keeps the other twins' float32 default in the same process.
    """
    import jax

    previous = bool(jax.config.read("jax_enable_x64"))
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def with_x64(func: F) -> F:
    """Run ``func`` inside :func:`x64_scope`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with x64_scope():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class EnsembleConfig(BaseModel):
    """Log-normal permeability-multiplier ensemble."""

    model_config = ConfigDict(extra="forbid")
    members: int = Field(default=20, ge=2)
    perm_log_sd: float = Field(default=0.3, ge=0)
    seed: int = 0


class RunConfig(BaseModel):
    """``geotwin run reservoir CONFIG.yaml``: a deck, optional economics YAML and ensemble."""

    model_config = ConfigDict(extra="forbid")
    deck: str
    economics: str | None = None
    ensemble: EnsembleConfig | None = None
    name: str = "reservoir"


def _progress(msg: str) -> None:
    log.info(msg)
    print(f"[reservoir] {msg}", flush=True)


@with_x64
def simulate_deck(deck: str | Path) -> tuple[Any, Any]:
    """Read and simulate a deck: ``(case, report)``."""
    import jax

    from pipelines.sources.reservoir import read_deck_full

    from .adapter import build

    data = read_deck_full(deck)
    case = build(data)
    rep = case.run()
    jax.block_until_ready(rep)
    return case, rep


@with_x64
def run_deck(deck: str | Path, out_dir: str | Path, store: str | Path | None = None) -> Path:
    """Simulate ``deck`` and write ``out_dir/summary.csv`` and the result cubes; return the CSV path.

    Parameters
    ----------
    deck
        Eclipse ``.DATA`` deck (oil-water, gas-water or three-phase live oil).
    out_dir
        Output folder (created).
    store
        Optional cube store: the cubes are also written there as ``<deck>_state`` and ``<deck>_wells``.
    """
    return _run_and_write(deck, out_dir, store)[0]


def _run_and_write(
    deck: str | Path, out_dir: str | Path, store: str | Path | None = None
) -> tuple[Path, Any, Any]:
    """:func:`run_deck` returning ``(summary path, case, report)``."""
    import numpy as np

    from .summary import state_cube, summary_table, wells_cube

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _progress(f"reading and simulating {deck}")
    case, rep = simulate_deck(deck)
    if np.isnan(np.asarray(rep.p)).any():
        raise RuntimeError(
            f"{deck}: the simulation did not finish every report step (time-step chopping limit)"
        )
    table = summary_table(case, rep)
    from pipelines.outputs import write_table, write_zarr_directory

    path = write_table(out / "summary.csv", table)
    state, wells_ds = state_cube(case, rep), wells_cube(table, case)
    for name, ds in (("state", state), ("wells", wells_ds)):
        write_zarr_directory(out / f"{name}.zarr", ds)
    if store is not None:
        from pipelines.store import write_cube

        stem = Path(deck).stem.lower().replace(".", "_")
        write_cube(store, f"{stem}_state", state)
        write_cube(store, f"{stem}_wells", wells_ds)
    _progress(
        f"{len(table)} report steps, {int(np.sum(rep.substeps))} time steps, {int(np.sum(rep.newton))} Newton iterations, "
        f"max mass-balance error {float(np.max(rep.mb_error)):.1e}; wrote {path}"
    )
    return path, case, rep


@with_x64
def run_config(
    config: str | Path, store: str | Path | None = None, out: str | Path | None = None
) -> dict[str, Any]:
    """Run a YAML config: simulate the deck, then economics (and an ensemble's P10/P50/P90) if given.

    Returns a dict with the summary path and the economic indicators; writes ``economics.json``.
    """
    import jax
    import numpy as np

    from pipelines.config import model_from_yaml

    cfg_path = Path(config)
    cfg: RunConfig = model_from_yaml(RunConfig, cfg_path)  # type: ignore[assignment]
    deck = (cfg_path.parent / cfg.deck).resolve()
    out_dir = Path(out) if out is not None else cfg_path.parent / f"{cfg.name}_out"
    summary_path, case, rep = _run_and_write(deck, out_dir, store=store)
    result: dict[str, Any] = {"summary": str(summary_path)}
    if cfg.economics and case.hydrocarbon == "BLACKOIL":
        raise ValueError(
            f"{cfg_path}: economics are computed for two-phase decks only; {deck.name} is three-phase"
        )
    if cfg.economics:
        from . import economics

        econ = economics.load_economics(cfg_path.parent / cfg.economics)
        flows = economics.case_cash_flow(case, rep, econ)
        result.update(
            {k: (v if isinstance(v, str) else float(v)) for k, v in economics.indicators(flows, econ).items()}
        )
        if cfg.ensemble:
            _progress(f"ensemble of {cfg.ensemble.members} members (vmapped in blocks)")
            key = jax.random.PRNGKey(cfg.ensemble.seed)
            mults = np.exp(
                cfg.ensemble.perm_log_sd * np.asarray(jax.random.normal(key, (cfg.ensemble.members,)))
            )
            npvs = economics.ensemble_npv(case, econ, mults)
            p10, p50, p90 = economics.percentiles(npvs)
            result.update({"npv_p10": p10, "npv_p50": p50, "npv_p90": p90})
    from pipelines.outputs import write_text

    write_text(out_dir / "economics.json", json.dumps(result, indent=2))
    _progress(json.dumps(result))
    return result
