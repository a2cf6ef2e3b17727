"""Atomic run outputs: a failed write leaves the previous result whole and no temporary behind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipelines.outputs import write_table, write_text, write_zarr_directory


def test_zarr_directory_replaced_whole_or_not_at_all(tmp_path):
    path = tmp_path / "state.zarr"
    write_zarr_directory(path, xr.Dataset({"p": ("t", np.arange(3.0))}))
    write_zarr_directory(path, xr.Dataset({"p": ("t", np.arange(5.0))}))
    np.testing.assert_array_equal(xr.open_zarr(path)["p"].values, np.arange(5.0))
    bad = xr.Dataset({"p": ("t", np.arange(2.0))}, attrs={"not_serialisable": object()})
    with pytest.raises(TypeError):
        write_zarr_directory(path, bad)
    np.testing.assert_array_equal(xr.open_zarr(path)["p"].values, np.arange(5.0))  # previous result intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.zarr"]  # no temporary left


def test_table_and_text_round_trip_and_leave_nothing_on_failure(tmp_path):
    table = pd.DataFrame({"TIME": [30.0, 60.0], "FOPR": [12.5, 11.0]})
    pd.testing.assert_frame_equal(pd.read_csv(write_table(tmp_path / "summary.csv", table)), table)
    assert write_text(tmp_path / "s.json", '{"a": 1}').read_text() == '{"a": 1}'
    with pytest.raises(TypeError):
        write_text(tmp_path / "s.json", None)  # type: ignore[arg-type]
    assert (tmp_path / "s.json").read_text() == '{"a": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "summary.csv"]
