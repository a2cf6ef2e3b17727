"""STAC reader: the shared Sentinel-2 item (offline, local assets) and small synthetic items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from pipelines.config import RegionConfig, SourceConfig
from pipelines.grid import region_grid
from pipelines.sources import SourceError
from pipelines.sources import raster as raster_reader
from pipelines.sources.stac import load, open_items

pytest.importorskip("odc.stac", reason="odc-stac is not installed")

from .conftest import shared_file
from .test_raster import write_tif

S2 = "satellite/S2A_29RKH_20200219_0_L2A"
UTM = Affine(100.0, 0, 500000.0, 0, -100.0, 6000000.0)
# sha256 of B04.tif as published in shared/data/README.md
B04_SHA256 = "03d15e216bdc97fce93f6067bb4699dc58a89205ac2b169e0be7c51946aaff47"


def grid_of(crs, bounds, res, chunk=128, time=None):
    return region_grid(
        RegionConfig(
            name="r", crs=crs, bounds=bounds, resolution=res, chunks={"y": chunk, "x": chunk}, time=time
        )
    )


def stac_source(path, variables, **options) -> SourceConfig:
    return SourceConfig(name="s", kind="stac", path=str(path), variables=variables, options=options)


def write_item(folder: Path, name: str, when: str, href: str, *, nodata=0, scale=0.5, offset=1.0) -> Path:
    """A minimal STAC item (lon/lat footprint of the UTM 33N test raster) with one relative asset."""
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": name,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[14.9, 54.0], [15.1, 54.0], [15.1, 54.2], [14.9, 54.2], [14.9, 54.0]]],
        },
        "bbox": [14.9, 54.0, 15.1, 54.2],
        "properties": {"datetime": when},
        "links": [],
        "assets": {
            "data": {
                "href": href,
                "type": "image/tiff; application=geotiff",
                "raster:bands": [{"nodata": nodata, "scale": scale, "offset": offset, "unit": "W m-2"}],
            }
        },
        "stac_extensions": ["https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(item))
    return path


# ---------------------------------------------------------------- shared Sentinel-2 item


def test_sentinel_item_red_equals_block_mean_and_raster_reader(shared_data: Path) -> None:
    """Red (B04) through STAC/odc-stac: raster:bands scale 1e-4 applied, nodata 0 ignored; on an aligned
    300 m grid it equals the 3x3 block means computed with NumPy, on a shifted grid it equals our own
    GeoTIFF reader (an independent warp path)."""
    item = shared_file(shared_data, f"{S2}/S2A_29RKH_20200219_0_L2A.json")
    b04 = shared_file(shared_data, f"{S2}/B04.tif")
    with rasterio.open(b04) as src:
        raw = src.read(1).astype("float64")
    raw[raw == 0] = np.nan
    expected = raw[90:990, 90:990].reshape(300, 3, 300, 3).mean(axis=(1, 3)) * 1e-4
    aligned = grid_of("EPSG:32629", (208980, 2701020, 298980, 2791020), 300)
    ds = load(stac_source(item, {"red": {"name": "red", "units": "1"}}, local_assets=True), aligned)
    assert ds["red"].dims == ("time", "y", "x")
    assert ds["time"].values[0] == np.datetime64("2020-02-19T11:34:25.405")
    np.testing.assert_allclose(ds["red"].values[0], expected, rtol=1e-6)
    files = {Path(f["path"]).name: f["sha256"] for f in ds.attrs["geotwin_source_files"]}
    assert files["B04.tif"] == B04_SHA256

    shifted = grid_of("EPSG:32629", (210000, 2700000, 300000, 2790000), 250)
    via_stac = load(stac_source(item, {"red": {"name": "red", "units": "1"}}, local_assets=True), shifted)
    direct = raster_reader.load(
        SourceConfig(
            name="b", kind="raster", path=str(b04), variables={"red": {"units": "1", "scale": 1e-4}}
        ),
        shifted,
    )
    np.testing.assert_allclose(via_stac["red"].values[0], direct["red"].values, rtol=1e-5, atol=1e-7)


def test_sentinel_item_ndvi_and_scl_classes(shared_data: Path) -> None:
    """NIR and red from one item give NDVI in [-1, 1]; the 20 m SCL stays categorical (nearest)."""
    item = shared_file(shared_data, f"{S2}/S2A_29RKH_20200219_0_L2A.json")
    with rasterio.open(shared_file(shared_data, f"{S2}/SCL.tif")) as src:
        classes = {int(c) for c in np.unique(src.read(1))} - {0}
    grid = grid_of("EPSG:32629", (200000, 2700000, 300000, 2800000), 1000)
    variables = {
        "red": {"name": "red", "units": "1"},
        "nir": {"name": "nir", "units": "1"},
        "scl": {"name": "scl", "units": "1"},
    }
    ds = load(stac_source(item, variables, local_assets=True, categorical=["scl"]), grid).isel(time=0)
    ndvi = ((ds["nir"] - ds["red"]) / (ds["nir"] + ds["red"])).values
    assert np.isfinite(ndvi).all() and np.all(np.abs(ndvi) <= 1)
    scl = ds["scl"].values
    assert set(np.unique(scl).astype(int)) <= classes


def test_sentinel_item_remote_hrefs_need_local_assets(shared_data: Path) -> None:
    item = shared_file(shared_data, f"{S2}/S2A_29RKH_20200219_0_L2A.json")
    grid = grid_of("EPSG:32629", (200000, 2700000, 300000, 2800000), 1000)
    with pytest.raises(SourceError, match="variable 'red'.*is remote; set options.local_assets"):
        load(stac_source(item, {"red": {"name": "red", "units": "1"}}), grid)
    with pytest.raises(SourceError, match="has no asset 'B99'; available: .*'red'"):
        load(stac_source(item, {"x": {"name": "B99", "units": "1"}}, local_assets=True), grid)
    with pytest.raises(SourceError, match=r"asset file .*B01\.tif not found"):
        load(stac_source(item, {"coastal": {"name": "coastal", "units": "1"}}, local_assets=True), grid)


# ---------------------------------------------------------------- synthetic items


def test_relative_href_scale_offset_nodata(tmp_path: Path) -> None:
    raw = np.full((20, 20), 10, dtype="uint16")
    raw[0, 0] = 0
    write_tif(tmp_path / "band.tif", raw, UTM, nodata=0)
    item = write_item(tmp_path, "a", "2021-06-01T10:00:00Z", "band.tif")
    grid = grid_of("EPSG:32633", (500000, 5998000, 502000, 6000000), 100)
    ds = load(stac_source(item, {"flux": {"name": "data"}}), grid)
    values = ds["flux"].values[0]
    assert np.isnan(values[0, 0])
    np.testing.assert_allclose(values[np.isfinite(values)], 10 * 0.5 + 1.0)  # raw * scale + offset
    assert ds["flux"].attrs["units"] == "W m-2"  # from raster:bands unit


def test_item_collection_onto_time_axis(tmp_path: Path) -> None:
    """Two items on two days become two time steps; the grid's daily axis takes the nearest one."""
    for day, value in (("01", 2), ("03", 4)):
        write_tif(tmp_path / f"d{day}.tif", np.full((20, 20), value, dtype="uint16"), UTM, nodata=0)
        write_item(tmp_path, f"i{day}", f"2021-06-{day}T10:00:00Z", f"d{day}.tif", scale=1.0, offset=0.0)
    features = [json.loads((tmp_path / f"i{d}.json").read_text()) for d in ("01", "03")]
    coll = tmp_path / "items.json"
    coll.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    assert [i.id for i in open_items(coll)] == ["i01", "i03"]
    grid = grid_of(
        "EPSG:32633",
        (500000, 5998000, 502000, 6000000),
        500,
        time={"start": "2021-06-01T10:00", "end": "2021-06-04T10:00", "freq": "1D"},
    )
    ds = load(stac_source(coll, {"v": {"name": "data"}}, time_method="linear"), grid)
    assert list(pd.DatetimeIndex(ds["time"].values).day) == [1, 2, 3, 4]
    np.testing.assert_allclose(ds["v"].values[:3, 0, 0], [2.0, 3.0, 4.0])  # linear in time
    assert np.isnan(ds["v"].values[3]).all()  # after the last item: no extrapolation


def test_bad_items(tmp_path: Path) -> None:
    grid = grid_of("EPSG:32633", (500000, 5998000, 502000, 6000000), 500)
    with pytest.raises(SourceError, match="STAC item file not found"):
        load(stac_source(tmp_path / "none.json", {"v": {"name": "data"}}), grid)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SourceError, match="not valid JSON"):
        open_items(bad)
    bad.write_text(json.dumps({"type": "Catalog", "id": "c"}))
    with pytest.raises(SourceError, match="expected a STAC Item"):
        open_items(bad)
    write_tif(tmp_path / "band.tif", np.ones((20, 20), dtype="uint16"), UTM)
    item = write_item(tmp_path, "a", "2021-06-01T10:00:00Z", "band.tif")
    far = grid_of("EPSG:32633", (100000, 1000000, 110000, 1010000), 1000)
    with pytest.raises(SourceError, match="no STAC item footprint overlaps the region"):
        load(stac_source(item, {"v": {"name": "data"}}), far)
