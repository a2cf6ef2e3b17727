"""``geotwin run ice CONFIG``: the ice-hazard forecast from a YAML config (see catalogs/ice/demo.yaml).

Config fields (paths relative to the config file)::

    name: barents_platform_hazard
    forcing: {cube: barents, store: null}   # the store can also come from --store
    zone: {path: barents_platform_zone.geojson, name: barents_demo_platform}
    seeding: {threshold: 0.15, max_distance_km: 150}   # or {table: icebergs.csv}
    model: sea_ice            # passive | sea_ice | iceberg
    members: 20
    duration: 72h
    dt: 1h
    start_time: "2016-02-01T12:00"   # default: first forcing time
    params: {wind: none, perturb_drag: 0.3, perturb_position_m: 5000}
    outputs: {trajectories: ice_trajectories, hazard: ice_hazard, probability: ice_presence_probability}
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from pipelines.config import ConfigError, model_from_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ForcingSpec(_Strict):
    cube: str
    store: str | None = None


class ZoneSpec(_Strict):
    path: str
    name: str | None = None


class SeedingSpec(_Strict):
    threshold: float = Field(0.15, ge=0, le=1)
    max_distance_km: float = Field(300.0, gt=0)
    table: str | None = None


class OutputsSpec(_Strict):
    trajectories: str = "ice_trajectories"
    hazard: str = "ice_hazard"
    probability: str = "ice_presence_probability"


class IceRunConfig(_Strict):
    """An ice-hazard run."""

    name: str
    forcing: ForcingSpec
    zone: ZoneSpec
    seeding: SeedingSpec = SeedingSpec()
    model: str = Field("sea_ice", pattern="^(passive|sea_ice|iceberg)$")
    members: int = Field(20, gt=0)
    duration: str = "72h"
    dt: str = "1h"
    start_time: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    outputs: OutputsSpec = OutputsSpec()


def _log(msg: str) -> None:
    """Progress line on stderr (stdout stays clean for the CLI's JSON)."""
    import sys
    from datetime import datetime

    print(f"[{datetime.now():%H:%M:%S}] ice twin: {msg}", file=sys.stderr, flush=True)


def run_config(
    config_path: str | os.PathLike[str],
    store: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run the ice-hazard forecast of a config; return its JSON summary.

    Parameters
    ----------
    config_path
        YAML config (see the module docstring).
    store
        Cube store holding the forcing cube; the result cubes are written there too. Default: the
        config's ``forcing.store`` (read only: nothing is written).
    out
        Folder for ``summary.json`` and the PNG plots (optional).

    Raises
    ------
    pipelines.config.ConfigError
        Invalid config (file and field named), missing store.
    """
    from pipelines import open_cube
    from pipelines.store import write_cube

    from .adapter import crs_of
    from .hazard import ice_hazard, load_zone

    t_start = time.perf_counter()
    path = Path(config_path)
    cfg: IceRunConfig = model_from_yaml(IceRunConfig, path)  # type: ignore[assignment]
    base = path.parent
    src_store = (
        Path(store) if store is not None else (base / cfg.forcing.store if cfg.forcing.store else None)
    )
    if src_store is None:
        raise ConfigError(f"{path}: no cube store: pass --store or set forcing.store")
    _log(f"opening cube {cfg.forcing.cube!r} from {src_store}")
    forcing = open_cube(src_store, cfg.forcing.cube).load()
    zone_name = cfg.zone.name or Path(cfg.zone.path).stem
    zone = load_zone(base / cfg.zone.path, crs_of(forcing))
    seeds = pd.read_csv(base / cfg.seeding.table) if cfg.seeding.table else None
    params = dict(cfg.params)
    if cfg.start_time:
        params["start_time"] = cfg.start_time
    _log(f"running {cfg.model} ensemble: {cfg.members} members, {cfg.duration} at dt={cfg.dt}")
    result = ice_hazard(
        forcing,
        zone,
        zone_name=zone_name,
        seeds=seeds,
        model=cfg.model,
        duration=cfg.duration,
        dt=cfg.dt,
        members=cfg.members,
        params=params,
        threshold=cfg.seeding.threshold,
        max_distance_m=cfg.seeding.max_distance_km * 1e3,
    )
    summary = dict(result["summary"], name=cfg.name, forcing_cube=cfg.forcing.cube)
    if store is not None:
        written = []
        for key in ("trajectories", "hazard", "probability"):
            name = getattr(cfg.outputs, key)
            _log(f"writing cube {name!r}")
            write_cube(store, name, result[key], message=f"ice twin: {cfg.name} {key}")
            written.append(name)
        summary["cubes"] = written
    if out is not None:
        summary["files"] = _write_outputs(result, zone, forcing, Path(out))
    summary["elapsed_s"] = round(time.perf_counter() - t_start, 2)
    _log(f"done in {summary['elapsed_s']} s: p_reach(final) = {summary['p_reach_final']}")
    return summary


def _write_outputs(result: dict[str, Any], zone: Any, forcing: Any, out: Path) -> list[str]:
    from .hazard import write_summary
    from .plot import plot_hazard, plot_probability, plot_trajectories

    out.mkdir(parents=True, exist_ok=True)
    files = [write_summary(result, out / "summary.json")]
    figures = {
        "trajectories.png": plot_trajectories(result["trajectories"], forcing=forcing, zone=zone),
        "probability.png": plot_probability(result["probability"], zone=zone),
        "hazard.png": plot_hazard(result["hazard"]),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        files.append(out / name)
    return [str(f) for f in files]
