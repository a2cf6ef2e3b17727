"""CF-convention helpers for the gridded reader: CRS discovery, coordinates, time, levels, units.

Everything here works on an already opened :class:`xarray.Dataset` and never opens files.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from . import SourceError

LON_NAMES = ("longitude", "lon", "long", "nav_lon", "lon_rho", "glamt", "xlong", "x_lon")
LAT_NAMES = ("latitude", "lat", "nav_lat", "lat_rho", "gphit", "xlat", "y_lat")
VERTICAL_NAMES = (
    "depth",
    "level",
    "lev",
    "plev",
    "height",
    "z",
    "s_rho",
    "isobaricinhpa",
    "pressure",
    "deptht",
)
_PROJ_ATTRS = ("proj4_string", "proj4", "proj4text", "proj_string", "proj", "crs")
_WKT_ATTRS = ("crs_wkt", "spatial_ref", "esri_pe_string")
_LENGTH_TO_M = {
    "m": 1.0,
    "metre": 1.0,
    "meter": 1.0,
    "metres": 1.0,
    "meters": 1.0,
    "km": 1000.0,
    "kilometre": 1000.0,
    "kilometer": 1000.0,
    "kilometres": 1000.0,
    "kilometers": 1000.0,
}
_UNIT_ALIASES = {
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "meter second-1": "m s-1",
    "m/s": "m s-1",
    "m s**-1": "m s-1",
    "meters/second": "m s-1",
    "percent": "%",
    "kelvin": "K",
    "celsius": "degC",
    "degrees celsius": "degC",
    "degree_celsius": "degC",
    "fraction": "1",
}
# conversions when the file has units but the config asks for others: (from, to) -> (scale, offset)
_CONVERSIONS = {
    ("%", "1"): (0.01, 0.0),
    ("1", "%"): (100.0, 0.0),
    ("cm", "m"): (0.01, 0.0),
    ("km", "m"): (1000.0, 0.0),
    ("cm s-1", "m s-1"): (0.01, 0.0),
    ("K", "degC"): (1.0, -273.15),
    ("degC", "K"): (1.0, 273.15),
    ("hPa", "Pa"): (100.0, 0.0),
    ("Pa", "hPa"): (0.01, 0.0),
}
_SINGLE_WORD_STANDARD_NAMES = {"geopotential", "altitude", "depth", "height", "area", "region", "time"}


def normalise_units(units: Any) -> str:
    """Canonical spelling of a unit string (``meter second-1`` -> ``m s-1``; ``''`` stays ``''``)."""
    text = str(units).strip() if units is not None else ""
    return _UNIT_ALIASES.get(text.lower(), _UNIT_ALIASES.get(text, text))


def convert_units(data: xr.DataArray, have: str, want: str, where: str) -> xr.DataArray:
    """Convert ``data`` from unit ``have`` to ``want`` (a small table of exact conversions)."""
    have, want = normalise_units(have), normalise_units(want)
    if have == want:
        return data
    if (have, want) not in _CONVERSIONS:
        raise SourceError(
            f"{where}: has units {have!r} but the config asks for {want!r}; geotwin converts only "
            f"{sorted({f'{a}->{b}' for a, b in _CONVERSIONS})} (remove 'units' or use 'scale')"
        )
    scale, offset = _CONVERSIONS[(have, want)]
    out = data * scale + offset if offset else data * scale
    out.attrs = dict(data.attrs)
    return out


def is_standard_name(name: Any) -> bool:
    """Heuristic check that ``name`` looks like a CF standard name (not e.g. ``unknown`` or ``tmmx``)."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name == "unknown":
        return False
    return "_" in name or name in _SINGLE_WORD_STANDARD_NAMES


def find_variable(ds: xr.Dataset, name: str | None, standard_name: str | None, where: str) -> str:
    """Name of the data variable chosen by ``name`` or by CF ``standard_name``; clear error otherwise."""
    available = sorted(str(v) for v in ds.data_vars)
    if name is not None:
        if name in ds.variables:
            return name
        raise SourceError(f"{where}: variable {name!r} not found; available variables: {available}")
    if standard_name is None:
        if len(ds.data_vars) == 1:
            return str(next(iter(ds.data_vars)))
        raise SourceError(f"{where}: give 'name' or 'standard_name'; available variables: {available}")
    hits = [str(v) for v in ds.variables if ds[v].attrs.get("standard_name") == standard_name]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        names = {
            str(v): ds[v].attrs.get("standard_name") for v in ds.data_vars if ds[v].attrs.get("standard_name")
        }
        raise SourceError(
            f"{where}: no variable has standard_name {standard_name!r}; standard names in the file: {names}"
        )
    raise SourceError(
        f"{where}: standard_name {standard_name!r} matches several variables {hits}; give 'name'"
    )


def horizontal_dims(da: xr.DataArray) -> tuple[str, str]:
    """The (y, x) dims of a variable: the last two dims (CF/COARDS order T, Z, Y, X)."""
    if da.ndim < 2:
        raise SourceError(f"variable {da.name!r} has dims {da.dims}; expected at least two horizontal dims")
    return str(da.dims[-2]), str(da.dims[-1])


def coord_kind(coord: xr.DataArray) -> str | None:
    """``lon``, ``lat``, ``x``, ``y`` or None, from CF attrs (standard_name, units, axis) and names."""
    attrs = coord.attrs
    sn = str(attrs.get("standard_name", "")).lower()
    units = str(attrs.get("units", "")).lower()
    name = str(coord.name).lower()
    if (
        sn == "longitude"
        or units in ("degrees_east", "degree_east", "degree_e", "degrees_e")
        or name in LON_NAMES
    ):
        return "lon"
    if (
        sn == "latitude"
        or units in ("degrees_north", "degree_north", "degree_n", "degrees_n")
        or name in LAT_NAMES
    ):
        return "lat"
    if sn == "projection_x_coordinate" or attrs.get("axis") == "X" or name in ("x", "xc", "easting"):
        return "x"
    if sn == "projection_y_coordinate" or attrs.get("axis") == "Y" or name in ("y", "yc", "northing"):
        return "y"
    return None


def length_scale(coord: xr.DataArray) -> float:
    """Factor that turns a projected coordinate's values into metres (``km`` -> 1000)."""
    units = str(coord.attrs.get("units", "m")).strip().lower()
    return _LENGTH_TO_M.get(units, 1.0)


def crs_candidates(ds: xr.Dataset, var: xr.DataArray) -> list[tuple[str, CRS]]:
    """Every CRS the file states for ``var``: grid-mapping WKT, PROJ strings, CF parameters, attrs.

    Returns ``[(description, CRS), ...]`` in order of preference (WKT, PROJ string, CF parameters).
    """
    found: list[tuple[str, CRS]] = []
    holders: list[tuple[str, dict[str, Any]]] = []
    gm_name = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
    if gm_name and str(gm_name).split(":")[0] in ds.variables:
        gm = str(gm_name).split(":")[0]
        holders.append((f"grid_mapping variable {gm!r}", dict(ds[gm].attrs)))
    if "spatial_ref" in ds.variables and gm_name != "spatial_ref":
        holders.append(("variable 'spatial_ref'", dict(ds["spatial_ref"].attrs)))
    holders.append((f"attributes of {var.name!r}", dict(var.attrs)))
    holders.append(("global attributes", dict(ds.attrs)))
    for label, attrs in holders:
        for key in (*_WKT_ATTRS, *_PROJ_ATTRS):
            text = attrs.get(key)
            if isinstance(text, str) and text.strip():
                try:
                    found.append((f"{label} {key!r}", CRS.from_user_input(text)))
                except CRSError:
                    continue
        if "grid_mapping_name" in attrs:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    found.append((f"{label} CF parameters", CRS.from_cf(attrs)))
            except (CRSError, KeyError, ValueError):
                pass
    return found


def check_crs_against_lonlat(
    crs: CRS, x: np.ndarray, y: np.ndarray, lon: np.ndarray, lat: np.ndarray
) -> float:
    """Largest distance (metres, in the projection) between ``(x, y)`` and the file's own ``lon/lat``."""
    forward = Transformer.from_crs(crs.geodetic_crs or CRS("EPSG:4326"), crs, always_xy=True)
    xx, yy = np.meshgrid(x, y) if np.ndim(lon) == 2 and np.ndim(x) == 1 else (x, y)
    step = max(1, int(np.ceil(max(np.shape(lon)) / 40)))
    px, py = forward.transform(np.asarray(lon, float)[::step, ::step], np.asarray(lat, float)[::step, ::step])
    err = np.hypot(px - xx[::step, ::step], py - yy[::step, ::step])
    return float(np.nanmax(err)) if np.isfinite(err).any() else float("inf")


def decode_time(
    ds: xr.Dataset, time_dim: str | None, where: str, *, convert_calendar: bool = False
) -> xr.Dataset:
    """Rename the time dim to ``time`` and make it UTC ``datetime64[ns]`` (cftime calendars converted).

    ``noleap``/``all_leap``/``julian``/``proleptic_gregorian`` dates map onto the same labelled
    dates; ``360_day`` has dates that do not exist (Feb 30) and is an error unless
    ``convert_calendar`` (xarray's ``convert_calendar(..., align_on="year")``) is asked for.
    """
    if time_dim is None:
        for dim in ds.dims:
            if dim in ds.coords and ds[dim].ndim == 1 and _is_time(ds[dim]):
                time_dim = str(dim)
                break
    if time_dim is None and "time" in ds.dims:
        time_dim = "time"  # a time dim xarray could not decode: report it below
    if time_dim is None:
        return ds
    if time_dim not in ds.dims:
        raise SourceError(
            f"{where}: option time_dim={time_dim!r} is not a dimension; dims are {list(ds.dims)}"
        )
    if time_dim != "time":
        if "time" in ds.variables:
            ds = ds.drop_vars("time")
        ds = ds.rename({time_dim: "time"})
    t = ds["time"]
    if np.issubdtype(t.dtype, np.datetime64):
        return ds.assign_coords(time=t.values.astype("datetime64[ns]"))
    values = t.values
    if values.dtype == object and values.size and hasattr(values.flat[0], "calendar"):
        calendar = values.flat[0].calendar
        if calendar == "360_day":
            if not convert_calendar:
                raise SourceError(
                    f"{where}: time uses the 360_day calendar, which has dates that do not exist in UTC "
                    "(e.g. Feb 30); set option convert_calendar: true to map it onto the standard calendar"
                )
            ds = ds.convert_calendar("standard", dim="time", align_on="year", use_cftime=False)
            return ds.assign_coords(time=ds["time"].values.astype("datetime64[ns]"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                index = xr.CFTimeIndex(values).to_datetimeindex(time_unit="ns")
        except (ValueError, TypeError) as err:
            raise SourceError(f"{where}: cannot convert {calendar} calendar dates to UTC: {err}") from None
        return ds.assign_coords(time=index.values)
    raise SourceError(
        f"{where}: time coordinate {time_dim!r} could not be decoded (units={t.attrs.get('units')!r}); "
        "expected CF units like 'hours since 1900-01-01'"
    )


def _is_time(coord: xr.DataArray) -> bool:
    if np.issubdtype(coord.dtype, np.datetime64):
        return True
    values = coord.values
    return values.dtype == object and values.size > 0 and hasattr(values.flat[0], "calendar")


def vertical_dim(da: xr.DataArray, ds: xr.Dataset) -> str | None:
    """The vertical dim of a variable (CF ``axis: Z``/``positive`` or a known name), if any."""
    for dim in da.dims[:-2]:
        if dim == "time":
            continue
        coord = ds[dim] if dim in ds.variables else None
        attrs = coord.attrs if coord is not None else {}
        if attrs.get("axis") == "Z" or "positive" in attrs or str(dim).lower() in VERTICAL_NAMES:
            return str(dim)
        if str(attrs.get("standard_name", "")).startswith(
            ("ocean_s_coordinate", "atmosphere_", "air_pressure")
        ):
            return str(dim)
    return None


def select_level(da: xr.DataArray, ds: xr.Dataset, level: Any, where: str) -> xr.DataArray:
    """Select one vertical level: ``"surface"``, ``"bottom"``, a coordinate value or ``{"index": i}``;
    or keep the z levels from the surface down to ``{"max_depth": metres}`` as a dim ``depth``."""
    dim = vertical_dim(da, ds)
    if dim is None:
        return da
    if isinstance(level, dict) and "max_depth" in level:
        return _depth_levels(da, ds, dim, float(level["max_depth"]), where)
    if level is None:
        raise SourceError(
            f"{where}: has vertical dim {dim!r} ({da.sizes[dim]} levels); set options.level "
            "('surface', 'bottom', a coordinate value or {index: i})"
        )
    coord = ds[dim] if dim in ds.variables else None
    if isinstance(level, dict) and "index" in level:
        return da.isel({dim: int(level["index"])}, drop=True)
    if level in ("surface", "bottom"):
        if coord is None:
            raise SourceError(f"{where}: vertical dim {dim!r} has no coordinate; use level: {{index: i}}")
        values = np.asarray(coord.values, dtype=float)
        top = int(np.nanargmax(values)) if _surface_is_max(coord, values) else int(np.nanargmin(values))
        bottom = int(np.nanargmin(values)) if top == int(np.nanargmax(values)) else int(np.nanargmax(values))
        return da.isel({dim: top if level == "surface" else bottom}, drop=True)
    if coord is None:
        raise SourceError(f"{where}: vertical dim {dim!r} has no coordinate; use level: {{index: i}}")
    values = np.asarray(coord.values, dtype=float)
    idx = int(np.nanargmin(np.abs(values - float(level))))
    if not np.isclose(values[idx], float(level), rtol=1e-6, atol=1e-9):
        raise SourceError(f"{where}: level {level} not in {dim!r} values {values.tolist()}")
    return da.isel({dim: idx}, drop=True)


def _depth_levels(da: xr.DataArray, ds: xr.Dataset, dim: str, max_depth: float, where: str) -> xr.DataArray:
    """The z levels of ``da`` from the surface to ``max_depth`` m as dim ``depth`` (m, positive down)."""
    coord = ds[dim] if dim in ds.variables else None
    units = str(coord.attrs.get("units", "")).lower() if coord is not None else ""
    if coord is None or units not in ("m", "meter", "meters", "metre", "metres"):
        raise SourceError(
            f"{where}: level max_depth needs a vertical coordinate in metres; {dim!r} has "
            f"{'none' if coord is None else f'units {units!r}'} (use level: surface or {{index: i}})"
        )
    values = np.asarray(coord.values, dtype=float)
    positive_down = str(coord.attrs.get("positive", "")).lower() == "down" or (
        str(coord.attrs.get("positive", "")) == "" and np.nanmin(values) >= 0
    )
    depth = values if positive_down else -values
    keep = np.nonzero(depth <= max_depth + 1e-9)[0]
    if keep.size == 0:
        raise SourceError(f"{where}: no level of {dim!r} ({depth.tolist()} m) within max_depth {max_depth} m")
    keep = keep[np.argsort(depth[keep])]
    out = da.isel({dim: keep}).rename({dim: "depth"}) if dim != "depth" else da.isel({dim: keep})
    return out.assign_coords(
        depth=xr.DataArray(
            depth[keep],
            dims="depth",
            attrs={"standard_name": "depth", "units": "m", "positive": "down", "axis": "Z"},
        )
    )


def _surface_is_max(coord: xr.DataArray, values: np.ndarray) -> bool:
    """Whether the level nearest the surface has the largest coordinate value."""
    units = str(coord.attrs.get("units", "")).lower()
    positive = str(coord.attrs.get("positive", "")).lower()
    name = str(coord.name).lower()
    sn = str(coord.attrs.get("standard_name", "")).lower()
    if units in ("pa", "hpa", "millibars", "millibar", "mbar", "bar", "pascal"):
        return True  # pressure: highest pressure at the surface
    if positive == "down" or "depth" in name or sn == "depth":
        return False  # depth below the sea surface
    if sn.startswith("ocean_") or name.startswith("s_") or np.nanmax(values) <= 0:
        return True  # ocean s/z coordinates, positive up, 0 at the surface
    return False  # heights above the ground


def utc_index(values: Any) -> pd.DatetimeIndex:
    """A naive-UTC ``DatetimeIndex`` from datetime-like values."""
    index = pd.DatetimeIndex(values)
    return index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
