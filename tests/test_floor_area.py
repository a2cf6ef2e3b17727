"""Attribute-weighted cover: building levels x covered area gives the floor-area ratio, exactly."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from pipelines.config import RegionConfig, SourceConfig
from pipelines.grid import region_grid
from pipelines.sources import SourceError, load_source

REPO = Path(__file__).resolve().parents[1]
GRID = {"name": "g", "crs": "EPSG:32610", "bounds": [0, 0, 300, 200], "resolution": 100}


def _source(path: Path, **spec) -> SourceConfig:
    variable = {"method": "area_fraction", "attribute": "levels", "long_name": "floor area ratio", **spec}
    return SourceConfig(name="b", kind="vector", path=str(path), variables={"far": variable})


def test_levels_times_covered_fraction(tmp_path: Path) -> None:
    buildings = gpd.GeoDataFrame(
        {"levels": [4, 2, 3, 3]},
        geometry=[
            box(0, 150, 50, 200),  # a quarter of cell (0, 0), 4 levels -> 1.0
            box(100, 100, 200, 150),  # half of cell (0, 1), 2 levels -> 1.0
            box(200, 0, 250, 100),  # half of cell (1, 2) ...
            box(225, 0, 300, 100),  # ... overlapping a same-level building: union 1.0 of the cell x 3 levels
        ],
        crs="EPSG:32610",
    )
    buildings.to_file(tmp_path / "b.gpkg")
    grid = region_grid(RegionConfig.model_validate(GRID))
    far = load_source(_source(tmp_path / "b.gpkg"), grid)["far"].values
    expected = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    np.testing.assert_allclose(far, expected, atol=1e-6)


def test_missing_levels_are_named_or_filled(tmp_path: Path) -> None:
    buildings = gpd.GeoDataFrame(
        {"levels": [np.nan, 2.0]}, geometry=[box(0, 100, 100, 200), box(100, 100, 200, 200)], crs="EPSG:32610"
    )
    buildings.to_file(tmp_path / "b.gpkg")
    grid = region_grid(RegionConfig.model_validate(GRID))
    with pytest.raises(
        SourceError, match=r"attribute 'levels' is missing or not numeric for 1 of 2 features"
    ):
        load_source(_source(tmp_path / "b.gpkg"), grid)
    filled = SourceConfig(
        **{**_source(tmp_path / "b.gpkg").model_dump(), "options": {"fillna": {"levels": 1}}}
    )
    far = load_source(filled, grid)["far"].values
    np.testing.assert_allclose(far[0, :2], [1.0, 2.0], atol=1e-6)


def test_oakland_floor_area_equals_geopandas_sum() -> None:
    """The demo's OSM floor area (levels from building:levels, 1 where untagged) equals sum(area x levels)."""
    from pipelines.config import load_region
    from pipelines.sources.vector import lift_osm_tags, open_vector

    cfg = load_region(REPO / "catalogs/demo/oakland.yaml")
    source = next(s for s in cfg.sources if s.name == "oakland_osm")
    grid = region_grid(cfg)
    far = load_source(source, grid)["building_floor_area"].values.astype(float)
    gdf = lift_osm_tags(open_vector(source.path, layer="multipolygons"), ["building:levels"])
    gdf = gdf[gdf["building"].notna()].to_crs(32610)
    levels = gdf["building_levels"].fillna(1).astype(float)
    cell = 200.0 * 200.0
    assert far.sum() * cell == pytest.approx(float((gdf.area * levels).sum()), rel=1e-5)
    assert (levels > 1).sum() == 2  # two tagged buildings (5 and 4 levels) in the extract
