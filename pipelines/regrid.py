"""Regrid curvilinear (2-D longitude/latitude) fields onto a region grid, lazily with dask.

Ocean and atmosphere models (ROMS, NEMO, WRF, ...) often store their fields on curvilinear grids
described only by 2-D ``lon``/``lat`` arrays, without a CRS that a warper could use. This module
interpolates such fields onto an odc-geo ``GeoBox``:

* the source points are projected into the target CRS (pyproj);
* each source cell (quad) is split into two triangles, so the footprint is exactly the source
  grid's own cells (no interpolation across land gaps, concave edges or missing coordinates);
* each target cell centre is located in its triangle with a KD-tree (scipy) of the source points
  and barycentric weights are computed (``bilinear``: piecewise-linear interpolation, exact for a
  field linear in target x/y; ``nearest``: the nearest vertex of that triangle);
* target points outside every source triangle get NaN.

Weights are computed per output chunk inside the dask graph, and values are gathered per
(leading-dims chunk, y chunk, x chunk), so memory stays bounded by the chunk sizes.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from pyproj import CRS, Transformer

__all__ = ["RegridError", "SourceMesh", "source_mesh", "regrid_curvilinear", "mesh_weights"]

_BATCH = 1 << 15


class RegridError(ValueError):
    """The source mesh cannot be regridded onto the target grid (e.g. it misses the grid entirely)."""


class SourceMesh:
    """Source points of a curvilinear grid projected into the target CRS, with a KD-tree.

    Parameters
    ----------
    lon, lat
        2-D arrays ``(m, n)`` of geographic coordinates of the source points (degrees).
    dst_crs
        Target CRS.
    src_crs
        Geographic CRS of ``lon``/``lat`` (default WGS 84).
    lon_center
        For a geographic target: longitudes are wrapped into ``lon_center ± 180`` first, so a target
        grid across the antimeridian (e.g. 170..190E) meets the source points.

    Cells with an edge over 30 times the median edge length (cells spanning a longitude seam in
    the target CRS) are left out, so they never smear values across the map.
    """

    def __init__(
        self,
        lon: np.ndarray,
        lat: np.ndarray,
        dst_crs: Any,
        src_crs: Any = "EPSG:4326",
        lon_center: float | None = None,
    ) -> None:
        from scipy.spatial import cKDTree

        lon = np.asarray(lon, dtype="float64")
        lat = np.asarray(lat, dtype="float64")
        if lon.shape != lat.shape or lon.ndim != 2 or min(lon.shape) < 2:
            raise RegridError(
                f"curvilinear lon/lat must be 2-D arrays of the same shape (>= 2x2), got {lon.shape}"
            )
        self.shape: tuple[int, int] = lon.shape  # type: ignore[assignment]
        if lon_center is not None:
            lon = (lon - lon_center + 180.0) % 360.0 - 180.0 + lon_center
        transformer = Transformer.from_crs(
            CRS.from_user_input(src_crs), CRS.from_user_input(dst_crs), always_xy=True
        )
        x, y = transformer.transform(lon, lat)
        pts = np.stack([np.ravel(x), np.ravel(y)], axis=-1)
        pts[~np.isfinite(pts).all(axis=1)] = np.nan
        self.points = pts
        finite = np.isfinite(pts).all(axis=1)
        if not finite.any():
            raise RegridError("no source point has finite coordinates in the target CRS")
        self._tree_index = np.flatnonzero(finite)
        self.tree = cKDTree(pts[finite])
        m, n = self.shape
        grid = pts.reshape(m, n, 2)
        down = np.hypot(*(grid[1:, :] - grid[:-1, :]).transpose(2, 0, 1))  # (m-1, n)
        across = np.hypot(*(grid[:, 1:] - grid[:, :-1]).transpose(2, 0, 1))  # (m, n-1)
        quad = np.fmax(np.fmax(down[:, :-1], down[:, 1:]), np.fmax(across[:-1, :], across[1:, :]))
        finite_quads = np.isfinite(quad)
        median = float(np.median(quad[finite_quads])) if finite_quads.any() else 0.0
        #: cells left out of the triangulation (non-finite corners or spanning a seam)
        self.bad_quad = (~finite_quads | (quad > 30.0 * median)).ravel()
        good = quad[~self.bad_quad.reshape(quad.shape)]
        # a target point farther than this from every source point cannot lie in a source cell
        self.max_reach = 2.0 * (float(good.max()) if good.size else 0.0)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the projected source points."""
        x, y = self.points[:, 0], self.points[:, 1]
        return (float(np.nanmin(x)), float(np.nanmin(y)), float(np.nanmax(x)), float(np.nanmax(y)))


def source_mesh(
    lon: np.ndarray,
    lat: np.ndarray,
    dst_crs: Any,
    src_crs: Any = "EPSG:4326",
    lon_center: float | None = None,
) -> SourceMesh:
    """Build a :class:`SourceMesh` (see there)."""
    return SourceMesh(lon, lat, dst_crs, src_crs, lon_center)


def _candidate_triangles(nodes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Indices of the (up to) 8 triangles around each node, ``-1`` where absent; ``(N, k*8)``."""
    m, n = shape
    i, j = np.divmod(nodes, n)
    out = []
    for di in (-1, 0):
        for dj in (-1, 0):
            qi, qj = i + di, j + dj
            ok = (qi >= 0) & (qi < m - 1) & (qj >= 0) & (qj < n - 1)
            q = np.where(ok, qi * (n - 1) + qj, -1)
            out.append(np.where(ok, 2 * q, -1))
            out.append(np.where(ok, 2 * q + 1, -1))
    return np.concatenate(out, axis=-1)


def _triangle_vertices(tri: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat source indices ``(..., 3)`` of triangle ids (each quad a-b / c-d split along a-d)."""
    n = shape[1]
    q, half = np.divmod(np.maximum(tri, 0), 2)
    qi, qj = np.divmod(q, n - 1)
    a = qi * n + qj
    b, c, d = a + 1, a + n, a + n + 1
    second = np.where(half == 0, b, d)
    third = np.where(half == 0, d, c)
    return np.stack([a, second, third], axis=-1)


def _in_triangles(
    mesh: SourceMesh, p: np.ndarray, nodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search the triangles around ``nodes`` ``(R, k)`` for points ``p`` ``(R, 2)``.

    Returns ``found`` ``(R,)``, vertex indices ``(R, 3)`` and barycentric weights ``(R, 3)``.
    """
    cand = _candidate_triangles(nodes, mesh.shape)  # (R, 8k)
    cand = np.where((cand >= 0) & ~mesh.bad_quad[np.maximum(cand, 0) // 2], cand, -1)
    verts = _triangle_vertices(cand, mesh.shape)  # (R, 8k, 3)
    xy = mesh.points[verts]  # (R, 8k, 3, 2)
    a, b, c = xy[..., 0, :], xy[..., 1, :], xy[..., 2, :]
    v0, v1, v2 = b - a, c - a, p[:, None, :] - a
    den = v0[..., 0] * v1[..., 1] - v1[..., 0] * v0[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        l1 = (v2[..., 0] * v1[..., 1] - v1[..., 0] * v2[..., 1]) / den
        l2 = (v0[..., 0] * v2[..., 1] - v2[..., 0] * v0[..., 1]) / den
    lam = np.stack([1.0 - l1 - l2, l1, l2], axis=-1)
    inside = (cand >= 0) & (den != 0) & np.isfinite(lam).all(axis=-1) & (lam >= -1e-9).all(axis=-1)
    found = inside.any(axis=1)
    pick = np.argmax(inside, axis=1)
    rows = np.arange(len(p))
    return found, verts[rows, pick], np.clip(lam[rows, pick], 0.0, 1.0)


def _locate(mesh: SourceMesh, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex indices ``(N, 3)`` and barycentric weights ``(N, 3)`` (NaN outside) of target points.

    The triangles around the nearest source point are searched first; points not found there
    (sheared cells) are searched around their 4 nearest source points.
    """
    target = np.stack([px, py], axis=-1)
    n_pts = target.shape[0]
    index = np.zeros((n_pts, 3), dtype="int64")
    weight = np.full((n_pts, 3), np.nan)
    for start in range(0, n_pts, _BATCH):
        p = target[start : start + _BATCH]
        pending = np.arange(len(p))
        for k in (1, min(4, mesh.tree.n)):
            if not pending.size:
                break
            dist, near = mesh.tree.query(p[pending], k=k, distance_upper_bound=mesh.max_reach)
            dist, near = dist.reshape(len(pending), k), near.reshape(len(pending), k)
            reachable = np.isfinite(dist[:, 0])
            pending, dist, near = pending[reachable], dist[reachable], near[reachable]
            if not pending.size:
                break
            nodes = mesh._tree_index[np.minimum(near, mesh.tree.n - 1)]
            nodes = np.where(np.isfinite(dist), nodes, nodes[:, :1])
            found, verts, lam = _in_triangles(mesh, p[pending], nodes)
            index[start + pending[found]] = verts[found]
            weight[start + pending[found]] = lam[found]
            pending = pending[~found]
    return index, weight


def mesh_weights(
    mesh: SourceMesh, x: np.ndarray, y: np.ndarray, method: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation weights for the target cell centres ``x`` (1-D) by ``y`` (1-D).

    Returns
    -------
    index, weight
        Arrays ``(len(y), len(x), 3)``: flat source indices and weights (NaN outside the footprint).
    """
    if method not in ("bilinear", "nearest"):
        raise RegridError(
            f"resampling {method!r} is not available for curvilinear sources; use bilinear or nearest"
        )
    xx, yy = np.meshgrid(np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"))
    index, weight = _locate(mesh, xx.ravel(), yy.ravel())
    if method == "nearest":
        ok = np.isfinite(weight).all(axis=1)
        best = np.argmax(np.nan_to_num(weight, nan=-1.0), axis=1)
        index = np.repeat(index[np.arange(len(index)), best][:, None], 3, axis=1)
        weight = np.where(ok[:, None], np.array([1.0, 0.0, 0.0]), np.nan)
    shape = (len(y), len(x), 3)
    return index.reshape(shape), weight.reshape(shape)


def _weights_block(y: np.ndarray, x: np.ndarray, mesh: SourceMesh, method: str) -> np.ndarray:
    index, weight = mesh_weights(mesh, x, y, method)
    return np.stack([index.astype("float64"), weight], axis=-1)  # (yb, xb, 3, 2)


def _gather_block(src: np.ndarray, iw: np.ndarray) -> np.ndarray:
    index = iw[..., 0].astype("int64")  # (yb, xb, 3)
    weight = iw[..., 1]
    values = src[:, index]  # (t, yb, xb, 3)
    used = weight > 0
    contrib = np.where(used, values * np.where(used, weight, 0.0), 0.0)
    bad = (used & ~np.isfinite(values)).any(axis=-1) | ~np.isfinite(weight).all(axis=-1)
    out = contrib.sum(axis=-1)
    out[..., bad] = np.nan
    return out.astype(src.dtype if src.dtype.kind == "f" else "float64")


def regrid_curvilinear(
    data: xr.DataArray,
    mesh: SourceMesh,
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: str = "bilinear",
    chunks: tuple[int, int] = (512, 512),
) -> xr.DataArray:
    """Interpolate ``data`` (dims ``(..., m, n)`` matching ``mesh.shape``) onto target centres ``y``, ``x``.

    Parameters
    ----------
    data
        Field whose last two dims are the curvilinear grid dims. Leading dims (time, ...) are kept.
    mesh
        :class:`SourceMesh` of the source lon/lat projected into the target CRS.
    x, y
        1-D cell-centre coordinates of the target grid (target CRS units).
    method
        ``bilinear`` (piecewise linear on the source cells) or ``nearest``.
    chunks
        Output chunk sizes ``(y, x)``.

    Returns
    -------
    xarray.DataArray
        Lazy (dask) array with dims ``(..., "y", "x")``, NaN outside the source footprint.
    """
    if tuple(data.shape[-2:]) != mesh.shape:
        raise RegridError(f"data grid {data.shape[-2:]} does not match the lon/lat arrays {mesh.shape}")
    lead_dims = data.dims[:-2]
    lead_shape = data.shape[:-2]
    arr = data.data if isinstance(data.data, da.Array) else da.from_array(np.asarray(data.values))
    if arr.dtype.kind != "f":
        arr = arr.astype("float32")
    arr = arr.rechunk({arr.ndim - 2: -1, arr.ndim - 1: -1})
    n_lead = int(np.prod(lead_shape)) if lead_shape else 1
    lead_chunk = arr.chunks[0][0] if lead_shape and len(lead_shape) == 1 else n_lead
    flat = arr.reshape((n_lead, mesh.shape[0] * mesh.shape[1]), merge_chunks=True).rechunk((lead_chunk, -1))
    ycoord = da.from_array(np.asarray(y, dtype="float64"), chunks=chunks[0])
    xcoord = da.from_array(np.asarray(x, dtype="float64"), chunks=chunks[1])
    iw = da.blockwise(
        _weights_block,
        "yxkc",
        ycoord,
        "y",
        xcoord,
        "x",
        new_axes={"k": 3, "c": 2},
        dtype="float64",
        mesh=mesh,
        method=method,
    )
    out = da.blockwise(_gather_block, "tyx", flat, "tz", iw, "yxkc", concatenate=True, dtype=flat.dtype)
    out = out.reshape((*lead_shape, len(y), len(x)), merge_chunks=False) if lead_shape else out[0]
    coords = {d: data.coords[d] for d in lead_dims if d in data.coords}
    return xr.DataArray(out, dims=(*lead_dims, "y", "x"), coords=coords, attrs=dict(data.attrs))
