"""The CLI entry points: run_config/run_deck write the Eclipse-style summary.csv, cubes and economics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("opm")
pytest.importorskip("jax")

CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "reservoir"
FIELD = ["FOPR", "FWPR", "FGPR", "FWIR", "FPR", "FOPT", "FWPT", "FGPT", "FWIT"]
WELL = ["WBHP", "WOPR", "WWPR", "WGPR", "WWIR"]


def test_run_config_writes_summary_cubes_and_economics(tmp_path: Path) -> None:
    import xarray as xr

    from pipelines import list_cubes
    from twins.reservoir.run import run_config

    store = tmp_path / "cubes"
    result = run_config(CATALOG / "qfs.yaml", store=store, out=tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    expected = ["TIME", *FIELD] + [f"{v}:{w}" for w in ("INJ", "PROD") for v in WELL]
    assert list(table.columns) == expected
    np.testing.assert_allclose(table["TIME"], np.arange(30, 601, 30))  # one row per report step (TSTEP 20*30)
    # the injector holds its 50 sm3/day target (BHP limit 400 bar never reached): FWIT = 50 * t, to
    # the Newton tolerance of the well equations (relative rate gap below 10 * Options.tol = 1e-6)
    np.testing.assert_allclose(table["FWIT"], 50.0 * table["TIME"], rtol=1e-6)
    np.testing.assert_allclose(table["WWIR:INJ"], 50.0, rtol=1e-6)
    assert (table["WBHP:INJ"] < 400).all()
    # the producer's liquid rate never exceeds its LRAT target and it ends on its 150 bar BHP limit
    assert (table["FOPR"] + table["FWPR"] <= 50.0 + 1e-6).all()
    assert table["WBHP:PROD"].iloc[-1] == pytest.approx(150.0)
    # FOPT integrates a falling oil rate: between the end-of-step (lower) and start-of-step (upper) sums
    fopr = table["FOPR"].to_numpy()
    assert np.all(np.diff(fopr) < 1e-9)
    assert 30 * fopr.sum() <= table["FOPT"].iloc[-1] <= 30 * (50.0 + fopr[:-1].sum())
    state = xr.open_zarr(tmp_path / "out" / "state.zarr")
    assert state["pressure"].dims == ("time", "layer", "y", "x") and state.sizes["time"] == 20
    assert set(list_cubes(store)) >= {"qfs_waterflood_state", "qfs_waterflood_wells"}
    # well names are Zarr v3 variable-length strings (the spec's "string"), not numpy's fixed UTF-32
    meta = json.loads((tmp_path / "out" / "wells.zarr" / "well" / "zarr.json").read_text())
    assert meta["data_type"] == "string"
    wells = xr.open_zarr(tmp_path / "out" / "wells.zarr")
    assert list(wells["well"].values) == ["INJ", "PROD"]
    np.testing.assert_allclose(wells["wwir"].sel(well="INJ").values, table["WWIR:INJ"].values)
    econ = json.loads((tmp_path / "out" / "economics.json").read_text())
    assert econ["npv_p10"] >= econ["npv_p50"] >= econ["npv_p90"]
    assert econ["npv"] == pytest.approx(result["npv"])
