"""Align a source onto the region grid, lazily (dask).

Regular georeferenced rasters are warped with GDAL (``rasterio.warp.reproject``) **per output chunk**
under dask: for each chunk of the region grid, the window of the source it needs is found by
transforming a lattice of the chunk's pixel edges into the source CRS, then only that window is read
and warped. This is what odc-geo's ``xr_reproject`` does for dask inputs, with three differences that
real grids need:

- a chunk that contains a pole of a geographic source reads all longitudes up to the pole (odc-geo's
  dask path returns all-NaN for an EPSG:3413 grid from an EPSG:4326 source);
- geographic sources are wrapped at their own longitude range (GDAL ``CENTER_LONG``), so a source
  spanning 170E..190E (= -170E) lands on a grid crossing the antimeridian;
- interpolating kernels use a fixed kernel scale (GDAL ``XSCALE``/``YSCALE`` = 1) so results do not
  depend on how the grid is chunked.

``bilinear``/``nearest`` from an in-memory source take a faster path when Numba is installed
(:mod:`pipelines.fastwarp`: our own checked coordinate map plus a Numba gather, no GDAL).

The resampling default follows the resolution ratio: ``average`` (area-weighted, conservative) when the
source is finer than the grid, ``bilinear`` when it is coarser, ``nearest`` for categorical data.
"""

from __future__ import annotations

import itertools
import os
import uuid
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .grid import GridError, check_same_body

if TYPE_CHECKING:  # pragma: no cover
    from odc.geo.geobox import GeoBox

    from .grid import RegionGrid

#: kernel half-widths (source pixels) used to pad a chunk's source window
_KERNEL_PAD = {"nearest": 1, "bilinear": 2, "cubic": 3, "cubic_spline": 3, "lanczos": 4}
_INTERPOLATING = {"bilinear", "cubic", "cubic_spline", "lanczos"}
RESAMPLINGS = (
    "nearest",
    "bilinear",
    "cubic",
    "cubic_spline",
    "lanczos",
    "average",
    "mode",
    "min",
    "max",
    "sum",
)


def auto_resampling(src_resolution: float, dst_resolution: float, categorical: bool = False) -> str:
    """``nearest`` for categories, ``average`` when the source is finer, else ``bilinear``."""
    if categorical:
        return "nearest"
    return "average" if abs(src_resolution) < abs(dst_resolution) else "bilinear"


def crs_label(crs: Any) -> str:
    """Short name of a CRS for messages: ``EPSG:xxxx`` when it has a code, else its name."""
    from pyproj import CRS

    c = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    code = c.to_epsg(min_confidence=90)
    return f"EPSG:{code}" if code else (c.name or "custom CRS")


def source_geobox(data: xr.DataArray, what: str = "source") -> GeoBox:
    """The odc-geo GeoBox of a georeferenced DataArray (CRS from ``spatial_ref``/rioxarray)."""
    import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

    try:
        gbox = data.odc.geobox
    except Exception as err:  # odc-geo raises several types for unreadable grids
        raise GridError(f"{what}: cannot read its grid/CRS ({err})") from None
    if gbox is None or gbox.crs is None:
        raise GridError(f"{what}: has no CRS (expected a 'spatial_ref' coordinate or a CRS in the file)")
    return gbox


def source_resolution_on_grid(src: GeoBox, dst: GeoBox) -> float:
    """Source pixel size expressed in grid CRS units (square root of the projected pixel area).

    Measured at the centre of the grid with a local Jacobian, so it works across CRSs (degrees→metres).
    """
    from pyproj import Transformer

    tr = Transformer.from_crs(dst.crs.to_wkt(), src.crs.to_wkt(), always_xy=True)
    cx, cy = dst.affine * (dst.width / 2, dst.height / 2)
    rx, ry = dst.resolution.x, dst.resolution.y
    xs, ys = tr.transform([cx, cx + rx, cx], [cy, cy, cy + ry])
    inv = ~src.affine
    cols, rows = zip(*(inv * (x, y) for x, y in zip(xs, ys, strict=True)), strict=True)
    # Jacobian of (dst -> source pixel) over one dst pixel: |det| = source pixels per dst pixel
    det = abs((cols[1] - cols[0]) * (rows[2] - rows[0]) - (cols[2] - cols[0]) * (rows[1] - rows[0]))
    if not np.isfinite(det) or det == 0:
        return float("nan")
    return float(np.sqrt(abs(rx * ry) / det))


def _warp_block_shape(ny: int, nx: int, cy: int, cx: int, target: int = 1024) -> tuple[int, int]:
    """Warp block: the grid chunk grown (by whole chunks) towards ``target`` pixels a side, keeping at
    least two blocks per core. Fewer, larger GDAL calls cost less (each call builds its transformer),
    and each block is cut into the grid's chunks afterwards (views, no copy)."""
    ky, kx = max(1, target // cy), max(1, target // cx)
    need = 2 * default_threads()
    while (ky > 1 or kx > 1) and -(-ny // (ky * cy)) * -(-nx // (kx * cx)) < need:
        ky, kx = max(1, ky // 2), max(1, kx // 2)
    return min(ky * cy, ny), min(kx * cx, nx)


def _chunk_edges(size: int, chunk: int, offset: int = 0) -> list[tuple[int, int]]:
    return [(offset + s, offset + min(s + chunk, size)) for s in range(0, size, chunk)]


def _lon_wrap(src: GeoBox) -> tuple[float, float] | None:
    """``(lon_min, centre)`` of a geographic source, or None for projected sources."""
    if not src.crs.geographic:
        return None
    left, right = src.extent.boundingbox.left, src.extent.boundingbox.right
    return left, (left + right) / 2


def _source_windows(
    src: GeoBox, dst: GeoBox, ychunks: list[tuple[int, int]], xchunks: list[tuple[int, int]], pad: int
) -> dict[tuple[int, int], tuple[int, int, int, int] | None]:
    """Source pixel window ``(row0, row1, col0, col1)`` each output chunk needs (None: misses the source).

    Each chunk is sampled on its outline and a 17x17 interior lattice of pixel-edge points, transformed
    to the source CRS in one vectorised pyproj call. Geographic longitudes are wrapped into the source's
    range; a chunk that contains a pole reads every column up to that pole. For a global geographic
    source, a chunk crossing the source's longitude seam gets ``col1 > width``: columns wrap around.
    """
    from pyproj import Transformer

    tr = Transformer.from_crs(dst.crs.to_wkt(), src.crs.to_wkt(), always_xy=True)
    keys, pts_c, pts_r = [], [], []
    for (iy, (y0, y1)), (ix, (x0, x1)) in itertools.product(enumerate(ychunks), enumerate(xchunks)):
        cc, rr = _lattice(x0, x1, y0, y1)
        keys.append((iy, ix))
        pts_c.append(cc)
        pts_r.append(rr)
    cols = np.concatenate(pts_c)
    rows = np.concatenate(pts_r)
    a = dst.affine
    wx, wy = a.a * cols + a.b * rows + a.c, a.d * cols + a.e * rows + a.f
    with np.errstate(all="ignore"):
        sx, sy = tr.transform(wx, wy, errcheck=False)
    sx, sy = np.asarray(sx, dtype="float64"), np.asarray(sy, dtype="float64")
    wrap = _lon_wrap(src)
    ny, nx = src.shape
    crosses = np.zeros(len(keys), dtype=bool)
    alt_lo = alt_hi = crosses
    if wrap is not None:
        sx = (sx - wrap[0]) % 360.0 + wrap[0]
        # a chunk crosses the source's longitude seam when its longitudes span less in the other wrap
        alt = ((sx - wrap[0] - 180.0) % 360.0).reshape(len(keys), -1)
        lon = sx.reshape(len(keys), -1)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            span = np.nanmax(lon, axis=1) - np.nanmin(lon, axis=1)
            alt_lo, alt_hi = np.nanmin(alt, axis=1), np.nanmax(alt, axis=1)
        crosses = (span > 180.0) & (alt_hi - alt_lo < span)
    dx = src.affine.a
    is_global = wrap is not None and src.affine.b == 0 and dx > 0 and abs(nx * dx - 360.0) < 0.5 * dx
    inv = ~src.affine
    scol = (inv.a * sx + inv.b * sy + inv.c).reshape(len(keys), -1)
    srow = (inv.d * sx + inv.e * sy + inv.f).reshape(len(keys), -1)

    poles = _pole_pixels(src, dst) if wrap is not None else []
    out: dict[tuple[int, int], tuple[int, int, int, int] | None] = {}
    for k, key in enumerate(keys):
        c, r = scol[k], srow[k]
        ok = np.isfinite(c) & np.isfinite(r)
        if not ok.any():
            out[key] = None
            continue
        c0, c1 = np.floor(c[ok].min()) - pad, np.ceil(c[ok].max()) + pad
        r0, r1 = np.floor(r[ok].min()) - pad, np.ceil(r[ok].max()) + pad
        if crosses[k]:
            c0, c1 = -pad, nx + pad
            if is_global:  # read across the seam: columns c0..c1 continue past the right edge
                c0 = np.floor((180.0 + alt_lo[k]) / dx) - pad
                c1 = np.ceil((180.0 + alt_hi[k]) / dx) + pad
                if c1 - c0 >= nx:
                    c0, c1 = 0, nx
        (y0, y1), (x0, x1) = ychunks[key[0]], xchunks[key[1]]
        for pc, pr, prow in poles:
            if x0 - 1 <= pc <= x1 + 1 and y0 - 1 <= pr <= y1 + 1:
                c0, c1 = 0, nx
                r0, r1 = min(r0, prow - pad), max(r1, prow + pad)
        if c1 <= nx or not is_global:
            c0, c1 = max(int(c0), 0), min(int(c1), nx)
        else:
            c0, c1 = int(c0) % nx, int(c0) % nx + int(c1 - c0)
        r0, r1 = max(int(r0), 0), min(int(r1), ny)
        out[key] = (r0, r1, c0, c1) if (c1 > c0 and r1 > r0) else None
    return out


def _lattice(x0: int, x1: int, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-edge sample points of a chunk: 129 points along each side plus a 17x17 interior lattice.

    The same number of points for every chunk keeps the transform one vectorised call.
    """
    ex = np.linspace(x0, x1, 129)
    ey = np.linspace(y0, y1, 129)
    cc, rr = np.meshgrid(np.linspace(x0, x1, 17), np.linspace(y0, y1, 17))
    cols = np.concatenate([cc.ravel(), ex, ex, np.full(ey.size, x0), np.full(ey.size, x1)])
    rows = np.concatenate([rr.ravel(), np.full(ex.size, y0), np.full(ex.size, y1), ey, ey])
    return cols, rows


def _pole_pixels(src: GeoBox, dst: GeoBox) -> list[tuple[float, float, float]]:
    """Grid pixel position (col, row) of each pole a geographic source reaches, with its source row."""
    from pyproj import Transformer

    tr = Transformer.from_crs(src.crs.to_wkt(), dst.crs.to_wkt(), always_xy=True)
    out = []
    bb = src.extent.boundingbox
    for lat in (90.0, -90.0):
        if not bb.bottom - 1e-9 <= lat <= bb.top + 1e-9:
            continue
        with np.errstate(all="ignore"):
            x, y = tr.transform(0.0, lat, errcheck=False)
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        col, row = ~dst.affine * (x, y)
        srow = (~src.affine * (bb.left, lat))[1]
        out.append((col, row, srow))
    return out


def _warp_block(
    src: np.ndarray,
    src_transform: Any,
    src_crs: Any,
    dst_transform: Any,
    dst_shape: tuple[int, ...],
    dst_crs: Any,
    resampling: str,
    src_nodata: float | None,
    options: dict[str, Any],
    window: tuple[tuple[slice, ...], tuple[int, int, int, int], int] | None = None,
) -> np.ndarray:
    """Warp one source window into one output chunk with GDAL (NaN outside the source).

    ``src`` is the window itself, or the whole in-memory source when ``window`` says where to cut.
    """
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    src = np.asarray(src if window is None else _window(src, *window))
    if src.dtype.kind != "f" or src.dtype.itemsize < 4:
        src = src.astype("float32")
    dst = np.full(dst_shape, np.nan, dtype=src.dtype)
    lead = int(np.prod(dst_shape[:-2])) if len(dst_shape) > 2 else 0
    s3 = src.reshape((lead,) + src.shape[-2:]) if lead else src
    d3 = dst.reshape((lead,) + dst_shape[-2:]) if lead else dst
    reproject(
        s3,
        d3,
        src_transform=src_transform,
        src_crs=src_crs,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        resampling=Resampling[resampling],
        src_nodata=np.nan if src_nodata is None else src_nodata,
        dst_nodata=np.nan,
        **options,
    )
    return dst


def reproject_to_grid(
    data: xr.DataArray,
    grid: RegionGrid,
    *,
    resampling: str = "bilinear",
    categorical: bool = False,
    chunks: dict[str, int] | None = None,
    num_threads: int | None = None,
    what: str | None = None,
    engine: str = "auto",
) -> xr.DataArray:
    """Reproject a georeferenced DataArray onto ``grid.geobox``, lazily, one dask task per output chunk.

    Parameters
    ----------
    data
        Dims ``(..., y, x)`` (or ``latitude``/``longitude``) with a CRS odc-geo can read (``spatial_ref``
        coordinate or rioxarray CRS). NumPy- or dask-backed; only the source window each output chunk
        needs is read. Floating NaN (or the ``_FillValue``/``nodata`` attr) marks missing source data.
    grid
        The region grid; its ``chunks`` (``y``/``x``) set the output chunking.
    resampling
        A GDAL resampling name (see :data:`RESAMPLINGS`) or ``"auto"`` (:func:`auto_resampling`).
    categorical
        Categorical data: ``auto`` picks ``nearest``.
    chunks
        Output chunk sizes overriding ``grid.chunks``.
    num_threads
        GDAL warp threads per task (default 1: dask already runs one task per core).
    what
        Name used in error messages (default: the DataArray's name).
    engine
        ``"auto"``: ``bilinear``/``nearest`` from an in-memory (NumPy) source use
        :mod:`pipelines.fastwarp` (own coordinate map + Numba gather, ~2-4x faster than GDAL) when Numba is
        installed, everything else GDAL; ``"gdal"``: always GDAL.

    Returns
    -------
    xarray.DataArray
        float32 (float64 if the source is float64) with NaN for no-data, the grid's ``y``/``x``/
        ``spatial_ref`` coordinates, the source attrs and ``grid_mapping="spatial_ref"``.

    Raises
    ------
    GridError
        No CRS, a CRS on another body, an unknown resampling, or a source that does not overlap the grid.
    """
    import dask.array as da

    what = what or str(data.name or "source")
    src_gb = source_geobox(data, what)
    check_same_body(src_gb.crs.to_wkt(), grid.geobox.crs.to_wkt(), what=what)
    dst_gb = grid.geobox
    if resampling == "auto":
        resampling = auto_resampling(
            source_resolution_on_grid(src_gb, dst_gb), dst_gb.resolution.x, categorical
        )
    if resampling not in RESAMPLINGS:
        raise GridError(f"{what}: unknown resampling {resampling!r}; expected one of {RESAMPLINGS}")
    if engine not in ("auto", "gdal"):
        raise GridError(f"{what}: unknown engine {engine!r}; expected 'auto' or 'gdal'")

    chunks = dict(grid.chunks, **(chunks or {}))
    ny, nx = dst_gb.shape
    cy, cx = min(chunks.get("y", 512), ny), min(chunks.get("x", 512), nx)
    in_memory = not isinstance(data.data, da.Array)
    nodata = data.attrs.get("_FillValue", data.attrs.get("nodata"))
    src_nodata = None if nodata is None or (isinstance(nodata, float) and np.isnan(nodata)) else float(nodata)
    # in-memory sources warp in larger blocks (fewer GDAL calls); lazy sources warp chunk by chunk, so
    # that computing one chunk reads only the source blocks under it
    wy, wx = _warp_block_shape(ny, nx, cy, cx) if in_memory else (cy, cx)
    ychunks = _chunk_edges(ny, wy)
    xchunks = _chunk_edges(nx, wx)
    pad = _KERNEL_PAD.get(resampling, 2)
    windows = _source_windows(src_gb, dst_gb, ychunks, xchunks, pad)
    if all(w is None for w in windows.values()):
        raise GridError(
            f"{what}: source bounds {tuple(round(v, 4) for v in src_gb.extent.boundingbox)} "
            f"({crs_label(src_gb.crs)}) do not overlap the region grid "
            f"{tuple(round(v, 4) for v in dst_gb.extent.boundingbox)} ({crs_label(dst_gb.crs)})"
        )
    if engine == "auto" and in_memory and resampling in ("bilinear", "nearest"):
        from . import fastwarp

        if fastwarp.available():
            out = _fast_reproject(data, src_gb, dst_gb, (cy, cx), resampling, src_nodata)
            return _wrap_result(data, out, dst_gb)

    options: dict[str, Any] = {"num_threads": num_threads or 1}
    if resampling in _INTERPOLATING:
        options.update(XSCALE="1", YSCALE="1")
    arr = data.data
    job = _WarpJob(
        arr=arr,
        src=src_gb,
        dst=dst_gb,
        resampling=resampling,
        src_nodata=src_nodata,
        options=options,
        dtype=np.dtype("float64") if data.dtype == np.float64 else np.dtype("float32"),
        in_memory=in_memory,
    )
    lead_shape = tuple(data.shape[:-2])
    lead_chunks: tuple[tuple[int, ...], ...] = (
        tuple(arr.chunks[: len(lead_shape)])
        if hasattr(arr, "chunks") and arr.chunks
        else tuple((n,) for n in lead_shape)
    )
    lead_bounds = [np.concatenate([[0], np.cumsum(c)]) for c in lead_chunks]
    blocks: dict[tuple[int, ...], Any] = {}
    for lead_idx in itertools.product(*(range(len(c)) for c in lead_chunks)):
        lead_sl = tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(lead_bounds, lead_idx, strict=True))
        lead_sz = tuple(s.stop - s.start for s in lead_sl)
        for (iy, (y0, y1)), (ix, (x0, x1)) in itertools.product(enumerate(ychunks), enumerate(xchunks)):
            key = f"{job.token}-{'-'.join(map(str, lead_idx + (iy, ix)))}"
            plan = _plan(
                src_gb,
                dst_gb,
                (y0, y1, x0, x1),
                windows[(iy, ix)],
                pad,
                int(np.prod(lead_sz)) * arr.dtype.itemsize,
            )
            block = _assemble(plan, job, lead_sl, key)
            for gy0, gy1 in _chunk_edges(y1 - y0, cy, y0):  # cut the warp block into the grid's chunks
                for gx0, gx1 in _chunk_edges(x1 - x0, cx, x0):
                    whole = (gy1 - gy0, gx1 - gx0) == (y1 - y0, x1 - x0)
                    piece = block if whole else block[..., gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
                    if piece.numblocks[-2:] != (1, 1):  # pieces of a split block: one chunk per grid chunk
                        piece = piece.rechunk({piece.ndim - 2: -1, piece.ndim - 1: -1})
                    blocks[lead_idx + (gy0 // cy, gx0 // cx)] = piece
    nested = _nest(blocks, tuple(len(c) for c in lead_chunks) + (-(-ny // cy), -(-nx // cx)))
    return _wrap_result(data, da.block(nested), dst_gb)


def _wrap_result(data: xr.DataArray, out: Any, dst_gb: GeoBox) -> xr.DataArray:
    """The reprojected dask array as a DataArray on the grid (coords, attrs, ``grid_mapping``)."""
    from .cube import grid_coords

    lead_dims = data.dims[:-2]
    coords = {d: data.coords[d] for d in lead_dims if d in data.coords}
    coords.update(grid_coords(dst_gb))
    result = xr.DataArray(out, dims=lead_dims + ("y", "x"), coords=coords, name=data.name)
    result.attrs = {
        k: v for k, v in data.attrs.items() if k not in ("nodata", "_FillValue", "scale_factor", "add_offset")
    }
    result.attrs["grid_mapping"] = "spatial_ref"
    return result


def _fast_reproject(
    data: xr.DataArray,
    src_gb: GeoBox,
    dst_gb: GeoBox,
    chunk: tuple[int, int],
    resampling: str,
    src_nodata: float | None,
) -> Any:
    """Dask array of :func:`pipelines.fastwarp.warp_block` tasks, one per grid chunk."""
    import dask
    import dask.array as da

    from . import fastwarp

    dtype = np.dtype("float64") if data.dtype == np.float64 else np.dtype("float32")
    token = f"fastwarp-{uuid.uuid4().hex}"
    # the source enters the graph once, by a unique name (no hashing); each task builds (or takes from
    # the cache) the coordinate plan of its own chunk
    # cast once here (not in every task): integer sources become float so that NaN can mark missing data
    values = np.asarray(data.data).astype(dtype, copy=False)
    source = dask.delayed(values, name=f"{token}-source", traverse=False)
    ny, nx = dst_gb.shape
    lead = tuple(data.shape[:-2])
    rows = []
    for y0, y1 in _chunk_edges(ny, chunk[0]):
        row = []
        for x0, x1 in _chunk_edges(nx, chunk[1]):
            task = dask.delayed(fastwarp.warp_block, pure=False)(
                source,
                src_gb,
                dst_gb,
                (y0, y1, x0, x1),
                resampling,
                src_nodata,
                dtype,
                dask_key_name=f"{token}-{y0}-{x0}",
            )
            shape = lead + (y1 - y0, x1 - x0)
            row.append(da.from_delayed(task, shape=shape, dtype=dtype, name=f"{token}-{y0}-{x0}-block"))
        rows.append(row)
    out = da.block(rows)
    return out


#: largest source window (bytes) one warp task reads; larger windows (near a pole) are split
WINDOW_BUDGET = 64 * 2**20


def _plan(
    src: GeoBox,
    dst: GeoBox,
    box: tuple[int, int, int, int],
    win: Any,
    pad: int,
    elem_bytes: int,
    depth: int = 0,
) -> Any:
    """Quadtree of warp pieces for one block: a leaf ``(box, window)`` when the source window fits in
    :data:`WINDOW_BUDGET`, else four sub-plans. Near a pole every longitude meets, so a block there
    needs a full-width window; splitting leaves that only to the small piece that holds the pole."""
    y0, y1, x0, x1 = box
    if win is None:
        return ("empty", box, None)
    r0, r1, c0, c1 = win
    small = (y1 - y0) <= 16 or (x1 - x0) <= 16 or depth >= 8
    if (r1 - r0) * (c1 - c0) * elem_bytes <= WINDOW_BUDGET or small:
        return ("leaf", box, win)
    ym, xm = (y0 + y1) // 2, (x0 + x1) // 2
    sub = _source_windows(src, dst, [(y0, ym), (ym, y1)], [(x0, xm), (xm, x1)], pad)
    boxes = {
        (0, 0): (y0, ym, x0, xm),
        (0, 1): (y0, ym, xm, x1),
        (1, 0): (ym, y1, x0, xm),
        (1, 1): (ym, y1, xm, x1),
    }
    return (
        "split",
        box,
        {k: _plan(src, dst, b, sub[k], pad, elem_bytes, depth + 1) for k, b in boxes.items()},
    )


def _assemble(plan: Any, job: _WarpJob, lead_sl: tuple[slice, ...], key: str) -> Any:
    """The dask array of a :func:`_plan`: one warp task per leaf, NaN for empty pieces."""
    import dask.array as da

    kind, box = plan[0], plan[1]
    if kind == "empty":
        y0, y1, x0, x1 = box
        lead_sz = tuple(s.stop - s.start for s in lead_sl)
        return da.full(lead_sz + (y1 - y0, x1 - x0), np.nan, dtype=job.dtype)
    if kind == "leaf":
        return job.piece(lead_sl, box, plan[2], key)
    parts = plan[2]
    return da.block(
        [[_assemble(parts[(i, j)], job, lead_sl, f"{key}-{i}{j}") for j in (0, 1)] for i in (0, 1)]
    )


@dataclass
class _WarpJob:
    """What every warp task of one :func:`reproject_to_grid` call shares."""

    arr: Any
    src: GeoBox
    dst: GeoBox
    resampling: str
    src_nodata: float | None
    options: dict[str, Any]
    dtype: np.dtype
    in_memory: bool
    token: str = field(default_factory=lambda: f"reproject-{uuid.uuid4().hex}")
    source: Any = None
    crs: tuple[Any, Any] = ()

    def __post_init__(self) -> None:
        import dask
        from rasterio.crs import CRS as RioCRS

        # parsed once: building GDAL's CRS from WKT in every task costs ~2 ms a call
        self.crs = (RioCRS.from_wkt(self.src.crs.to_wkt()), RioCRS.from_wkt(self.dst.crs.to_wkt()))
        if self.in_memory:
            # a NumPy source enters the graph once, by a unique name (hashing every window would cost
            # more than the warp); each task cuts its own window
            self.source = dask.delayed(np.asarray(self.arr), name=f"{self.token}-source", traverse=False)

    def piece(
        self,
        lead_sl: tuple[slice, ...],
        box: tuple[int, int, int, int],
        win: tuple[int, int, int, int],
        key: str,
    ) -> Any:
        """One lazy warp task: source window ``win`` onto grid pixels ``box`` (y0, y1, x0, x1)."""
        import dask
        import dask.array as da

        y0, y1, x0, x1 = box
        r0, r1, c0, c1 = win
        nx = self.src.shape[1]
        shape = tuple(s.stop - s.start for s in lead_sl) + (y1 - y0, x1 - x0)
        opts = self.options
        if self.src.crs.geographic:  # GDAL wraps longitudes around the window's centre
            opts = dict(opts, CENTER_LONG=f"{(self.src.affine * ((c0 + c1) / 2, 0))[0]:.12g}")
        task = dask.delayed(_warp_block, pure=False)(
            self.source if self.in_memory else _window(self.arr, lead_sl, win, nx),
            self.src.affine * self.src.affine.translation(c0, r0),
            self.crs[0],
            self.dst.affine * self.dst.affine.translation(x0, y0),
            shape,
            self.crs[1],
            self.resampling,
            self.src_nodata,
            opts,
            window=(lead_sl, win, nx) if self.in_memory else None,
            dask_key_name=key,
        )
        return da.from_delayed(task, shape=shape, dtype=self.dtype, name=f"{key}-block")


def _window(arr: Any, lead_sl: tuple[slice, ...], win: tuple[int, int, int, int], nx: int) -> Any:
    """Source window ``rows r0:r1, cols c0:c1`` (columns past ``nx`` wrap around: a global source)."""
    r0, r1, c0, c1 = win
    sub = arr[lead_sl + (slice(r0, r1), slice(c0, min(c1, nx)))]
    if c1 > nx:  # a global geographic source read across its longitude seam
        sub = _concat_x(sub, arr[lead_sl + (slice(r0, r1), slice(0, c1 - nx))])
    return sub


def _concat_x(a: Any, b: Any) -> Any:
    """Concatenate two source pieces along the last (x) axis, NumPy or dask."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.concatenate([a, b], axis=-1)
    import dask.array as da

    return da.concatenate([a, b], axis=-1)


def _nest(blocks: dict[tuple[int, ...], Any], counts: tuple[int, ...], prefix: tuple[int, ...] = ()) -> Any:
    if len(prefix) == len(counts):
        return blocks[prefix]
    return [_nest(blocks, counts, prefix + (i,)) for i in range(counts[len(prefix)])]


def align_time(
    ds: xr.Dataset | xr.DataArray,
    grid: RegionGrid,
    method: str = "linear",
    *,
    tolerance: str | np.timedelta64 | None = None,
    what: str = "source",
) -> xr.Dataset | xr.DataArray:
    """Resample a source in time onto the region's time axis.

    Parameters
    ----------
    ds
        Data with a ``time`` dimension (datetime64).
    grid
        Region grid; when ``grid.time`` is None, ``ds`` is returned unchanged.
    method
        ``"linear"`` (interpolate between the two neighbouring source times; NaN outside the source's
        time range) or ``"nearest"`` (the nearest source time within ``tolerance``, by default half the
        larger of the grid step and the largest source step).

    Raises
    ------
    GridError
        When ``ds`` has no ``time`` dimension, the method is unknown, or the time ranges do not overlap.
    """
    if grid.time is None:
        return ds
    if "time" not in ds.dims:
        raise GridError(f"{what}: has no 'time' dimension to resample onto the region's time axis")
    if method not in ("linear", "nearest"):
        raise GridError(f"{what}: unknown time method {method!r}; expected 'linear' or 'nearest'")
    target = grid.time.values.astype("datetime64[ns]")
    src_t = ds["time"].values.astype("datetime64[ns]")
    if src_t.size == 0:
        raise GridError(f"{what}: has an empty time axis")
    steps = [np.diff(target).max() if target.size > 1 else np.timedelta64(0, "ns")]
    if src_t.size > 1:
        steps.append(np.diff(src_t).max())
    tol = pd_timedelta(tolerance) if tolerance is not None else max(steps) / 2
    if src_t.max() + tol < target.min() or src_t.min() - tol > target.max():
        raise GridError(
            f"{what}: time range {src_t.min()}..{src_t.max()} does not overlap the region's time axis "
            f"{target.min()}..{target.max()}"
        )
    ds = ds.assign_coords(time=src_t)
    if method == "nearest" or src_t.size == 1:
        pos = np.searchsorted(src_t, target)
        lo = np.clip(pos - 1, 0, src_t.size - 1)
        hi = np.clip(pos, 0, src_t.size - 1)
        pick = np.where(np.abs(target - src_t[lo]) <= np.abs(src_t[hi] - target), lo, hi)
        valid = np.abs(src_t[pick] - target) <= tol
        out = ds.isel(time=xr.DataArray(pick, dims="time")).assign_coords(time=target)
        if not valid.all():
            out = out.where(xr.DataArray(valid, dims="time", coords={"time": target}))
    else:
        out = ds.interp(time=target, method="linear", kwargs={"fill_value": np.nan})
    tchunk = grid.chunks.get("time")
    if tchunk:
        out = out.chunk({"time": tchunk})
    return out


def pd_timedelta(value: Any) -> np.timedelta64:
    """A numpy timedelta64[ns] from a pandas-style string (``"3h"``) or timedelta."""
    import pandas as pd

    return pd.Timedelta(value).to_timedelta64()


def default_threads() -> int:
    """Number of usable cores (for GDAL threads when not running under dask)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
