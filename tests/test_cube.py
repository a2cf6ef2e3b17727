"""verify_cube enforces each rule of the cube convention."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipelines.cube import CubeError, make_cube, verify_cube
from tests.helpers import geobox, linear_cube


def _drop_attr(var: str, attr: str) -> Callable[[xr.Dataset], xr.Dataset]:
    def mutate(ds: xr.Dataset) -> xr.Dataset:
        ds[var].attrs.pop(attr)
        return ds

    return mutate


def _reverse_time(ds: xr.Dataset) -> xr.Dataset:
    return ds.isel(time=slice(None, None, -1))


def _transpose(ds: xr.Dataset) -> xr.Dataset:
    return ds.transpose("y", "x", "time")


def _bad_crs(ds: xr.Dataset) -> xr.Dataset:
    ds["spatial_ref"].attrs["crs_wkt"] = "not a crs"
    return ds


def _no_spatial_ref(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_vars("spatial_ref")


def _string_time(ds: xr.Dataset) -> xr.Dataset:
    return ds.assign_coords(time=[str(t) for t in ds["time"].values])


def _nonmonotonic_x(ds: xr.Dataset) -> xr.Dataset:
    x = ds["x"].values.copy()
    x[[0, 1]] = x[[1, 0]]
    return ds.assign_coords(x=xr.DataArray(x, dims="x", attrs=ds["x"].attrs))


def _drop_provenance(ds: xr.Dataset) -> xr.Dataset:
    ds.attrs.pop("geotwin_sources")
    return ds


def _drop_x_units(ds: xr.Dataset) -> xr.Dataset:
    ds["x"].attrs.pop("units")
    return ds


def _drop_grid_mapping(ds: xr.Dataset) -> xr.Dataset:
    ds["a"].attrs.pop("grid_mapping")
    return ds


def _bad_name(ds: xr.Dataset) -> xr.Dataset:
    return ds.rename({"a": "wind speed"})


def _no_data(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_vars(["a", "b"])


VIOLATIONS = {
    "missing units": (_drop_attr("a", "units"), "'a'.*'units'"),
    "missing long_name": (_drop_attr("b", "long_name"), "'b'.*'long_name'"),
    "time not increasing": (_reverse_time, "strictly increasing"),
    "time after y/x": (_transpose, "must end with"),
    "invalid crs_wkt": (_bad_crs, "not a valid CRS"),
    "no spatial_ref": (_no_spatial_ref, "spatial_ref"),
    "time not datetime64": (_string_time, "datetime64"),
    "x not monotonic": (_nonmonotonic_x, "not strictly monotonic"),
    "no provenance": (_drop_provenance, "provenance"),
    "x without units": (_drop_x_units, "'x' is missing 'units'"),
    "no grid_mapping": (_drop_grid_mapping, "grid_mapping"),
    "long variable name": (_bad_name, "short identifier"),
    "no data variables": (_no_data, "no data variables"),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_verify_cube_rejects(case: str) -> None:
    ds = linear_cube(times=pd.date_range("2021-03-01", periods=3, freq="1D"))
    verify_cube(ds)  # the baseline is valid
    mutate, pattern = VIOLATIONS[case]
    with pytest.raises(CubeError, match=pattern):
        verify_cube(mutate(ds.copy(deep=True)))


def test_feature_cube_needs_feature_type() -> None:
    x = xr.DataArray(np.zeros((2, 3)), dims=("trajectory", "time"), attrs={"units": "m", "long_name": "x"})
    with pytest.raises(CubeError, match="featureType"):
        make_cube({"x": x})
    ds = make_cube({"x": x}, attrs={"featureType": "trajectory"})
    assert ds.attrs["featureType"] == "trajectory"


def test_make_cube_sets_cf_grid_mapping_and_coordinate_units() -> None:
    ds = linear_cube(gbox=geobox("EPSG:32633", (500_000, 7_000_000, 510_000, 7_005_000), 1000))
    assert ds["a"].attrs["grid_mapping"] == "spatial_ref"
    assert ds["x"].attrs["units"] == "m" and ds["x"].attrs["standard_name"] == "projection_x_coordinate"
    assert "UTM zone 33N" in ds["spatial_ref"].attrs["crs_wkt"]
    # cell centres: first x is half a cell right of the left edge
    assert ds["x"].values[0] == pytest.approx(500_500.0) and ds["y"].values[0] == pytest.approx(7_004_500.0)
