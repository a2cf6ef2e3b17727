"""The ``ds.geotwin`` accessor: grid/CRS recovery, lon/lat of cells, point selection and maps."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer

import pipelines.accessor  # noqa: F401  (registers ds.geotwin)
from pipelines.cube import CubeError, make_cube
from pipelines.grid import GridError
from pipelines.store import open_cube, write_cube

matplotlib.use("Agg")

# cell centres at x = 500000 (zone 33 central meridian, 15E) for column 5
UTM = GeoBox((30, 40), Affine(1000.0, 0.0, 494500.0, 0.0, -1000.0, 7000000.0), "EPSG:32633")
# EPSG:3413 grid with a cell centred on the pole (x = y = 0) at row 10, column 10
POLAR = GeoBox((21, 21), Affine(10000.0, 0.0, -105000.0, 0.0, -10000.0, 105000.0), "EPSG:3413")
DATELINE = GeoBox((50, 100), Affine(4000.0, 0.0, 500000.0, 0.0, -4000.0, 7000000.0), "EPSG:32660")


def _cube(geobox: GeoBox, nt: int = 3) -> xr.Dataset:
    ny, nx = geobox.shape
    data = np.arange(nt * ny * nx, dtype="float32").reshape(nt, ny, nx)
    t2m = xr.DataArray(
        data,
        dims=("time", "y", "x"),
        coords={"time": pd.date_range("2024-01-01", periods=nt, freq="1D")},
        attrs={"units": "K", "long_name": "air temperature", "standard_name": "air_temperature"},
    )
    return make_cube({"t2m": t2m}, geobox)


def test_grid_and_crs_round_trip_through_the_store(tmp_path):
    write_cube(tmp_path / "s", "utm", _cube(UTM))
    ds = open_cube(tmp_path / "s", "utm")
    grid = ds.geotwin.grid
    assert grid.geobox.shape == UTM.shape
    assert tuple(grid.geobox.affine) == pytest.approx(tuple(UTM.affine))
    assert ds.geotwin.crs.equals(CRS.from_epsg(32633))
    assert ds.t2m.geotwin.crs.to_epsg() == 32633
    assert list(grid.time) == list(pd.date_range("2024-01-01", periods=3, freq="1D"))


def test_verify_accepts_a_cube_and_names_the_broken_variable():
    ds = _cube(UTM)
    assert ds.geotwin.verify() is ds
    t2m = ds.t2m
    assert t2m.geotwin.verify() is t2m
    bad = ds.copy()
    bad["t2m"].attrs.pop("units")
    with pytest.raises(CubeError, match="'t2m'.*units"):
        bad.geotwin.verify()
    with pytest.raises(CubeError, match="units"):
        bad.t2m.geotwin.verify()


def test_to_lonlat_on_known_meridians_and_the_pole():
    lon, lat = _cube(UTM).geotwin.to_lonlat()
    assert lon.dims == ("y", "x") and lon.shape == UTM.shape and lon.attrs["units"] == "degrees_east"
    # x = 500000 m is the zone 33 central meridian: longitude exactly 15 on every row
    assert float(lon.sel(x=500000.0).min()) == pytest.approx(15.0, abs=1e-9)
    assert float(lon.sel(x=500000.0).max()) == pytest.approx(15.0, abs=1e-9)
    # latitude increases northwards (y descending with row)
    assert np.all(np.diff(lat.values[:, 5]) < 0)
    plon, plat = _cube(POLAR).geotwin.to_lonlat()
    assert float(plat.sel(x=0.0, y=0.0)) == pytest.approx(90.0, abs=1e-9)
    # EPSG:3413 has its central meridian at 45W: the cells straight below the pole (x = 0, y < 0)
    assert np.allclose(plon.sel(x=0.0).values[11:], -45.0, atol=1e-9)


@pytest.mark.parametrize("geobox", [UTM, POLAR, DATELINE], ids=["utm", "polar", "antimeridian"])
def test_sel_lonlat_returns_the_cell_containing_the_point(geobox):
    ds = _cube(geobox)
    rng = np.random.default_rng(7)
    crs = CRS.from_wkt(geobox.crs.to_wkt())
    to_geo = Transformer.from_crs(crs, 4326, always_xy=True)
    ny, nx = geobox.shape
    # random points inside the grid (CRS units), expressed as lon/lat
    cols, rows = rng.uniform(0.01, nx - 0.01, 20), rng.uniform(0.01, ny - 0.01, 20)
    xs, ys = geobox.affine * (cols, rows)
    lons, lats = to_geo.transform(xs, ys)
    for lon, lat, col, row in zip(lons, lats, cols, rows, strict=True):
        cell = ds.geotwin.sel_lonlat(float(lon), float(lat))
        # the containing cell from the affine transform (independent of xarray's nearest lookup)
        assert float(cell.x) == pytest.approx(float(ds.x[int(col)]))
        assert float(cell.y) == pytest.approx(float(ds.y[int(row)]))
        assert float(cell.t2m.isel(time=0)) == float(ds.t2m.isel(time=0, y=int(row), x=int(col)))
    # vectorised: a 'points' dimension, same cells
    many = ds.t2m.geotwin.sel_lonlat(lons, lats)
    assert many.dims == ("time", "points")
    assert np.array_equal(
        many.isel(time=1).values, ds.t2m.isel(time=1).values[rows.astype(int), cols.astype(int)]
    )


def test_sel_lonlat_accepts_0_360_longitudes_and_refuses_points_outside():
    ds = _cube(DATELINE)
    east = ds.geotwin.sel_lonlat(-179.5, 62.0)
    assert float(east.x) == float(ds.geotwin.sel_lonlat(180.5, 62.0).x)
    with pytest.raises(GridError, match="outside the grid"):
        ds.geotwin.sel_lonlat(10.0, 62.0)


def test_plot_maps_the_selected_step_with_units_and_crs_axes():
    import matplotlib.pyplot as plt

    ds = _cube(UTM)
    fig, ax = plt.subplots()
    mesh = ds.geotwin.plot("t2m", time=1, ax=ax)
    assert np.array_equal(np.asarray(mesh.get_array()).ravel(), ds.t2m.isel(time=1).values.ravel())
    assert mesh.colorbar.ax.get_ylabel() == "air temperature [K]"
    assert ax.get_xlabel() == "x [m]" and ax.get_ylabel() == "y [m]"
    assert ax.get_xlim() == pytest.approx((494500.0, 534500.0))  # the cell edges in CRS units
    assert "2024-01-02" in ax.get_title()
    plt.close(fig)
    default = ds.t2m.geotwin.plot()  # DataArray accessor, time 0 by default
    assert np.array_equal(np.asarray(default.get_array()).ravel(), ds.t2m.isel(time=0).values.ravel())
    plt.close("all")
    with pytest.raises(KeyError, match="nope"):
        ds.geotwin.plot("nope")


def test_plot_on_a_cartopy_map_in_another_projection():
    ccrs = pytest.importorskip("cartopy.crs")
    import matplotlib.pyplot as plt

    ds = _cube(POLAR)
    fig = plt.figure()
    ax = fig.add_subplot(projection=ccrs.NorthPolarStereo())  # central meridian 0, not 3413's 45W
    mesh = ds.geotwin.plot("t2m", time=2, ax=ax)
    assert np.array_equal(np.asarray(mesh.get_array()).ravel(), ds.t2m.isel(time=2).values.ravel())
    # the map shows the whole grid: its corners, projected to the map's CRS by pyproj, are inside the view
    x0, x1, y0, y1 = ax.get_extent()
    corners = Transformer.from_crs(3413, ax.projection, always_xy=True).transform(
        [-105000.0, 105000.0, 105000.0, -105000.0], [-105000.0, -105000.0, 105000.0, 105000.0]
    )
    assert all(x0 - 1.0 <= x <= x1 + 1.0 for x in corners[0])
    assert all(y0 - 1.0 <= y <= y1 + 1.0 for y in corners[1])
    # and they are not the same numbers as in EPSG:3413 (the map really is in another projection)
    assert not np.allclose(corners[0], [-105000.0, 105000.0, 105000.0, -105000.0])
    plt.close(fig)
