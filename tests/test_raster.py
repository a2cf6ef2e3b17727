"""GeoTIFF/COG reader: real files from shared/data and small synthetic GeoTIFFs, plus bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from pipelines.config import RegionConfig, SourceConfig
from pipelines.grid import region_grid
from pipelines.sources import SourceError
from pipelines.sources.raster import load, open_raster

from .conftest import shared_file

MARS_WKT = 'GEOGCRS["Mars (2015) - Sphere / Ocentric",DATUM["Mars (2015) - Sphere",ELLIPSOID["Mars (2015) - Sphere",3396190,0,LENGTHUNIT["metre",1]]],PRIMEM["Reference Meridian",0,ANGLEUNIT["degree",0.0174532925199433]],CS[ellipsoidal,2],AXIS["geodetic latitude (Lat)",north,ORDER[1],ANGLEUNIT["degree",0.0174532925199433]],AXIS["geodetic longitude (Lon)",east,ORDER[2],ANGLEUNIT["degree",0.0174532925199433]]]'  # noqa: E501


def write_tif(
    path: Path,
    data: np.ndarray,
    transform: Affine,
    crs: str | None = "EPSG:32633",
    nodata: float | None = None,
    scales: list[float] | None = None,
    offsets: list[float] | None = None,
    tiled: bool = False,
) -> Path:
    data = data if data.ndim == 3 else data[None]
    profile = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype,
        "transform": transform,
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if scales:
            dst.scales = scales
        if offsets:
            dst.offsets = offsets
    return path


def grid_of(
    crs: str, bounds: tuple[float, float, float, float], res: float | tuple[float, float], chunk: int = 64
):
    return region_grid(
        RegionConfig(name="r", crs=crs, bounds=bounds, resolution=res, chunks={"y": chunk, "x": chunk})
    )


def source(path: Path | str, variables: dict, **options) -> SourceConfig:
    return SourceConfig(name="src", kind="raster", path=str(path), variables=variables, options=options)


UTM = Affine(100.0, 0, 500000.0, 0, -100.0, 6000000.0)


# ---------------------------------------------------------------- synthetic files


def test_scale_offset_and_nodata_tag(tmp_path: Path) -> None:
    """value = raw * scale + offset per band; the nodata tag becomes NaN."""
    raw = np.arange(2 * 20 * 30, dtype="int16").reshape(2, 20, 30)
    raw[0, 3, 4] = raw[1, 5, 6] = -9999
    path = write_tif(tmp_path / "s.tif", raw, UTM, nodata=-9999, scales=[0.01, 2.0], offsets=[5.0, -1.0])
    native = open_raster(path).values
    assert np.isnan(native[0, 3, 4]) and np.isnan(native[1, 5, 6])
    np.testing.assert_allclose(native[0, 0, :5], raw[0, 0, :5] * 0.01 + 5.0, rtol=1e-6)
    np.testing.assert_allclose(native[1, 10, 10], raw[1, 10, 10] * 2.0 - 1.0, rtol=1e-6)
    # the same grid as the file: nearest resampling returns the file's values
    grid = grid_of("EPSG:32633", (500000, 5998000, 503000, 6000000), 100)
    ds = load(
        source(
            path, {"a": {"band": 1, "units": "K"}, "b": {"band": 2, "units": "K", "resampling": "nearest"}}
        ),
        grid,
    )
    np.testing.assert_array_equal(ds["a"].values, native[0])
    np.testing.assert_array_equal(ds["b"].values, native[1])
    assert ds["a"].attrs["units"] == "K" and ds["a"].attrs["grid_mapping"] == "spatial_ref"
    assert ds.attrs["geotwin_source_files"][0]["path"] == str(path)


def test_nodata_override_and_float_nan(tmp_path: Path) -> None:
    """options.nodata masks a value the file does not tag; NaN in an untagged float file stays no-data."""
    raw = np.full((10, 10), 3.0, dtype="float32")
    raw[2, 2] = -1.0
    raw[5, 5] = np.nan
    path = write_tif(tmp_path / "f.tif", raw, UTM)
    assert np.isnan(open_raster(path).values[0, 5, 5])
    assert open_raster(path).values[0, 2, 2] == -1.0
    grid = grid_of("EPSG:32633", (500000, 5999000, 501000, 6000000), 500)
    ds = load(source(path, {"v": {"units": "m", "resampling": "average"}}, nodata=-1.0), grid)
    # the two no-data pixels are ignored by the area average: every 5x5 block averages to 3
    np.testing.assert_allclose(ds["v"].values, 3.0)


def test_band_selection_and_multiband_variable(tmp_path: Path) -> None:
    raw = np.stack([np.full((8, 8), b, dtype="uint8") for b in (1, 2, 3)])
    path = write_tif(tmp_path / "rgb.tif", raw, UTM)
    grid = grid_of("EPSG:32633", (500000, 5999200, 500800, 6000000), 100)
    ds = load(source(path, {"rgb": {"units": "1"}, "g": {"band": 2, "units": "1"}}), grid)
    assert ds["rgb"].dims == ("band", "y", "x")
    np.testing.assert_array_equal(ds["rgb"].values[:, 0, 0], [1, 2, 3])
    assert np.all(ds["g"].values == 2)


def test_time_option_puts_snapshot_on_nearest_step(tmp_path: Path) -> None:
    path = write_tif(tmp_path / "t.tif", np.ones((4, 4), "float32"), UTM)
    cfg = RegionConfig(
        name="r",
        crs="EPSG:32633",
        bounds=(500000, 5999600, 500400, 6000000),
        resolution=100,
        time={"start": "2020-01-01", "end": "2020-01-03", "freq": "1D"},
    )
    ds = load(source(path, {"v": {"units": "1"}}, time="2020-01-02T03:00:00Z"), region_grid(cfg))
    assert ds["v"].dims == ("time", "y", "x")
    np.testing.assert_array_equal(np.isfinite(ds["v"].values).all(axis=(1, 2)), [False, True, False])


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="raster file not found"):
        load(source(tmp_path / "nope.tif", {"v": {"units": "1"}}), grid_of("EPSG:32633", (0, 0, 10, 10), 1))


def test_truncated_geotiff(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = write_tif(tmp_path / "full.tif", rng.random((256, 256)).astype("float32"), UTM, tiled=True)
    data = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="truncated or corrupt"):
        open_raster(cut)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(SourceError, match="not a readable raster"):
        open_raster(junk)


def test_no_crs(tmp_path: Path) -> None:
    path = write_tif(tmp_path / "nocrs.tif", np.ones((4, 4), "float32"), UTM, crs=None)
    with pytest.raises(SourceError, match="has no CRS"):
        open_raster(path)


def test_outside_region(tmp_path: Path) -> None:
    path = write_tif(tmp_path / "o.tif", np.ones((4, 4), "float32"), UTM)
    far = grid_of("EPSG:32633", (100000, 1000000, 110000, 1010000), 1000)
    with pytest.raises(SourceError, match=r"o\.tif: variable 'v'.*do not overlap the region grid"):
        load(source(path, {"v": {"units": "1"}}), far)


def test_band_out_of_range_and_missing_units(tmp_path: Path) -> None:
    path = write_tif(tmp_path / "b.tif", np.ones((2, 4, 4), "float32"), UTM)
    grid = grid_of("EPSG:32633", (500000, 5999600, 500400, 6000000), 100)
    with pytest.raises(SourceError, match="band 3 requested but the file has 2 band"):
        load(source(path, {"v": {"band": 3, "units": "1"}}), grid)
    with pytest.raises(SourceError, match="variable 'v'.*set 'units' in the config"):
        load(source(path, {"v": {"band": 1}}), grid)


def test_other_body_crs_refused(tmp_path: Path) -> None:
    path = write_tif(
        tmp_path / "mars.tif", np.ones((4, 4), "float32"), Affine(0.1, 0, 10, 0, -0.1, 10), crs=MARS_WKT
    )
    with pytest.raises(SourceError, match="Mars"):
        load(source(path, {"v": {"units": "1"}}), grid_of("EPSG:4326", (10, 9.6, 10.4, 10), 0.1))


# ---------------------------------------------------------------- real files (shared/data)


def test_rgb_byte_nodata_zero(shared_data: Path) -> None:
    """RGB.byte.tif (nodata=0): on the file's own grid the values are the file's, zeros become NaN."""
    path = shared_file(shared_data, "satellite/RGB.byte.tif")
    with rasterio.open(path) as src:
        raw = src.read().astype("float32")
        b = src.bounds
        res = src.res
    grid = grid_of("EPSG:32618", (b.left, b.bottom, b.right, b.top), res, chunk=256)
    ds = load(source(path, {"rgb": {"units": "1", "resampling": "nearest"}}), grid)
    expected = np.where(raw == 0, np.nan, raw)
    np.testing.assert_array_equal(ds["rgb"].values, expected)
    assert int(np.isnan(ds["rgb"].values).sum()) == int((raw == 0).sum())


def test_sentinel_b04_average_is_exact_block_mean(shared_data: Path) -> None:
    """Sentinel-2 B04 (uint16, nodata 0) averaged onto an aligned 300 m grid = the 3x3 block means (NumPy)."""
    path = shared_file(shared_data, "satellite/S2A_29RKH_20200219_0_L2A/B04.tif")
    with rasterio.open(path) as src:
        raw = src.read(1).astype("float64")
    raw[raw == 0] = np.nan
    expected = raw[90:990, 90:990].reshape(300, 3, 300, 3).mean(axis=(1, 3)) * 1e-4
    grid = grid_of("EPSG:32629", (208980, 2701020, 298980, 2791020), 300, chunk=128)
    ds = load(source(path, {"red": {"units": "1", "scale": 1e-4}}), grid)  # auto: source finer -> average
    np.testing.assert_allclose(ds["red"].values, expected, rtol=1e-6)


def test_sentinel_scl_categories_survive(shared_data: Path) -> None:
    """SCL classes stay classes (nearest): no interpolated values on a rotated-resolution grid."""
    path = shared_file(shared_data, "satellite/S2A_29RKH_20200219_0_L2A/SCL.tif")
    with rasterio.open(path) as src:
        classes = set(np.unique(src.read(1))) - {0}
    grid = grid_of("EPSG:4326", (-12.1, 24.4, -11.3, 25.2), 0.005)
    ds = load(source(path, {"scl": {"units": "1"}}, categorical=True), grid)
    values = ds["scl"].values
    assert set(np.unique(values[np.isfinite(values)]).astype(int)) <= {int(c) for c in classes}


def test_bremen_3031_nan_nodata_block_mean(shared_data: Path) -> None:
    """Bremen sea-ice tif (EPSG:3031, NaN without a nodata tag): 25 km average = NaN-ignoring 4x4 block mean."""
    path = shared_file(shared_data, "ocean_ice/bremen_sea_ice_conc_2022_9_9.tif")
    with rasterio.open(path) as src:
        raw = src.read(1).astype("float64")
        assert src.nodata is None
    blocks = raw[:1324, :1264].reshape(331, 4, 316, 4)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(blocks, axis=(1, 3))
    grid = grid_of(
        "EPSG:3031", (-3950000, 4350000 - 331 * 25000, -3950000 + 316 * 25000, 4350000), 25000, 128
    )
    ds = load(source(path, {"sic": {"units": "%"}}), grid)
    got = ds["sic"].values
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bremen_onto_geographic_grid_around_south_pole(shared_data: Path) -> None:
    """Reading the polar-stereographic ice map onto lon/lat keeps concentrations in 0..100 % and sees the
    ice edge: the sea-ice extent (cells > 15 %) lies south of 50S only."""
    path = shared_file(shared_data, "ocean_ice/bremen_sea_ice_conc_2022_9_9.tif")
    grid = grid_of("EPSG:4326", (-180, -90, 180, -40), 1.0, chunk=90)
    sic = load(source(path, {"sic": {"units": "%"}}), grid)["sic"]
    values = sic.values
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 100
    iced_lat = np.broadcast_to(sic["y"].values[:, None], values.shape)[values > 15]
    assert iced_lat.size > 1000 and iced_lat.max() < -50


def test_copernicus_dem_non_square_pixels(shared_data: Path) -> None:
    """Copernicus DEM (0.00833 x 0.000833 deg pixels): 0.025 deg cells = exact means of 3 x 30 pixel blocks."""
    path = shared_file(shared_data, "satellite/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif")
    with rasterio.open(path) as src:
        raw = src.read(1).astype("float64")
        t = src.transform
    assert abs(t.a / t.e) == pytest.approx(10.0)
    expected = raw.reshape(40, 30, 40, 3).mean(axis=(1, 3))
    grid = grid_of("EPSG:4326", (t.c, t.f - 1.0, t.c + 1.0, t.f), 0.025, chunk=16)
    ds = load(source(path, {"elevation": {"units": "m", "resampling": "average"}}), grid)
    np.testing.assert_allclose(ds["elevation"].values, expected, rtol=1e-6)


def test_goes_geostationary_crs_without_epsg(shared_data: Path) -> None:
    """goes.tif (+proj=geos, no EPSG): a nearest-resampled lon/lat cell takes the source pixel under it."""
    path = shared_file(shared_data, "satellite/goes.tif")
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() is None
        raw = src.read(1)
        inv = ~src.transform
        to_geos = Transformer.from_crs("EPSG:4326", src.crs.to_wkt(), always_xy=True)
    grid = grid_of("EPSG:4326", (-90, 10, -60, 40), 0.5, chunk=32)
    ds = load(source(path, {"b1": {"band": 1, "units": "1", "resampling": "nearest"}}), grid)
    lon, lat = np.meshgrid(ds["x"].values, ds["y"].values)
    gx, gy = to_geos.transform(lon, lat)
    col, row = inv * (gx, gy)
    expected = raw[row.astype(int), col.astype(int)].astype("float32")
    got = ds["b1"].values
    # allow GDAL's 1/8-pixel approximate transform to pick a neighbour where a cell centre sits on an edge
    edge = (np.abs(col - np.round(col)) < 0.13) | (np.abs(row - np.round(row)) < 0.13)
    np.testing.assert_array_equal(got[~edge], expected[~edge])
    assert (~edge).sum() > 0.5 * got.size
