"""STAC catalog of stored cubes: footprints checked against pyproj, datacube fields against coords."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import shapely
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from pipelines.catalog import CatalogError, cube_item, footprint, write_catalog
from pipelines.cube import make_cube
from pipelines.store import delete_cube, open_cube, write_cube

UTM = GeoBox((40, 50), Affine(1000.0, 0.0, 500000.0, 0.0, -1000.0, 7000000.0), "EPSG:32633")
POLAR = GeoBox((100, 100), Affine(25000.0, 0.0, -1250000.0, 0.0, -25000.0, 1250000.0), "EPSG:3413")
SOUTH = GeoBox((100, 100), Affine(25000.0, 0.0, -1250000.0, 0.0, -25000.0, 1250000.0), "EPSG:3031")
# UTM zone 60 (central meridian 177E), 400 km wide from the central meridian: crosses 180
DATELINE = GeoBox((100, 200), Affine(2000.0, 0.0, 500000.0, 0.0, -2000.0, 7000000.0), "EPSG:32660")


def _var(shape: tuple[int, ...], dims: tuple[str, ...], value: float = 1.0, **coords) -> xr.DataArray:
    data = np.full(shape, value, dtype="float32")
    return xr.DataArray(
        data,
        dims=dims,
        coords=coords,
        attrs={"units": "K", "long_name": "air temperature", "standard_name": "air_temperature"},
    )


def _cube(geobox: GeoBox, times: pd.DatetimeIndex | None = None, value: float = 1.0, **kw) -> xr.Dataset:
    ny, nx = geobox.shape
    if times is None:
        return make_cube({"t2m": _var((ny, nx), ("y", "x"), value)}, geobox, **kw)
    return make_cube({"t2m": _var((len(times), ny, nx), ("time", "y", "x"), value, time=times)}, geobox, **kw)


def _pyproj_bounds(geobox: GeoBox) -> tuple[float, float, float, float]:
    """Independent reference: pyproj's densified transform of the grid's outer bounds to WGS84."""
    b = geobox.extent.boundingbox
    t = Transformer.from_crs(geobox.crs.to_wkt(), "EPSG:4326", always_xy=True)
    return t.transform_bounds(b.left, b.bottom, b.right, b.top, densify_pts=2001)


def test_bbox_matches_pyproj_transform_of_utm_grid():
    _geometry, bbox = footprint(UTM)
    assert bbox == pytest.approx(_pyproj_bounds(UTM), abs=1e-6)
    # the grid's corner (500000, 7000000) is on the zone's central meridian 15E
    assert bbox[0] == pytest.approx(15.0, abs=1e-9)


def test_polar_stereographic_grid_bbox_contains_the_north_pole():
    geometry, bbox = footprint(POLAR)
    west, south, east, north = bbox
    assert (west, east, north) == (-180.0, 180.0, 90.0)
    assert south == pytest.approx(_pyproj_bounds(POLAR)[1], abs=1e-6)
    shape = shapely.geometry.shape(geometry)
    assert shape.is_valid
    # points near the pole at any longitude lie in the footprint; one south of the grid does not
    assert all(shape.covers(shapely.Point(lon, 89.5)) for lon in (-179.0, -90.0, 0.0, 90.0, 179.0))
    assert not shape.covers(shapely.Point(0.0, south - 1.0))


def test_south_polar_grid_bbox_contains_the_south_pole():
    geometry, (west, south, east, north) = footprint(SOUTH)
    assert (west, south, east) == (-180.0, -90.0, 180.0)
    assert north == pytest.approx(_pyproj_bounds(SOUTH)[3], abs=1e-6)
    assert shapely.geometry.shape(geometry).covers(shapely.Point(45.0, -89.5))


def test_antimeridian_grid_is_split_per_stac_rules():
    geometry, bbox = footprint(DATELINE)
    west, south, east, north = bbox
    ref = _pyproj_bounds(DATELINE)  # pyproj also reports west > east across the antimeridian
    assert west > east
    assert bbox == pytest.approx(ref, abs=1e-6)
    assert geometry["type"] == "MultiPolygon"
    parts = shapely.geometry.shape(geometry).geoms
    assert len(parts) == 2
    lons = np.concatenate([np.asarray(p.exterior.coords)[:, 0] for p in parts])
    assert lons.min() >= -180.0 and lons.max() <= 180.0
    # one part ends on +180, the other starts at -180
    assert sorted(round(p.bounds[2], 9) for p in parts)[-1] == 180.0
    assert sorted(round(p.bounds[0], 9) for p in parts)[0] == -180.0
    # the grid's centre cell (about 180.6E = -179.4) falls in the footprint
    cx, cy = DATELINE.affine * (100, 50)
    lon, lat = Transformer.from_crs(32660, 4326, always_xy=True).transform(cx, cy)
    lon = lon - 360.0 if lon > 180 else lon
    assert shapely.geometry.shape(geometry).covers(shapely.Point(lon, lat))


def test_geographic_grid_in_0_360_longitudes_is_split():
    gb = GeoBox((20, 40), Affine(0.5, 0.0, 170.0, 0.0, -0.5, 70.0), "EPSG:4326")
    geometry, bbox = footprint(gb)
    assert bbox == pytest.approx([170.0, 60.0, -170.0, 70.0], abs=1e-9)
    assert geometry["type"] == "MultiPolygon"


def test_item_fields_equal_the_cube(tmp_path):
    times = pd.date_range("2024-03-01", periods=4, freq="6h")
    ds = _cube(UTM, times, sources=[{"name": "era5", "path": "era5.nc", "sha256": "ab" * 32}])
    item = cube_item(ds, "weather", str(tmp_path / "store"))
    props = item.properties
    dims = props["cube:dimensions"]
    assert dims["x"]["extent"] == [float(ds.x.min()), float(ds.x.max())]
    assert dims["y"]["extent"] == [float(ds.y.min()), float(ds.y.max())]
    assert dims["x"]["step"] == 1000.0 and dims["y"]["step"] == -1000.0
    assert dims["x"]["reference_system"] == 32633
    assert dims["time"] == {
        "type": "temporal",
        "extent": ["2024-03-01T00:00:00Z", "2024-03-01T18:00:00Z"],
        "step": "P0DT6H0M0S",
    }
    var = props["cube:variables"]["t2m"]
    assert var == {
        "dimensions": ["time", "y", "x"],
        "type": "data",
        "description": "air temperature",
        "unit": "K",
        "geotwin:standard_name": "air_temperature",
    }
    assert item.datetime is None
    assert (
        props["start_datetime"] == "2024-03-01T00:00:00Z" and props["end_datetime"] == "2024-03-01T18:00:00Z"
    )
    assert props["proj:code"] == "EPSG:32633"
    assert props["proj:shape"] == [40, 50]
    assert props["proj:transform"] == [1000.0, 0.0, 500000.0, 0.0, -1000.0, 7000000.0]
    assert props["proj:bbox"] == [500000.0, 6960000.0, 550000.0, 7000000.0]
    assert props["geotwin:sources"] == [{"name": "era5", "path": "era5.nc", "sha256": "ab" * 32}]
    assert props["geotwin:version"] == ds.attrs["geotwin_version"]
    asset = item.assets["data"]
    assert asset.media_type == "application/vnd.zarr+icechunk" and asset.roles == ["data"]
    assert asset.extra_fields["xarray:open_kwargs"]["group"] == "weather"


def test_static_cube_with_config_time_has_null_datetime_and_range():
    ds = _cube(UTM, config={"time": {"start": "2023-01-01", "end": "2023-12-31T18:00", "freq": "6h"}})
    item = cube_item(ds, "static", "store")
    assert item.datetime is None
    assert item.properties["start_datetime"] == "2023-01-01T00:00:00Z"
    assert item.properties["end_datetime"] == "2023-12-31T18:00:00Z"


def test_forecast_cube_time_range_spans_reference_plus_lead():
    ref = pd.date_range("2024-01-01", periods=2, freq="12h")
    lead = pd.to_timedelta([0, 6, 12, 24], unit="h")
    ny, nx = UTM.shape
    da = xr.DataArray(
        np.zeros((2, 4, ny, nx), "float32"),
        dims=("reference_time", "lead_time", "y", "x"),
        coords={"reference_time": ref, "lead_time": lead},
        attrs={"units": "m s-1", "long_name": "wind speed"},
    )
    item = cube_item(make_cube({"ws": da}, UTM), "fc", "store")
    assert item.properties["start_datetime"] == "2024-01-01T00:00:00Z"
    assert item.properties["end_datetime"] == "2024-01-02T12:00:00Z"  # 12:00 run + 24 h
    dims = item.properties["cube:dimensions"]
    assert dims["reference_time"]["type"] == "temporal"
    assert dims["lead_time"] == {
        "type": "other",
        "extent": [0.0, 24.0],
        "unit": "h",
        "values": [0.0, 6.0, 12.0, 24.0],
    }


def test_feature_cube_bbox_from_its_positions():
    lon = xr.DataArray(
        [20.0, 25.5, 31.0],
        dims=("obs",),
        attrs={"units": "degrees_east", "long_name": "longitude", "standard_name": "longitude"},
    )
    lat = xr.DataArray(
        [70.0, 72.0, 71.0],
        dims=("obs",),
        attrs={"units": "degrees_north", "long_name": "latitude", "standard_name": "latitude"},
    )
    ds = make_cube({"lon": lon, "lat": lat}, attrs={"featureType": "trajectory"})
    item = cube_item(ds, "drift", "store")
    assert item.bbox == [20.0, 70.0, 31.0, 72.0]
    # a drift across the antimeridian (given in 0..360): west > east and a split geometry
    ds = ds.assign(lon=ds.lon.copy(data=[178.0, 181.0, 183.5]))
    item = cube_item(ds, "drift", "store")
    assert item.bbox == [178.0, 70.0, -176.5, 72.0]
    assert item.geometry["type"] == "MultiPolygon"


def test_catalog_round_trip_offline_and_asset_opens_the_cube(tmp_path):
    import icechunk

    store = tmp_path / "cubes"
    times = pd.date_range("2024-01-01", periods=3, freq="1D")
    write_cube(store, "utm", _cube(UTM, times, value=2.5))
    write_cube(store, "arctic", _cube(POLAR, value=0.75))
    path = write_catalog(store)
    assert path == store / "stac" / "catalog.json"
    catalog = pystac.Catalog.from_file(str(path))
    assert catalog.catalog_type == pystac.CatalogType.SELF_CONTAINED
    assert sorted(c.id for c in catalog.get_children()) == ["arctic", "utm"]
    items = {i.id: i for i in catalog.get_items(recursive=True)}
    assert sorted(items) == ["arctic", "utm"]
    # every link and asset href is relative (self-contained): nothing names tmp_path
    for file in (store / "stac").rglob("*.json"):
        assert str(tmp_path) not in file.read_text()
    # collection extent equals the item's bbox and time range
    coll = catalog.get_child("utm")
    assert coll.extent.spatial.bboxes[0] == items["utm"].bbox
    assert [t.isoformat() for t in coll.extent.temporal.intervals[0]] == [
        "2024-01-01T00:00:00+00:00",
        "2024-01-03T00:00:00+00:00",
    ]
    # the asset opens the same cube: Icechunk repo at the href, xarray kwargs from the item
    asset = items["utm"].assets["data"]
    href = asset.get_absolute_href()
    assert href is not None and icechunk.Repository.exists(icechunk.local_filesystem_storage(href))
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(href))
    session = repo.readonly_session(branch=asset.extra_fields["icechunk:branch"])
    opened = xr.open_dataset(session.store, **asset.extra_fields["xarray:open_kwargs"])
    xr.testing.assert_identical(opened["t2m"].load(), open_cube(store, "utm")["t2m"].load())
    assert float(opened["t2m"].mean()) == 2.5
    # the catalog folder does not disturb the store
    write_cube(store, "later", _cube(UTM))
    assert sorted(c.id for c in pystac.Catalog.from_file(str(write_catalog(store))).get_children()) == [
        "arctic",
        "later",
        "utm",
    ]


def test_update_rewrites_changed_removes_deleted_keeps_unchanged(tmp_path):
    store = tmp_path / "cubes"
    write_cube(store, "a", _cube(UTM, pd.date_range("2024-01-01", periods=2, freq="1D")))
    write_cube(store, "b", _cube(UTM))
    write_cube(store, "c", _cube(POLAR))
    write_catalog(store)
    stac = store / "stac"
    c_before = (stac / "c" / "c" / "c.json").read_bytes()
    a_before = json.loads((stac / "a" / "a" / "a.json").read_text())

    write_cube(store, "a", _cube(UTM, pd.date_range("2024-01-01", periods=5, freq="1D")))
    delete_cube(store, "b")
    catalog = pystac.Catalog.from_file(str(write_catalog(store)))

    assert sorted(c.id for c in catalog.get_children()) == ["a", "c"]
    assert not (stac / "b").exists()
    assert (stac / "c" / "c" / "c.json").read_bytes() == c_before
    a_after = catalog.get_child("a").get_item("a")
    assert a_after.properties["end_datetime"] == "2024-01-05T00:00:00Z"
    assert a_before["properties"]["end_datetime"] == "2024-01-02T00:00:00Z"
    assert a_after.properties["geotwin:fingerprint"] != a_before["properties"]["geotwin:fingerprint"]
    assert a_after.properties["updated"] >= a_before["properties"]["updated"]


def test_refuses_to_overwrite_a_foreign_catalog(tmp_path):
    store = tmp_path / "cubes"
    write_cube(store, "a", _cube(UTM))
    other = tmp_path / "other"
    pystac.Catalog(id="mine", description="not geotwin").normalize_and_save(str(other))
    with pytest.raises(CatalogError, match="not a geotwin catalog"):
        write_catalog(store, other)


def test_core_stac_schemas_validate_offline(tmp_path, monkeypatch):
    """pystac ships the STAC 1.1 core JSON schemas; extension schemas would need the network (not checked)."""
    pytest.importorskip("jsonschema")
    import socket

    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    def offline(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", offline)
    store = tmp_path / "cubes"
    write_cube(store, "timed", _cube(DATELINE, pd.date_range("2024-01-01", periods=2, freq="1D")))
    write_cube(store, "static", _cube(POLAR))
    catalog = pystac.Catalog.from_file(str(write_catalog(store)))
    validator = JsonSchemaSTACValidator()
    kinds = pystac.STACObjectType
    assert validator.validate_core(catalog.to_dict(), kinds.CATALOG, "1.1.0")
    for coll in catalog.get_children():
        assert validator.validate_core(coll.to_dict(), kinds.COLLECTION, "1.1.0")
    items = list(catalog.get_items(recursive=True))
    for item in items:
        assert validator.validate_core(item.to_dict(), kinds.ITEM, "1.1.0")
    # negative control: a range item without its end violates the core schema
    broken = next(i for i in items if i.id == "timed").to_dict()
    broken["properties"].pop("end_datetime")
    with pytest.raises(pystac.errors.STACValidationError):
        validator.validate_core(broken, kinds.ITEM, "1.1.0")


def test_catalog_elsewhere_points_back_at_the_store(tmp_path):
    store = tmp_path / "cubes"
    write_cube(store, "a", _cube(UTM))
    path = write_catalog(store, tmp_path / "published" / "stac", title="Demo cubes")
    catalog = pystac.Catalog.from_file(str(path))
    assert catalog.title == "Demo cubes"
    item = next(catalog.get_items(recursive=True))
    assert item.assets["data"].href == "../../../../cubes"
    assert Path(item.assets["data"].get_absolute_href()) == store


@pytest.mark.parametrize(
    ("geobox", "expected"),
    [
        (
            GeoBox((180, 360), Affine(1.0, 0.0, -180.0, 0.0, -1.0, 90.0), "EPSG:4326"),
            [-180.0, -90.0, 180.0, 90.0],
        ),
        (GeoBox((30, 360), Affine(1.0, 0.0, 0.0, 0.0, -1.0, 90.0), "EPSG:4326"), [-180.0, 60.0, 180.0, 90.0]),
        # Web Mercator a little wider than the world: y from 0 to 1e7 m (lat 0 to 66.4461 N)
        (
            GeoBox((100, 401), Affine(1e5, 0.0, -20037508.34, 0.0, -1e5, 1e7), "EPSG:3857"),
            [-180.0, 0.0, 180.0, 66.44609],
        ),
    ],
    ids=["global", "arctic-band-0-360", "mercator-wider-than-world"],
)
def test_grids_spanning_all_longitudes_give_a_global_band(geobox, expected):
    geometry, bbox = footprint(geobox)
    assert bbox == pytest.approx(expected, abs=1e-4)
    assert shapely.geometry.shape(geometry).is_valid
    assert shapely.geometry.shape(geometry).bounds == pytest.approx(tuple(bbox))


def test_local_engineering_crs_gets_a_null_geometry(tmp_path: Path) -> None:
    """A cube on a local engineering CRS (a reservoir deck without MAPAXES) has no geographic footprint."""
    from odc.geo.geobox import GeoBox

    from pipelines.catalog import cube_item
    from tests.helpers import linear_cube

    wkt = (
        'ENGCRS["reservoir local grid",EDATUM["deck origin"],CS[Cartesian,2],'
        'AXIS["x",east,ORDER[1],LENGTHUNIT["metre",1]],AXIS["y",north,ORDER[2],LENGTHUNIT["metre",1]]]'
    )
    ds = linear_cube(gbox=GeoBox.from_bbox((0, 0, 300, 300), "EPSG:32633", resolution=100))
    ds["spatial_ref"].attrs = {"crs_wkt": wkt}  # odc-geo builds no coordinates for engineering CRSs
    item = cube_item(ds, "local", str(tmp_path))
    assert item.geometry is None and item.bbox is None
    assert item.properties["proj:shape"] == [3, 3]
    assert "reservoir local grid" in item.properties["proj:wkt2"]
