"""Align a source onto the region grid, lazily (dask).

Regular grids with a CRS are reprojected with odc-geo's ``xr_reproject`` (rasterio/GDAL warp per dask
chunk). The resampling default follows the resolution ratio: ``average`` (area-weighted) when the
source is finer than the grid, ``bilinear`` when it is coarser, ``nearest`` for categorical data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:  # pragma: no cover
    from .grid import RegionGrid


def auto_resampling(src_resolution: float, dst_resolution: float, categorical: bool = False) -> str:
    """``nearest`` for categories, ``average`` when the source is finer, else ``bilinear``."""
    if categorical:
        return "nearest"
    return "average" if abs(src_resolution) < abs(dst_resolution) else "bilinear"


def reproject_to_grid(
    data: xr.DataArray, grid: RegionGrid, *, resampling: str = "bilinear", categorical: bool = False
) -> xr.DataArray:
    """Reproject a georeferenced (odc-geo readable CRS) DataArray onto ``grid.geobox``.

    ``data`` must have ``y``/``x`` (or ``latitude``/``longitude``) dims and a CRS that odc-geo can read
    (``spatial_ref`` coordinate or ``.odc.crs``). Floating output uses NaN for no-data.
    """
    from odc.geo.xr import xr_reproject

    from .cube import grid_coords

    if not categorical and data.dtype.kind in "iub":
        data = data.astype("float32")
    out = xr_reproject(data, grid.geobox, resampling=resampling, dst_nodata=np.nan if data.dtype.kind == "f" else None)
    out = out.assign_coords(grid_coords(grid.geobox))
    out.attrs = dict(data.attrs)
    out.attrs.pop("nodata", None)
    out.attrs.pop("_FillValue", None)
    out.attrs["grid_mapping"] = "spatial_ref"
    return out
