"""Small cube factories shared by the tests (analytic fields on odc-geo grids)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox

from pipelines.cube import grid_coords, make_cube


def geobox(
    crs: str = "EPSG:3413", bounds=(0.0, 0.0, 100_000.0, 50_000.0), resolution: float = 10_000.0
) -> GeoBox:
    """A north-up GeoBox over ``bounds`` at ``resolution``."""
    return GeoBox.from_bbox(bounds, crs, resolution=resolution)


def linear_cube(
    gbox: GeoBox | None = None, times: pd.DatetimeIndex | None = None, chunks: dict[str, int] | None = None
) -> xr.Dataset:
    """A cube with ``a = x + 2 y + hours`` (float32) and ``b = 1`` (float64) on ``gbox``."""
    gbox = gbox or geobox()
    coords = grid_coords(gbox)
    x, y = coords["x"].values, coords["y"].values
    base = x[None, :] + 2.0 * y[:, None]
    if times is None:
        a = xr.DataArray(base.astype("float32"), dims=("y", "x"))
    else:
        hours = ((times - times[0]) / pd.Timedelta("1h")).to_numpy()
        a = xr.DataArray((base[None] + hours[:, None, None]).astype("float32"), dims=("time", "y", "x"))
        a = a.assign_coords(time=times.values)
    a.attrs = {"units": "m", "long_name": "linear test field"}
    b = xr.ones_like(a, dtype="float64")
    b.attrs = {"units": "1", "long_name": "constant test field"}
    ds = make_cube({"a": a, "b": b}, gbox, config={"test": True})
    if chunks:
        ds = ds.chunk({k: v for k, v in chunks.items() if k in ds.dims})
    return ds


def assert_same_values(left: xr.Dataset, right: xr.Dataset) -> None:
    """Same variables, coordinates and values (ignoring attrs that record creation times)."""
    assert sorted(left.data_vars) == sorted(right.data_vars)
    for name in left.variables:
        np.testing.assert_array_equal(
            np.asarray(left[name].values), np.asarray(right[name].values), err_msg=str(name)
        )
