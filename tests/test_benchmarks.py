"""The benchmark forcing is a valid cube and the same field the peers read from NetCDF."""

from __future__ import annotations

import sys

import numpy as np
import xarray as xr

from pipelines.cube import verify_cube
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import ice_drift  # noqa: E402


def test_ice_benchmark_cube_is_a_cube_and_matches_the_peers_netcdf(tmp_path):
    cube = ice_drift.forcing_cube()
    verify_cube(cube)
    nc = tmp_path / "forcing.nc"
    ice_drift.write_netcdf(nc)
    with xr.open_dataset(nc) as peers:
        # same cell centres and values, rows flipped to north-up in the cube
        np.testing.assert_allclose(cube["x"].values, peers["lon"].values)
        np.testing.assert_allclose(cube["y"].values, peers["lat"].values[::-1])
        np.testing.assert_array_equal(cube["uo"].values, peers["uo"].values[:, ::-1, :])
        np.testing.assert_array_equal(cube["sea_ice_concentration"].values, peers["sic"].values[:, ::-1, :])
