"""Satellite rasters: GeoTIFF / COG (any GDAL raster) read lazily with rioxarray and aligned on the grid.

:func:`open_raster` returns the native (unaligned) bands as a dask-backed float32 DataArray with nodata
as NaN (from the file's nodata tag, NaN in float files without a tag, or an override) and the band
scale/offset applied. :func:`load` is the reader entry point used by the cube build: it picks bands,
reprojects them onto the region grid (:func:`pipelines.align.reproject_to_grid`) and records provenance.

Config example (``catalogs/*.yaml``)::

    - name: landsat
      kind: raster
      path: RGB.byte.tif
      options: {nodata: 0, time: "2020-02-19T11:34:25"}   # optional
      variables:
        red: {band: 1, units: "1", long_name: "Landsat 7 ETM+ band 3 DN", resampling: average}
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from . import SourceError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import SourceConfig, VariableSpec
    from ..grid import RegionGrid

#: native read chunk (pixels) when the file's own blocks are smaller
READ_CHUNK = 2048


def _check_complete(src: Any, path: str) -> None:
    """Raise when a TIFF's tiles/strips point past the end of the file (a truncated download)."""
    if src.driver != "GTiff":
        return
    size = os.path.getsize(path)
    end = 0
    nblocks = 0
    for bidx in range(1, src.count + 1):
        for (row, col), _ in src.block_windows(bidx):
            nblocks += 1
            if nblocks > 200_000:  # very large files: rely on GDAL's read errors instead
                return
            off = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=bidx)
            cnt = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=bidx)
            if off is not None and cnt is not None:
                end = max(end, int(off) + int(cnt))
        if src.interleaving is not None and src.interleaving.name == "PIXEL":
            break  # pixel-interleaved: every band shares band 1's blocks
    if end > size:
        raise SourceError(
            f"{path}: GeoTIFF is truncated or corrupt (its data blocks end at byte {end} "
            f"but the file has {size} bytes); re-download it"
        )


def open_raster(
    path: str | os.PathLike[str],
    *,
    nodata: float | None = None,
    chunks: int | None = None,
    apply_scale: bool = True,
) -> xr.DataArray:
    """Open a GDAL raster lazily as ``(band, y, x)`` float32 with NaN for no-data.

    Parameters
    ----------
    path
        GeoTIFF/COG (or any GDAL raster with a CRS).
    nodata
        Override of the file's nodata value (raw, before scale/offset). Without it, the file's nodata tag
        is used; float files without a tag keep their NaNs as no-data.
    chunks
        Dask chunk size in pixels (default: the file's block size rounded up to ~``READ_CHUNK``).
    apply_scale
        Apply the per-band ``scale``/``offset`` tags (``value = raw * scale + offset``).

    Raises
    ------
    SourceError
        Missing file, unreadable/truncated file, no CRS.
    """
    import rasterio
    import rioxarray
    from rasterio.errors import RasterioIOError

    path = str(path)
    if not Path(path).is_file():
        raise SourceError(f"{path}: raster file not found")
    try:
        with rasterio.open(path) as src:
            _check_complete(src, path)
            crs = src.crs
            scales = np.asarray(src.scales, dtype="float64")
            offsets = np.asarray(src.offsets, dtype="float64")
            units = list(src.units)
            descriptions = list(src.descriptions)
            block = max(src.block_shapes[0]) if src.block_shapes else READ_CHUNK
            file_nodata = src.nodata
            dtype = src.dtypes[0]
    except RasterioIOError as err:
        raise SourceError(
            f"{path}: not a readable raster (corrupt, truncated or unsupported format): {err}"
        ) from None
    if crs is None:
        raise SourceError(
            f"{path}: raster has no CRS (expected a georeferenced GeoTIFF); assign one with gdal_edit"
        )
    size = chunks or max(block, (READ_CHUNK // block) * block)
    try:
        with warnings.catch_warnings():  # per-band scales/offsets differ: applied below, band by band
            warnings.filterwarnings("ignore", message="(Scales|Offsets) differ across bands")
            data = rioxarray.open_rasterio(
                path, chunks={"band": 1, "y": size, "x": size}, masked=True, lock=False, cache=False
            )
    except RasterioIOError as err:
        raise SourceError(f"{path}: not a readable raster: {err}") from None
    if isinstance(data, list):  # multiple subdatasets
        raise SourceError(f"{path}: holds several subdatasets; point 'path' at one of them")
    if nodata is not None:
        data = data.where(data != nodata)
    elif file_nodata is None and np.dtype(dtype).kind == "f":
        pass  # NaN is the implicit no-data of float files
    data = data.astype("float32")
    if apply_scale and (np.any(scales != 1.0) or np.any(offsets != 0.0)):
        band = data["band"]
        data = data * xr.DataArray(
            scales.astype("float32"), dims="band", coords={"band": band}
        ) + xr.DataArray(offsets.astype("float32"), dims="band", coords={"band": band})
    data.attrs = {
        "source_file": path,
        "band_units": [u or "" for u in units],
        "band_descriptions": [d or "" for d in descriptions],
    }
    data.rio.write_crs(crs, inplace=True)
    return data


def _select_band(data: xr.DataArray, spec: VariableSpec, var: str, path: str) -> xr.DataArray:
    count = data.sizes["band"]
    if spec.band is None:
        return data.isel(band=0) if count == 1 else data
    if spec.band > count:
        raise SourceError(
            f"{path}: variable {var!r}: band {spec.band} requested but the file has {count} band(s)"
        )
    return data.isel(band=spec.band - 1)


def _attrs(data: xr.DataArray, spec: VariableSpec, var: str, source: SourceConfig) -> dict[str, Any]:
    idx = (spec.band or 1) - 1
    units = spec.units or (data.attrs["band_units"][idx] if idx < len(data.attrs["band_units"]) else "")
    if not units:
        raise SourceError(
            f"{source.path}: variable {var!r}: the file has no units for band {idx + 1}; "
            "set 'units' in the config (UDUNITS, '1' for dimensionless)"
        )
    desc = data.attrs["band_descriptions"][idx] if idx < len(data.attrs["band_descriptions"]) else ""
    long_name = spec.long_name or desc or f"{source.name} band {idx + 1}"
    return {"units": units, "long_name": long_name}


def _is_categorical(source: SourceConfig, var: str) -> bool:
    cat = source.options.get("categorical", False)
    return bool(cat) if isinstance(cat, bool) else var in cat


def load(source: SourceConfig, grid: RegionGrid) -> xr.Dataset:
    """Read a raster source and return its variables aligned on ``grid`` (lazy, dask).

    ``source.options``: ``nodata`` (raw nodata override), ``time`` (timestamp of a single-time raster:
    adds a length-1 ``time`` dim), ``categorical`` (bool or list of variable names: nearest resampling),
    ``time_method`` (``nearest``/``linear`` onto the grid's time axis), ``chunks`` (native read chunk in pixels), ``apply_scale`` (default true).

    Raises
    ------
    SourceError
        Naming the file and variable: missing/corrupt file, no CRS, band out of range, no units, a CRS on
        another body, or a raster that does not overlap the region.
    """
    from ..align import align_time, reproject_to_grid
    from ..cube import sha256_file
    from ..grid import GridError

    opts = source.options
    data = open_raster(
        source.path,
        nodata=opts.get("nodata"),
        chunks=opts.get("chunks"),
        apply_scale=opts.get("apply_scale", True),
    )
    if not source.variables:
        raise SourceError(f"{source.path}: source {source.name!r} declares no variables")
    out: dict[str, xr.DataArray] = {}
    for var, spec in source.variables.items():
        band = _select_band(data, spec, var, source.path)
        attrs = _attrs(data, spec, var, source)
        band = band.drop_vars("band", errors="ignore") if "band" not in band.dims else band
        band.name = var
        try:
            aligned = reproject_to_grid(
                band,
                grid,
                resampling=spec.resampling or "auto",
                categorical=_is_categorical(source, var),
                what=f"{source.path}: variable {var!r}",
            )
        except GridError as err:
            raise SourceError(str(err)) from None
        if spec.scale is not None:
            aligned = aligned * np.float32(spec.scale)
        aligned.attrs = {**attrs, "grid_mapping": "spatial_ref"}
        if "time" in opts:
            aligned = aligned.expand_dims(time=[np.datetime64(_utc(opts["time"]), "ns")])
        out[var] = aligned
    ds = xr.Dataset(out)
    if "time" in opts and grid.time is not None:
        try:
            ds = align_time(ds, grid, opts.get("time_method", "nearest"), what=source.path)
        except GridError as err:
            raise SourceError(str(err)) from None
    ds.attrs["geotwin_source_files"] = [{"path": str(source.path), "sha256": sha256_file(source.path)}]
    return ds


def _utc(value: Any) -> Any:
    import pandas as pd

    ts = pd.Timestamp(value)
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tz is not None else ts).to_datetime64()
