"""Exact rasterization (pipelines.rasterize) checked against analytic values and independent code."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox

from pipelines import rasterize as R

CELL = 10.0
X0, Y0 = 500_000.0, 4_200_000.0  # top-left corner of the test grid (UTM 10N)


def geobox(ny: int = 12, nx: int = 15, crs: str = "EPSG:32610", cell: float = CELL) -> GeoBox:
    return GeoBox((ny, nx), Affine(cell, 0, X0, 0, -cell, Y0), crs)


def cell_box(row: int, col: int, cell: float = CELL) -> tuple[float, float, float, float]:
    return X0 + col * cell, Y0 - (row + 1) * cell, X0 + (col + 1) * cell, Y0 - row * cell


def test_quarter_square_gives_quarter_fraction():
    xmin, ymin, _, _ = cell_box(4, 7)
    square = shapely.box(xmin, ymin, xmin + CELL / 2, ymin + CELL / 2)
    frac = R.area_fraction([square], geobox(), chunks=(5, 4)).compute()
    expected = np.zeros((12, 15))
    expected[4, 7] = 0.25
    np.testing.assert_array_equal(frac, expected)


def test_triangle_fractions_are_analytic():
    # lower triangle of the 2x2-cell square with corner at cell (5, 3): diagonal halves two cells
    xmin, ymin, _, _ = cell_box(6, 3)
    tri = shapely.Polygon([(xmin, ymin), (xmin + 2 * CELL, ymin), (xmin + 2 * CELL, ymin + 2 * CELL)])
    frac = R.area_fraction([tri], geobox(), chunks=(6, 4)).compute()
    assert frac[6, 3] == pytest.approx(0.5)
    assert frac[6, 4] == pytest.approx(1.0)
    assert frac[5, 4] == pytest.approx(0.5)
    assert frac[5, 3] == 0.0
    assert frac.sum() == pytest.approx(2.0)


def test_area_is_conserved_across_tiles_and_overlaps_count_once():
    circle = shapely.Point(X0 + 73.3, Y0 - 61.7).buffer(37.0, quad_segs=64)
    ring = shapely.box(X0 + 2, Y0 - 118, X0 + 58, Y0 - 81).difference(
        shapely.box(X0 + 20, Y0 - 100, X0 + 30, Y0 - 90)
    )
    duplicate = shapely.box(X0 + 130, Y0 - 30, X0 + 150, Y0 - 10)
    geoms = [circle, ring, duplicate, duplicate]  # overlaps (circle/ring, the duplicate) count once
    expected_area = shapely.union_all(geoms).area
    assert expected_area < circle.area + ring.area + duplicate.area
    for chunks in [(3, 4), (5, 7), (100, 100)]:
        frac = R.area_fraction(geoms, geobox(), chunks=chunks).compute().astype(float)
        assert frac.sum() * CELL**2 == pytest.approx(expected_area, rel=1e-6)
        assert frac.max() <= 1.0
    assert frac[1:3, 13:15] == pytest.approx(np.ones((2, 2)))


def test_line_length_density_sums_to_length_over_cell_area():
    line = shapely.LineString([(X0 + 3.0, Y0 - 2.0), (X0 + 3.0 + 90.0, Y0 - 2.0 - 120.0)])  # 150 m (3-4-5)
    dens = R.length_density([line], geobox(15, 15), chunks=(4, 6)).compute().astype(float)
    assert line.length == pytest.approx(150.0)
    assert dens.sum() * CELL**2 == pytest.approx(150.0, rel=1e-6)


def test_horizontal_line_gives_cell_width_per_cell_area():
    y = Y0 - 35.0  # middle of row 3
    line = shapely.LineString([(X0 + 15.0, y), (X0 + 62.0, y)])
    dens = R.length_density([line], geobox(), chunks=(2, 2)).compute().astype(float)
    expected = np.zeros((12, 15))
    expected[3, 1] = 5.0 / CELL**2
    expected[3, 2:6] = CELL / CELL**2
    expected[3, 6] = 2.0 / CELL**2
    np.testing.assert_allclose(dens, expected, rtol=1e-6, atol=1e-9)


def test_lines_on_cell_and_tile_edges_are_counted_once():
    horizontal = shapely.LineString([(X0, Y0 - 40.0), (X0 + 150.0, Y0 - 40.0)])  # edge between rows 3 and 4
    vertical = shapely.LineString([(X0 + 40.0, Y0), (X0 + 40.0, Y0 - 120.0)])  # edge between cols 3 and 4
    for chunks in [(4, 4), (3, 5), (12, 15)]:
        dens = R.length_density([horizontal, vertical], geobox(), chunks=chunks).compute().astype(float)
        assert dens.sum() * CELL**2 == pytest.approx(270.0, rel=1e-6)
        # half-open cells: a line on an edge belongs to the cell below / right of it
        assert dens[4, :].sum() * CELL**2 == pytest.approx(150.0 + CELL, rel=1e-6)
        assert dens[:, 4].sum() * CELL**2 == pytest.approx(120.0 + CELL, rel=1e-6)
        assert dens[3, :].sum() * CELL**2 == pytest.approx(CELL, rel=1e-6)  # only the vertical line


def test_length_density_converts_us_survey_feet_to_metres():
    ft = 1200.0 / 3937.0  # metres per US survey foot (exact definition)
    gb = GeoBox((4, 4), Affine(100.0, 0, 1_000_000.0, 0, -100.0, 200_000.0), "EPSG:2263")
    line = shapely.LineString([(1_000_010.0, 199_950.0), (1_000_090.0, 199_950.0)])  # 80 ft in cell (0, 0)
    dens = R.length_density([line], gb).compute().astype(float)
    assert dens[0, 0] == pytest.approx(80.0 * ft / (100.0 * ft) ** 2, rel=1e-6)
    dist = R.distance([line], gb).compute().astype(float)
    assert dist[1, 0] == pytest.approx(100.0 * ft, rel=1e-6)  # centre 100 ft below the line


def test_point_lands_in_the_right_cell():
    pt = shapely.Point(X0 + 123.4, Y0 - 56.7)  # col 12, row 5
    counts = R.point_sum([pt], geobox(), chunks=(4, 4)).compute()
    assert np.argwhere(counts).tolist() == [[5, 12]]
    assert counts.sum() == 1


def test_count_and_sum_match_numpy_histogram():
    rng = np.random.default_rng(42)
    n = 2000
    x = rng.uniform(X0 - 20, X0 + 170, n)  # some points fall outside the grid
    y = rng.uniform(Y0 - 140, Y0 + 15, n)
    w = rng.exponential(50.0, n)
    gb = geobox()
    counts = R.point_sum(shapely.points(x, y), gb, chunks=(5, 4)).compute()
    sums = R.point_sum(shapely.points(x, y), gb, values=w, chunks=(5, 4), dtype="float64").compute()
    xe = X0 + CELL * np.arange(16)
    ye = Y0 - CELL * np.arange(13)[::-1]
    ref_count, _, _ = np.histogram2d(y, x, bins=[ye, xe])
    ref_sum, _, _ = np.histogram2d(y, x, bins=[ye, xe], weights=w)
    np.testing.assert_array_equal(counts, ref_count[::-1])
    np.testing.assert_allclose(sums, ref_sum[::-1], rtol=1e-12)


def test_distance_to_line_and_point_is_analytic():
    gb = geobox()
    yc = Y0 - CELL * (np.arange(12) + 0.5)
    xc = X0 + CELL * (np.arange(15) + 0.5)
    y_line = Y0 - 47.0
    line = shapely.LineString([(X0 - 1e4, y_line), (X0 + 1e4, y_line)])
    dist = R.distance([line], gb, chunks=(5, 5)).compute().astype(float)
    np.testing.assert_allclose(dist, np.broadcast_to(np.abs(yc - y_line)[:, None], (12, 15)), atol=1e-3)
    px, py = X0 + 33.0, Y0 - 71.0
    dist = R.distance([shapely.Point(px, py)], gb, chunks=(5, 5)).compute().astype(float)
    np.testing.assert_allclose(dist, np.hypot(xc[None, :] - px, yc[:, None] - py), atol=1e-3)


def test_distance_to_polygon_is_zero_inside_and_to_the_edge_outside():
    square = shapely.box(X0 + 40.0, Y0 - 80.0, X0 + 100.0, Y0 - 40.0)
    dist = R.distance([square], geobox(), chunks=(4, 4)).compute().astype(float)
    assert dist[4:8, 4:10].max() == 0.0  # cell centres inside the square
    assert dist[2, 6] == pytest.approx(15.0)  # centre y = Y0 - 25, edge at Y0 - 40
    assert dist[4, 12] == pytest.approx(25.0)  # centre x = X0 + 125, edge at X0 + 100
    assert dist[0, 0] == pytest.approx(np.hypot(35.0, 35.0))  # nearest is the corner


def test_results_are_lazy_dask_arrays_with_grid_chunks():
    out = R.area_fraction([shapely.box(X0, Y0 - 20, X0 + 20, Y0)], geobox(), chunks=(5, 4))
    assert isinstance(out, da.Array)
    assert out.chunks == ((5, 5, 2), (4, 4, 4, 3))
    assert float(out.sum().compute()) == pytest.approx(4.0)


def test_lengths_on_a_geographic_grid_are_refused():
    gb = GeoBox((4, 4), Affine(0.1, 0, -122.5, 0, -0.1, 38.0), "EPSG:4326")
    with pytest.raises(R.RasterizeError, match="geographic"):
        R.length_density([shapely.LineString([(-122.4, 37.9), (-122.3, 37.8)])], gb)


def test_a_grid_larger_than_memory_is_rasterized_tile_by_tile():
    # 100k x 100k cells (40 GB as float32): only the tiles that are asked for are ever computed
    gb = GeoBox((100_000, 100_000), Affine(CELL, 0, X0, 0, -CELL, Y0), "EPSG:32610")
    square = shapely.box(X0 + 5.0, Y0 - 15.0, X0 + 15.0, Y0 - 5.0)  # a quarter of 4 cells at the corner
    far = shapely.box(X0 + 500_000.0, Y0 - 500_010.0, X0 + 500_010.0, Y0 - 500_000.0)  # cell (50000, 50000)
    frac = R.area_fraction([square, far], gb, chunks=(2048, 2048))
    np.testing.assert_array_equal(frac[:3, :3].compute(), [[0.25, 0.25, 0], [0.25, 0.25, 0], [0, 0, 0]])
    assert float(frac[49_999:50_002, 49_999:50_002].sum().compute()) == 1.0
    assert frac[50_000, 50_000].compute() == 1.0


def test_south_up_grid_gives_the_flipped_raster():
    ny, nx = 12, 15
    north_up = geobox(ny, nx)
    south_up = GeoBox((ny, nx), Affine(CELL, 0, X0, 0, CELL, Y0 - ny * CELL), "EPSG:32610")
    shapes = [
        shapely.Point(X0 + 61.0, Y0 - 47.0).buffer(29.0),
        shapely.Polygon([(X0 + 2, Y0 - 3), (X0 + 44, Y0 - 9), (X0 + 13, Y0 - 58)]),
    ]
    line = shapely.LineString([(X0 + 1.0, Y0 - 1.0), (X0 + 149.0, Y0 - 37.0), (X0 + 20.0, Y0 - 119.0)])
    for func, geoms in ((R.area_fraction, shapes), (R.length_density, [line])):
        a = func(geoms, north_up, chunks=(5, 4)).compute()
        b = func(geoms, south_up, chunks=(5, 4)).compute()
        np.testing.assert_allclose(b[::-1], a, atol=1e-6)
        assert a.sum() > 0


def _cells(ny: int = 12, nx: int = 15) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    return shapely.box(X0 + cols * CELL, Y0 - (rows + 1) * CELL, X0 + (cols + 1) * CELL, Y0 - rows * CELL)


def test_area_and_length_match_shapely_cell_by_cell():
    rng = np.random.default_rng(7)
    centres = rng.uniform([X0 - 10, Y0 - 130], [X0 + 160, Y0 + 10], (25, 2))
    blobs = list(shapely.buffer(shapely.points(centres), rng.uniform(2.0, 25.0, 25)))
    angles = np.linspace(0, 2 * np.pi, 15, endpoint=False)
    radii = np.where(np.arange(15) % 2, 12.0, 40.0)
    star = shapely.Polygon(np.c_[X0 + 80 + radii * np.cos(angles), Y0 - 60 + radii * np.sin(angles)])
    holed = shapely.box(X0 + 3, Y0 - 117, X0 + 67, Y0 - 71).difference(
        shapely.Point(X0 + 35, Y0 - 94).buffer(13)
    )
    polygons = [*blobs, star, holed]
    union = shapely.union_all(polygons)
    ref_area = shapely.area(shapely.intersection(union, _cells())) / CELL**2
    frac = R.area_fraction(polygons, geobox(), chunks=(5, 4), dtype="float64").compute()
    np.testing.assert_allclose(frac, ref_area, atol=1e-9)

    ends = rng.uniform([X0 - 20, Y0 - 140], [X0 + 170, Y0 + 20], (40, 2, 2))
    lines = shapely.linestrings(ends)
    ref_len = np.zeros((12, 15))
    for line in lines:  # independent: shapely clipping, one cell at a time
        ref_len += shapely.length(shapely.intersection(line, _cells())) / CELL**2
    dens = R.length_density(lines, geobox(), chunks=(5, 4), dtype="float64").compute()
    np.testing.assert_allclose(dens, ref_len, atol=1e-9)


def test_rasterizations_computed_together_stay_separate():
    gb = geobox()
    squares = [shapely.box(X0 + 10 * k, Y0 - 10, X0 + 10 * k + 10, Y0) for k in range(12)]
    arrays = [R.area_fraction([sq], gb, chunks=(6, 5)) for sq in squares]
    arrays += [
        R.length_density([shapely.LineString([(X0, Y0 - 10 * k - 5), (X0 + 150, Y0 - 10 * k - 5)])], gb)
        for k in range(12)
    ]
    results = dask.compute(*arrays)
    for k in range(12):
        assert np.argwhere(results[k]).tolist() == [[0, k]]
        assert np.nonzero(results[12 + k].sum(axis=1))[0].tolist() == [k]
