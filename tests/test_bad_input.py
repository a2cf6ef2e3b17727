"""Bad input through a whole build: a clear error naming the file/variable/field, the store untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import yaml
from rasterio.transform import from_origin

from pipelines.build import build_region
from pipelines.config import ConfigError
from pipelines.grid import GridError
from pipelines.sources import SourceError
from pipelines.store import StoreError, history, list_cubes, open_cube, write_cube
from tests.helpers import assert_same_values, linear_cube

REGION = {
    "name": "r",
    "crs": "EPSG:32633",
    "bounds": [500_000, 6_000_000, 510_000, 6_010_000],
    "resolution": 1000,
}


def _tif(
    path: Path, *, crs: str | None = "EPSG:32633", origin=(495_000, 6_015_000), res=500.0, fill=None
) -> Path:
    data = (
        np.arange(40 * 40, dtype="float32").reshape(40, 40)
        if fill is None
        else np.full((40, 40), fill, "float32")
    )
    with rasterio.open(
        path, "w", driver="GTiff", width=40, height=40, count=1, dtype="float32", crs=crs,
        transform=from_origin(*origin, res, res),
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


def _nc(path: Path, *, units: str | None = "K", times=None, lat0: float = 54.0, name: str = "t2m") -> Path:
    lat = np.arange(lat0, lat0 + 1.0, 0.05)
    lon = np.arange(14.8, 15.4, 0.05)
    times = times if times is not None else pd.date_range("2020-01-01", periods=3, freq="1D")
    attrs = {"long_name": "temperature"} | ({"units": units} if units else {})
    da = xr.DataArray(
        np.ones((len(times), lat.size, lon.size), "float32"), dims=("time", "lat", "lon"), attrs=attrs
    )
    ds = xr.Dataset({name: da}, coords={"time": times, "lat": ("lat", lat, {"units": "degrees_north"}),
                                        "lon": ("lon", lon, {"units": "degrees_east"})})  # fmt: skip
    ds.to_netcdf(path)
    return path


def _config(tmp_path: Path, sources: list[dict], **region) -> Path:
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump({**REGION, **region, "sources": sources}))
    return path


def _raster_source(path: Path, **variables) -> dict:
    return {
        "name": "src",
        "kind": "raster",
        "path": str(path),
        "variables": variables or {"v": {"band": 1, "units": "1", "long_name": "v"}},
    }


def _gridded_source(path: Path, **spec) -> dict:
    return {
        "name": "src",
        "kind": "gridded",
        "path": str(path),
        "variables": {"t2m": spec or {"name": "t2m"}},
    }


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


Case = Callable[[Path], Path]


def missing_file(t: Path) -> Path:
    return _config(t, [_raster_source(t / "nope.tif")])


def truncated_geotiff(t: Path) -> Path:
    return _config(t, [_raster_source(_truncate(_tif(t / "a.tif")))])


def truncated_netcdf(t: Path) -> Path:
    return _config(t, [_gridded_source(_truncate(_nc(t / "a.nc")))])


def unknown_crs(t: Path) -> Path:
    return _config(t, [_raster_source(_tif(t / "a.tif"))], crs="EPSG:0")


def raster_without_crs(t: Path) -> Path:
    return _config(t, [_raster_source(_tif(t / "a.tif", crs=None))])


def source_outside_region(t: Path) -> Path:
    return _config(t, [_raster_source(_tif(t / "a.tif", origin=(300_000, 5_000_000)))])


def missing_units(t: Path) -> Path:
    return _config(
        t,
        [_gridded_source(_nc(t / "a.nc", units=None))],
        crs="EPSG:4326",
        bounds=[14.9, 54.2, 15.2, 54.6],
        resolution=0.1,
    )


def variable_not_found(t: Path) -> Path:
    return _config(
        t,
        [_gridded_source(_nc(t / "a.nc"), name="temperature_2m")],
        crs="EPSG:4326",
        bounds=[14.9, 54.2, 15.2, 54.6],
        resolution=0.1,
    )


def wrong_yaml_field(t: Path) -> Path:
    path = _config(t, [])
    path.write_text(path.read_text().replace("resolution:", "resolutoin:"))
    return path


def nan_only_source(t: Path) -> Path:
    return _config(t, [_raster_source(_tif(t / "a.tif", fill=np.nan))])


def time_range_not_covered(t: Path) -> Path:
    return _config(
        t, [_gridded_source(_nc(t / "a.nc"))], crs="EPSG:4326", bounds=[14.9, 54.2, 15.2, 54.6], resolution=0.1,
        time={"start": "2021-06-01", "end": "2021-06-03", "freq": "1D"},
    )  # fmt: skip


def band_out_of_range(t: Path) -> Path:
    return _config(t, [_raster_source(_tif(t / "a.tif"), v={"band": 3, "units": "1", "long_name": "v"})])


def other_planet(t: Path) -> Path:
    return _config(t, [_raster_source(_tif(t / "a.tif", crs="IAU_2015:49900", origin=(0, 1), res=0.01))])


def unknown_where_column(t: Path) -> Path:
    import geopandas as gpd
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame(
        {"kind": ["house"]}, geometry=[box(501_000, 6_001_000, 502_000, 6_002_000)], crs="EPSG:32633"
    )
    gdf.to_file(t / "b.gpkg")
    spec = {"method": "area_fraction", "where": "building == 'yes'", "long_name": "b"}
    return _config(
        t, [{"name": "src", "kind": "vector", "path": str(t / "b.gpkg"), "variables": {"b": spec}}]
    )


def no_sources(t: Path) -> Path:
    return _config(t, [])


def duplicate_variable(t: Path) -> Path:
    tif = _tif(t / "a.tif")
    return _config(t, [_raster_source(tif), {**_raster_source(tif), "name": "src2"}])


CASES: dict[str, tuple[Case, type[Exception], str]] = {
    "missing file": (missing_file, SourceError, r"nope\.tif"),
    "truncated GeoTIFF": (truncated_geotiff, SourceError, r"a\.tif"),
    "truncated NetCDF": (truncated_netcdf, SourceError, r"a\.nc"),
    "unknown CRS": (unknown_crs, ConfigError, r"field 'crs'"),
    "raster without CRS": (raster_without_crs, SourceError, r"a\.tif.*CRS|CRS.*a\.tif"),
    "source outside the region": (source_outside_region, SourceError, r"a\.tif"),
    "missing units": (missing_units, SourceError, r"t2m.*units|units.*t2m"),
    "variable not found": (variable_not_found, SourceError, r"temperature_2m"),
    "wrong YAML field": (wrong_yaml_field, ConfigError, r"resolutoin"),
    "NaN-only source": (nan_only_source, SourceError, r"a\.tif|no valid value|NaN|nodata|no-data"),
    "time range not covered": (time_range_not_covered, SourceError, r"time"),
    "band out of range": (band_out_of_range, SourceError, r"band"),
    "raster of another planet": (other_planet, (GridError, SourceError), r"Mars"),
    "unknown column in where": (unknown_where_column, SourceError, r"building"),
    "no sources": (no_sources, SourceError, r"field 'sources' is empty"),
    "duplicate variable": (duplicate_variable, ConfigError, r"'v' is produced by more than one source"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_named_and_store_is_untouched(case: str, tmp_path: Path) -> None:
    make, error, pattern = CASES[case]
    store = tmp_path / "store"
    existing = linear_cube()
    write_cube(store, "existing", existing)
    before = history(store)
    config = make(tmp_path)
    with pytest.raises(error, match=pattern):
        build_region(config, store)
    assert history(store) == before
    assert list_cubes(store) == ["existing"]
    assert_same_values(existing, open_cube(store, "existing"))


def test_refuses_to_turn_a_non_empty_folder_into_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("my files")
    with pytest.raises(StoreError, match="not empty"):
        write_cube(tmp_path, "c", linear_cube())
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
