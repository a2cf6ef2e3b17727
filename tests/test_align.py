"""Alignment onto the region grid: analytic fields, conservation, point features, poles, antimeridian, time."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from pyproj import Transformer

from pipelines.align import (
    align_time,
    auto_resampling,
    reproject_to_grid,
    source_resolution_on_grid,
)
from pipelines.grid import GridError, RegionGrid


def _da(values: np.ndarray, gbox: GeoBox, chunks: int | None = None, name: str = "f") -> xr.DataArray:
    dims = ("latitude", "longitude") if gbox.crs.geographic else ("y", "x")
    arr = xr.DataArray(values, dims=dims, coords=xr_coords(gbox, crs_coord_name="spatial_ref"), name=name)
    return arr.chunk(dict.fromkeys(dims, chunks)) if chunks else arr


def _grid(gbox: GeoBox, chunk: int = 64) -> RegionGrid:
    return RegionGrid(name="t", geobox=gbox, chunks={"y": chunk, "x": chunk})


def _centres_in(grid_gbox: GeoBox, crs: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(grid_gbox.coords["x"].values, grid_gbox.coords["y"].values)
    return Transformer.from_crs(grid_gbox.crs.to_wkt(), crs, always_xy=True).transform(xs, ys)


def _arctic_source(n: int = 512, chunks: int | None = 128) -> tuple[xr.DataArray, GeoBox]:
    gbox = GeoBox.from_bbox((-180, 50, 180, 90), "EPSG:4326", shape=(n, n))
    lat = gbox.coords["latitude"].values[:, None] * np.ones((1, n))
    return _da(lat.astype("float64"), gbox, chunks), gbox


@pytest.mark.parametrize("chunks", [32, None], ids=["lazy-gdal", "in-memory-fast"])
def test_linear_field_same_crs_is_exact(chunks: int | None) -> None:
    """Bilinear interpolation reproduces a linear function of x, y (shifted, finer grid, same CRS)."""
    src = GeoBox((60, 80), Affine(1000, 0, 500000, 0, -1000, 6000000), "EPSG:32633")
    xs, ys = np.meshgrid(src.coords["x"].values, src.coords["y"].values)
    field = 2.0e-3 * (xs - 500000) - 3.0e-3 * (ys - 6000000) + 7.0
    dst = GeoBox((80, 100), Affine(430, 0, 510217, 0, -430, 5985333), "EPSG:32633")
    out = reproject_to_grid(_da(field, src, chunks), _grid(dst, 32), resampling="bilinear").values
    gx, gy = np.meshgrid(dst.coords["x"].values, dst.coords["y"].values)
    expected = 2.0e-3 * (gx - 500000) - 3.0e-3 * (gy - 6000000) + 7.0
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, atol=1e-9)


@pytest.mark.parametrize("chunks", [128, None], ids=["lazy-gdal", "in-memory-fast"])
def test_latitude_survives_reprojection_to_north_polar_grid(chunks: int | None) -> None:
    """lat (linear in the EPSG:4326 source) onto EPSG:3413: error within GDAL's 1/8-pixel transform tolerance,
    no NaN anywhere inside 50N (including the pole chunk and the 180E seam)."""
    n = 512
    src_da, src = _arctic_source(n, chunks)
    r = 4.4e6
    # 255 x 255 cells: the middle cell is centred on the pole
    dst = GeoBox((255, 255), Affine(2 * r / 255, 0, -r, 0, -2 * r / 255, r), "EPSG:3413")
    out = reproject_to_grid(src_da, _grid(dst, 64), resampling="bilinear").values
    lon, lat = _centres_in(dst, "EPSG:4326")
    dlat = 40.0 / n
    inside = lat > 50.0 + 2 * dlat
    assert np.isfinite(out[inside]).all()
    interior = inside & (lat < 90.0 - dlat / 2)  # beyond the top row's centres GDAL holds the edge value
    assert np.nanmax(np.abs(out - lat)[interior]) <= 0.13 * dlat
    assert out[127, 127] == pytest.approx(90.0 - dlat / 2, abs=1e-9)  # the pole cell: the top row's latitude
    assert np.isnan(out[~(lat > 50.0 - dlat)]).all()  # outside the source: NaN, not extrapolated


def test_pole_matches_rasterio_whole_image_warp() -> None:
    """The lazy per-chunk path equals one whole-image GDAL warp (independent call) at an EPSG:3413 grid."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    src_da, src = _arctic_source(512, chunks=100)
    field = np.cos(np.deg2rad(src_da["latitude"])) * np.sin(np.deg2rad(src_da["longitude"])) * 10 + src_da
    field = field.transpose("latitude", "longitude")
    dst = GeoBox.from_bbox((-3e6, -3e6, 3e6, 3e6), "EPSG:3413", shape=(200, 200))
    out = reproject_to_grid(field.rename("f"), _grid(dst, 48)).values
    ref = np.full(dst.shape, np.nan)
    reproject(
        field.values,
        ref,
        src_transform=src.affine,
        src_crs="EPSG:4326",
        dst_transform=dst.affine,
        dst_crs="EPSG:3413",
        resampling=Resampling.bilinear,
        src_nodata=np.nan,
        dst_nodata=np.nan,
        XSCALE=1,
        YSCALE=1,
    )
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    assert np.isfinite(out).all()
    # both use GDAL's approximate transformer (error <= 1/8 source pixel, depends on the warped window):
    # bound = 2 * 1/8 px * (max change per source row + max change per source column)
    per_row = (10 * np.deg2rad(1) + 1) * 40 / 512
    per_col = 10 * np.cos(np.deg2rad(50)) * np.deg2rad(360 / 512)
    assert np.nanmax(np.abs(out - ref)) < 0.25 * (per_row + per_col)


@pytest.mark.parametrize("chunks", [45, None], ids=["lazy-gdal", "in-memory-fast"])
def test_south_pole_grid_from_geographic_source(chunks: int | None) -> None:
    """EPSG:3031 grid from an EPSG:4326 source reaching 90S: the pole cells are filled with -90."""
    n = 360
    src = GeoBox.from_bbox((-180, -90, 180, -60), "EPSG:4326", shape=(n // 2, n))
    lat = src.coords["latitude"].values[:, None] * np.ones((1, n))
    dst = GeoBox.from_bbox((-1e6, -1e6, 1e6, 1e6), "EPSG:3031", shape=(100, 100))
    out = reproject_to_grid(_da(lat, src, chunks), _grid(dst, 30)).values
    _, glat = _centres_in(dst, "EPSG:4326")
    assert np.isfinite(out).all()
    assert np.max(np.abs(out - glat)) <= 0.13 * (30.0 / (n // 2))


@pytest.mark.parametrize("chunks", [50, None], ids=["lazy-gdal", "in-memory-fast"])
def test_source_across_antimeridian_onto_pacific_grid(chunks: int | None) -> None:
    """A source spanning 170E..190E (= -170E) lands on a grid crossing 180 (PDC Mercator EPSG:3832)."""
    src = GeoBox.from_bbox((170, -5, 190, 5), "EPSG:4326", shape=(100, 200))
    lon = src.coords["longitude"].values[None, :] * np.ones((100, 1))
    dst = GeoBox.from_bbox((2.8e6, -4e5, 3.9e6, 4e5), "EPSG:3832", shape=(40, 110))
    out = reproject_to_grid(_da(lon, src, chunks), _grid(dst, 32)).values
    glon, _ = _centres_in(dst, "EPSG:4326")
    glon = np.where(glon < 0, glon + 360, glon)
    assert glon.min() < 180 < glon.max()
    assert np.isfinite(out).all()
    assert np.max(np.abs(out - glon)) <= 0.13 * 0.1 + 1e-9


@pytest.mark.parametrize("chunks", [60, None], ids=["lazy-gdal", "in-memory-fast"])
def test_global_source_onto_grid_centred_on_dateline(chunks: int | None) -> None:
    """A -180..180 global source onto a LAEA grid centred at 180E: the seam is invisible (smooth field)."""
    n = 720
    src = GeoBox.from_bbox((-180, 30, 180, 90), "EPSG:4326", shape=(120, n))
    lon = src.coords["longitude"].values[None, :] * np.ones((120, 1))
    lat = src.coords["latitude"].values[:, None] * np.ones((1, n))
    field = np.cos(np.deg2rad(lon)) * 5 + lat
    dst = GeoBox.from_bbox(
        (-1.5e6, -1.5e6, 1.5e6, 1.5e6), "+proj=laea +lat_0=60 +lon_0=180 +datum=WGS84", shape=(90, 90)
    )
    out = reproject_to_grid(_da(field, src, chunks), _grid(dst, 32)).values
    glon, glat = _centres_in(dst, "EPSG:4326")
    expected = np.cos(np.deg2rad(glon)) * 5 + glat
    assert np.isfinite(out).all()
    # bilinear error of a smooth field: curvature * h^2 / 8 with h = 0.5 deg
    assert np.max(np.abs(out - expected)) < 5 * np.deg2rad(0.5) ** 2 / 8 + 0.13 * 0.5


@pytest.mark.parametrize("chunks", [64, None], ids=["lazy-gdal", "in-memory-fast"])
def test_constant_stays_constant(chunks: int | None) -> None:
    """A constant field stays that constant under every resampling, across CRSs."""
    src = GeoBox.from_bbox((10, 55, 12, 57), "EPSG:4326", shape=(200, 200))
    const = np.full(src.shape, 7.25)
    dst = GeoBox.from_bbox((600000, 6110000, 700000, 6300000), "EPSG:32632", shape=(50, 25))
    for method in ("bilinear", "average", "nearest", "cubic"):
        out = reproject_to_grid(_da(const, src, chunks), _grid(dst, 16), resampling=method).values
        valid = out[np.isfinite(out)]
        assert valid.size > 0.5 * out.size
        np.testing.assert_allclose(valid, 7.25, rtol=1e-12)


def test_average_conserves_area_integral_equal_area() -> None:
    """Average (area-weighted) resampling keeps the area integral on an equal-area CRS (LAEA Europe)."""
    rng = np.random.default_rng(42)
    src = GeoBox((300, 300), Affine(1000, 0, 4000000, 0, -1000, 3000000), "EPSG:3035")
    field = rng.gamma(2.0, 3.0, size=src.shape)
    # 7 cells of 300/7 km each: interior edges cut source pixels, the outer edges coincide
    dst = GeoBox((7, 7), Affine(300000 / 7, 0, 4000000, 0, -300000 / 7, 3000000), "EPSG:3035")
    out = reproject_to_grid(_da(field, src, 100), _grid(dst, 4), resampling="average").values
    src_integral = field.sum() * 1000.0**2
    dst_integral = out.sum() * (300000 / 7) ** 2
    assert abs(dst_integral / src_integral - 1) < 1e-6


def test_hot_pixel_lands_in_right_cell() -> None:
    """A single hot 0.01-degree pixel lands in the UTM cell that contains its centre (pyproj)."""
    src = GeoBox.from_bbox((8.5, 47.0, 9.5, 48.0), "EPSG:4326", shape=(100, 100))
    field = np.zeros(src.shape)
    field[37, 61] = 1000.0
    lon, lat = src.coords["longitude"].values[61], src.coords["latitude"].values[37]
    dst = GeoBox.from_bbox((470000, 5210000, 530000, 5310000), "EPSG:32632", resolution=5000)
    out = reproject_to_grid(_da(field, src, 50), _grid(dst, 8), resampling="average").values
    x, y = Transformer.from_crs(4326, 32632, always_xy=True).transform(lon, lat)
    col, row = ~dst.affine * (x, y)
    assert np.unravel_index(np.nanargmax(out), out.shape) == (int(row), int(col))
    # the pixel's area share: 1000 * (pixel area / cell area), pixel ~ 0.01 deg x 0.01 deg at 47.6N
    pixel_area = (0.01 * 111.32e3 * np.cos(np.deg2rad(lat))) * (0.01 * 111.2e3)
    assert np.nansum(out) * 5000.0**2 == pytest.approx(1000.0 * pixel_area, rel=0.02)


def test_chunking_changes_results_only_within_transform_tolerance() -> None:
    """Chunk size changes values only within GDAL's approximate-transformer tolerance (1/8 source px each)."""
    src_da, _ = _arctic_source(256, chunks=64)
    dst = GeoBox.from_bbox((-3e6, -3e6, 3e6, 3e6), "EPSG:3413", shape=(120, 120))
    a = reproject_to_grid(src_da, _grid(dst, 120)).values
    b = reproject_to_grid(src_da, _grid(dst, 17)).values
    c = reproject_to_grid(src_da.compute(), _grid(dst, 17)).values  # in memory: larger warp blocks
    for other in (b, c):
        assert np.array_equal(np.isnan(a), np.isnan(other))
        assert np.nanmax(np.abs(a - other)) <= 0.25 * 40 / 256


def test_windows_near_the_pole_are_split_under_a_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a small window budget the pole block is split into pieces that each read less; the result
    is the same field (within the approximate-transformer tolerance) and nothing is left unfilled."""
    import pipelines.align as align

    src_da, _ = _arctic_source(512, chunks=128)
    dst = GeoBox.from_bbox((-2e6, -2e6, 2e6, 2e6), "EPSG:3413", shape=(128, 128))
    whole = reproject_to_grid(src_da, _grid(dst, 64)).values
    windows: list[int] = []
    warp = align._warp_block

    def spy(src, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        windows.append(np.asarray(src).size)
        return warp(src, *args, **kwargs)

    monkeypatch.setattr(align, "WINDOW_BUDGET", 512 * 60 * 8)  # 60 full-width rows of float64
    monkeypatch.setattr(align, "_warp_block", spy)
    split = reproject_to_grid(src_da, _grid(dst, 64)).values
    assert len(windows) > 4  # more pieces than the 4 grid chunks
    assert np.array_equal(np.isnan(whole), np.isnan(split)) and np.isfinite(split).all()
    assert np.max(np.abs(whole - split)) <= 0.25 * 40 / 512


def test_lazy_reads_only_needed_source_blocks() -> None:
    """Computing one output chunk touches only the source blocks under it (memory stays bounded)."""
    src = GeoBox((400, 400), Affine(100, 0, 0, 0, -100, 40000), "EPSG:32631")
    calls: list[tuple[int, ...]] = []

    def fill(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        calls.append(tuple(block_info[0]["chunk-location"]))
        return np.ones_like(block)

    lazy = da.zeros(tuple(src.shape), chunks=100).map_blocks(fill, dtype="float64")
    arr = xr.DataArray(lazy, dims=("y", "x"), coords=xr_coords(src, crs_coord_name="spatial_ref"), name="f")
    dst = GeoBox((40, 40), Affine(1000, 0, 0, 0, -1000, 40000), "EPSG:32631")
    out = reproject_to_grid(arr, _grid(dst, 10), resampling="average")
    assert not calls  # building the graph reads nothing
    block = out.data.blocks[0, 0].compute()
    assert np.all(block == 1.0)
    assert 0 < len(set(calls)) <= 4  # of 16 source blocks


def test_auto_resampling_follows_resolution_ratio() -> None:
    src = GeoBox.from_bbox((10, 55, 11, 56), "EPSG:4326", shape=(1000, 1000))  # ~63 m x 111 m
    fine = GeoBox.from_bbox((600000, 6100000, 610000, 6110000), "EPSG:32632", resolution=1000)
    coarse = GeoBox.from_bbox((600000, 6100000, 610000, 6110000), "EPSG:32632", resolution=10)
    res = source_resolution_on_grid(src, fine)
    assert res == pytest.approx(
        np.sqrt(0.001 * 111.32e3 * np.cos(np.deg2rad(55.5)) * 0.001 * 111.2e3), rel=0.02
    )
    assert auto_resampling(res, 1000) == "average"
    assert auto_resampling(source_resolution_on_grid(src, coarse), 10) == "bilinear"
    assert auto_resampling(res, 1000, categorical=True) == "nearest"


def test_other_body_and_outside_region_are_refused() -> None:
    src = GeoBox.from_bbox((0, 0, 1, 1), "EPSG:4326", shape=(10, 10))
    arr = _da(np.ones(src.shape), src)
    far = GeoBox.from_bbox((500000, 6100000, 510000, 6110000), "EPSG:32632", resolution=1000)
    with pytest.raises(GridError, match="do not overlap the region grid"):
        reproject_to_grid(arr, _grid(far))
    mars = GeoBox.from_bbox((0, 0, 1, 1), "IAU_2015:49900", shape=(10, 10))
    with pytest.raises(GridError, match="Mars"):
        reproject_to_grid(
            _da(np.ones(mars.shape), mars), _grid(GeoBox.from_bbox((0, 0, 1, 1), "EPSG:4326", shape=(5, 5)))
        )
    with pytest.raises(GridError, match="unknown resampling"):
        reproject_to_grid(
            arr, _grid(GeoBox.from_bbox((0, 0, 1, 1), "EPSG:4326", shape=(5, 5))), resampling="magic"
        )


_POLAR_CASES = {
    "arctic-3413": ((-180, 50, 180, 90), (120, 360), "EPSG:3413", (-3e6, -3e6, 3e6, 3e6), 301),
    "antarctic-3031": ((-180, -90, 180, -55), (140, 720), "EPSG:3031", (-3.5e6, -3.5e6, 3.5e6, 3.5e6), 333),
    "laea-dateline": (
        (-180, 30, 180, 90),
        (240, 1440),
        "+proj=laea +lat_0=60 +lon_0=180 +datum=WGS84",
        (-3e6, -3e6, 3e6, 3e6),
        400,
    ),
    "utm-fine": (
        (8.0, 47.0, 10.0, 48.0),
        (1000, 2000),
        "EPSG:32632",
        (440000, 5210000, 560000, 5310000),
        500,
    ),
}


@pytest.mark.parametrize("case", list(_POLAR_CASES))
def test_fast_coordinate_map_within_tolerance_of_exact_transform(case: str) -> None:
    """The fast path's interpolated source coordinates stay within 1/8 source pixel (GDAL's default
    approximation error) of exact PROJ transforms at every grid pixel, pole and seam included: a source
    whose value is its own row (column) coordinate returns, by bilinear interpolation, the source
    position each grid pixel was mapped to."""
    pytest.importorskip("numba")
    bbox, shape, crs, dbox, m = _POLAR_CASES[case]
    src = GeoBox.from_bbox(bbox, "EPSG:4326", shape=shape)
    rows, cols = np.meshgrid(np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5, indexing="ij")
    dst = GeoBox.from_bbox(dbox, crs, shape=(m, m))
    out_r = reproject_to_grid(_da(rows, src), _grid(dst, 64), resampling="bilinear").values
    out_c = reproject_to_grid(_da(cols, src), _grid(dst, 64), resampling="bilinear").values
    lon, lat = _centres_in(dst, "EPSG:4326")
    lon = (lon - bbox[0]) % 360 + bbox[0]
    exact_c, exact_r = ~src.affine * (lon, lat)
    interior_r = (exact_r > 0.5) & (exact_r < shape[0] - 0.5) & (exact_c > -0.5) & (exact_c < shape[1] + 0.5)
    assert interior_r.sum() > 0.3 * m * m
    assert np.isfinite(out_r[interior_r]).all()
    assert np.max(np.abs(out_r - exact_r)[interior_r]) <= 0.125
    interior_c = interior_r & (exact_c > 0.5) & (exact_c < shape[1] - 0.5)  # away from the seam (values jump)
    assert np.max(np.abs(out_c - exact_c)[interior_c]) <= 0.125


def test_fast_path_equals_gdal_with_missing_data() -> None:
    """With NaN holes and a nodata value, the fast bilinear/nearest kernels skip missing neighbours and
    renormalise like GDAL's (same CRS, so GDAL's transform is exact): the two agree to float rounding."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    src = GeoBox((60, 80), Affine(1000, 0, 500000, 0, -1000, 6000000), "EPSG:32633")
    field = rng.normal(10.0, 2.0, size=src.shape)
    field[rng.random(src.shape) < 0.1] = np.nan
    field[20:25, 30:40] = np.nan
    dst = GeoBox((70, 90), Affine(730, 0, 503217, 0, -730, 5995333), "EPSG:32633")
    for method in ("bilinear", "nearest"):
        fast = reproject_to_grid(_da(field, src), _grid(dst, 32), resampling=method).values
        ref = reproject_to_grid(_da(field, src), _grid(dst, 32), resampling=method, engine="gdal").values
        assert np.array_equal(np.isnan(fast), np.isnan(ref))
        np.testing.assert_allclose(fast, ref, rtol=1e-12, equal_nan=True)
    filled = _da(np.where(np.isnan(field), -9999.0, field), src).assign_attrs(nodata=-9999.0)
    fast = reproject_to_grid(filled, _grid(dst, 32), resampling="bilinear").values
    ref = reproject_to_grid(_da(field, src), _grid(dst, 32), resampling="bilinear", engine="gdal").values
    np.testing.assert_allclose(fast, ref, rtol=1e-12, equal_nan=True)


def test_fast_path_nearest_hot_pixel_and_cached_plan_for_band_stacks() -> None:
    """Nearest: the hot 0.01-degree pixel fills exactly the UTM cells whose centres lie in it (pyproj).
    A 3-band stack gives each band the single-band result, and reuses the cached coordinate plan."""
    pytest.importorskip("numba")
    from pipelines import fastwarp

    src = GeoBox.from_bbox((8.5, 47.0, 9.5, 48.0), "EPSG:4326", shape=(100, 100))
    field = np.zeros(src.shape)
    field[37, 61] = 1000.0
    dst = GeoBox.from_bbox((490000, 5260000, 510000, 5280000), "EPSG:32632", resolution=250)
    out = reproject_to_grid(_da(field, src), _grid(dst, 32), resampling="nearest").values
    gx, gy = np.meshgrid(dst.coords["x"].values, dst.coords["y"].values)
    lon, lat = Transformer.from_crs(32632, 4326, always_xy=True).transform(gx, gy)
    col, row = ~src.affine * (lon, lat)
    inside = (np.floor(col) == 61) & (np.floor(row) == 37)
    assert inside.sum() > 4
    np.testing.assert_array_equal(out == 1000.0, inside)
    stack = xr.concat([_da(field * k, src) for k in (1.0, 2.0, 3.0)], dim="band")
    built = fastwarp._coord_plan.cache_info().misses
    bands = reproject_to_grid(stack, _grid(dst, 32), resampling="nearest").values
    assert fastwarp._coord_plan.cache_info().misses == built  # every chunk's plan came from the cache
    for k in range(3):
        np.testing.assert_array_equal(bands[k], out * (k + 1))


def test_fast_nearest_integer_categories_with_nodata_follow_exact_transform() -> None:
    """uint8 classes with nodata 0, nearest: each cell holds the class of the source pixel that contains
    its centre (exact pyproj), NaN for class 0, except where the centre lies within 1e-3 px of a pixel
    edge (interpolated positions are that close; GDAL's approximate transformer misses 1 % of cells)."""
    pytest.importorskip("numba")
    src = GeoBox.from_bbox((8.5, 47.0, 9.5, 48.0), "EPSG:4326", shape=(100, 100))
    classes = (np.arange(100 * 100).reshape(100, 100) % 7).astype("uint8")
    arr = _da(classes, src).assign_attrs(nodata=0)
    dst = GeoBox.from_bbox((490000, 5260000, 510000, 5280000), "EPSG:32632", resolution=250)
    out = reproject_to_grid(arr, _grid(dst, 32), resampling="nearest").values
    gx, gy = np.meshgrid(dst.coords["x"].values, dst.coords["y"].values)
    lon, lat = Transformer.from_crs(32632, 4326, always_xy=True).transform(gx, gy)
    col, row = ~src.affine * (lon, lat)
    expected = classes[np.floor(row).astype(int), np.floor(col).astype(int)].astype("float32")
    expected[expected == 0] = np.nan
    clear = np.minimum(np.abs(col - np.round(col)), np.abs(row - np.round(row))) > 1e-3
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[clear], expected[clear])


def test_unknown_engine_is_refused() -> None:
    src = GeoBox.from_bbox((0, 0, 1, 1), "EPSG:4326", shape=(10, 10))
    with pytest.raises(GridError, match="unknown engine"):
        reproject_to_grid(_da(np.ones(src.shape), src), _grid(src), engine="cuda")


def _timed(times: pd.DatetimeIndex) -> xr.Dataset:
    hours = ((times - times[0]) / pd.Timedelta("1h")).to_numpy()
    data = da.from_array(np.broadcast_to(hours[:, None, None], (times.size, 2, 3)).copy(), chunks=(1, 2, 3))
    return xr.Dataset({"v": (("time", "y", "x"), data)}, coords={"time": times})


def _time_grid(start: str, end: str, freq: str) -> RegionGrid:
    gbox = GeoBox.from_bbox((0, 0, 3, 2), "EPSG:4326", shape=(2, 3))
    return RegionGrid(name="t", geobox=gbox, time=pd.date_range(start, end, freq=freq), chunks={"time": 4})


def test_align_time_linear_interpolates_a_linear_signal() -> None:
    src = _timed(pd.date_range("2020-01-01", periods=3, freq="6h"))  # v = hours since start
    grid = _time_grid("2020-01-01 01:00", "2020-01-01 14:00", "1h")
    out = align_time(src, grid, "linear")["v"].values
    hours = np.arange(1, 15, dtype=float)
    np.testing.assert_allclose(out[hours <= 12, 0, 0], hours[hours <= 12])
    assert np.isnan(out[hours > 12]).all()  # no extrapolation


def test_align_time_nearest_and_range_errors() -> None:
    src = _timed(pd.date_range("2020-01-01", periods=3, freq="6h"))
    grid = _time_grid("2020-01-01 02:00", "2020-01-01 11:00", "3h")  # 02, 05, 08, 11
    out = align_time(src, grid, "nearest")["v"].values[:, 0, 0]
    np.testing.assert_array_equal(out, [0.0, 6.0, 6.0, 12.0])
    with pytest.raises(GridError, match="does not overlap"):
        align_time(src, _time_grid("2021-01-01", "2021-01-02", "1D"), "linear")
    with pytest.raises(GridError, match="unknown time method"):
        align_time(src, grid, "cubic-spline")
