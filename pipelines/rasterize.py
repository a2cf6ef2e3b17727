"""Exact, tiled rasterization of vector features onto a region grid (shapely 2, dask).

Every function takes an array of shapely geometries **already in the grid CRS** and an odc-geo
``GeoBox`` and returns a lazy ``dask.array`` of shape ``geobox.shape``, computed tile by tile
(one dask task per ``chunks`` block), so a grid much larger than memory can be rasterized as long as
the features themselves fit. The features and their STRtree are one shared dask value, computed once;
each tile task works only on the features whose bounding box meets its tile.

The operations are exact (no pixel-centre burning) and vectorised (NumPy over all boundary pieces):

- :func:`area_fraction`: polygons are clipped to the tile (shapely/GEOS), those whose interiors
  overlap are merged (so overlaps count once), and their boundaries are cut at every grid line; the
  covered area of each cell is the boundary integral ``-sum (clamp(y) - y_bottom) dx`` over the pieces
  in its column (a cumulative sum down the column), divided by the cell area;
- :func:`length_density`: lines are cut analytically at every grid line; each piece is credited to
  the one cell holding its midpoint (a road lying on a cell edge is counted once, for the cell below /
  right of it), divided by the cell area;
- :func:`point_sum`: points are binned by the grid's affine transform (a point on an edge goes to the
  cell right of / below it), counting them or summing a value per cell;
- :func:`distance`: distance from each cell centre to the nearest feature (STRtree nearest query over
  short segments; 0 inside polygons).

The cost is linear in the number of boundary pieces plus cells (no per-cell polygon intersections).
Lengths and distances are converted from the grid CRS's linear unit to metres (e.g. US survey feet).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np
import shapely
from pyproj import CRS

# X0, Y0 (grid origin), rx, ry (cell sizes), i0, j0 (tile offset in cells), ny, nx (tile shape).
# Cell edges are always computed from the grid origin and the global cell index, so neighbouring tiles
# agree on them to the last bit.
Tile = tuple[float, float, float, float, int, int, int, int]


class RasterizeError(ValueError):
    """The grid or the geometries cannot be rasterized as asked (the message says why)."""


def grid_tiles(geobox: Any, chunks: tuple[int, int] | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Block sizes along ``y`` and ``x`` for ``geobox`` (``chunks`` capped by the grid shape)."""
    ny, nx = geobox.shape
    cy, cx = chunks or (512, 512)
    cy, cx = max(1, min(int(cy), ny)), max(1, min(int(cx), nx))
    return tuple(da.core.normalize_chunks((cy, cx), (ny, nx)))  # type: ignore[return-value]


def _transform(geobox: Any) -> tuple[float, float, float, float]:
    t = geobox.affine
    if t.b != 0 or t.d != 0:
        raise RasterizeError(
            f"grid transform {tuple(t)[:6]} is rotated; only axis-aligned grids can be rasterized"
        )
    return t.c, t.f, t.a, t.e


def linear_unit_to_metre(geobox: Any) -> float:
    """Metres per linear unit of the grid CRS; raises for geographic (degree) grids."""
    crs = CRS.from_user_input(geobox.crs.to_wkt())
    if crs.is_geographic or not crs.axis_info:
        raise RasterizeError(
            f"grid CRS {crs.name!r} is geographic (degrees); lengths and distances need a projected grid CRS"
        )
    return float(crs.axis_info[0].unit_conversion_factor)


def _edges(tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """Cell edge coordinates of a tile along x (``nx + 1``) and y (``ny + 1``)."""
    x0, y0, rx, ry, i0, j0, ny, nx = tile
    return x0 + rx * np.arange(j0, j0 + nx + 1), y0 + ry * np.arange(i0, i0 + ny + 1)


def _tile_box(tile: Tile) -> tuple[float, float, float, float]:
    xe, ye = _edges(tile)
    return float(xe.min()), float(ye.min()), float(xe.max()), float(ye.max())


def _cell_index(x: np.ndarray, y: np.ndarray, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """Tile-local (row, col) of the cell holding each point (floor convention, may be out of range)."""
    x0, y0, rx, ry, i0, j0, _, _ = tile
    return np.floor((y - y0) / ry).astype(np.int64) - i0, np.floor((x - x0) / rx).astype(np.int64) - j0


def _segments(lines: np.ndarray, max_length: float) -> np.ndarray:
    """Two-point segments (shapely) of all lines, none longer than ``max_length``."""
    pairs = _segment_coords(shapely.segmentize(lines, max_length))
    return shapely.linestrings(pairs) if pairs.size else np.empty(0, dtype=object)


def _segment_coords(geoms: np.ndarray) -> np.ndarray:
    """``(n, 2, 2)`` start/end coordinates of the segments of lines or polygon rings."""
    parts = shapely.get_parts(geoms)
    rings = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    linework = np.concatenate([parts[~rings], shapely.get_rings(parts[rings])])
    coords, idx = shapely.get_coordinates(linework, return_index=True)
    same = idx[1:] == idx[:-1]
    return np.stack([coords[:-1][same], coords[1:][same]], axis=1)


def _pieces(seg: np.ndarray, tile: Tile) -> tuple[np.ndarray, ...]:
    """Cut segments at every grid line: global ``row, col`` and ``xa, ya, xb, yb`` of each piece.

    Segments are first divided evenly so that none spans more than half a cell along either axis;
    each part then crosses at most one vertical and one horizontal grid line, found analytically. A
    piece's cell is the one holding its midpoint (floor convention: a piece on an edge goes to the cell
    right of / below it). Axis-parallel segments keep their exact constant coordinate.
    """
    x0, y0, rx, ry = tile[:4]
    a, d = seg[:, 0], seg[:, 1] - seg[:, 0]
    k = np.ceil(2.0 * np.maximum(np.abs(d[:, 0] / rx), np.abs(d[:, 1] / ry))).astype(np.int64)
    k = np.maximum(k, 1)
    idx = np.repeat(np.arange(seg.shape[0]), k)
    j = np.arange(idx.size) - np.repeat(np.cumsum(k) - k, k)
    p = a[idx] + (j / k[idx])[:, None] * d[idx]
    q = np.where((j + 1 == k[idx])[:, None], seg[idx, 1], a[idx] + ((j + 1) / k[idx])[:, None] * d[idx])
    dq = q - p
    ts = [np.zeros(idx.size), np.ones(idx.size)]
    for axis, origin, step in ((0, x0, rx), (1, y0, ry)):
        cp, cq = np.floor((p[:, axis] - origin) / step), np.floor((q[:, axis] - origin) / step)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (origin + step * np.maximum(cp, cq) - p[:, axis]) / dq[:, axis]
        ts.append(np.where(cp != cq, np.clip(t, 0.0, 1.0), 1.0))
    ts = np.sort(np.stack(ts, axis=1), axis=1)  # 0 <= t_x, t_y <= 1: three pieces per part
    s0, s1 = ts[:, :-1].ravel(), ts[:, 1:].ravel()
    rep = np.repeat(np.arange(idx.size), 3)
    keep = s1 > s0
    s0, s1, rep = s0[keep], s1[keep], rep[keep]
    start, end = p[rep] + s0[:, None] * dq[rep], p[rep] + s1[:, None] * dq[rep]
    # exact ends where the piece ends at the part's ends (keeps edge-parallel pieces on the edge)
    start = np.where((s0 == 0.0)[:, None], p[rep], start)
    end = np.where((s1 == 1.0)[:, None], q[rep], end)
    mid = 0.5 * (start + end)
    row = np.floor((mid[:, 1] - y0) / ry).astype(np.int64)
    col = np.floor((mid[:, 0] - x0) / rx).astype(np.int64)
    return row, col, start[:, 0], start[:, 1], end[:, 0], end[:, 1]


def _length_tile(lines: np.ndarray, tile: Tile) -> np.ndarray:
    rx, ry, i0, j0, ny, nx = tile[2:]
    out = np.zeros(ny * nx)
    if lines.size:  # only the part of each line inside this tile (closed box; pieces on its edge kept once)
        seg = _segment_coords(shapely.intersection(lines, shapely.box(*_tile_box(tile))))
        if seg.size:
            row, col, xa, ya, xb, yb = _pieces(seg, tile)
            row, col = row - i0, col - j0
            inside = (row >= 0) & (row < ny) & (col >= 0) & (col < nx)
            length = np.hypot(xb - xa, yb - ya)[inside]
            out = np.bincount(row[inside] * nx + col[inside], weights=length, minlength=ny * nx)
    return (out / abs(rx * ry)).reshape(ny, nx)


def _union_overlaps(polys: np.ndarray) -> np.ndarray:
    """Polygons with disjoint interiors: those whose interiors overlap are merged (union)."""
    if polys.size < 2:
        return polys
    tree = shapely.STRtree(polys)
    a, b = tree.query(polys, predicate="intersects")
    pair = a < b
    a, b = a[pair], b[pair]
    overlap = shapely.relate_pattern(polys[a], polys[b], "T********")
    if not overlap.any():
        return polys
    merge = np.zeros(polys.size, dtype=bool)
    merge[a[overlap]] = merge[b[overlap]] = True
    merged = shapely.get_parts(shapely.union_all(polys[merge]))
    return np.concatenate(
        [polys[~merge], merged[shapely.get_type_id(merged) == shapely.GeometryType.POLYGON]]
    )


def _area_tile(geoms: np.ndarray, tile: Tile) -> np.ndarray:
    """Covered area per cell by the boundary integral of ``-(y - y_bottom) dx`` (exact).

    For polygons with counter-clockwise exteriors (clockwise holes), the area inside a cell is
    ``-sum (clamp(y, bottom, top) - bottom) dx`` over the boundary pieces in its column: a piece in the
    cell adds its trapezoid, a piece above it adds the full cell height times ``dx``. The second part
    is a cumulative sum down each column, so the cost is linear in boundary pieces plus cells.
    """
    x0, y0, rx, ry, i0, j0, ny, nx = tile
    area = np.zeros((ny, nx))
    box = shapely.box(*_tile_box(tile))
    inside = shapely.covered_by(geoms, box)
    clipped = np.concatenate([geoms[inside], shapely.intersection(geoms[~inside], box)])
    parts = shapely.get_parts(clipped)
    parts = parts[shapely.get_type_id(parts) == shapely.GeometryType.POLYGON]
    if parts.size:
        parts = shapely.orient_polygons(_union_overlaps(parts), exterior_cw=False)
        seg = _segment_coords(parts)
        sign = 1.0
        if ry > 0:  # south-up grid: mirror y so rows still run downwards (mirroring flips orientation)
            seg, y0, ry, sign = seg * np.array([1.0, -1.0]), -y0, -ry, -1.0
        row, col, xa, ya, xb, yb = _pieces(seg, (x0, y0, rx, ry, i0, j0, ny, nx))
        # pieces of clipped polygons lie in the tile; clamp those that rounding put just outside
        row, col = np.clip(row - i0, 0, ny - 1), np.clip(col - j0, 0, nx - 1)
        bottom = y0 + ry * (i0 + row + 1)
        dx = xb - xa
        np.add.at(area, (row, col), (0.5 * (ya + yb) - bottom) * dx)
        below = row + 1 < ny
        carry = np.zeros((ny, nx))
        np.add.at(carry, (row[below] + 1, col[below]), abs(ry) * dx[below])
        area += np.cumsum(carry, axis=0)
        area *= -sign
    return np.clip(area / abs(rx * ry), 0.0, 1.0)


def _point_tile(xy: np.ndarray, values: np.ndarray | None, tile: Tile) -> np.ndarray:
    ny, nx = tile[6], tile[7]
    row, col = _cell_index(xy[:, 0], xy[:, 1], tile)
    inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
    flat = row[inside] * nx + col[inside]
    weights = None if values is None else values[inside]
    return np.bincount(flat, weights=weights, minlength=ny * nx).astype(float).reshape(ny, nx)


def _distance_tile(tree: shapely.STRtree, areas: shapely.STRtree | None, tile: Tile) -> np.ndarray:
    x0, y0, rx, ry, i0, j0, ny, nx = tile
    xc = x0 + rx * (np.arange(j0, j0 + nx) + 0.5)
    yc = y0 + ry * (np.arange(i0, i0 + ny) + 0.5)
    xx, yy = np.meshgrid(xc, yc)
    centres = shapely.points(xx.ravel(), yy.ravel())
    _, dist = tree.query_nearest(centres, return_distance=True, all_matches=False)
    if areas is not None:  # inside a polygon the distance is 0
        dist[areas.query(centres, predicate="intersects")[0]] = 0.0
    return dist.reshape(ny, nx)


def _tiled(
    geobox: Any,
    chunks: tuple[int, int] | None,
    shared: Any,
    block: Callable[[Any, Tile], np.ndarray],
    dtype: str,
    name: str,
) -> da.Array:
    """A lazy array whose every block is ``block(shared, tile)``.

    ``shared`` is one dask.delayed value (the features and their STRtree), computed once and handed to
    every block task; the graph is a single blockwise layer, so slicing a corner of a huge grid only
    computes the tiles it touches.
    """
    x0, y0, rx, ry = _transform(geobox)
    ychunks, xchunks = grid_tiles(geobox, chunks)

    def run(_template: np.ndarray, value: Any, block_info: dict | None = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[0]["array-location"]  # type: ignore[index]
        return block(value, (x0, y0, rx, ry, r0, c0, r1 - r0, c1 - c0)).astype(dtype)

    template = da.zeros(tuple(geobox.shape), chunks=(ychunks, xchunks), dtype=bool)
    meta = np.empty((0, 0), dtype=dtype)
    return da.map_blocks(run, template, shared, dtype=dtype, meta=meta, name=f"{name}-{uuid.uuid4().hex}")


def _with_tree(geoms: np.ndarray) -> tuple[np.ndarray, shapely.STRtree]:
    tree = shapely.STRtree(geoms)
    tree.query(shapely.box(0, 0, 0, 0))  # build now, before threads share it
    return geoms, tree


def _shared(func: Callable[..., Any], *args: Any, name: str) -> Any:
    return dask.delayed(func, pure=False)(*args, dask_key_name=f"{name}-{uuid.uuid4().hex}")


def _in_tile(block: Callable[[np.ndarray, Tile], np.ndarray]) -> Callable[[Any, Tile], np.ndarray]:
    """Wrap a tile function so it receives only the features whose bounding box meets the tile."""

    def run(shared: tuple[np.ndarray, shapely.STRtree], tile: Tile) -> np.ndarray:
        geoms, tree = shared
        return block(geoms[np.sort(tree.query(shapely.box(*_tile_box(tile))))], tile)

    return run


def _as_array(geoms: Any) -> np.ndarray:
    arr = np.asarray(geoms, dtype=object).ravel()
    return arr[~(shapely.is_missing(arr) | shapely.is_empty(arr))]


def area_fraction(
    polygons: Any, geobox: Any, chunks: tuple[int, int] | None = None, dtype: str = "float32"
) -> da.Array:
    """Fraction (0..1) of each cell covered by the union of ``polygons`` (exact).

    Parameters
    ----------
    polygons
        Shapely (multi)polygons in the grid CRS (invalid ones are repaired with ``make_valid``).
    geobox
        odc-geo GeoBox of the grid (axis-aligned).
    chunks
        ``(y, x)`` tile size of the result (default 512 x 512).
    dtype
        Output dtype.
    """
    shared = _shared(_with_tree, shapely.make_valid(_as_array(polygons)), name="polygons")
    return _tiled(geobox, chunks, shared, _in_tile(_area_tile), dtype, "area-fraction")


def weighted_area(
    polygons: Any, weights: Any, geobox: Any, chunks: tuple[int, int] | None = None, dtype: str = "float32"
) -> da.Array:
    """Sum over polygons of ``weight x`` the fraction of each cell they cover (exact areas).

    With building levels as weights this is the floor-area ratio (floor area per ground area). Polygons
    of equal weight are merged where they overlap (counted once, as in :func:`area_fraction`);
    overlapping polygons of different weights both count.
    """
    polys, w = _as_array(polygons), np.asarray(weights, dtype=float)
    if w.shape != polys.shape or not np.all(np.isfinite(w)):
        raise RasterizeError("weights must be finite and one per polygon")
    total = da.zeros(tuple(geobox.shape), chunks=grid_tiles(geobox, chunks), dtype=dtype)
    for value in np.unique(w):  # a few distinct values (e.g. levels): one exact area raster each
        if value != 0:
            total = total + np.asarray(value, dtype=dtype) * area_fraction(
                polys[w == value], geobox, chunks, dtype
            )
    return total


def length_density(
    lines: Any, geobox: Any, chunks: tuple[int, int] | None = None, dtype: str = "float32"
) -> da.Array:
    """Metres of line per square metre of cell (``m m-2``), lines cut exactly at cell edges.

    Parameters are as for :func:`area_fraction`; ``lines`` are (multi)linestrings in the grid CRS,
    whose linear unit is converted to metres. Raises :class:`RasterizeError` on a geographic grid.
    """
    factor = linear_unit_to_metre(geobox)
    shared = _shared(_with_tree, _as_array(lines), name="lines")
    out = _tiled(geobox, chunks, shared, _in_tile(_length_tile), "float64", "length-density")
    return (out / factor).astype(dtype)


def _points_in_tile(shared: tuple[np.ndarray, np.ndarray | None], tile: Tile) -> np.ndarray:
    xy, vals = shared
    xmin, ymin, xmax, ymax = _tile_box(tile)
    sel = (xy[:, 0] >= xmin) & (xy[:, 0] <= xmax) & (xy[:, 1] >= ymin) & (xy[:, 1] <= ymax)
    return _point_tile(xy[sel], None if vals is None else vals[sel], tile)


def point_sum(
    points: Any,
    geobox: Any,
    values: Any | None = None,
    chunks: tuple[int, int] | None = None,
    dtype: str = "float32",
) -> da.Array:
    """Number of points per cell, or the sum of ``values`` (one per point; NaN counts as 0) per cell.

    Parameters are as for :func:`area_fraction`; ``points`` are single points in the grid CRS.
    """
    geoms = np.asarray(points, dtype=object).ravel()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    xy = shapely.get_coordinates(geoms[ok])
    if xy.shape[0] != int(ok.sum()):
        raise RasterizeError("point_sum needs single points (one coordinate per geometry)")
    vals = None if values is None else np.nan_to_num(np.asarray(values, dtype=float).ravel()[ok])
    shared = _shared(tuple, [xy, vals], name="points")
    return _tiled(geobox, chunks, shared, _points_in_tile, dtype, "point-sum")


def _nearest_trees(parts: np.ndarray, polygons: np.ndarray) -> tuple[shapely.STRtree, shapely.STRtree | None]:
    return _with_tree(parts)[1], _with_tree(polygons)[1] if polygons.size else None


def distance(
    features: Any, geobox: Any, chunks: tuple[int, int] | None = None, dtype: str = "float32"
) -> da.Array:
    """Distance in metres from each cell centre to the nearest feature (0 inside polygons).

    Parameters are as for :func:`area_fraction`; ``features`` are any geometries in the grid CRS.
    """
    factor = linear_unit_to_metre(geobox)
    geoms = _as_array(features)
    if not geoms.size:
        raise RasterizeError("distance needs at least one feature")
    step = 64 * min(abs(v) for v in _transform(geobox)[2:])
    kind = shapely.get_type_id(geoms)
    polygonal = np.isin(kind, [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON])
    pointlike = np.isin(kind, [shapely.GeometryType.POINT, shapely.GeometryType.MULTIPOINT])
    polygons = shapely.get_parts(shapely.make_valid(geoms[polygonal]))
    polygons = polygons[np.isin(shapely.get_type_id(polygons), [shapely.GeometryType.POLYGON])]
    # nearest query over short boundary/line segments and points; a polygon tree only for "inside"
    linework = np.concatenate([shapely.boundary(polygons), geoms[~(polygonal | pointlike)]])
    parts = np.concatenate([shapely.get_parts(geoms[pointlike]), _segments(linework, step)])
    shared = _shared(_nearest_trees, parts, polygons, name="features")
    out = _tiled(
        geobox, chunks, shared, lambda trees, tile: _distance_tile(*trees, tile), "float64", "distance"
    )
    return (out * factor).astype(dtype)
