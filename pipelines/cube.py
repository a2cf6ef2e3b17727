"""The cube convention (see ARCHITECTURE.md) and its enforcement, :func:`verify_cube`.

A *gridded* cube has dims ending in ``(y, x)`` (``time`` first when present; other dims such as
``band``, ``layer``, ``member``, ``sector``, ``reference_time``/``lead_time`` in between), ``x``/``y``
cell-centre coordinates in CRS units and a scalar ``spatial_ref`` coordinate holding CF grid-mapping
attributes (``crs_wkt``). A *feature* cube (trajectories, well or sensor time series) has no ``x``/``y``
dims and declares a CF ``featureType`` instead. Every data variable has ``units`` and ``long_name``;
global attributes carry provenance (package version, sources with sha256, config).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

CONVENTIONS = "CF-1.10"
PROVENANCE_ATTRS = ("geotwin_version", "geotwin_sources", "geotwin_config", "Conventions")
ORDERED_DIMS = ("member", "reference_time", "lead_time", "time", "band", "sector", "layer", "y", "x")


class CubeError(ValueError):
    """A dataset violates the cube convention; the message names the variable and the rule."""


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("geotwin")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file (streamed).

    Remembered per file identity (resolved path, inode, size, modification time), so a build that
    names its inputs' checksums up front and readers that record them again hash each file once.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _sha256_of(str(resolved), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _sha256_of(path: str, inode: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def grid_coords(geobox: Any) -> dict[str, xr.DataArray]:
    """``y``, ``x`` and ``spatial_ref`` coordinates of an odc-geo GeoBox, CF-complete."""
    from odc.geo.xr import xr_coords
    from pyproj import CRS

    coords = dict(xr_coords(geobox, crs_coord_name="spatial_ref"))
    # odc-geo names geographic axes longitude/latitude; the cube convention always uses x/y
    for old, new in (("longitude", "x"), ("latitude", "y")):
        if old in coords:
            coords[new] = coords.pop(old).rename({old: new}).rename(new)
    crs = CRS.from_user_input(geobox.crs.to_wkt())
    unit = "degrees" if crs.is_geographic else (crs.axis_info[0].unit_name if crs.axis_info else "m")
    unit = {
        "metre": "m",
        "meter": "m",
        "kilometre": "km",
        "US survey foot": "US_survey_foot",
        "foot": "ft",
    }.get(unit, unit)
    x_attrs = {"units": "degrees_east" if crs.is_geographic else unit, "axis": "X"}
    y_attrs = {"units": "degrees_north" if crs.is_geographic else unit, "axis": "Y"}
    if crs.is_geographic:
        x_attrs.update(standard_name="longitude", long_name="longitude")
        y_attrs.update(standard_name="latitude", long_name="latitude")
    else:
        x_attrs.update(standard_name="projection_x_coordinate", long_name="x coordinate of projection")
        y_attrs.update(standard_name="projection_y_coordinate", long_name="y coordinate of projection")
    coords["x"] = coords["x"].copy()
    coords["y"] = coords["y"].copy()
    coords["x"].attrs = x_attrs
    coords["y"].attrs = y_attrs
    ref = coords["spatial_ref"].copy()
    ref.attrs = {k: v for k, v in ref.attrs.items() if v is not None}
    ref.attrs.setdefault("crs_wkt", crs.to_wkt())
    coords["spatial_ref"] = ref
    return coords


def provenance_attrs(
    sources: Iterable[Mapping[str, Any]] = (), config: Mapping[str, Any] | str | None = None, **extra: Any
) -> dict[str, Any]:
    """Global provenance attributes for a cube.

    Parameters
    ----------
    sources
        One mapping per input with at least ``path`` and ``sha256`` (see :func:`sha256_file`).
    config
        The (validated) configuration that produced the cube, as a mapping or string.
    """
    cfg = config if isinstance(config, str) else json.dumps(config or {}, sort_keys=True, default=str)
    attrs = {
        "Conventions": CONVENTIONS,
        "geotwin_version": package_version(),
        "geotwin_sources": json.dumps(list(sources), sort_keys=True, default=str),
        "geotwin_config": cfg,
        "history": f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} created by geotwin {package_version()}",
    }
    attrs.update({k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in extra.items()})
    return attrs


def _is_gridded(ds: xr.Dataset) -> bool:
    return "x" in ds.dims and "y" in ds.dims


def verify_cube(ds: xr.Dataset, *, name: str = "cube") -> xr.Dataset:
    """Check that ``ds`` follows the cube convention; return it unchanged or raise :class:`CubeError`.

    Rules checked: provenance global attrs; for gridded cubes ``x``/``y`` 1-D monotonic coordinates with
    units, a ``spatial_ref`` coordinate with ``crs_wkt``, spatial variables ending in ``(y, x)`` with
    ``grid_mapping = "spatial_ref"``, ``time`` (if any) first among time/space dims and datetime64 and
    strictly increasing; for feature cubes a CF ``featureType``; every data variable has ``units`` and
    ``long_name`` and a short identifier name.
    """
    if not isinstance(ds, xr.Dataset):
        raise CubeError(f"{name}: expected an xarray.Dataset, got {type(ds).__name__}")
    missing = [a for a in PROVENANCE_ATTRS if a not in ds.attrs]
    if missing:
        raise CubeError(f"{name}: missing provenance global attribute(s) {missing}")
    if not ds.data_vars:
        raise CubeError(f"{name}: has no data variables")
    gridded = _is_gridded(ds)
    if gridded:
        _verify_grid(ds, name)
    elif "featureType" not in ds.attrs:
        raise CubeError(f"{name}: has no (y, x) dims and no CF 'featureType' attribute (e.g. 'trajectory')")
    for tname in ("time", "reference_time"):
        if tname in ds.coords:
            _verify_time(ds[tname], name)
    for var_name, var in ds.data_vars.items():
        where = f"{name}: variable {var_name!r}"
        if not str(var_name).isidentifier():
            raise CubeError(f"{where}: name must be a short identifier")
        for attr in ("units", "long_name"):
            if not var.attrs.get(attr) and attr not in var.encoding:
                if attr == "units" and np.issubdtype(var.dtype, np.datetime64):
                    continue
                raise CubeError(f"{where}: missing attribute {attr!r}")
        if gridded and var.dims[-2:] == ("y", "x"):
            if var.attrs.get("grid_mapping", var.encoding.get("grid_mapping")) != "spatial_ref":
                raise CubeError(f"{where}: spatial variable needs grid_mapping='spatial_ref'")
            if "time" in var.dims and var.dims.index("time") > var.dims.index("y"):
                raise CubeError(f"{where}: dims {var.dims} must put 'time' before 'y', 'x'")
        elif gridded and ("x" in var.dims or "y" in var.dims):
            raise CubeError(f"{where}: dims {var.dims} must end with ('y', 'x')")
    return ds


def _verify_grid(ds: xr.Dataset, name: str) -> None:
    for axis in ("x", "y"):
        if axis not in ds.coords:
            raise CubeError(f"{name}: dimension {axis!r} has no coordinate")
        coord = ds[axis]
        if coord.ndim != 1:
            raise CubeError(f"{name}: coordinate {axis!r} must be 1-D")
        if not coord.attrs.get("units"):
            raise CubeError(f"{name}: coordinate {axis!r} is missing 'units'")
        values = np.asarray(coord.values, dtype=float)
        if values.size > 1:
            diffs = np.diff(values)
            if not (np.all(diffs > 0) or np.all(diffs < 0)):
                raise CubeError(f"{name}: coordinate {axis!r} is not strictly monotonic")
        if not np.all(np.isfinite(values)):
            raise CubeError(f"{name}: coordinate {axis!r} has non-finite values")
    if "spatial_ref" not in ds.coords:
        raise CubeError(f"{name}: missing the 'spatial_ref' grid-mapping coordinate")
    wkt = ds["spatial_ref"].attrs.get("crs_wkt")
    if not wkt:
        raise CubeError(f"{name}: 'spatial_ref' has no 'crs_wkt' attribute")
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_wkt(wkt)
    except CRSError as err:
        raise CubeError(f"{name}: 'spatial_ref.crs_wkt' is not a valid CRS: {err}") from None


def _verify_time(coord: xr.DataArray, name: str) -> None:
    if not np.issubdtype(coord.dtype, np.datetime64):
        raise CubeError(f"{name}: coordinate {coord.name!r} must be datetime64 (UTC), got {coord.dtype}")
    values = coord.values
    if values.ndim == 1 and values.size > 1 and not np.all(np.diff(values) > np.timedelta64(0, "ns")):
        raise CubeError(f"{name}: coordinate {coord.name!r} must be strictly increasing")
    if np.isnat(values).any():
        raise CubeError(f"{name}: coordinate {coord.name!r} contains NaT")


def make_cube(
    data_vars: Mapping[str, xr.DataArray],
    geobox: Any | None = None,
    *,
    attrs: Mapping[str, Any] | None = None,
    sources: Iterable[Mapping[str, Any]] = (),
    config: Mapping[str, Any] | str | None = None,
) -> xr.Dataset:
    """Assemble and verify a cube from DataArrays on a grid.

    Each DataArray must carry ``units`` and ``long_name`` attrs. When ``geobox`` is given, the grid
    coordinates are (re)attached and every ``(…, y, x)`` variable gets ``grid_mapping``.
    """
    ds = xr.Dataset(dict(data_vars))
    if geobox is not None:
        coords = grid_coords(geobox)
        ds = ds.drop_vars([c for c in ("x", "y", "spatial_ref") if c in ds.coords]).assign_coords(coords)
        for var in ds.data_vars.values():
            if var.dims[-2:] == ("y", "x"):
                var.attrs["grid_mapping"] = "spatial_ref"
                var.encoding.pop("grid_mapping", None)
    for tname in ("time", "reference_time"):
        if tname in ds.coords:
            ds[tname].attrs.setdefault(
                "standard_name", "forecast_reference_time" if tname != "time" else "time"
            )
    ds.attrs.update(provenance_attrs(sources, config))
    ds.attrs.update(dict(attrs or {}))
    return verify_cube(ds)
