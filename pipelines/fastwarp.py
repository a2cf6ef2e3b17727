"""Fast bilinear/nearest reprojection of in-memory rasters: our own coordinate map plus a fused gather.

GDAL spends about two thirds of a bilinear warp in its approximate coordinate transformer. Here the
destination -> source pixel mapping is built once per (source grid, target grid):

1. exact PROJ transforms (pyproj, vectorised) on a control lattice every :data:`STEP` output pixels;
2. geographic sources: longitudes become source columns in a continuous (unwrapped) space, so a cell
   crossing the source's longitude seam interpolates across it; columns are wrapped afterwards;
3. each lattice cell is checked against exact transforms at its centre and two edge midpoints; a cell
   whose bilinear interpolation errs by more than ``CHECK * TOLERANCE`` source pixels (GDAL's default
   error threshold is 0.125 px) or touches an unprojectable point gets a finer lattice (every
   :data:`SUBSTEP` pixels), checked the same way; its sub-cells that still fail (next to a pole) get
   exact transforms for every pixel.

The gather is a Numba kernel (GIL released, one call per output chunk under dask's threads) that
interpolates the coordinates and samples the source like GDAL's bilinear kernel at scale 1: the 2x2
neighbours with bilinear weights, skipping neighbours outside the source or missing (NaN / nodata) and
renormalising by the weight left; ``nearest`` takes the source pixel that contains the point. The plan
(lattice, flags, exact patches) is cached, so a band or time stack reuses it for every layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from odc.geo.geobox import GeoBox

#: control lattice spacing (output pixels), and that of the finer lattice of cells that fail the check
STEP = 16
SUBSTEP = 4
#: largest accepted interpolation error of a source coordinate (source pixels; GDAL's default)
TOLERANCE = 0.125
#: cells are checked at three points against ``CHECK * TOLERANCE``: the error elsewhere in a cell can
#: exceed the error at the checked points (up to 1.10x on the tests' polar grids: with ``CHECK = 1`` they
#: fail), so the check keeps a 1.33x margin
CHECK = 0.75


def available() -> bool:
    """True when Numba (the gather kernel) can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class CoordPlan:
    """Destination -> source pixel mapping of one (source grid, target grid) pair.

    ``col``/``row`` are source pixel-edge coordinates at the control lattice (output pixel centres
    ``(i * STEP + 0.5, j * STEP + 0.5)``), unwrapped per cell at interpolation time when ``period > 0``.
    ``patch[i, j] >= 0`` indexes the finer lattice ``sub_col``/``sub_row`` (``(k, 5, 5)``, every
    :data:`SUBSTEP` pixels) of a cell that failed the check; ``subpatch[k, a, b] >= 0`` indexes
    ``exact_col``/``exact_row`` (``(m, SUBSTEP, SUBSTEP)``) of a sub-cell that failed it too.
    """

    col: np.ndarray
    row: np.ndarray
    patch: np.ndarray
    sub_col: np.ndarray
    sub_row: np.ndarray
    subpatch: np.ndarray
    exact_col: np.ndarray
    exact_row: np.ndarray
    period: float
    src_shape: tuple[int, int]
    global_x: bool


def _to_src_pixels(
    tr: Any, dst: GeoBox, src: GeoBox, cols: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact source pixel-edge coordinates of output pixel positions ``(cols, rows)``."""
    a = dst.affine
    x = np.ascontiguousarray(a.a * cols + a.b * rows + a.c, dtype="float64").ravel()
    y = np.ascontiguousarray(a.d * cols + a.e * rows + a.f, dtype="float64").ravel()
    sx, sy = _transform(tr, x, y)
    sx = sx.reshape(np.shape(cols))
    sy = sy.reshape(np.shape(cols))
    inv = ~src.affine
    c = inv.a * sx + inv.b * sy + inv.c
    r = inv.d * sx + inv.e * sy + inv.f
    bad = ~(np.isfinite(sx) & np.isfinite(sy) & (np.abs(sx) < 1e30) & (np.abs(sy) < 1e30))
    c[bad] = np.nan
    r[bad] = np.nan
    return c, r


def _transform(tr: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``tr.transform`` in place on copies of ``x``, ``y``."""
    x, y = x.copy(), y.copy()
    with np.errstate(all="ignore"):
        tr.transform(x, y, errcheck=False, inplace=True)
    return x, y


def _transformer(src_wkt: str, dst_wkt: str) -> Any:
    """A pyproj Transformer per thread (plans of different chunks are built in parallel tasks)."""
    import threading

    return _thread_transformer(src_wkt, dst_wkt, threading.get_ident())


@lru_cache(maxsize=64)
def _thread_transformer(src_wkt: str, dst_wkt: str, _thread: int) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(src_wkt, dst_wkt, always_xy=True)


def _unwrap(c: np.ndarray, ref: np.ndarray, period: float) -> np.ndarray:
    """``c`` shifted by whole periods to lie within half a period of ``ref``."""
    if period <= 0:
        return c
    return c - period * np.round((c - ref) / period)


def _interp_at(
    col: np.ndarray, row: np.ndarray, fy: float, fx: float, period: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear interpolation of every lattice cell (last two axes) at fractional position ``(fy, fx)``."""
    c00 = col[..., :-1, :-1]
    c01 = _unwrap(col[..., :-1, 1:], c00, period)
    c10 = _unwrap(col[..., 1:, :-1], c00, period)
    c11 = _unwrap(col[..., 1:, 1:], c00, period)
    r00, r01, r10, r11 = row[..., :-1, :-1], row[..., :-1, 1:], row[..., 1:, :-1], row[..., 1:, 1:]
    ci = (c00 * (1 - fx) + c01 * fx) * (1 - fy) + (c10 * (1 - fx) + c11 * fx) * fy
    ri = (r00 * (1 - fx) + r01 * fx) * (1 - fy) + (r10 * (1 - fx) + r11 * fx) * fy
    return ci, ri


def _bad_cells(
    tr: Any,
    dst: GeoBox,
    src: GeoBox,
    lattice: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    step: int,
    period: float,
) -> np.ndarray:
    """Cells (last two axes) of a lattice ``(cols, rows, src_col, src_row)`` whose interpolation errs by
    more than ``CHECK * TOLERANCE`` at the centre or the top/left edge midpoints, or touch a NaN."""
    cc, rr, col, row = lattice
    bad = np.zeros(col[..., :-1, :-1].shape, dtype=bool)
    for a in (slice(None, -1), slice(1, None)):
        for b in (slice(None, -1), slice(1, None)):
            bad |= ~(np.isfinite(col[..., a, b]) & np.isfinite(row[..., a, b]))
    for fy, fx in ((0.5, 0.5), (0.0, 0.5), (0.5, 0.0)):
        ec, er = _to_src_pixels(tr, dst, src, cc[..., :-1, :-1] + fx * step, rr[..., :-1, :-1] + fy * step)
        ic, ir = _interp_at(col, row, fy, fx, period)
        with np.errstate(invalid="ignore"):
            err = np.maximum(np.abs(_unwrap(ec, ic, period) - ic), np.abs(er - ir))
        bad |= ~(err <= CHECK * TOLERANCE)
    return bad


def _index(bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(index array, positions)``: ``index[bad]`` numbers the bad cells 0.., others -1."""
    index = np.full(bad.shape, -1, dtype=np.int64)
    pos = np.argwhere(bad)
    index[bad] = np.arange(len(pos))
    return index, pos


def clear_cache() -> None:
    """Forget cached coordinate plans (e.g. to time a cold reprojection)."""
    _coord_plan.cache_clear()


def _plan_key(gb: GeoBox) -> tuple[Any, ...]:
    return (tuple(gb.affine)[:6], tuple(gb.shape), gb.crs.to_wkt())


def coord_plan(src: GeoBox, dst: GeoBox, box: tuple[int, int, int, int] | None = None) -> CoordPlan:
    """The (cached) :class:`CoordPlan` of the ``dst`` pixels ``box = (y0, y1, x0, x1)`` (default: all) in
    ``src``; its lattice starts at the box's first pixel."""
    box = box or (0, dst.shape[0], 0, dst.shape[1])
    return _coord_plan(_plan_key(src), _plan_key(dst), tuple(int(v) for v in box), src, dst)


@lru_cache(maxsize=4096)
def _coord_plan(
    _skey: Any, _dkey: Any, box: tuple[int, int, int, int], src: GeoBox, dst: GeoBox
) -> CoordPlan:
    tr = _transformer(dst.crs.to_wkt(), src.crs.to_wkt())
    y0, y1, x0, x1 = box
    ny, nx = y1 - y0, x1 - x0
    s, s2 = STEP, SUBSTEP
    period = 0.0
    if src.crs.geographic and src.affine.b == 0 and src.affine.d == 0:
        period = 360.0 / abs(src.affine.a)
    # level 1: the whole grid every STEP pixels (the lattice reaches past the last pixel)
    cc, rr = np.meshgrid(x0 + np.arange(0, nx + s, s) + 0.5, y0 + np.arange(0, ny + s, s) + 0.5)
    col, row = _to_src_pixels(tr, dst, src, cc, rr)
    patch, cells = _index(_bad_cells(tr, dst, src, (cc, rr, col, row), s, period))
    # level 2: failed cells every SUBSTEP pixels
    off = np.arange(0, s + s2, s2, dtype="float64")
    scc = x0 + cells[:, 1, None, None] * s + 0.5 + off[None, None, :] + 0 * off[None, :, None]
    srr = y0 + cells[:, 0, None, None] * s + 0.5 + off[None, :, None] + 0 * off[None, None, :]
    scol, srow = _to_src_pixels(tr, dst, src, scc, srr)
    subpatch, subcells = _index(_bad_cells(tr, dst, src, (scc, srr, scol, srow), s2, period))
    # level 3: exact transforms for the sub-cells that still fail (next to a pole)
    off = np.arange(s2, dtype="float64")
    k, a, b = subcells.T
    ecc, err = np.broadcast_arrays(
        scc[k, a, b][:, None, None] + off[None, None, :], srr[k, a, b][:, None, None] + off[None, :, None]
    )
    exact_col, exact_row = _to_src_pixels(tr, dst, src, ecc, err)
    h, w = src.shape
    c = np.ascontiguousarray
    return CoordPlan(
        col=c(col),
        row=c(row),
        patch=patch,
        sub_col=c(scol.reshape(-1, s // s2 + 1, s // s2 + 1)),
        sub_row=c(srow.reshape(-1, s // s2 + 1, s // s2 + 1)),
        subpatch=c(subpatch.reshape(-1, s // s2, s // s2)),
        exact_col=c(exact_col.reshape(-1, s2, s2)),
        exact_row=c(exact_row.reshape(-1, s2, s2)),
        period=period,
        src_shape=(h, w),
        global_x=period > 0 and abs(w - period) < 0.5,
    )


def warp_block(
    src: np.ndarray,
    src_gb: GeoBox,
    dst_gb: GeoBox,
    box: tuple[int, int, int, int],
    resampling: str,
    nodata: float | None,
    dtype: np.dtype,
) -> np.ndarray:
    """Output pixels ``box = (y0, y1, x0, x1)`` of the whole source ``src`` (``(..., H, W)``), NaN outside."""
    from ._fastwarp_kernel import gather

    plan = coord_plan(src_gb, dst_gb, box)  # built here, in the task: plans of the chunks build in parallel
    y0, y1, x0, x1 = box
    lead = src.shape[:-2]
    s3 = np.asarray(src).reshape((-1,) + src.shape[-2:])
    if s3.dtype != dtype:
        s3 = s3.astype(dtype)
    out = np.empty((s3.shape[0], y1 - y0, x1 - x0), dtype=dtype)
    gather(
        s3,
        out,
        (plan.col, plan.row, plan.patch),
        (plan.sub_col, plan.sub_row, plan.subpatch),
        (plan.exact_col, plan.exact_row),
        0,
        0,
        STEP,
        SUBSTEP,
        plan.period,
        plan.global_x,
        resampling == "nearest",
        np.nan if nodata is None else float(nodata),
        nodata is not None,
    )
    return out.reshape(lead + (y1 - y0, x1 - x0))
