"""Region configs: validation errors name file and field; grids for any CRS, including other bodies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pyproj import CRS, Transformer

from pipelines.config import ConfigError, load_region
from pipelines.grid import GridError, check_same_body, grid_from_cube, region_grid
from tests.helpers import linear_cube

BASE = {
    "name": "test",
    "crs": "EPSG:3413",
    "bounds": [0, 0, 100000, 50000],
    "resolution": 10000,
    "sources": [],
}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"resolution": -5}, r"field 'resolution'.*positive"),
        ({"crs": "EPSG:999999"}, r"field 'crs'.*CRS pyproj understands"),
        ({"bounds": [10, 0, 0, 5]}, r"field 'bounds'.*xmax > xmin"),
        ({"resolutoin": 10}, r"field 'resolutoin'.*unknown field"),
        ({"time": {"start": "2020-01-02", "end": "2020-01-01"}}, r"field 'time'.*before start"),
        ({"time": {"start": "2020-01-01", "end": "2020-01-02", "freq": "fortnightly-ish"}}, r"field 'time'"),
        ({"chunks": {"x": 0}}, r"field 'chunks'.*positive"),
        ({"sources": [{"name": "s", "kind": "netcdf", "path": "x.nc"}]}, r"field 'sources.0.kind'"),
    ],
)
def test_config_errors_name_file_and_field(tmp_path: Path, change: dict, pattern: str) -> None:
    path = _write(tmp_path, {**BASE, **change})
    with pytest.raises(ConfigError, match=pattern) as info:
        load_region(path)
    assert str(path) in str(info.value)


def test_missing_and_malformed_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_region(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_region(bad)
    missing = _write(tmp_path, {"name": "x", "crs": "EPSG:4326", "bounds": [0, 0, 1, 1]})
    with pytest.raises(ConfigError, match="field 'resolution': required field is missing"):
        load_region(missing)


def test_relative_source_paths_resolve_against_the_config(tmp_path: Path) -> None:
    path = _write(tmp_path, {**BASE, "sources": [{"name": "s", "kind": "raster", "path": "data/a.tif"}]})
    cfg = load_region(path)
    assert cfg.sources[0].path == str(tmp_path / "data" / "a.tif")


@pytest.mark.parametrize(
    ("crs", "bounds", "res"),
    [
        ("EPSG:32633", (500_000, 7_000_000, 530_000, 7_020_000), 1000.0),  # UTM
        ("EPSG:3413", (-500_000, -500_000, 500_000, 500_000), 25_000.0),  # north polar stereographic
        ("EPSG:3995", (-200_000, -200_000, 200_000, 200_000), 10_000.0),  # Arctic polar stereographic
        ("EPSG:4326", (-10.0, 50.0, 5.0, 60.0), 0.5),  # geographic
        ("IAU_2015:49900", (130.0, -10.0, 140.0, 0.0), 0.5),  # Mars geographic (Gale crater area)
    ],
)
def test_region_grid_covers_bounds_with_cell_centres(crs: str, bounds: tuple, res: float) -> None:
    cfg = load_region_dict({**BASE, "crs": crs, "bounds": list(bounds), "resolution": res})
    grid = region_grid(cfg)
    coords = grid.coords()
    nx = round((bounds[2] - bounds[0]) / res)
    ny = round((bounds[3] - bounds[1]) / res)
    assert grid.shape == (ny, nx)
    np.testing.assert_allclose(coords["x"].values[[0, -1]], [bounds[0] + res / 2, bounds[2] - res / 2])
    np.testing.assert_allclose(coords["y"].values[[0, -1]], [bounds[3] - res / 2, bounds[1] + res / 2])
    assert CRS.from_wkt(coords["spatial_ref"].attrs["crs_wkt"]) == CRS.from_user_input(crs)


def test_polar_grid_contains_the_pole() -> None:
    grid = region_grid(load_region_dict({**BASE, "bounds": [-100_000, -100_000, 100_000, 100_000]}))
    to_ll = Transformer.from_crs(grid.crs, 4326, always_xy=True)
    x, y = np.meshgrid(grid.coords()["x"].values, grid.coords()["y"].values)
    _, lat = to_ll.transform(x, y)
    assert lat.max() > 89.0


def test_bodies_never_mix() -> None:
    check_same_body("EPSG:4326", "EPSG:3413")
    with pytest.raises(GridError, match="Mars.*Earth"):
        check_same_body("IAU_2015:49900", "EPSG:4326")
    with pytest.raises(GridError, match="field 'body'"):
        region_grid(
            load_region_dict(
                {**BASE, "crs": "IAU_2015:49900", "bounds": [0, 0, 1, 1], "resolution": 0.1, "body": "Earth"}
            )
        )


def test_grid_round_trips_through_a_cube() -> None:
    ds = linear_cube()
    grid = grid_from_cube(ds)
    assert grid.geobox.shape == (ds.sizes["y"], ds.sizes["x"])
    np.testing.assert_allclose(grid.coords()["x"].values, ds["x"].values)


def test_time_axis_is_utc_and_regular() -> None:
    cfg = load_region_dict(
        {**BASE, "time": {"start": "2016-02-01T12:00Z", "end": "2016-02-02T12:00Z", "freq": "6h"}}
    )
    grid = region_grid(cfg)
    assert len(grid.time) == 5 and grid.time.tz is None
    assert str(grid.time[0]) == "2016-02-01 12:00:00"


def load_region_dict(data: dict):
    from pipelines.config import RegionConfig

    return RegionConfig.model_validate(data)
