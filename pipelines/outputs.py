"""Atomic writes of a run's files outside the cube store: a Zarr directory, a table, a text file.

Each is written to a temporary sibling and moved into place with :func:`os.replace`, so a reader (or
a crashed run) never sees a half-written file, and an existing result is replaced only once the new
one is complete. For versioned, transactional cubes use :mod:`pipelines.store` instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import xarray as xr


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def write_zarr_directory(path: str | Path, ds: xr.Dataset) -> Path:
    """Write ``ds`` as a Zarr (v3) directory at ``path``, replacing any previous one atomically.

    The old directory is moved aside and deleted only after the new one is in place (a directory
    cannot be swapped in one ``rename`` when the target exists).
    """
    path = Path(path)
    tmp = _temporary(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr v3 notes on consolidated metadata
            ds.to_zarr(tmp, mode="w")
        old = None
        if path.exists():
            old = _temporary(path)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _replace_file(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then move it into place."""
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_table(path: str | Path, table: pd.DataFrame) -> Path:
    """Write ``table`` as CSV (no index) at ``path`` atomically."""
    return _replace_file(Path(path), lambda tmp: table.to_csv(tmp, index=False))


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) at ``path`` atomically."""
    return _replace_file(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
