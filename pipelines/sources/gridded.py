"""Climate/ocean gridded reader: NetCDF, Zarr and GRIB onto the region grid.

Two public functions:

* :func:`open_gridded` opens a file and normalises it on its **native** grid: CF-decoded (``_FillValue``,
  ``scale_factor``/``add_offset``, CF time units and calendars → UTC ``datetime64``), ROMS C-grid
  u/v points averaged to rho points with the land masks applied, grid-relative vectors rotated to
  east/north, and one of two grid kinds (``ds.attrs["geotwin_grid"]``):

  - ``regular``: dims ``(…, y, x)`` with 1-D ascending ``x``/``y`` in CRS units (metres for projected
    CRSs even when the file uses km; longitudes -180..180) and a ``spatial_ref`` coordinate (``crs_wkt``);
  - ``curvilinear``: native dims with 2-D ``lon``/``lat`` coordinates (degrees, -180..180).

* :func:`load` is the build entry point (``kind: gridded``): the variables of a
  :class:`~pipelines.config.SourceConfig` aligned lazily on a :class:`~pipelines.grid.RegionGrid`.

Options (``source.options``):

``level``
    vertical level: ``surface``, ``bottom``, a coordinate value (e.g. ``850`` hPa) or ``{index: i}``;
    or ``{max_depth: metres}`` to keep the z levels from the surface down to that depth as a cube dim
    ``depth`` (m, positive down), e.g. for the draft-averaged current on an iceberg's keel.
``rotate``
    ``[x_var, y_var]``: source names of grid-relative vector components, rotated to east/north
    (angle from the CRS for projected grids; the ROMS ``angle`` variable or the lon/lat arrays for
    curvilinear grids).
``crs``
    CRS override (anything pyproj reads) when the file states none or a wrong one.
``time_dim``
    name of the time dimension when it is not recognised (decoded CF time coordinates are).
``time_method``
    ``linear`` (default) or ``nearest`` interpolation onto the region's time axis.
``static``
    ``true``: the source's single time step (e.g. an annual emission inventory) applies at every time;
    its time dim is dropped and the variable is static ``(y, x)``.
``georef``
    ``auto`` (default: projection coordinates + CRS when the file has them, else 2-D lon/lat),
    ``projection`` or ``latlon`` (regrid from the file's 2-D lon/lat arrays).
``convert_calendar``
    ``true`` maps a ``360_day`` calendar onto the standard one (xarray ``convert_calendar``).
``engine``
    xarray engine (``netcdf4``, ``h5netcdf``, ``zarr``, ``cfgrib``) or ``gdal-grib``; guessed from the
    path by default (``.zarr``/directories: zarr; ``.grib``/``.grb``/``.grib2``: GDAL, see :mod:`.grib`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS, Transformer

from . import SourceError
from .cf import (
    check_crs_against_lonlat,
    convert_units,
    coord_kind,
    crs_candidates,
    decode_time,
    find_variable,
    is_standard_name,
    length_scale,
    normalise_units,
    select_level,
)
from .ocean import (
    angle_from_lonlat,
    is_roms,
    roms_to_rho,
    rotate_dataset,
    rotate_to_east_north,
    rotation_angle,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..config import SourceConfig, VariableSpec
    from ..grid import RegionGrid

__all__ = ["open_gridded", "load", "rotation_angle", "rotate_to_east_north", "angle_from_lonlat", "OPTIONS"]

OPTIONS = (
    "level",
    "rotate",
    "crs",
    "time_dim",
    "time_method",
    "static",
    "georef",
    "convert_calendar",
    "engine",
)


# --------------------------------------------------------------------------------------- opening
def _open_raw(path: str | Path, engine: str | None = None) -> xr.Dataset:
    """Open NetCDF/Zarr/GRIB lazily with CF decoding; errors name the file."""
    text = str(path)
    local = "://" not in text
    if local and not Path(text).exists():
        raise SourceError(f"{text}: file not found")
    if engine is None:
        if text.rstrip("/").endswith(".zarr") or (local and Path(text).is_dir()):
            engine = "zarr"
        elif text.endswith((".grib", ".grb", ".grib2", ".grb2")):
            engine = "gdal-grib"
    if engine == "gdal-grib":
        from .grib import open_grib

        return open_grib(text)
    if engine == "cfgrib":
        _check_cfgrib(text)
    coder = xr.coders.CFDatetimeCoder(use_cftime=None)

    def _open(decode: Any) -> xr.Dataset:
        if engine == "zarr":
            return xr.open_zarr(text, decode_times=decode, decode_timedelta=False)
        return xr.open_dataset(text, engine=engine, chunks={}, decode_times=decode, decode_timedelta=False)

    try:
        try:
            ds = _open(coder)
        except ValueError as err:
            if "decode time" not in str(err):
                raise
            ds = _open(False)  # undecodable time units: cf.decode_time names them
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        raise SourceError(
            f"{text}: cannot be read as {engine or 'NetCDF'} (truncated, corrupt or not a gridded file?): {err}"
        ) from None
    return ds


def _check_cfgrib(path: str) -> None:
    try:
        import cfgrib  # noqa: F401
    except ImportError:
        raise SourceError(
            f"{path}: engine 'cfgrib' needs the optional 'cfgrib' package, which is not installed; "
            "leave 'engine' unset to read GRIB with GDAL (the default)"
        ) from None


def _probe(var: xr.DataArray, where: str) -> None:
    """Read the first and last element eagerly, so truncated files fail here with a clear error."""
    try:
        first = {d: 0 for d in var.dims}
        last = {d: -1 for d in var.dims}
        np.asarray(var.isel(first).values)
        np.asarray(var.isel(last).values)
    except (OSError, RuntimeError, ValueError, IndexError) as err:
        raise SourceError(f"{where}: data cannot be read (truncated or corrupt file?): {err}") from None


# ------------------------------------------------------------------------------ grid detection
def _spatial_ref(crs: CRS) -> xr.DataArray:
    attrs = {k: v for k, v in crs.to_cf().items() if v is not None}
    attrs["crs_wkt"] = crs.to_wkt()
    attrs["spatial_ref"] = crs.to_wkt()
    return xr.DataArray(np.int32(0), attrs=attrs)


def _regular_1d(values: np.ndarray) -> bool:
    if values.size < 2:
        return False
    steps = np.diff(values.astype("float64"))
    return bool(np.all(steps > 0) and np.allclose(steps, steps.mean(), rtol=1e-3, atol=0))


def _lonlat_2d(ds: xr.Dataset, var: xr.DataArray) -> tuple[str, str] | None:
    """Names of 2-D lon/lat variables on ``var``'s horizontal dims, if the file has them."""
    hdims = set(var.dims[-2:])
    lon = lat = None
    for name in ds.variables:
        cand = ds[name]
        if cand.ndim == 2 and set(cand.dims) == hdims:
            kind = coord_kind(cand)
            if kind == "lon" and lon is None:
                lon = str(name)
            elif kind == "lat" and lat is None:
                lat = str(name)
    return (lon, lat) if lon and lat else None


def _choose_crs(
    ds: xr.Dataset, var: xr.DataArray, x: np.ndarray, y: np.ndarray, where: str
) -> tuple[CRS, str]:
    """The CRS of projected coords ``x``/``y`` (metres), checked against the file's 2-D lon/lat if any.

    Files sometimes state contradictory projection parameters (Arctic20: ``proj4_string`` says
    ``+lon_0=58`` but ``longitude_of_projection_origin`` says -58); each candidate is tested against
    the file's own longitude/latitude arrays and the one that matches within 1.5 grid cells wins.
    """
    candidates = crs_candidates(ds, var)
    if not candidates:
        raise SourceError(
            f"{where}: projected x/y coordinates but no CRS (no grid_mapping, crs_wkt or PROJ string); "
            "set options.crs"
        )
    lonlat = _lonlat_2d(ds, var)
    if lonlat is None:
        return candidates[0][1], candidates[0][0]
    lon, lat = (np.asarray(ds[n].transpose(*var.dims[-2:]).values, dtype="float64") for n in lonlat)
    cell = float(max(abs(x[1] - x[0]) if x.size > 1 else 0, abs(y[1] - y[0]) if y.size > 1 else 0)) or 1.0
    report = []
    for label, crs in candidates:
        err = check_crs_against_lonlat(crs, x, y, lon, lat)
        report.append(f"{label}: {err / 1000:.1f} km")
        if err <= 1.5 * cell:
            return crs, f"{label} (matches the file's {lonlat[0]}/{lonlat[1]} within {err / 1000:.1f} km)"
    raise SourceError(
        f"{where}: no stated CRS agrees with the file's own {lonlat} arrays (max mismatch per candidate: "
        f"{'; '.join(report)}); set options.crs or options.georef: latlon"
    )


def _normalise_grid(ds: xr.Dataset, names: list[str], opts: dict[str, Any], where: str) -> xr.Dataset:
    """Return the selected variables on one normalised regular or curvilinear grid."""
    var = ds[names[0]]
    if var.ndim < 2:
        raise SourceError(f"{where}: variable {names[0]!r} has dims {var.dims}; expected (..., y, x)")
    ydim, xdim = str(var.dims[-2]), str(var.dims[-1])
    for name in names[1:]:
        if ds[name].dims[-2:] != (ydim, xdim):
            raise SourceError(f"{where}: variables {names} are on different grids; use separate sources")
    georef = opts.get("georef", "auto")
    ykind = coord_kind(ds[ydim]) if ydim in ds.coords else None
    xkind = coord_kind(ds[xdim]) if xdim in ds.coords else None
    out = ds[names]
    keep = [c for c in out.coords if c in out.dims or c == "time"]
    lonlat = _lonlat_2d(ds, var)
    regular = xkind in ("x", "lon") and ykind in ("y", "lat") and georef != "latlon"
    if regular:
        xv = np.asarray(ds[xdim].values, dtype="float64")
        yv = np.asarray(ds[ydim].values, dtype="float64")
        if xkind == "lon":
            crs = CRS.from_user_input(opts["crs"]) if opts.get("crs") else _geographic_crs(ds, var)
            wrapped = (xv + 180.0) % 360.0 - 180.0
            # a regional 0..360 grid across 180E (e.g. 150..210) keeps its contiguous axis
            if _regular_1d(np.sort(wrapped)) or not _regular_1d(np.sort(xv)):
                xv = wrapped
            how = "options.crs" if opts.get("crs") else "geographic lat/lon coordinates"
        else:
            xv, yv = xv * length_scale(ds[xdim]), yv * length_scale(ds[ydim])
            if opts.get("crs"):
                crs, how = CRS.from_user_input(opts["crs"]), "options.crs"
            else:
                crs, how = _choose_crs(ds, var, xv, yv, where)
        out = out.reset_coords(drop=True).drop_vars([c for c in out.coords if c not in keep], errors="ignore")
        out = out.rename({ydim: "y", xdim: "x"}).assign_coords(x=xv, y=yv).sortby(["y", "x"])
        if not (_regular_1d(out["x"].values) and _regular_1d(out["y"].values)):
            # irregular 1-D axes (e.g. a point-subsampled global grid): treat as curvilinear
            xx, yy = np.meshgrid(out["x"].values, out["y"].values)
            if xkind != "lon":
                inv = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
                xx, yy = inv.transform(xx, yy)
            out = out.rename({"y": "eta", "x": "xi"}).drop_vars(["x", "y"], errors="ignore")
            out = out.assign_coords(lon=(("eta", "xi"), xx), lat=(("eta", "xi"), yy))
            out.attrs.update(geotwin_grid="curvilinear", geotwin_crs=f"{how}; irregular axes")
            return out
        # float32 axes carry rounding noise: snap them to the exact regular axis through their ends,
        # so the affine transform a warper derives from them (x[1] - x[0]) does not drift across the grid
        out = out.assign_coords(
            x=np.linspace(out["x"].values[0], out["x"].values[-1], out.sizes["x"]),
            y=np.linspace(out["y"].values[0], out["y"].values[-1], out.sizes["y"]),
        )
        out = out.assign_coords(spatial_ref=_spatial_ref(crs))
        out["x"].attrs = {"units": "degrees_east" if crs.is_geographic else "m", "axis": "X"}
        out["y"].attrs = {"units": "degrees_north" if crs.is_geographic else "m", "axis": "Y"}
        for name in names:
            out[name].attrs["grid_mapping"] = "spatial_ref"
            out[name].encoding.pop("grid_mapping", None)
        out.attrs.update(geotwin_grid="regular", geotwin_crs=how)
        return out
    if lonlat is None and "lon" in out.coords and "lat" in out.coords:
        lonlat = ("lon", "lat")
    if lonlat is None:
        raise SourceError(
            f"{where}: cannot locate {names[0]!r} (dims {var.dims}): no 1-D lon/lat or projection x/y "
            "coordinates and no 2-D lon/lat arrays; set options.crs with x/y coordinates"
        )
    lon = np.asarray(ds[lonlat[0]].transpose(ydim, xdim).values, dtype="float64")
    lat = np.asarray(ds[lonlat[1]].transpose(ydim, xdim).values, dtype="float64")
    out = out.reset_coords(drop=True).drop_vars([c for c in out.coords if c not in keep], errors="ignore")
    out = out.assign_coords(lon=((ydim, xdim), (lon + 180.0) % 360.0 - 180.0), lat=((ydim, xdim), lat))
    out.attrs.update(geotwin_grid="curvilinear", geotwin_crs=f"2-D {lonlat[0]}/{lonlat[1]} arrays")
    return out


def _spatial_last(ds: xr.Dataset, var: xr.DataArray) -> xr.DataArray:
    """Put the 1-D latitude/y and longitude/x dims last (files like ``flux(lat, lon, time)``)."""
    kinds = {d: coord_kind(ds[d]) for d in var.dims if d in ds.coords and ds[d].ndim == 1}
    ydim = next((d for d, k in kinds.items() if k in ("lat", "y")), None)
    xdim = next((d for d, k in kinds.items() if k in ("lon", "x")), None)
    if ydim is None or xdim is None or var.dims[-2:] == (ydim, xdim):
        return var
    return var.transpose(*[d for d in var.dims if d not in (ydim, xdim)], ydim, xdim)


def _geographic_crs(ds: xr.Dataset, var: xr.DataArray) -> CRS:
    for _, crs in crs_candidates(ds, var):
        if crs.is_geographic:
            return crs
    return CRS.from_epsg(4326)


def open_gridded(
    path: str | Path, variables: list[str] | None = None, *, where: str | None = None, **options: Any
) -> xr.Dataset:
    """Open a NetCDF/Zarr/GRIB file and normalise it on its native grid (see the module docstring).

    Parameters
    ----------
    path
        File (``.nc``, ``.grib``), Zarr store directory, or URL.
    variables
        Source variable names to keep (default: every data variable on the grid of the first one).
    where
        Prefix for error messages (default: the path).
    **options
        ``level``, ``rotate``, ``crs``, ``time_dim``, ``georef``, ``convert_calendar``, ``engine``.

    Returns
    -------
    xarray.Dataset
        Lazy, with ``attrs["geotwin_grid"]`` = ``regular`` or ``curvilinear`` (see module docstring).
    """
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise SourceError(f"{where or path}: unknown option(s) {sorted(unknown)}; known: {list(OPTIONS)}")
    where = where or str(path)
    raw = _open_raw(path, options.get("engine"))
    names = list(variables) if variables else [str(v) for v in raw.data_vars if raw[v].ndim >= 2]
    if variables is None and names:
        names = [n for n in names if raw[n].dims[-2:] == raw[names[0]].dims[-2:]]
    for name in names:
        if name not in raw.variables:
            raise SourceError(
                f"{where}: variable {name!r} not found; available variables: {sorted(map(str, raw.data_vars))}"
            )
        _probe(raw[name], f"{where}: variable {name!r}")
    if is_roms(raw):
        raw = roms_to_rho(raw, names)
    ds = decode_time(
        raw, options.get("time_dim"), where, convert_calendar=bool(options.get("convert_calendar"))
    )
    level = options.get("level")
    selected = {
        name: select_level(_spatial_last(ds, ds[name]), ds, level, f"{where}: variable {name!r}")
        for name in names
    }
    if any("depth" in da.dims for da in selected.values()):
        # kept z levels: drop the file's full vertical axis (and the variables on it that were not
        # asked for) so the selected levels are not re-aligned onto it
        old = {d for n in names for d in ds[n].dims if d not in selected[n].dims} | {"depth"}
        ds = ds.drop_vars([v for v in ds.variables if set(ds[v].dims) & old and v not in names])
        ds = ds.drop_vars(names)
    for name, da in selected.items():
        ds[name] = da
    if options.get("static") and "time" in ds.dims:
        if ds.sizes["time"] != 1:
            raise SourceError(
                f"{where}: option static needs a single time step, the file has {ds.sizes['time']}"
            )
        ds = ds.isel(time=0, drop=True)
    ds = _normalise_grid(ds, names, options, where)
    if options.get("rotate"):
        if "angle" in raw.variables and ds.attrs.get("geotwin_grid") == "curvilinear":
            ds["angle"] = raw["angle"].reset_coords(drop=True)
        ds = rotate_dataset(ds, list(options["rotate"]), where)
    # files chunked per level/record (ROMS: (1, 1, 1) after level selection) make tiny dask chunks
    hdims = ("y", "x") if ds.attrs["geotwin_grid"] == "regular" else tuple(ds[names[0]].dims[-2:])
    return ds.chunk(
        {d: min(ds.sizes[d], 2048) for d in hdims} | {d: "auto" for d in ds.dims if d not in hdims}
    )


# ------------------------------------------------------------------------------------ loading
def _sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of a directory tree (Zarr) as the digest of its files' relative paths and digests."""
    from ..cube import sha256_file

    if "://" in str(path):
        return "remote"
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    digest = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        digest.update(f"{f.relative_to(p).as_posix()}\0{sha256_file(f)}\n".encode())
    return digest.hexdigest()


def _source_names(raw: xr.Dataset, source: SourceConfig, where: str) -> dict[str, str]:
    """Output name -> source variable name (by ``name`` or CF ``standard_name``)."""
    if not source.variables:
        raise SourceError(f"{where}: field 'variables' is empty; name at least one output variable")
    return {
        out: find_variable(raw, spec.name, spec.standard_name, f"{where}: variable {out!r}")
        for out, spec in source.variables.items()
    }


def _check_not_empty(var: xr.DataArray, where: str) -> None:
    """Raise when the source variable holds no finite value (first field first, then all of it)."""
    first = var.isel({d: 0 for d in var.dims[:-2]})
    if bool(np.isfinite(first).any()) or bool(np.isfinite(var).any()):
        return
    raise SourceError(f"{where}: holds no finite value (all NaN/_FillValue); nothing to align")


def _footprint_overlaps(ds: xr.Dataset, grid: RegionGrid, mesh: Any = None) -> bool:
    """Whether the source footprint and the region grid overlap.

    Regular sources: sample points checked both ways; curvilinear: bounding boxes in the grid CRS.
    """
    gb = grid.geobox
    gcrs = CRS.from_user_input(gb.crs.to_wkt())
    ny, nx = gb.shape
    gy = np.linspace(0, ny - 1, min(ny, 48))
    gx = np.linspace(0, nx - 1, min(nx, 48))
    gxx, gyy = np.meshgrid(gx + 0.5, gy + 0.5)
    tx, ty = gb.transform * (gxx, gyy)
    gx0, gy0, gx1, gy1 = gb.extent.boundingbox
    if ds.attrs["geotwin_grid"] == "regular":
        scrs = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
        xs, ys = ds["x"].values, ds["y"].values
        dx = abs(xs[1] - xs[0]) if xs.size > 1 else 0.0
        dy = abs(ys[1] - ys[0]) if ys.size > 1 else 0.0
        sx0, sx1, sy0, sy1 = xs.min() - dx, xs.max() + dx, ys.min() - dy, ys.max() + dy
        px, py = Transformer.from_crs(gcrs, scrs, always_xy=True).transform(tx, ty)
        if scrs.is_geographic:  # compare longitudes in the source's own window (0..360 grids)
            mid = 0.5 * (sx0 + sx1)
            px = (np.asarray(px) - mid + 180.0) % 360.0 - 180.0 + mid
        if np.any((px >= sx0) & (px <= sx1) & (py >= sy0) & (py <= sy1)):
            return True
        sxx, syy = np.meshgrid(np.linspace(sx0, sx1, 48), np.linspace(sy0, sy1, 48))
        qx, qy = Transformer.from_crs(scrs, gcrs, always_xy=True).transform(sxx, syy)
    else:
        mx0, my0, mx1, my1 = mesh.bounds()
        return mx0 <= gx1 and mx1 >= gx0 and my0 <= gy1 and my1 >= gy0
    return bool(np.any((qx >= gx0) & (qx <= gx1) & (qy >= gy0) & (qy <= gy1)))


def _categorical(raw_var: xr.DataArray, spec: VariableSpec) -> bool:
    enc = raw_var.encoding
    return (
        np.dtype(enc.get("dtype", raw_var.dtype)).kind in "iub"
        and "scale_factor" not in enc
        and "add_offset" not in enc
        and spec.scale is None
    ) or "flag_values" in raw_var.attrs


def _spatial_align(
    var: xr.DataArray,
    ds: xr.Dataset,
    grid: RegionGrid,
    resampling: str,
    mesh: Any,
    where: str,
    categorical: bool = False,
) -> xr.DataArray:
    from ..align import reproject_to_grid
    from ..cube import grid_coords
    from ..grid import GridError
    from ..regrid import RegridError, regrid_curvilinear

    gb = grid.geobox
    chunks = (grid.chunks.get("y", 512), grid.chunks.get("x", 512))
    if ds.attrs["geotwin_grid"] == "regular":
        var = var.transpose(*[d for d in var.dims if d not in ("y", "x")], "y", "x")
        try:
            return reproject_to_grid(var, grid, resampling=resampling, categorical=categorical, what=where)
        except GridError as err:
            raise SourceError(str(err)) from None
    method = "bilinear" if resampling in ("auto", "bilinear") else resampling
    try:
        coords = grid_coords(gb)
        out = regrid_curvilinear(
            var, mesh, coords["x"].values, coords["y"].values, method=method, chunks=chunks
        )
    except RegridError as err:
        raise SourceError(f"{where}: {err}") from None
    return out.assign_coords(coords)


def src_is_geographic(ds: xr.Dataset) -> bool:
    """Whether a normalised regular dataset is on a geographic (lat/lon) CRS."""
    return (
        ds.attrs.get("geotwin_grid") == "regular"
        and CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]).is_geographic
    )


def check_time_coverage(var: xr.DataArray, times: pd.DatetimeIndex | None, where: str) -> None:
    """Raise unless the source's time range covers the whole region time axis."""
    if times is None or "time" not in var.dims or not len(times):
        return
    src = pd.DatetimeIndex(var["time"].values)
    if src.min() > times[0] or src.max() < times[-1]:
        raise SourceError(
            f"{where}: time range {src.min()} .. {src.max()} does not cover the region's time axis "
            f"{times[0]} .. {times[-1]}"
        )


def load(source: SourceConfig, grid: RegionGrid) -> xr.Dataset:
    """Variables of a ``kind: gridded`` source aligned lazily on the region grid.

    Each output variable has ``units``, ``long_name``, ``standard_name`` (when CF has one) and
    ``grid_mapping="spatial_ref"``; ``attrs["geotwin_source_files"]`` lists ``{"path", "sha256"}``.
    Time-dependent variables are interpolated onto ``grid.time`` when the region has a time axis.

    Raises
    ------
    SourceError
        Naming the file/variable: missing or unreadable file, unknown variable (lists the available
        ones), missing units, NaN-only data, a source outside the region, a time range that does not
        cover the region's time axis.
    """
    from ..align import align_time
    from ..cube import grid_coords
    from ..grid import check_same_body
    from ..regrid import RegridError, source_mesh

    where = f"source {source.name!r} ({source.path})"
    opts = dict(source.options)
    unknown = set(opts) - set(OPTIONS)
    if unknown:
        raise SourceError(f"{where}: unknown option(s) {sorted(unknown)}; known: {list(OPTIONS)}")
    raw = _open_raw(source.path, opts.get("engine"))
    names = _source_names(raw, source, where)
    src_names = list(dict.fromkeys(names.values()))
    for pair_name in opts.get("rotate") or []:
        if pair_name not in src_names:
            raise SourceError(
                f"{where}: option rotate names {pair_name!r}, which is not among the selected variables"
            )
    ds = open_gridded(source.path, src_names, where=where, **opts)
    gcrs = CRS.from_user_input(grid.geobox.crs.to_wkt())
    if ds.attrs["geotwin_grid"] == "regular":
        check_same_body(CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]), gcrs, what=where)
    mesh = None
    if ds.attrs["geotwin_grid"] == "curvilinear":
        try:
            center = None
            if gcrs.is_geographic:
                x0, _, x1, _ = grid.geobox.extent.boundingbox
                center = 0.5 * (x0 + x1)
            mesh = source_mesh(ds["lon"].values, ds["lat"].values, gcrs, lon_center=center)
        except RegridError as err:
            raise SourceError(f"{where}: {err}") from None
    if not _footprint_overlaps(ds, grid, mesh):
        raise SourceError(f"{where}: the source does not overlap the region grid {grid.name!r}")
    out: dict[str, xr.DataArray] = {}
    for name, spec in source.variables.items():
        src = names[name]
        vwhere = f"{where}: variable {src!r}"
        var = ds[src]
        units = normalise_units(raw[src].attrs.get("units", ""))
        if spec.units is not None and units:
            var = convert_units(var, units, spec.units, vwhere)
            units = normalise_units(spec.units)
        elif spec.units is not None:
            units = normalise_units(spec.units)
        sn = str(raw[src].attrs.get("standard_name", ""))
        if not units and "units" in raw[src].attrs and sn.endswith(("_fraction", "_ratio")):
            units = "1"  # CF: an empty units string on a dimensionless fraction/ratio means "1"
        if not units:
            raise SourceError(f"{vwhere}: has no units attribute; give 'units' for {name!r} in the config")
        _check_not_empty(var, vwhere)
        if spec.scale is not None:
            var = var * spec.scale
        var = var.astype("float32")
        categorical = _categorical(raw[src], spec)
        resampling = spec.resampling or "auto"
        check_time_coverage(var, grid.time, vwhere)
        aligned = _spatial_align(var, ds, grid, resampling, mesh, vwhere, categorical)
        if grid.time is not None and "time" in aligned.dims:
            aligned = align_time(aligned, grid, opts.get("time_method", "linear"), what=vwhere)
        attrs = {"units": units, "long_name": spec.long_name or raw[src].attrs.get("long_name") or name}
        standard_name = spec.standard_name or ds[src].attrs.get("standard_name")
        if is_standard_name(standard_name):
            attrs["standard_name"] = standard_name
        attrs["grid_mapping"] = "spatial_ref"
        attrs["source_variable"] = src
        aligned.attrs = attrs
        aligned.encoding = {}
        out[name] = aligned
    result = xr.Dataset(out).assign_coords(grid_coords(grid.geobox))
    if grid.time is not None and "time" in result.dims:
        result = result.chunk({"time": min(grid.chunks.get("time", len(grid.time)), len(grid.time))})
        result["time"].attrs.update(standard_name="time", axis="T")
    result.attrs["geotwin_source_files"] = [{"path": str(source.path), "sha256": _sha256_path(source.path)}]
    result.attrs["geotwin_crs"] = ds.attrs.get("geotwin_crs", "")
    return result
