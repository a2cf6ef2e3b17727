"""Gridded climate/ocean reader (pipelines.sources.gridded) on real files and on files the tests write.

Reference values are read with netCDF4 directly (its own CF unpacking) or computed analytically
(meridian convergence of polar stereographic / Lambert conformal projections).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from pyproj import CRS, Transformer

from pipelines.config import RegionConfig, SourceConfig
from pipelines.cube import make_cube
from pipelines.grid import region_grid
from pipelines.sources import SourceError
from pipelines.sources.gridded import angle_from_lonlat, load, open_gridded, rotation_angle

from .conftest import shared_file

ARCTIC20 = "ocean_ice/Arctic20_1to5Feb_2016.nc"
ARCTIC20_PROJ = "+proj=stere +a=6371000 +b=6371000 +lat_0=90 +lat_ts=60 +lon_0=58"


def _grid(crs: str, bounds: list[float], res: float, time: dict | None = None, chunks: dict | None = None):
    cfg = {"name": "t", "crs": crs, "bounds": bounds, "resolution": res}
    if time:
        cfg["time"] = time
    cfg["chunks"] = chunks or {"time": 4, "y": 16, "x": 16}
    return region_grid(RegionConfig.model_validate(cfg))


def _centred_grid(crs: str, x: float, y: float, res: float, half: int = 3, **kw):
    """A grid whose cell (half, half) is centred exactly on (x, y)."""
    r = res * (half + 0.5)
    return _grid(crs, [x - r, y - r, x + r, y + r], res, **kw)


def _source(path, variables: dict, **options) -> SourceConfig:
    return SourceConfig.model_validate(
        {"name": "src", "kind": "gridded", "path": str(path), "variables": variables, "options": options}
    )


# ---------------------------------------------------------------- Arctic20 (the demo Arctic cube)
ARCTIC_VARS = {
    "uo": {
        "name": "u",
        "standard_name": "eastward_sea_water_velocity",
        "long_name": "surface eastward current",
    },
    "vo": {
        "name": "v",
        "standard_name": "northward_sea_water_velocity",
        "long_name": "surface northward current",
    },
    "sea_ice_concentration": {"standard_name": "sea_ice_area_fraction", "units": "1"},
    "sea_ice_thickness": {"name": "hice", "units": "m"},
}


def test_arctic20_node_values_speed_and_direction(shared_data) -> None:
    path = shared_file(shared_data, ARCTIC20)
    j, i = 40, 20  # an ice-covered ocean node
    with netCDF4.Dataset(path) as nc:
        xk, yk = float(nc["X"][i]) * 1000.0, float(nc["Y"][j]) * 1000.0  # the file's X/Y are in km
        hice = np.asarray(nc["hice"][:, j, i], float)
        aice = np.asarray(nc["aice"][:, j, i], float)
        u = np.asarray(nc["u"][:, 0, j, i], float)
        v = np.asarray(nc["v"][:, 0, j, i], float)
    lon, _ = Transformer.from_crs(ARCTIC20_PROJ, "EPSG:4326", always_xy=True).transform(xk, yk)
    x3413, y3413 = Transformer.from_crs(ARCTIC20_PROJ, "EPSG:3413", always_xy=True).transform(xk, yk)
    time = {"start": "2016-02-01T12:00", "end": "2016-02-05T12:00", "freq": "12h"}
    grid = _centred_grid("EPSG:3413", x3413, y3413, 5000.0, time=time)
    ds = load(_source(path, ARCTIC_VARS, level="surface", rotate=["u", "v"]), grid)
    cube = make_cube(dict(ds.data_vars), grid.geobox, sources=ds.attrs["geotwin_source_files"])  # verifies
    at = cube.isel(y=3, x=3).compute()
    daily = at.isel(time=slice(0, None, 2))  # 12:00 each day = the source times
    np.testing.assert_allclose(daily["sea_ice_thickness"], hice, atol=2e-4)
    np.testing.assert_allclose(daily["sea_ice_concentration"], aice, atol=2e-4)
    # 00:00 lies halfway between two daily fields: linear interpolation in time
    np.testing.assert_allclose(at["sea_ice_thickness"].values[1::2], 0.5 * (hice[:-1] + hice[1:]), atol=2e-4)
    # rotation keeps the speed and turns grid-x/y into east/north by the meridian convergence -(lon - 58)
    np.testing.assert_allclose(np.hypot(daily["uo"], daily["vo"]), np.hypot(u, v), atol=2e-4)
    a = -np.radians(lon - 58.0)
    np.testing.assert_allclose(daily["uo"], u * np.cos(a) - v * np.sin(a), atol=2e-4)
    np.testing.assert_allclose(daily["vo"], u * np.sin(a) + v * np.cos(a), atol=2e-4)
    assert cube["uo"].attrs["standard_name"] == "eastward_sea_water_velocity"
    assert cube["sea_ice_concentration"].attrs["units"] == "1"
    assert cube["sea_ice_concentration"].attrs["standard_name"] == "sea_ice_area_fraction"
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert ds.attrs["geotwin_source_files"] == [{"path": str(path), "sha256": digest}]


def test_arctic20_crs_picked_by_the_files_own_lonlat(shared_data, tmp_path) -> None:
    """proj4_string (+lon_0=58) is right; a copy whose proj4_string says -58 falls back to the CF params."""
    path = shared_file(shared_data, ARCTIC20)
    ds = open_gridded(path, ["hice"])
    crs = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
    assert "proj4_string" in ds.attrs["geotwin_crs"]
    assert crs.to_dict()["lon_0"] == 58
    assert ds["x"].values[0] == pytest.approx(-1971000.0)  # km -> m
    wrong = tmp_path / "arctic_wrong.nc"
    shutil.copy(path, wrong)
    with netCDF4.Dataset(wrong, "a") as nc:
        nc["polar_stereographic"].proj4_string = ARCTIC20_PROJ.replace("lon_0=58", "lon_0=-58")
    ds2 = open_gridded(wrong, ["hice"])
    assert "CF parameters" in ds2.attrs["geotwin_crs"]
    assert CRS.from_wkt(ds2["spatial_ref"].attrs["crs_wkt"]).to_dict()["lon_0"] == 58
    with netCDF4.Dataset(wrong, "a") as nc:
        nc["polar_stereographic"].straight_vertical_longitude_from_pole = -58.0
    with pytest.raises(SourceError, match="no stated CRS agrees"):
        open_gridded(wrong, ["hice"])


def test_polar_stereographic_angle_is_meridian_convergence() -> None:
    x, y = np.meshgrid(np.linspace(-2e6, 2e6, 7), np.linspace(-2e6, 2e6, 7))
    lon, _ = Transformer.from_crs(ARCTIC20_PROJ, "EPSG:4326", always_xy=True).transform(x, y)
    expected = -np.radians(lon - 58.0)
    got = rotation_angle(ARCTIC20_PROJ, x, y)
    np.testing.assert_allclose(np.angle(np.exp(1j * (got - expected))), 0.0, atol=1e-5)


# -------------------------------------------------------------------------------- AROME winds
def test_arome_wind_rotation(shared_data) -> None:
    path = shared_file(shared_data, "ocean_ice/AROME_MetCoOp_00_DEF_20160114_subset.nc")
    names = ["x_wind_10m", "y_wind_10m"]
    grid_rel = open_gridded(path, names).isel(time=0).compute()
    rotated = open_gridded(path, names, rotate=names).isel(time=0).compute()
    speed0 = np.hypot(grid_rel["x_wind_10m"], grid_rel["y_wind_10m"])
    speed1 = np.hypot(rotated["x_wind_10m"], rotated["y_wind_10m"])
    np.testing.assert_allclose(speed1, speed0, rtol=1e-5)
    # Lambert conformal (tangent cone at 63N, lon_0 15E): angle = -sin(63) * (lon - 15)
    with netCDF4.Dataset(path) as nc:
        flon, flat = np.asarray(nc["longitude"][:], float), np.asarray(nc["latitude"][:], float)
    xx, yy = np.meshgrid(rotated["x"].values, rotated["y"].values)
    angle = rotation_angle(CRS.from_wkt(rotated["spatial_ref"].attrs["crs_wkt"]), xx, yy)
    np.testing.assert_allclose(angle, -np.sin(np.radians(63.0)) * np.radians(flon - 15.0), atol=1e-5)
    # independent: the angle of the grid's x axis from the file's own lon/lat arrays
    np.testing.assert_allclose(angle_from_lonlat(flon, flat), angle, atol=2e-3)
    # a known direction: grid components of a pure 10 m/s westerly come out as (10, 0) east/north
    from pipelines.sources.gridded import rotate_to_east_north

    east, north = rotate_to_east_north(10.0 * np.cos(angle), -10.0 * np.sin(angle), angle)
    np.testing.assert_allclose(east, 10.0, atol=1e-9)
    np.testing.assert_allclose(north, 0.0, atol=1e-9)
    assert rotated["x_wind_10m"].attrs["standard_name"] == "eastward_wind"
    assert rotated["y_wind_10m"].attrs["standard_name"] == "northward_wind"


# ------------------------------------------------------------------------- ROMS C-grid (Nordic)
def test_roms_destagger_rotate_and_regrid(shared_data) -> None:
    path = shared_file(shared_data, "ocean_ice/Nordic_subset.nc")
    with netCDF4.Dataset(path) as nc:
        u = np.asarray(nc["u"][0, -1], float)
        v = np.asarray(nc["v"][0, -1], float)
        mu, mv, mr = (np.asarray(nc[m][:], float) for m in ("mask_u", "mask_v", "mask_rho"))
        angle = np.asarray(nc["angle"][:], float)
        lon, lat = np.asarray(nc["lon_rho"][:], float), np.asarray(nc["lat_rho"][:], float)
        aice = np.asarray(nc["aice"][0], float)
    u, v = np.where(mu > 0.5, u, 0.0), np.where(mv > 0.5, v, 0.0)
    j, i = 12, 20
    assert mr[j, i] == 1 and mr[j, i - 1] == 1 and mr[j - 1, i] == 1
    u_rho, v_rho = 0.5 * (u[j, i - 1] + u[j, i]), 0.5 * (v[j - 1, i] + v[j, i])
    ds = open_gridded(path, ["u", "v"], level="surface").isel(time=0).compute()
    assert float(ds["u"][j, i]) == pytest.approx(u_rho, abs=1e-6)
    assert float(ds["v"][j, i]) == pytest.approx(v_rho, abs=1e-6)
    assert np.isnan(ds["u"].values[:, 0]).all()  # no u point west of the first rho column
    assert np.isnan(ds["u"].values[mr < 0.5]).all()  # land
    rot = open_gridded(path, ["u", "v"], level="surface", rotate=["u", "v"]).isel(time=0).compute()
    np.testing.assert_allclose(np.hypot(rot["u"], rot["v"]), np.hypot(ds["u"], ds["v"]), rtol=1e-6)
    a = angle[j, i]
    assert float(rot["u"][j, i]) == pytest.approx(u_rho * np.cos(a) - v_rho * np.sin(a), abs=1e-6)
    # the ROMS 'angle' agrees with the angle of the xi axis derived from lon_rho/lat_rho
    np.testing.assert_allclose(angle_from_lonlat(lon, lat)[1:-1, 1:-1], angle[1:-1, 1:-1], atol=0.02)
    # regrid onto UTM 33N: a cell centred on rho point (j, i) gets the source value there
    xr_, yr_ = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(lon[j, i], lat[j, i])
    grid = _centred_grid("EPSG:32633", xr_, yr_, 1000.0)
    out = load(_source(path, {"sea_ice_concentration": {"name": "aice", "units": "1"}}), grid)
    assert float(out["sea_ice_concentration"].isel(time=0, y=3, x=3)) == pytest.approx(aice[j, i], abs=1e-6)
    assert out.attrs["geotwin_crs"].startswith("2-D lon_rho/lat_rho")


# ------------------------------------------------- longitude conventions and latitude order
def _write_normalised(src: xr.Dataset, lon: str, lat: str, path: Path) -> None:
    """Write a copy with longitudes in -180..180 ascending and latitude ascending (plain numpy)."""
    lon_v = src[lon].values
    order = np.argsort((lon_v + 180.0) % 360.0 - 180.0)
    out = src.isel({lon: order}).assign_coords({lon: (((lon_v + 180.0) % 360.0) - 180.0)[order]})
    if out[lat].values[0] > out[lat].values[-1]:
        out = out.isel({lat: slice(None, None, -1)})
    keep = ("dtype", "_FillValue", "missing_value", "scale_factor", "add_offset", "units", "calendar")
    for name in out.variables:
        out[name].attrs = dict(src[name].attrs)
        out[name].encoding = {k: v for k, v in src[name].encoding.items() if k in keep}
    out.to_netcdf(path)


def test_0_360_longitudes_give_the_same_cube_as_a_normalised_copy(shared_data, tmp_path) -> None:
    path = shared_file(shared_data, "climate/basin_mask.nc")
    with xr.open_dataset(path) as src:
        _write_normalised(src.load(), "X", "Y", tmp_path / "basin_norm.nc")
    var = {"basin": {"name": "basin", "long_name": "basin code"}}
    grid = _grid("EPSG:4326", [-30.0, -20.0, 30.0, 20.0], 1.0)  # straddles 0E, the 0..360 seam
    a = load(_source(path, var, level="surface"), grid)["basin"].values
    b = load(_source(tmp_path / "basin_norm.nc", var, level="surface"), grid)["basin"].values
    np.testing.assert_array_equal(a, b)
    with netCDF4.Dataset(path) as nc:  # lat -0.5 (row 89), lon 359.5 = -0.5 (col 359), Z=0
        ref = float(nc["basin"][0, 89, 359])
    assert a[20, 29] == ref  # cell centred on (-0.5E, -0.5N)
    finite = a[np.isfinite(a)]
    assert finite.size > 0.3 * a.size  # ocean west of Africa; land (missing_value) is NaN
    np.testing.assert_array_equal(finite, np.round(finite))  # integer codes: nearest, never blended


def test_descending_latitude_and_packed_int16(shared_data, tmp_path) -> None:
    path = shared_file(shared_data, "climate/eraint_uvz.nc")
    with xr.open_dataset(path) as src:
        src = src.load()
        _write_normalised(src, "longitude", "latitude", tmp_path / "asc.nc")
        shifted = src.assign_coords(longitude=src["longitude"].values % 360.0).sortby("longitude")
        for name in shifted.variables:
            shifted[name].encoding = {}
        shifted.to_netcdf(tmp_path / "lon360.nc")
    var = {"u850": {"name": "u", "long_name": "u"}}
    grid = _grid("EPSG:4326", [-12.375, 44.625, 12.375, 75.375], 0.75)  # cells centred on source nodes
    cubes = [
        load(_source(p, var, level=850), grid)["u850"].values
        for p in (path, tmp_path / "asc.nc", tmp_path / "lon360.nc")
    ]
    np.testing.assert_allclose(cubes[1], cubes[0], atol=1e-6)
    np.testing.assert_allclose(cubes[2], cubes[0], atol=1e-6)
    with netCDF4.Dataset(path) as nc:
        raw = nc["u"]
        raw.set_auto_maskandscale(False)
        lat, lon = nc["latitude"][:], nc["longitude"][:]
        jj, ii = int(np.argmin(abs(lat - 60.0))), int(np.argmin(abs(lon - 10.5)))
        packed = int(raw[0, 2, jj, ii])
        ref = packed * raw.scale_factor + raw.add_offset  # manual CF unpacking of the int16
    coords = load(_source(path, var, level=850), grid)
    y, x = int(np.argmin(abs(coords["y"].values - 60.0))), int(np.argmin(abs(coords["x"].values - 10.5)))
    assert coords["y"].values[y] == 60.0 and coords["x"].values[x] == 10.5
    assert cubes[0][0, y, x] == pytest.approx(ref, abs=1e-4)


def test_era5_fill_value_becomes_nan(shared_data, tmp_path) -> None:
    path = shared_file(shared_data, "climate/ERA5_2020-01-01_u10.nc")
    copy = tmp_path / "u10.nc"
    shutil.copy(path, copy)
    with netCDF4.Dataset(copy, "a") as nc:
        var = nc["u10"]
        var.set_auto_maskandscale(False)
        var[0, 0, 0] = var._FillValue
        raw = int(var[0, 5, 5])
        ref = raw * var.scale_factor + var.add_offset
        lat5, lon5 = float(nc["latitude"][5]), float(nc["longitude"][5])
    ds = open_gridded(copy, ["u10"])
    top = ds["u10"].sel(y=float(nc_lat0(copy)), x=0.0).isel(time=0)
    assert np.isnan(float(top))
    assert float(ds["u10"].sel(y=lat5, x=lon5).isel(time=0)) == pytest.approx(ref, abs=1e-6)
    assert ds["time"].values[0] == np.datetime64("2020-01-01T00:00")


def nc_lat0(path: Path) -> float:
    with netCDF4.Dataset(path) as nc:
        return float(nc["latitude"][0])


def test_gridmet_unsigned_packed_descending_with_wkt_grid_mapping(shared_data) -> None:
    """gridMET: uint16 (_Unsigned) packed, descending latitude, grid_mapping 'crs' holding a WKT."""
    path = shared_file(shared_data, "climate/gridmet_tmmx_20190121.nc")
    ds = open_gridded(path)
    assert CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]).equals(
        CRS.from_epsg(4326), ignore_axis_order=True
    )
    assert "crs" not in ds.dims and ds["y"].values[0] < ds["y"].values[-1]
    with netCDF4.Dataset(path) as nc:  # netCDF4 applies _Unsigned, scale_factor and add_offset itself
        lat, lon = np.asarray(nc["lat"][:], float), np.asarray(nc["lon"][:], float)
        jj, ii = 300, 700
        ref = float(nc["air_temperature"][jj, ii])
    assert 230.0 < ref < 320.0  # a plausible daily maximum in K (not a wrapped negative int16)
    grid = _centred_grid("EPSG:4326", lon[ii], lat[jj], 1.0 / 24.0)
    out = load(_source(path, {"tmax": {"name": "air_temperature"}}), grid)["tmax"]
    assert float(out[3, 3]) == pytest.approx(ref, abs=1e-3)
    assert out.attrs["units"] == "K" and "standard_name" not in out.attrs  # 'tmmx' is not a CF name


# ------------------------------------------------------------------------------- CF time
def _write_cf(
    path: Path, times: np.ndarray, units: str, calendar: str, data: np.ndarray | None = None
) -> None:
    lat, lon = np.arange(60.0, 64.0), np.arange(0.0, 5.0)
    data = np.ones((len(times), 4, 5), "float32") if data is None else data
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), data, {"units": "K", "standard_name": "air_temperature"})},
        coords={
            "time": ("time", times, {"units": units, "calendar": calendar}),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )
    ds.to_netcdf(path)


def test_cf_calendars_and_time_zone(tmp_path) -> None:
    _write_cf(tmp_path / "noleap.nc", np.array([58.0, 59.0]), "days since 2001-01-01", "noleap")
    t = open_gridded(tmp_path / "noleap.nc")["time"].values
    assert list(t) == [np.datetime64("2001-02-28", "ns"), np.datetime64("2001-03-01", "ns")]
    _write_cf(tmp_path / "tz.nc", np.array([0.0, 1.0]), "hours since 2000-01-01 00:00:00 +02:00", "standard")
    t = open_gridded(tmp_path / "tz.nc")["time"].values
    assert t[0] == np.datetime64("1999-12-31T22:00", "ns")
    _write_cf(tmp_path / "d360.nc", np.array([29.0, 59.0]), "days since 2001-01-01", "360_day")
    with pytest.raises(SourceError, match="360_day"):
        open_gridded(tmp_path / "d360.nc")
    _write_cf(tmp_path / "months.nc", np.array([0.0, 1.0]), "months since 2001-01-01", "standard")
    with pytest.raises(SourceError, match="could not be decoded"):
        open_gridded(tmp_path / "months.nc")
    t = open_gridded(tmp_path / "d360.nc", convert_calendar=True)["time"].values
    assert t.dtype == np.dtype("datetime64[ns]") and np.all(np.diff(t) > np.timedelta64(0))


def test_time_interpolation_linear_and_nearest(tmp_path) -> None:
    days = np.array([0.0, 1.0, 2.0])
    data = np.broadcast_to(np.array([0.0, 10.0, 30.0], "float32")[:, None, None], (3, 4, 5)).copy()
    _write_cf(tmp_path / "t.nc", days, "days since 2020-01-01", "standard", data)
    time = {"start": "2020-01-01T00:00", "end": "2020-01-03T00:00", "freq": "6h"}
    grid = _grid("EPSG:4326", [0.5, 60.5, 3.5, 62.5], 1.0, time=time)
    spec = {"tas": {"name": "tas"}}
    linear = load(_source(tmp_path / "t.nc", spec), grid)["tas"][:, 0, 0].values
    np.testing.assert_allclose(linear, [0, 2.5, 5, 7.5, 10, 15, 20, 25, 30], atol=1e-5)
    nearest = load(_source(tmp_path / "t.nc", spec, time_method="nearest"), grid)["tas"][:, 0, 0].values
    np.testing.assert_allclose(nearest[[0, 1, 3, 4, 5, 7, 8]], [0, 0, 10, 10, 10, 30, 30])


# ----------------------------------------------------------------- PROJ string only (MODIS)
def test_modis_crs_only_as_proj_string(shared_data) -> None:
    path = shared_file(shared_data, "satellite/rioxarray_MODIS_ARRAY.nc")
    ds = open_gridded(path)
    crs = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
    assert crs.to_dict()["proj"] == "sinu"
    with netCDF4.Dataset(path) as nc:
        var = nc["__xarray_dataarray_variable__"]
        x, y = float(nc["x"][50]), float(nc["y"][80])
        ref = float(var[80, 50])
    res = 231.65635826
    grid = _centred_grid(crs.to_wkt(), x, y, res)
    spec = {"reflectance": {"name": "__xarray_dataarray_variable__", "units": "1", "resampling": "nearest"}}
    out = load(_source(path, spec), grid)
    assert float(out["reflectance"].isel(y=3, x=3)) == ref


# ------------------------------------------------------------- Zarr, units, standard names
def test_zarr_input_units_conversion_and_standard_name(tmp_path) -> None:
    lat, lon = np.linspace(70.0, 72.0, 9), np.linspace(20.0, 24.0, 17)
    lon2, lat2 = np.meshgrid(lon, lat)
    pct = (10.0 * lon2 + lat2).astype("float32")[None]  # percent
    ds = xr.Dataset(
        {"sic": (("time", "lat", "lon"), pct, {"units": "%", "standard_name": "sea_ice_area_fraction"})},
        coords={
            "time": ("time", [0.0], {"units": "days since 2020-01-01"}),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )
    store = tmp_path / "sic.zarr"
    ds.to_zarr(store, mode="w", consolidated=True)
    grid = _grid("EPSG:4326", [20.5, 70.5, 23.5, 71.5], 0.25)
    out = load(
        _source(store, {"sea_ice_concentration": {"standard_name": "sea_ice_area_fraction", "units": "1"}}),
        grid,
    )
    sic = out["sea_ice_concentration"].isel(time=0)
    xx, yy = np.meshgrid(out["x"].values, out["y"].values)
    np.testing.assert_allclose(sic.values, (10.0 * xx + yy) / 100.0, atol=1e-5)  # linear field, /100
    assert sic.attrs["units"] == "1" and sic.attrs["standard_name"] == "sea_ice_area_fraction"
    assert len(out.attrs["geotwin_source_files"][0]["sha256"]) == 64


def test_global_grid_across_the_antimeridian_and_the_pole(shared_data) -> None:
    path = shared_file(shared_data, "climate/eraint_uvz.nc")
    var = {"u850": {"name": "u"}}
    with netCDF4.Dataset(path) as nc:
        j = int(np.argmin(abs(nc["latitude"][:] - 60.0)))
        west, east = float(nc["u"][0, 2, j, -1]), float(nc["u"][0, 2, j, 0])  # 179.25E and 180W
    seam = _grid("EPSG:4326", [179.25, 59.625, 180.0, 60.375], 0.75)  # one cell centred on 179.625E
    value = float(load(_source(path, var, level=850), seam)["u850"][0, 0, 0])
    assert value == pytest.approx(0.5 * (west + east), abs=1e-4)
    polar = _grid("EPSG:3413", [-2e6, -2e6, 2e6, 2e6], 100000.0)
    assert np.isfinite(load(_source(path, var, level=850), polar)["u850"].values).all()


def test_regional_grids_across_the_antimeridian(tmp_path) -> None:
    """A 0..360 regional grid (150..210E) and a curvilinear one, onto a grid spanning 170..190E."""
    lon, lat = np.arange(150.0, 211.0), np.arange(50.0, 61.0)
    field = (lon[None, :] + 2.0 * lat[:, None]).astype("float32")[None]
    xr.Dataset(
        {"f": (("time", "lat", "lon"), field, {"units": "1"})},
        coords={
            "time": ("time", [0.0], {"units": "days since 2000-01-01"}),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    ).to_netcdf(tmp_path / "pacific.nc")
    grid = _grid("EPSG:4326", [170.0, 52.0, 190.0, 58.0], 1.0)
    out = load(_source(tmp_path / "pacific.nc", {"f": {"name": "f"}}), grid)["f"].isel(time=0)
    xx, yy = np.meshgrid(out["x"].values, out["y"].values)
    np.testing.assert_allclose(out.values, xx + 2.0 * yy, atol=1e-4)  # bilinear of a linear field
    # the same field on a skewed curvilinear grid whose lon arrays are stored as -180..180
    i, j = np.meshgrid(np.arange(12), np.arange(40), indexing="ij")
    lon2, lat2 = 165.0 + 0.7 * j + 0.1 * i, 50.0 + 0.8 * i + 0.02 * j
    xr.Dataset(
        {"f": (("eta", "xi"), (lon2 + 2.0 * lat2).astype("float64"), {"units": "1"})},
        coords={
            "lon2d": (("eta", "xi"), (lon2 + 180.0) % 360.0 - 180.0, {"standard_name": "longitude"}),
            "lat2d": (("eta", "xi"), lat2, {"standard_name": "latitude"}),
        },
    ).to_netcdf(tmp_path / "curvi.nc")
    out = load(_source(tmp_path / "curvi.nc", {"f": {"name": "f"}}), grid)["f"]
    finite = np.isfinite(out.values)
    assert finite.mean() > 0.8
    np.testing.assert_allclose(out.values[finite], (xx + 2.0 * yy)[finite], atol=1e-6)
    west = _grid("EPSG:4326", [-178.0, 52.0, -172.0, 58.0], 1.0)  # the same place written as degrees west
    out = load(_source(tmp_path / "pacific.nc", {"f": {"name": "f"}}), west)["f"].isel(time=0)
    xx, yy = np.meshgrid(out["x"].values + 360.0, out["y"].values)
    np.testing.assert_allclose(out.values, xx + 2.0 * yy, atol=1e-4)


def test_georef_latlon_uses_the_files_own_coordinates(shared_data) -> None:
    """georef: latlon regrids Arctic20 from its 2-D lon/lat arrays; a cell on node (j, i) gets its value."""
    path = shared_file(shared_data, ARCTIC20)
    j, i = 30, 45
    with netCDF4.Dataset(path) as nc:
        lon, lat = float(nc["longitude"][j, i]), float(nc["latitude"][j, i])
        ref = float(nc["hice"][2, j, i])
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True).transform(lon, lat)
    grid = _centred_grid("EPSG:3413", x, y, 2000.0)
    out = load(_source(path, {"h": {"name": "hice", "units": "m"}}, georef="latlon"), grid)
    assert float(out["h"].isel(time=2, y=3, x=3)) == pytest.approx(ref, abs=1e-5)
    assert "longitude/latitude" in out.attrs["geotwin_crs"]


def test_static_annual_inventory_on_a_time_axis(shared_data) -> None:
    """A one-time-step flux (EDGAR 2012 on the NAME EUROPE grid) used as static on a 2020 time axis."""
    path = shared_file(shared_data, "emissions/openghg_ch4-anthro_EUROPE_2012.nc")
    time = {"start": "2020-01-01", "end": "2020-01-03", "freq": "1D"}
    with netCDF4.Dataset(path) as nc:
        lat, lon = np.asarray(nc["lat"][:], float), np.asarray(nc["lon"][:], float)
        jj, ii = int(np.argmin(abs(lat - 51.5))), int(np.argmin(abs(lon + 0.1)))
        ref = (
            float(nc["flux"][jj, ii, 0])
            if nc["flux"].dimensions[0] == "lat"
            else float(nc["flux"][0, jj, ii])
        )
        units = nc["flux"].units
    grid = _centred_grid("EPSG:4326", lon[ii], lat[jj], 0.05, time=time)
    spec = {"ch4": {"name": "flux"}}
    with pytest.raises(SourceError, match="does not cover"):
        load(_source(path, spec), grid)
    out = load(_source(path, spec, static=True), grid)["ch4"]
    assert out.dims == ("y", "x") and out.attrs["units"] == units
    assert float(out[3, 3]) == pytest.approx(ref, rel=1e-5)


def test_edgar_subsample_0_360(shared_data) -> None:
    """EDGAR's 0.05..360 subsample is a regular 0..360 axis (its wrapped copy would not be): values at
    nodes east and west of Greenwich come out in a -180..180 region window."""
    path = shared_file(
        shared_data, "emissions/openghg_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc"
    )
    assert open_gridded(path).attrs["geotwin_grid"] == "regular"
    with netCDF4.Dataset(path) as nc:
        lat, lon = np.asarray(nc["lat"][:], float), np.asarray(nc["lon"][:], float)
        field = np.asarray(nc["emi_co2"][:], float)
    for jj, ii in ((25, 3), (26, 69)):  # 10.3E and 354.8E (= 5.2W)
        x = (lon[ii] + 180.0) % 360.0 - 180.0
        grid = _centred_grid("EPSG:4326", x, lat[jj], 0.5)
        out = load(_source(path, {"co2": {"name": "emi_co2"}}), grid)
        assert float(out["co2"].isel(y=3, x=3)) == pytest.approx(field[jj, ii], rel=1e-4)


def test_irregular_axes_regridded_as_curvilinear(tmp_path) -> None:
    """A Gaussian-like irregular latitude axis goes through the mesh regridder; a linear field survives."""
    lat = np.array([50.0, 50.9, 52.1, 53.0, 54.2, 55.0, 56.3, 57.0])
    lon = np.arange(0.0, 10.0, 0.5)
    f = (3.0 * lon[None, :] - 2.0 * lat[:, None]).astype("float64")
    xr.Dataset(
        {"f": (("lat", "lon"), f, {"units": "K"})},
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    ).to_netcdf(tmp_path / "gauss.nc")
    assert open_gridded(tmp_path / "gauss.nc").attrs["geotwin_grid"] == "curvilinear"
    grid = _grid("EPSG:4326", [1.0, 51.0, 8.0, 56.0], 0.25)
    out = load(_source(tmp_path / "gauss.nc", {"f": {"name": "f"}}), grid)["f"]
    xx, yy = np.meshgrid(out["x"].values, out["y"].values)
    np.testing.assert_allclose(out.values, 3.0 * xx - 2.0 * yy, atol=1e-4)


# ---------------------------------------------------------------------------- GRIB
def test_grib_via_gdal(shared_data) -> None:
    import rasterio

    path = shared_file(shared_data, "climate/era5-2mt-2019-03-uk.grib")
    ds = open_gridded(path)
    t2m = ds["2t"]
    assert t2m.attrs["units"] == "K" and t2m.attrs["standard_name"] == "air_temperature"
    assert t2m.sizes["time"] == 744 and ds["y"].values[0] < ds["y"].values[-1]  # latitude made ascending
    # ecCodes (cfgrib) decodes the first message at 58N 10W as 282.4248046875 K
    assert float(t2m.isel(time=0).sel(y=58.0, x=-10.0)) == pytest.approx(282.4248046875, abs=1e-6)
    # the message valid at 2019-03-15T12:00, read band by band with rasterio, at 52N 1W
    when = np.datetime64("2019-03-15T12:00")
    with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"), rasterio.open(path) as src:
        band = next(b for b in range(1, src.count + 1) if int(src.tags(b)["GRIB_VALID_TIME"]) == 1552651200)
        row, col = src.index(-1.0, 52.0)
        ref = float(src.read(band)[row, col])
    assert float(t2m.sel(time=when, y=52.0, x=-1.0)) == pytest.approx(ref, abs=1e-5)
    # aligned onto a UK grid with a 30-minute axis: halfway values are the mean of two hours
    time = {"start": "2019-03-15T12:00", "end": "2019-03-15T13:00", "freq": "30min"}
    grid = _centred_grid("EPSG:4326", -1.0, 52.0, 0.25, time=time)
    out = load(_source(path, {"t2m": {"standard_name": "air_temperature"}}), grid)["t2m"][:, 3, 3].values
    hourly = t2m.sel(y=52.0, x=-1.0).sel(time=[when, when + np.timedelta64(1, "h")]).values
    np.testing.assert_allclose(out, [hourly[0], hourly.mean(), hourly[1]], atol=1e-4)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_errors(shared_data, tmp_path) -> None:
    arctic = shared_file(shared_data, ARCTIC20)
    era5 = shared_file(shared_data, "climate/ERA5_2020-01-01_u10.nc")
    grid = _grid("EPSG:3413", [1.2e6, -1.4e6, 1.8e6, -0.2e6], 50000.0)
    hice = {"hice": {"name": "hice"}}
    with pytest.raises(SourceError, match="file not found"):
        load(_source(tmp_path / "absent.nc", hice), grid)
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(Path(era5).read_bytes()[:40000])
    with pytest.raises(SourceError, match="truncated"):
        open_gridded(truncated)
    with pytest.raises(SourceError, match=r"'ice_thickness' not found; available variables: \[.*'hice'"):
        load(_source(arctic, {"h": {"name": "ice_thickness"}}), grid)
    with pytest.raises(SourceError, match="no variable has standard_name 'sea_ice_speed'"):
        load(_source(arctic, {"s": {"standard_name": "sea_ice_speed"}}), grid)
    with pytest.raises(SourceError, match="'mask': has no units"):
        load(_source(arctic, {"land": {"name": "mask"}}), grid)
    # an empty units string on a CF *_fraction (aice: sea_ice_area_fraction) is the dimensionless "1"
    assert load(_source(arctic, {"sic": {"name": "aice"}}), grid)["sic"].attrs["units"] == "1"
    with pytest.raises(SourceError, match="vertical dim 'depth'"):
        load(_source(arctic, {"uo": {"name": "u"}}), grid)
    with pytest.raises(SourceError, match="unknown option"):
        load(_source(arctic, hice, levle="surface"), grid)
    far = _grid("EPSG:32633", [400000.0, 100000.0, 600000.0, 300000.0], 10000.0)  # near the equator
    with pytest.raises(SourceError, match="does not overlap"):
        load(_source(arctic, hice), far)
    late = _grid(
        "EPSG:3413",
        [1.2e6, -1.4e6, 1.8e6, -0.2e6],
        50000.0,
        time={"start": "2016-02-04", "end": "2016-02-08"},
    )
    with pytest.raises(SourceError, match="does not cover the region's time axis"):
        load(_source(arctic, hice), late)
    _write_cf(
        tmp_path / "nan.nc",
        np.array([0.0]),
        "days since 2000-01-01",
        "standard",
        np.full((1, 4, 5), np.nan, "float32"),
    )
    small = _grid("EPSG:4326", [0.0, 60.0, 4.0, 63.0], 1.0)
    with pytest.raises(SourceError, match="no finite value"):
        load(_source(tmp_path / "nan.nc", {"tas": {"name": "tas"}}), small)
    with pytest.raises(SourceError, match="converts only"):
        load(_source(arctic, {"h": {"name": "hice", "units": "kg"}}), grid)


def test_readme_arctic_example(shared_data) -> None:
    """The Barents YAML in README's gridded section builds a verified cube of the four ice-twin variables."""
    import re

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Climate and ocean grids", 1)[1].split("\n## ", 1)[0]
    cfg = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    cfg["sources"][0]["path"] = str(shared_file(shared_data, ARCTIC20))
    region = RegionConfig.model_validate(cfg)
    grid = region_grid(region)
    ds = load(region.sources[0], grid)
    cube = make_cube(dict(ds.data_vars), grid.geobox, sources=ds.attrs["geotwin_source_files"]).compute()
    assert set(cube.data_vars) == {"uo", "vo", "sea_ice_concentration", "sea_ice_thickness"}
    assert cube.sizes == {"time": 17, "y": 70, "x": 35}
    sic = cube["sea_ice_concentration"].values
    assert np.isfinite(sic).mean() > 0.95  # inside the Arctic20 footprint; NaN only on land
    assert np.nanmin(sic) > -1e-4 and np.nanmax(sic) < 1.0 + 1e-4
    assert 0.0 < np.nanmean(sic) < 1.0
    speed = np.hypot(cube["uo"].values, cube["vo"].values)
    assert np.nanmax(speed) < 2.0  # m/s: surface currents, not grid-index garbage


def test_max_depth_keeps_z_levels_and_refuses_s_coordinates(shared_data) -> None:
    """``level: {max_depth: m}`` keeps the z levels down to that depth as dim ``depth``; the values
    are the file's own at each level; a terrain-following (ROMS s) axis is refused by name."""
    arctic = shared_file(shared_data, "ocean_ice/Arctic20_1to5Feb_2016.nc")
    ds = open_gridded(arctic, ["u"], level={"max_depth": 60}).isel(time=0).compute()
    np.testing.assert_array_equal(ds["depth"].values, [0, 3, 10, 15, 25, 50])
    assert ds["depth"].attrs["positive"] == "down" and ds["depth"].attrs["units"] == "m"
    with netCDF4.Dataset(arctic) as nc:
        u25 = np.ma.filled(nc["u"][0, 4], np.nan).astype(float)  # level index 4 is 25 m
    np.testing.assert_allclose(ds["u"].sel(depth=25.0).values, u25, equal_nan=True)
    roms = shared_file(shared_data, "ocean_ice/Nordic_subset.nc")
    with pytest.raises(SourceError, match="max_depth needs a vertical coordinate in metres"):
        open_gridded(roms, ["u"], level={"max_depth": 100})
