"""Curvilinear -> region grid regridding (pipelines.regrid): exactness, footprint, NaNs, laziness."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from matplotlib.path import Path as MplPath
from pyproj import Transformer

from pipelines.regrid import RegridError, mesh_weights, regrid_curvilinear, source_mesh

from .conftest import shared_file

DST = "EPSG:3413"


def _curved_grid(m: int = 30, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A skewed, curved lon/lat grid near Svalbard (not a straight lattice in any projection)."""
    i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    lon = 10.0 + 0.4 * j + 0.05 * i + 0.002 * j**2
    lat = 72.0 + 0.15 * i - 0.02 * j
    return lon, lat


def _targets(mesh, nx: int = 90, ny: int = 70, pad: float = 8e4) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = mesh.bounds()
    return np.linspace(x0 - pad, x1 + pad, nx), np.linspace(y1 + pad, y0 - pad, ny)


def _footprint(lon: np.ndarray, lat: np.ndarray) -> MplPath:
    """Polygon of the source grid's outer edge in the target CRS (independent of the regridder)."""
    x, y = Transformer.from_crs("EPSG:4326", DST, always_xy=True).transform(lon, lat)
    ring = np.concatenate(
        [
            np.stack([x[0, :], y[0, :]], 1),
            np.stack([x[:, -1], y[:, -1]], 1),
            np.stack([x[-1, ::-1], y[-1, ::-1]], 1),
            np.stack([x[::-1, 0], y[::-1, 0]], 1),
        ]
    )
    return MplPath(ring)


def test_linear_field_survives_and_nan_outside_footprint() -> None:
    lon, lat = _curved_grid()
    mesh = source_mesh(lon, lat, DST)
    sx, sy = Transformer.from_crs("EPSG:4326", DST, always_xy=True).transform(lon, lat)
    field = 3e-5 * sx - 2e-5 * sy + 7.0  # linear in target x/y
    data = xr.DataArray(np.stack([field, -field]), dims=("time", "eta", "xi")).chunk({"time": 1})
    x, y = _targets(mesh)
    out = regrid_curvilinear(data, mesh, x, y, chunks=(32, 32)).values
    xx, yy = np.meshgrid(x, y)
    expected = 3e-5 * xx - 2e-5 * yy + 7.0
    inside = _footprint(lon, lat).contains_points(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(xx.shape)
    assert 0.2 < inside.mean() < 0.8  # the test grid really has both inside and outside points
    finite = np.isfinite(out[0])
    assert np.array_equal(finite, inside)  # NaN exactly outside the source footprint
    np.testing.assert_allclose(out[0][finite], expected[finite], rtol=0, atol=1e-9)
    np.testing.assert_allclose(out[1][finite], -expected[finite], rtol=0, atol=1e-9)


def test_real_roms_lonlat_linear_field(shared_data) -> None:
    """The same exactness on the real curvilinear ROMS grid of Nordic_subset.nc."""
    import netCDF4

    path = shared_file(shared_data, "ocean_ice/Nordic_subset.nc")
    with netCDF4.Dataset(path) as nc:
        lon, lat = np.asarray(nc["lon_rho"][:], float), np.asarray(nc["lat_rho"][:], float)
    mesh = source_mesh(lon, lat, "EPSG:32633")
    sx, sy = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(lon, lat)
    data = xr.DataArray(1e-3 * sx + 5e-4 * sy, dims=("eta_rho", "xi_rho"))
    x0, y0, x1, y1 = mesh.bounds()
    x, y = np.arange(x0, x1, 2000.0), np.arange(y1, y0, -2000.0)
    out = regrid_curvilinear(data, mesh, x, y, chunks=(16, 16)).values
    xx, yy = np.meshgrid(x, y)
    finite = np.isfinite(out)
    assert finite.mean() > 0.3  # a ~45° rotated grid fills about half of its bounding box
    np.testing.assert_allclose(out[finite], (1e-3 * xx + 5e-4 * yy)[finite], atol=1e-6)


def test_nearest_picks_a_source_value_and_exact_at_nodes() -> None:
    lon, lat = _curved_grid(12, 15)
    mesh = source_mesh(lon, lat, DST)
    values = np.arange(lon.size, dtype="float64").reshape(lon.shape)
    # target centres placed exactly on three source nodes (plus a point far outside)
    sx, sy = Transformer.from_crs("EPSG:4326", DST, always_xy=True).transform(lon, lat)
    nodes = [(3, 4), (7, 9), (10, 2)]
    for i, j in nodes:
        index, weight = mesh_weights(mesh, np.array([sx[i, j]]), np.array([sy[i, j]]), "nearest")
        assert index[0, 0, 0] == i * lon.shape[1] + j
        assert weight[0, 0, 0] == 1.0
        out = regrid_curvilinear(
            xr.DataArray(values, dims=("a", "b")),
            mesh,
            np.array([sx[i, j]]),
            np.array([sy[i, j]]),
            method="nearest",
        )
        assert float(out[0, 0]) == values[i, j]
    far = regrid_curvilinear(xr.DataArray(values, dims=("a", "b")), mesh, np.array([0.0]), np.array([0.0]))
    assert np.isnan(float(far[0, 0]))


def test_missing_source_values_stay_local() -> None:
    """A NaN source node (land) blanks only target points in triangles touching it."""
    lon, lat = _curved_grid(20, 20)
    mesh = source_mesh(lon, lat, DST)
    values = np.ones(lon.shape)
    values[10, 10] = np.nan
    x, y = _targets(mesh, 60, 60, pad=0.0)
    out = regrid_curvilinear(xr.DataArray(values, dims=("a", "b")), mesh, x, y).values
    sx, sy = Transformer.from_crs("EPSG:4326", DST, always_xy=True).transform(lon, lat)
    xx, yy = np.meshgrid(x, y)
    hole = ~np.isfinite(out) & _footprint(lon, lat).contains_points(
        np.stack([xx.ravel(), yy.ravel()], 1)
    ).reshape(xx.shape)
    assert hole.any()
    # every blanked point lies within one cell of the NaN node
    reach = max(
        np.hypot(sx[11, 11] - sx[10, 10], sy[11, 11] - sy[10, 10]),
        np.hypot(sx[9, 11] - sx[10, 10], sy[9, 11] - sy[10, 10]),
    )
    dist = np.hypot(xx[hole] - sx[10, 10], yy[hole] - sy[10, 10])
    assert dist.max() <= reach * 1.01
    np.testing.assert_allclose(out[np.isfinite(out)], 1.0)


def test_lazy_chunks_match_full_compute() -> None:
    lon, lat = _curved_grid()
    mesh = source_mesh(lon, lat, DST)
    rng = np.random.default_rng(0)
    data = xr.DataArray(rng.normal(size=(3, *lon.shape)), dims=("time", "eta", "xi")).chunk({"time": 2})
    x, y = _targets(mesh)
    out = regrid_curvilinear(data, mesh, x, y, chunks=(25, 40))
    assert isinstance(out.data, da.Array)
    assert out.data.chunks == ((2, 1), (25, 25, 20), (40, 40, 10))
    full = regrid_curvilinear(data.compute(), mesh, x, y, chunks=(70, 90)).values
    block = out.data.blocks[1, 1, 1].compute()
    np.testing.assert_array_equal(block, full[2:3, 25:50, 40:80])


def test_shape_mismatch_is_an_error() -> None:
    lon, lat = _curved_grid()
    mesh = source_mesh(lon, lat, DST)
    with pytest.raises(RegridError, match="does not match"):
        regrid_curvilinear(xr.DataArray(np.zeros((5, 5)), dims=("a", "b")), mesh, np.zeros(2), np.zeros(2))
    with pytest.raises(RegridError, match="not available"):
        mesh_weights(mesh, np.zeros(2), np.zeros(2), "average")


def test_cells_across_a_longitude_seam_are_left_out() -> None:
    """A grid spanning 170E..190E stored as -180..180, regridded in a 0-centred geographic window:
    the cells that straddle the seam would span 360 degrees and must not smear values across the map."""
    i, j = np.meshgrid(np.arange(10), np.arange(21), indexing="ij")
    lon = (170.0 + 1.0 * j + 180.0) % 360.0 - 180.0
    lat = 50.0 + 1.0 * i + 0.0 * j
    mesh = source_mesh(lon, lat, "EPSG:4326", lon_center=0.0)
    assert (
        mesh.bad_quad.reshape(9, 20)[:, 9].all() and mesh.bad_quad.sum() == 9
    )  # the 170..180 -> -180 column
    field = xr.DataArray(lat.copy(), dims=("a", "b"))
    out = regrid_curvilinear(field, mesh, np.array([0.0, 175.5, -175.5]), np.array([55.5])).values[0]
    assert np.isnan(out[0])  # far from the source: nothing smeared across the globe
    np.testing.assert_allclose(out[1:], 55.5, atol=1e-9)  # both sides of the seam still covered
    # centred on the antimeridian, the seam cells join up again
    mesh180 = source_mesh(lon, lat, "EPSG:4326", lon_center=180.0)
    assert not mesh180.bad_quad.any()
    out = regrid_curvilinear(field, mesh180, np.array([179.5, 180.5]), np.array([55.5])).values[0]
    np.testing.assert_allclose(out, 55.5, atol=1e-9)
