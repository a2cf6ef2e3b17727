"""Source readers: the only code that opens input files or URLs.

Each kind has one module with a ``load(source, grid) -> xarray.Dataset`` function that returns the
source's variables (named by the config's output names) **aligned lazily on the region grid**, with
``units``/``long_name`` attrs, and ``attrs["geotwin_source_files"]`` (a list of ``{"path", "sha256"}``)
for provenance. Lower-level ``open_*`` functions return the native (unaligned) data.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from ..config import SourceConfig
    from ..grid import RegionGrid

KINDS = {
    "raster": "pipelines.sources.raster",
    "gridded": "pipelines.sources.gridded",
    "vector": "pipelines.sources.vector",
    "stac": "pipelines.sources.stac",
    "reservoir": "pipelines.sources.reservoir",
}


class SourceError(ValueError):
    """A source cannot be read or used; the message names the file/variable and what was expected."""


def load_source(source: SourceConfig, grid: RegionGrid) -> xr.Dataset:
    """Dispatch to the reader of ``source.kind`` and return its variables on ``grid``."""
    module: Any = import_module(KINDS[source.kind])
    return module.load(source, grid)
