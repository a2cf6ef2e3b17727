"""Vector reader (pipelines.sources.vector): formats, real files, and bad input."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS, Transformer

from pipelines.config import RegionConfig, SourceConfig
from pipelines.cube import make_cube
from pipelines.grid import region_grid
from pipelines.sources import SourceError, load_source
from pipelines.sources.vector import open_vector
from tests.conftest import shared_file

# shapefile writers in these tests truncate 'capacity_mw' and write one file without a CRS on purpose
pytestmark = [
    pytest.mark.filterwarnings("ignore:Column names longer than 10:UserWarning"),
    pytest.mark.filterwarnings("ignore:Normalized/laundered field name:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning"),
]

UTM = "EPSG:32610"
X0, Y0, CELL = 560_000.0, 4_180_000.0, 10.0  # grid: x 560000..560100, y 4179920..4180000


def make_grid(crs=UTM, bounds=(X0, Y0 - 80, X0 + 100, Y0), res=CELL, chunks=None):
    cfg = RegionConfig(name="t", crs=crs, bounds=bounds, resolution=res, chunks=chunks or {"y": 3, "x": 4})
    return region_grid(cfg)


def source(path, variables, **options) -> SourceConfig:
    return SourceConfig(name="src", kind="vector", path=str(path), variables=variables, options=options)


@pytest.fixture
def features() -> gpd.GeoDataFrame:
    """A quarter-cell building, a 2x3-cell building, two roads and two plants, in UTM 10N."""
    geoms = [
        shapely.box(X0 + 20, Y0 - 30, X0 + 25, Y0 - 25),  # quarter of cell (row 2, col 2)
        shapely.box(X0 + 50, Y0 - 60, X0 + 80, Y0 - 40),  # 6 full cells
        shapely.LineString([(X0 + 5, Y0 - 75), (X0 + 95, Y0 - 75)]),  # 90 m, row 7
        shapely.LineString([(X0 + 5, Y0 - 5), (X0 + 5, Y0 - 45)]),  # 40 m, col 0
        shapely.Point(X0 + 33, Y0 - 12),  # row 1, col 3
        shapely.Point(X0 + 38, Y0 - 17),  # row 1, col 3
    ]
    return gpd.GeoDataFrame(
        {
            "building": ["yes", "house", None, None, None, None],
            "highway": [None, None, "primary", "footway", None, None],
            "capacity_mw": [np.nan, np.nan, np.nan, np.nan, 12.5, 7.25],
        },
        geometry=geoms,
        crs=UTM,
    )


VARS = {
    "building_fraction": {"method": "area_fraction", "where": "building.notna()"},
    "road_length_density": {"method": "length_density", "where": "highway.notna()"},
    "primary_density": {"method": "length_density", "where": "highway in ['primary']"},
    "plants": {"method": "count", "where": "capacity_mw.notna()"},
    "capacity": {"method": "sum", "attribute": "capacity_mw", "units": "MW", "where": "capacity_mw.notna()"},
}


def _write(gdf: gpd.GeoDataFrame, tmp_path: Path, fmt: str) -> Path:
    """Write ``gdf`` as ``fmt``; shapefiles hold one geometry type, so they get the polygons only."""
    if fmt in ("shp", "zip"):
        gdf = gdf[gdf.geom_type == "Polygon"]
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="GeoParquet needs pyarrow (extra 'vector')")
        path = tmp_path / "f.parquet"
        gdf.to_parquet(path)
    elif fmt == "zip":
        shp = tmp_path / "shp" / "features.shp"
        shp.parent.mkdir()
        gdf.to_file(shp)
        path = tmp_path / "features.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for part in shp.parent.iterdir():
                zf.write(part, f"inner/{part.name}")
    else:
        path = tmp_path / f"f.{fmt}"
        gdf.to_file(path)
    return path


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "zip", "parquet"])
def test_every_format_gives_the_exact_rasters(features, tmp_path, fmt):
    path = _write(features, tmp_path, fmt)
    variables = {"building_fraction": VARS["building_fraction"]} if fmt in ("shp", "zip") else VARS
    ds = load_source(source(path, variables), make_grid()).compute()
    bf = ds["building_fraction"].values
    assert bf[2, 2] == pytest.approx(0.25)
    assert bf[4:6, 5:8] == pytest.approx(np.ones((2, 3)))
    assert bf.sum() == pytest.approx(6.25)
    if fmt in ("shp", "zip"):
        return
    assert ds["road_length_density"].sum() * CELL**2 == pytest.approx(130.0, rel=1e-6)
    assert ds["primary_density"].sum() * CELL**2 == pytest.approx(90.0, rel=1e-6)
    assert ds["primary_density"][7].sum() * CELL**2 == pytest.approx(90.0, rel=1e-6)
    assert ds["plants"].values[1, 3] == 2 and ds["plants"].sum() == 2
    assert ds["capacity"].values[1, 3] == pytest.approx(19.75)
    assert ds["capacity"].attrs["units"] == "MW"
    assert ds["road_length_density"].attrs["units"] == "m m-2"


def test_output_follows_the_cube_convention_with_provenance(features, tmp_path):
    path = _write(features, tmp_path, "gpkg")
    grid = make_grid()
    ds = load_source(source(path, VARS), grid)
    assert ds.attrs["geotwin_source_files"] == [
        {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    ]
    cube = make_cube(dict(ds.data_vars), grid.geobox, sources=ds.attrs["geotwin_source_files"])
    assert cube["building_fraction"].dims == ("y", "x")
    np.testing.assert_allclose(cube["x"].values, X0 + CELL * (np.arange(10) + 0.5))


def test_features_are_reprojected_to_the_grid_crs(features, tmp_path):
    lonlat = features.to_crs("EPSG:4326")
    path = tmp_path / "ll.geojson"
    lonlat.to_file(path)
    ds = load_source(source(path, {"b": VARS["building_fraction"]}), make_grid()).compute()
    # round trip 4326 -> UTM is exact to ~1e-9 m, so the areas are those of the UTM polygons
    assert float(ds["b"].sum()) * CELL**2 == pytest.approx(6.25 * CELL**2, rel=1e-6)


def test_csv_point_table_with_named_columns(tmp_path):
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform([X0 + 33, X0 + 38, X0 + 91], [Y0 - 12, Y0 - 17, Y0 - 78])
    df = pd.DataFrame(
        {"LON_DEG": lon, "LAT_DEG": lat, "mw": [12.5, 7.25, 100.0], "fuel": ["Gas", "Solar", "Gas"]}
    )
    path = tmp_path / "plants.csv"
    df.to_csv(path, index=False)
    variables = {
        "gas_mw": {"method": "sum", "attribute": "mw", "units": "MW", "where": "fuel == 'Gas'"},
        "n": {"method": "count"},
    }
    ds = load_source(source(path, variables, lon="LON_DEG", lat="LAT_DEG"), make_grid()).compute()
    assert ds["gas_mw"].values[1, 3] == pytest.approx(12.5)
    assert ds["gas_mw"].values[7, 9] == pytest.approx(100.0)
    assert int(ds["n"].sum()) == 3 and ds["n"].values[1, 3] == 2


def test_distance_to_a_line_feature(features, tmp_path):
    path = _write(features, tmp_path, "gpkg")
    ds = load_source(
        source(path, {"d": {"method": "distance", "where": "highway == 'primary'"}}), make_grid()
    ).compute()
    yc = Y0 - CELL * (np.arange(8) + 0.5)
    # the road spans x 5..95; cells with centres in that x range are at |y - line| from it
    np.testing.assert_allclose(
        ds["d"].values[:, 1:9], np.abs(yc - (Y0 - 75))[:, None].repeat(8, 1), atol=1e-3
    )


# ---------------------------------------------------------------- real files (shared/data)


def _oakland_grid():
    return make_grid(bounds=(560_800, 4_184_200, 562_500, 4_185_900), res=20.0, chunks={"y": 32, "x": 32})


def test_osm_west_oakland_buildings_and_roads_match_geopandas(shared_data):
    path = shared_file(shared_data, "geomapping/West-Oakland.osm.bz2")
    grid = _oakland_grid()
    variables = {
        "building_fraction": {"method": "area_fraction", "where": "building.notna()"},
        "road_length_density": {"method": "length_density", "where": "highway.notna()"},
        "secondary": {"method": "length_density", "where": "highway == 'secondary'"},
    }
    ds = load_source(source(path, variables), grid).compute()
    box = shapely.box(*grid.geobox.extent.boundingbox)
    buildings = open_vector(path, "multipolygons", "building.notna()").to_crs(UTM).clip(box)
    roads = open_vector(path, "lines", "highway.notna()").to_crs(UTM).clip(box)
    assert len(buildings) == 23
    cell_area = 20.0**2
    assert float(ds["building_fraction"].astype(float).sum()) * cell_area == pytest.approx(
        buildings.area.sum(), rel=1e-5
    )
    assert float(ds["road_length_density"].astype(float).sum()) * cell_area == pytest.approx(
        roads.length.sum(), rel=1e-5
    )
    secondary = roads[roads["highway"] == "secondary"].length.sum()
    assert float(ds["secondary"].astype(float).sum()) * cell_area == pytest.approx(secondary, rel=1e-5)


def test_osm_file_with_commas_in_its_name(shared_data):
    path = shared_file(shared_data, "geomapping/planet_10.068,48.135_10.071,48.137.osm")
    crs = "EPSG:32632"
    grid = make_grid(
        crs=crs, bounds=(579_400, 5_331_800, 579_800, 5_332_100), res=10.0, chunks={"y": 16, "x": 16}
    )
    ds = load_source(
        source(path, {"b": {"method": "area_fraction", "where": "building.notna()"}}), grid
    ).compute()
    box = shapely.box(*grid.geobox.extent.boundingbox)
    buildings = open_vector(path, "multipolygons", "building.notna()").to_crs(crs)
    assert buildings.within(box).all()  # the grid holds the whole extract
    assert float(ds["b"].astype(float).sum()) * 100.0 == pytest.approx(
        buildings.make_valid().union_all().area, rel=1e-5
    )


# Census 2010 land areas (square miles) of the five boroughs, as published (e.g. Wikipedia "Boroughs
# of New York City"): Bronx 42.10, Brooklyn 70.82, Manhattan 22.83, Queens 108.53, Staten Island 58.37.
BOROUGH_LAND_SQMI = {
    "Bronx": 42.10,
    "Brooklyn": 70.82,
    "Manhattan": 22.83,
    "Queens": 108.53,
    "Staten Island": 58.37,
}


def test_nybb_us_feet_borough_areas_after_reprojection(shared_data):
    path = shared_file(shared_data, "geomapping/nybb_16a.zip")
    gdf = open_vector(path)
    assert CRS.from_user_input(gdf.crs).to_epsg() == 2263  # US survey feet
    grid = make_grid(
        crs="EPSG:32618",
        bounds=(560_000, 4_480_000, 615_000, 4_535_000),
        res=250.0,
        chunks={"y": 128, "x": 128},
    )
    variables = {
        name.replace(" ", "_").lower(): {"method": "area_fraction", "where": f"BoroName == '{name}'"}
        for name in BOROUGH_LAND_SQMI
    }
    ds = load_source(source(path, variables), grid).compute()
    ft2 = (1200.0 / 3937.0) ** 2
    for name, sqmi in BOROUGH_LAND_SQMI.items():
        km2 = float(ds[name.replace(" ", "_").lower()].astype(float).sum()) * 250.0**2 / 1e6
        assert km2 == pytest.approx(sqmi * 2.589988, rel=0.03), name
        # the file's own Shape_Area (ft^2) agrees to the UTM scale error (< 0.1 %)
        shape_area = float(gdf.loc[gdf["BoroName"] == name, "Shape_Area"].iloc[0]) * ft2 / 1e6
        assert km2 == pytest.approx(shape_area, rel=1e-3), name


def test_gppd_capacity_in_a_bbox_equals_pandas(shared_data):
    path = shared_file(shared_data, "emissions/gppd_database_USA.csv")
    bounds = (-123.0, 37.0, -121.0, 38.5)
    grid = make_grid(crs="EPSG:4326", bounds=bounds, res=0.1, chunks={"y": 8, "x": 8})
    variables = {
        "power_capacity": {"method": "sum", "attribute": "capacity_mw", "units": "MW"},
        "power_plants": {"method": "count"},
    }
    ds = load_source(source(path, variables), grid).compute()
    df = pd.read_csv(path, low_memory=False)
    inside = df["longitude"].between(bounds[0], bounds[2], inclusive="left") & df["latitude"].between(
        bounds[1], bounds[3], inclusive="right"
    )
    assert inside.sum() > 50
    assert float(ds["power_capacity"].astype(float).sum()) == pytest.approx(
        df.loc[inside, "capacity_mw"].sum(), rel=1e-6
    )
    assert int(ds["power_plants"].sum()) == int(inside.sum())


def test_wise_rivers_laea_without_epsg_reads_with_its_crs(shared_data):
    path = shared_file(shared_data, "geomapping/wise_large_rivers.zip")
    gdf = open_vector(path)
    assert gdf.crs.to_epsg() is None  # ESRI WKT, no EPSG code
    # the same projection as EPSG:3035: a point maps to the same lon/lat to the millimetre
    ll = Transformer.from_crs(gdf.crs, "EPSG:4326", always_xy=True).transform(
        4_321_000.0 + 1e5, 3_210_000.0 + 2e5
    )
    ref = Transformer.from_crs("EPSG:3035", "EPSG:4326", always_xy=True).transform(
        4_321_000.0 + 1e5, 3_210_000.0 + 2e5
    )
    assert ll == pytest.approx(ref, abs=1e-8)
    grid = make_grid(
        crs="EPSG:3035",
        bounds=(4_000_000, 2_500_000, 5_000_000, 3_500_000),
        res=10_000.0,
        chunks={"y": 50, "x": 50},
    )
    variables = {"rivers": {"method": "length_density"}, "river_distance": {"method": "distance"}}
    ds = load_source(source(path, variables), grid).compute()
    clipped = gdf.clip(shapely.box(*grid.geobox.extent.boundingbox))
    assert float(ds["rivers"].astype(float).sum()) * 1e8 == pytest.approx(clipped.length.sum(), rel=1e-5)
    # distance to the nearest river at a few cell centres, against geopandas' own distance
    lines = gdf.to_crs("EPSG:3035")
    for i, j in [(0, 0), (17, 63), (50, 50), (99, 99), (80, 5)]:
        centre = shapely.Point(float(ds["x"][j]), float(ds["y"][i]))
        assert float(ds["river_distance"][i, j]) == pytest.approx(
            lines.distance(centre).min(), rel=1e-6, abs=0.05
        )


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match=r"nope\.gpkg.*not found"):
        load_source(source(tmp_path / "nope.gpkg", VARS), make_grid())


def test_file_without_crs(features, tmp_path):
    path = tmp_path / "nocrs.shp"
    features[features.geom_type == "Polygon"].set_crs(None, allow_override=True).to_file(path)
    with pytest.raises(SourceError, match=r"nocrs\.shp.*no CRS.*option 'crs'"):
        load_source(source(path, VARS), make_grid())
    ds = load_source(source(path, {"b": VARS["building_fraction"]}, crs=UTM), make_grid()).compute()
    assert float(ds["b"].sum()) == pytest.approx(6.25)


def test_unknown_column_in_where(features, tmp_path):
    path = _write(features, tmp_path, "gpkg")
    with pytest.raises(SourceError, match=r"f\.gpkg.*'where'.*unknown column.*highway"):
        load_source(
            source(path, {"b": {"method": "area_fraction", "where": "buildingz.notna()"}}), make_grid()
        )


def test_unknown_or_non_numeric_attribute(features, tmp_path):
    path = _write(features, tmp_path, "gpkg")
    spec = {"method": "sum", "attribute": "capacity", "units": "MW", "where": "capacity_mw.notna()"}
    with pytest.raises(SourceError, match=r"attribute 'capacity' not found.*capacity_mw"):
        load_source(source(path, {"c": spec}), make_grid())
    spec = {"method": "sum", "attribute": "building", "units": "1", "where": "building.notna()"}
    with pytest.raises(SourceError, match=r"'building' must be numeric"):
        load_source(source(path, {"c": spec}), make_grid())


def test_geometry_type_wrong_for_method(features, tmp_path):
    path = _write(features, tmp_path, "gpkg")
    with pytest.raises(SourceError, match=r"'area_fraction' needs .*Polygon.*found \['LineString'\]"):
        load_source(source(path, {"b": {"method": "area_fraction", "where": "highway.notna()"}}), make_grid())
    with pytest.raises(SourceError, match=r"'count' needs .*Point.*found \['Polygon'\]"):
        load_source(source(path, {"b": {"method": "count", "where": "building.notna()"}}), make_grid())


def test_nothing_inside_the_region(features, tmp_path):
    path = _write(features, tmp_path, "gpkg")
    far = make_grid(bounds=(600_000, 4_100_000, 600_100, 4_100_080))
    with pytest.raises(SourceError, match=r"f\.gpkg.*no features inside the region"):
        load_source(source(path, VARS), far)
    with pytest.raises(SourceError, match=r"no features inside the region"):
        load_source(
            source(path, {"b": {"method": "area_fraction", "where": "building == 'castle'"}}), make_grid()
        )


def test_bad_layer_option_and_where(features, tmp_path):
    path = _write(features, tmp_path, "gpkg")
    with pytest.raises(SourceError, match=r"f\.gpkg \(layer 'roads'\)"):
        load_source(source(path, VARS, layer="roads"), make_grid())
    with pytest.raises(SourceError, match=r"unknown option\(s\) \['lyr'\]"):
        load_source(source(path, VARS, lyr="x"), make_grid())
    with pytest.raises(SourceError, match=r"'where' 'building ==' is not a valid pandas query"):
        load_source(source(path, {"b": {"method": "area_fraction", "where": "building =="}}), make_grid())


def test_csv_without_coordinates(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_csv(path, index=False)
    with pytest.raises(SourceError, match=r"t\.csv: no lon column.*'a', 'b'"):
        load_source(source(path, {"n": {"method": "count"}}), make_grid())


def test_units_rules(features, tmp_path):
    path = _write(features, tmp_path, "gpkg")
    spec = {"method": "sum", "attribute": "capacity_mw", "where": "capacity_mw.notna()"}
    with pytest.raises(SourceError, match=r"variable 'c'.*'units' is required"):
        load_source(source(path, {"c": spec}), make_grid())
    with pytest.raises(SourceError, match=r"gives units 'm m-2', not 'km km-2'"):
        load_source(source(path, {"r": {"method": "length_density", "units": "km km-2"}}), make_grid())
    scaled = {"method": "length_density", "units": "km km-2", "scale": 1000.0, "where": "highway.notna()"}
    ds = load_source(source(path, {"r": scaled}), make_grid()).compute()
    assert float(ds["r"].sum()) * CELL**2 == pytest.approx(130.0 * 1000.0, rel=1e-6)


def test_lengths_on_a_geographic_grid(features, tmp_path):
    path = _write(features.to_crs("EPSG:4326"), tmp_path, "gpkg")
    grid = make_grid(crs="EPSG:4326", bounds=(-122.4, 37.7, -122.2, 37.8), res=0.01)
    with pytest.raises(SourceError, match=r"variable 'r'.*geographic"):
        load_source(source(path, {"r": {"method": "length_density", "where": "highway.notna()"}}), grid)


# The `sources:` entries given in README (section readers_vector) for the Oakland demo city, verbatim.
OAKLAND_YAML = """\
name: oakland
description: West Oakland and the central San Francisco Bay (city carbon twin)
crs: EPSG:32610
bounds: [552000, 4175000, 572000, 4195000]
resolution: 100
chunks: {y: 256, x: 256}
sources:
  - name: oakland_osm
    kind: vector
    path: data/West-Oakland.osm.bz2
    variables:
      building_fraction:
        method: area_fraction
        where: building.notna()
        long_name: fraction of cell area covered by OSM buildings
      road_length_density:
        method: length_density
        where: highway.notna()
        long_name: length of OSM roads and paths per unit area
      major_road_length_density:
        method: length_density
        where: "highway in ['motorway', 'trunk', 'primary', 'secondary', 'tertiary']"
        long_name: length of OSM major roads per unit area
  - name: power_plants
    kind: vector
    path: data/gppd_database_USA.csv
    options: {lon: longitude, lat: latitude}
    variables:
      power_plant_count:
        method: count
        long_name: number of power plants (WRI Global Power Plant Database)
      power_capacity:
        method: sum
        attribute: capacity_mw
        units: MW
        long_name: installed electrical capacity of power plants (WRI Global Power Plant Database)
"""


def test_oakland_demo_sources_from_yaml(shared_data, tmp_path):
    from pipelines.config import load_region

    osm = shared_file(shared_data, "geomapping/West-Oakland.osm.bz2")
    gppd = shared_file(shared_data, "emissions/gppd_database_USA.csv")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / osm.name).symlink_to(osm)
    (tmp_path / "data" / gppd.name).symlink_to(gppd)
    (tmp_path / "oakland.yaml").write_text(OAKLAND_YAML)
    cfg = load_region(tmp_path / "oakland.yaml")
    grid = region_grid(cfg)
    parts = [load_source(src, grid) for src in cfg.sources]
    files = [f for ds in parts for f in ds.attrs["geotwin_source_files"]]
    cube = make_cube({k: v for ds in parts for k, v in ds.data_vars.items()}, grid.geobox, sources=files)
    cube = cube.compute()
    box = shapely.box(*grid.geobox.extent.boundingbox)
    cell_area = 100.0**2
    buildings = open_vector(osm, "multipolygons", "building.notna()").to_crs(UTM).clip(box)
    roads = open_vector(osm, "lines", "highway.notna()").to_crs(UTM).clip(box)
    major = roads[roads["highway"].isin(["motorway", "trunk", "primary", "secondary", "tertiary"])]
    total = {k: float(cube[k].astype(float).sum()) for k in cube.data_vars}
    assert total["building_fraction"] * cell_area == pytest.approx(buildings.area.sum(), rel=1e-5)
    assert total["road_length_density"] * cell_area == pytest.approx(roads.length.sum(), rel=1e-5)
    assert 0 < total["major_road_length_density"] * cell_area == pytest.approx(major.length.sum(), rel=1e-5)
    df = pd.read_csv(gppd, low_memory=False).dropna(subset=["longitude", "latitude"])
    x, y = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(df["longitude"], df["latitude"])
    inside = (x >= 552_000) & (x < 572_000) & (y > 4_175_000) & (y <= 4_195_000)
    assert total["power_plant_count"] == inside.sum() > 5
    assert total["power_capacity"] == pytest.approx(df.loc[inside, "capacity_mw"].sum(), rel=1e-6)
    assert cube["power_capacity"].attrs["units"] == "MW"


def test_osm_tags_lifted_from_other_tags(shared_data):
    path = shared_file(shared_data, "geomapping/West-Oakland.osm.bz2")
    grid = _oakland_grid()
    variables = {"tall": {"method": "area_fraction", "where": "building.notna() and building_levels >= 4"}}
    ds = load_source(source(path, variables, osm_tags=["building:levels"]), grid).compute()
    # independent: parse the hstore text by splitting, keep buildings with 4+ levels
    buildings = open_vector(path, "multipolygons", "building.notna()").to_crs(UTM)

    def levels(text):
        pairs = dict(item.split("=>") for item in str(text).split('","')) if isinstance(text, str) else {}
        pairs = {k.strip('"'): v.strip('"') for k, v in pairs.items()}
        return float(pairs.get("building:levels", "nan"))

    tall = buildings[buildings["other_tags"].map(levels) >= 4]
    assert len(tall) == 2
    assert float(ds["tall"].astype(float).sum()) * 400.0 == pytest.approx(tall.area.sum(), rel=1e-5)
    with pytest.raises(SourceError, match="'osm_tags' must be a list"):
        load_source(source(path, variables, osm_tags="building:levels"), grid)


def test_truncated_or_corrupt_files(features, tmp_path, shared_data):
    gpkg = _write(features, tmp_path, "gpkg")
    cut = tmp_path / "cut.gpkg"
    cut.write_bytes(gpkg.read_bytes()[:3000])
    with pytest.raises(SourceError, match=r"cut\.gpkg.*cannot read"):
        load_source(source(cut, VARS), make_grid())
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SourceError, match=r"bad\.zip: not a readable zip archive"):
        load_source(source(bad_zip, VARS), make_grid())
    osm = shared_file(shared_data, "geomapping/West-Oakland.osm.bz2")
    cut_osm = tmp_path / "cut.osm.bz2"
    cut_osm.write_bytes(osm.read_bytes()[:4000])
    with pytest.raises(SourceError, match=r"cut\.osm\.bz2.*cannot read"):
        load_source(source(cut_osm, VARS), _oakland_grid())


def test_layers_of_a_geopackage_and_of_a_zip(features, tmp_path):
    gpkg = tmp_path / "two.gpkg"
    features[features.geom_type == "Polygon"].to_file(gpkg, layer="buildings")
    features[features.geom_type == "LineString"].to_file(gpkg, layer="roads")
    ds = load_source(source(gpkg, {"r": {"method": "length_density"}}, layer="roads"), make_grid()).compute()
    assert float(ds["r"].sum()) * CELL**2 == pytest.approx(130.0, rel=1e-6)
    folder = tmp_path / "z"
    folder.mkdir()
    features[features.geom_type == "Polygon"].to_file(folder / "buildings.shp")
    features[features.geom_type == "LineString"].to_file(folder / "roads.shp")
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in folder.iterdir():
            zf.write(part, part.name)
    with pytest.raises(
        SourceError, match=r"two\.zip: zip archive holds several vector files.*option 'layer'"
    ):
        load_source(source(archive, {"b": {"method": "area_fraction"}}), make_grid())
    ds = load_source(
        source(archive, {"b": {"method": "area_fraction"}}, layer="buildings"), make_grid()
    ).compute()
    assert float(ds["b"].sum()) == pytest.approx(6.25)


def test_osm_buildings_agree_with_pyosmium(shared_data):
    """GDAL's OSM driver against an independent OSM parser (pyosmium area assembly)."""
    osmium = pytest.importorskip("osmium")
    from shapely import wkb

    path = shared_file(shared_data, "geomapping/West-Oakland.osm.bz2")
    factory = osmium.geom.WKBFactory()
    polygons = [
        wkb.loads(factory.create_multipolygon(obj), hex=True)
        for obj in osmium.FileProcessor(str(path)).with_areas()
        if obj.is_area() and "building" in obj.tags
    ]
    reference = gpd.GeoSeries(polygons, crs="EPSG:4326").to_crs(UTM)
    grid = _oakland_grid()
    assert reference.within(shapely.box(*grid.geobox.extent.boundingbox)).all()
    ds = load_source(
        source(path, {"b": {"method": "area_fraction", "where": "building.notna()"}}), grid
    ).compute()
    assert len(reference) == len(open_vector(path, "multipolygons", "building.notna()"))
    assert float(ds["b"].astype(float).sum()) * 400.0 == pytest.approx(reference.area.sum(), rel=1e-5)


@pytest.mark.parametrize(
    ("crs", "bounds", "lons", "lats"),
    [
        (
            "EPSG:3413",
            (-1_000_000, -1_000_000, 1_000_000, 1_000_000),
            (-180, 180),
            (80, 90),
        ),  # holds the pole
        ("EPSG:32660", (600_000, 5_500_000, 900_000, 5_800_000), (175, 185), (49, 53)),  # across 180°
    ],
)
def test_points_on_polar_and_antimeridian_grids(tmp_path, crs, bounds, lons, lats):
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(*lons, 800), rng.uniform(*lats, 800)
    lon, w = np.where(lon > 180, lon - 360, lon), rng.uniform(1, 2, 800)
    path = tmp_path / "pts.csv"
    pd.DataFrame({"longitude": lon, "latitude": lat, "w": w}).to_csv(path, index=False)
    grid = make_grid(crs=crs, bounds=bounds, res=(bounds[2] - bounds[0]) / 40, chunks={"y": 16, "x": 16})
    variables = {"n": {"method": "count"}, "w": {"method": "sum", "attribute": "w", "units": "1"}}
    ds = load_source(source(path, variables), grid).compute()
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    inside = (x >= bounds[0]) & (x < bounds[2]) & (y > bounds[1]) & (y <= bounds[3])
    assert 50 < inside.sum() < 800
    assert int(ds["n"].sum()) == inside.sum()
    assert float(ds["w"].astype(float).sum()) == pytest.approx(w[inside].sum(), rel=1e-6)
