"""GRIB1/GRIB2 through GDAL's GRIB driver (rasterio), as a CF-like lazy :class:`xarray.Dataset`.

Why not cfgrib: the ``eccodes``/``eccodeslib`` wheels bundle their own PROJ, and importing them in
the same process breaks pyproj (``proj_create: no database context specified``, then a crash at
exit), while xarray imports every installed backend when it guesses an engine. GDAL is already a
dependency (rasterio) and reads GRIB with per-message metadata.

Each GRIB message is one band. Bands are grouped into variables by ``GRIB_ELEMENT`` and level
(``GRIB_SHORT_NAME``); the time axis is ``GRIB_VALID_TIME``. Units are kept as coded in the file
(``GRIB_NORMALIZE_UNITS=NO``: temperatures stay in K). Data are read lazily, one dask chunk per
block of messages.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

from . import SourceError

#: CF standard names of common GRIB elements (GDAL's element names)
STANDARD_NAMES = {
    "2T": "air_temperature",
    "2D": "dew_point_temperature",
    "10U": "eastward_wind",
    "10V": "northward_wind",
    "MSL": "air_pressure_at_mean_sea_level",
    "SP": "surface_air_pressure",
    "TP": "precipitation_amount",
    "SST": "sea_surface_temperature",
    "CI": "sea_ice_area_fraction",
    "T": "air_temperature",
    "U": "eastward_wind",
    "V": "northward_wind",
}
_UNITS = {"m/s": "m s-1", "K": "K", "Pa": "Pa", "m": "m", "(0 - 1)": "1", "%": "%", "kg/(m^2)": "kg m-2"}
_BLOCK = 48


def _read(path: str, bands: list[int]) -> np.ndarray:
    import rasterio

    with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"), rasterio.open(path) as src:
        return src.read(bands, masked=True).filled(np.nan).astype("float32")


def open_grib(path: str | Path) -> xr.Dataset:
    """Open a GRIB file lazily; variables named by lower-cased GDAL element (``2t``, ``10u`` ...)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    text = str(path)
    try:
        with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"), rasterio.open(text) as src:
            tags = [src.tags(b) for b in range(1, src.count + 1)]
            shape, transform, crs = (src.height, src.width), src.transform, src.crs
    except RasterioIOError as err:
        raise SourceError(f"{text}: cannot be read as GRIB (truncated or corrupt?): {err}") from None
    if not tags or "GRIB_ELEMENT" not in tags[0]:
        raise SourceError(f"{text}: not a GRIB file (no GRIB_ELEMENT metadata)")
    if transform.b != 0 or transform.d != 0:
        raise SourceError(f"{text}: rotated GRIB grids are not supported")
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for band, tag in enumerate(tags, start=1):
        groups[(tag["GRIB_ELEMENT"], tag.get("GRIB_SHORT_NAME", ""))].append(band)
    ny, nx = shape
    lon = transform.c + transform.a * (np.arange(nx) + 0.5)
    lat = transform.f + transform.e * (np.arange(ny) + 0.5)
    wkt = crs.to_wkt() if crs else "EPSG:4326"
    data_vars = {}
    several_levels = len({e for e, _ in groups}) < len(groups)
    for (element, level), bands in groups.items():
        times = np.array([int(tags[b - 1]["GRIB_VALID_TIME"]) for b in bands], dtype="datetime64[s]")
        blocks = [
            da.from_delayed(
                dask.delayed(_read)(text, bands[i : i + _BLOCK]),
                (len(bands[i : i + _BLOCK]), ny, nx),
                "float32",
            )
            for i in range(0, len(bands), _BLOCK)
        ]
        tag = tags[bands[0] - 1]
        unit = tag.get("GRIB_UNIT", "").strip("[]")
        attrs = {
            "units": _UNITS.get(unit, unit),
            "long_name": tag.get("GRIB_COMMENT", element).split(" [")[0],
            "grid_mapping": "spatial_ref",
            "GRIB_ELEMENT": element,
            "GRIB_SHORT_NAME": level,
        }
        if element.upper() in STANDARD_NAMES:
            attrs["standard_name"] = STANDARD_NAMES[element.upper()]
        name = element.lower() + (f"_{level.lower().replace('-', '_')}" if several_levels else "")
        order = np.argsort(times, kind="stable")
        arr = da.concatenate(blocks, axis=0)[order]
        data_vars[name] = xr.DataArray(
            arr,
            dims=("time", "latitude", "longitude"),
            coords={"time": times[order].astype("datetime64[ns]")},
            attrs=attrs,
        )
    ds = xr.Dataset(data_vars)
    return ds.assign_coords(
        latitude=("latitude", lat, {"units": "degrees_north", "standard_name": "latitude"}),
        longitude=("longitude", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        spatial_ref=((), np.int32(0), {"crs_wkt": wkt}),
    )
