"""Build a region cube: config → readers → alignment → resumable, atomic cube store writes.

One commit per source (a *step*); the cube becomes visible (``list_cubes``/``open_cube``) only when
every step is committed and the whole cube verifies. Re-running an interrupted build with the same
config and the same input files resumes after the last committed step; changed inputs start over.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr

from .config import RegionConfig, SourceConfig, load_region
from .cube import grid_coords, provenance_attrs, sha256_file
from .grid import RegionGrid, region_grid
from .sources import SourceError, load_source
from .store import CubeBuild

ProgressFactory = Callable[[str], Any]


def source_checksums(source: SourceConfig) -> list[dict[str, str]]:
    """``[{"path", "sha256"}]`` for a source's file (or every file of a source directory)."""
    path = Path(source.path)
    if "://" in source.path:
        return [{"path": source.path, "sha256": "remote"}]
    if not path.exists():
        raise SourceError(f"source {source.name!r}: file not found: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [{"path": str(p), "sha256": sha256_file(p)} for p in files]


def build_id(config: RegionConfig, checksums: dict[str, list[dict[str, str]]]) -> str:
    """Identity of a build: the validated config and the checksums of its inputs."""
    payload = json.dumps(
        {
            "config": config.model_dump(mode="json"),
            "inputs": {k: [c["sha256"] for c in v] for k, v in checksums.items()},
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _check_not_empty(ds: xr.Dataset, source: SourceConfig) -> None:
    """Refuse variables that are entirely NaN on the region (source outside it, or all no-data).

    Called by :meth:`pipelines.store.CubeBuild.write_step` on the written, uncommitted step.
    """
    names = [v for v in ds.data_vars if ds[v].dtype.kind == "f"]
    if not names:
        return
    flags = dask.compute(*[ds[v].notnull().any() for v in names])
    empty = [v for v, has in zip(names, flags, strict=True) if not bool(has)]
    if empty:
        raise SourceError(
            f"source {source.name!r} ({source.path}): variable(s) {empty} have no valid value on the region grid "
            "(source outside the region, or only no-data)"
        )


def _chunked(ds: xr.Dataset, grid: RegionGrid) -> xr.Dataset:
    chunks = {dim: min(grid.chunks.get(dim, size), size) for dim, size in ds.sizes.items()}
    ds = ds.chunk(chunks)
    coords = grid_coords(grid.geobox)
    ds = ds.assign_coords({k: v for k, v in coords.items() if k == "spatial_ref" or k in ds.dims})
    for var in ds.data_vars.values():
        if var.dims[-2:] == ("y", "x"):
            var.attrs["grid_mapping"] = "spatial_ref"
        for attr in ("units", "long_name"):
            if not var.attrs.get(attr):
                raise SourceError(f"variable {var.name!r}: the reader returned no {attr!r} attribute")
    return ds


def _check_on_grid(ds: xr.Dataset, grid: RegionGrid, source: SourceConfig) -> None:
    ny, nx = grid.shape
    if ds.sizes.get("y") != ny or ds.sizes.get("x") != nx:
        raise SourceError(
            f"source {source.name!r}: reader returned shape {dict(ds.sizes)}, expected y={ny}, x={nx}"
        )
    if grid.time is not None and "time" in ds.dims:
        if ds.sizes["time"] != len(grid.time) or not np.array_equal(ds["time"].values, grid.time.values):
            raise SourceError(f"source {source.name!r}: time axis does not match the region's time axis")


def build_region(
    config: str | os.PathLike[str] | RegionConfig,
    store: str | os.PathLike[str],
    *,
    name: str | None = None,
    progress: ProgressFactory | None = None,
) -> str:
    """Build (or resume) the cube of a region config into ``store``; returns the cube name.

    Parameters
    ----------
    config
        Path of a region YAML or a validated :class:`RegionConfig`.
    store
        Cube store directory (created if needed).
    name
        Cube name (default: the region name).
    progress
        Optional factory ``progress(label)`` returning a context manager shown around each step
        (the CLI passes dask's ``ProgressBar``).

    Raises
    ------
    pipelines.config.ConfigError, pipelines.sources.SourceError, pipelines.cube.CubeError
        With the file, variable or field named. Nothing is committed for a failing step.
    """
    cfg = load_region(config) if not isinstance(config, RegionConfig) else config
    if not cfg.sources:
        raise SourceError(f"region {cfg.name!r}: field 'sources' is empty; nothing to build")
    grid = region_grid(cfg)
    name = name or cfg.name
    checksums = {src.name: source_checksums(src) for src in cfg.sources}
    builder = CubeBuild(store, name, build_id(cfg, checksums))
    delay = float(os.environ.get("GEOTWIN_BUILD_STEP_DELAY", "0"))  # test hook: widen the crash window
    for src in cfg.sources:
        if builder.done(src.name):
            continue
        ds = load_source(src, grid)
        _check_on_grid(ds, grid, src)
        ds = _chunked(ds, grid)
        ds.attrs = {}
        context = progress(f"{name}: {src.name}") if progress else contextlib.nullcontext()
        with context:
            builder.write_step(src.name, ds, check=functools.partial(_check_not_empty, source=src))
        if delay:
            time.sleep(delay)
    sources = [entry for src in cfg.sources for entry in checksums[src.name]]
    attrs = provenance_attrs(sources, cfg.model_dump(mode="json"), geotwin_region=cfg.name)
    attrs["title"] = cfg.description or cfg.name
    attrs.update({k: v for k, v in cfg.attrs.items()})
    builder.finish(attrs)
    return name
