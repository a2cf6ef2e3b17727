"""The command line: help, one-line errors with exit code 2, info/verify on a store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.store import write_cube
from tests.helpers import linear_cube

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("build", "info", "verify", "catalog", "demo", "run"):
        assert command in result.output


def test_bad_config_gives_one_line_error_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "r.yaml"
    config.write_text(
        yaml.safe_dump({"name": "r", "crs": "EPSG:4326", "bounds": [0, 0, 1, 1], "resolution": -1})
    )
    result = runner.invoke(app, ["build", str(config), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "error:" in result.output and "field 'resolution'" in result.output
    assert not (tmp_path / "s").exists()  # nothing written


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "cube store not found" in result.output


def test_info_and_verify_on_a_store(tmp_path: Path) -> None:
    store = tmp_path / "s"
    write_cube(store, "c", linear_cube())
    result = runner.invoke(app, ["info", str(store)])
    assert result.exit_code == 0 and "c: 2 variables" in result.output
    result = runner.invoke(app, ["verify", str(store)])
    assert result.exit_code == 0 and "ok      c" in result.output


REPO = Path(__file__).resolve().parents[1]


def test_demo_end_to_end_then_verify(tmp_path: Path) -> None:
    """`geotwin demo` builds the demo cubes from files inside the repo and runs the three twins on them."""
    import json

    import numpy as np

    import pipelines

    store = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--store", str(store)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{\n") :])
    cubes = set(pipelines.list_cubes(store))
    assert {
        "barents",
        "field",
        "oakland",
        "ice_trajectories",
        "ice_hazard",
        "oakland_flux_posterior",
    } <= cubes
    assert "open one with" in result.output
    result = runner.invoke(app, ["verify", str(store)])
    assert result.exit_code == 0 and result.output.count("ok ") == len(cubes)
    barents = pipelines.open_cube(store, "barents")
    # Arctic20 ice concentration is a fraction and its currents are ocean speeds (< 2 m/s)
    assert 0.9 < float(barents["sea_ice_concentration"].max()) <= 1.0 + 1e-6
    assert float(abs(barents["uo"]).max()) < 2.0
    oakland = pipelines.open_cube(store, "oakland")
    plants = pd.read_csv(REPO / "catalogs/demo/data/gppd_oakland.csv")
    assert float(oakland["power_capacity"].sum()) == pytest.approx(plants["capacity_mw"].sum(), rel=1e-6)
    assert (store / "stac" / "catalog.json").is_file()
    # ice: a probability that can only grow with lead time (reaching the zone is absorbing)
    p_reach = list(summary["ice"]["p_reach_by_lead_h"].values())
    assert all(0.0 <= p <= 1.0 for p in p_reach) and p_reach == sorted(p_reach)
    # carbon (an OSSE): the posterior city total is within 10 % of the hidden truth, the prior was further off
    total = next(row for row in summary["carbon"] if row["sector"] == "total")
    assert abs(total["posterior"] - total["truth"]) < 0.1 * total["truth"]
    assert abs(total["posterior"] - total["truth"]) < abs(total["prior"] - total["truth"])
    # reservoir: Eclipse summary vectors; cumulative oil is the time integral of the oil rate
    table = pd.read_csv(summary["reservoir"]["summary"])
    for column in ("TIME", "FOPR", "FWPR", "FWIR", "FPR", "FOPT", "FWPT", "FWIT"):
        assert column in table.columns
    steps = np.diff(np.concatenate([[0.0], table["TIME"].to_numpy()]))
    assert table["FOPT"].iloc[-1] == pytest.approx(float((table["FOPR"] * steps).sum()), rel=0.02)


def test_cli_build_killed_then_rerun_matches_clean_build(tmp_path: Path) -> None:
    """kill -9 a `geotwin build` between its two commits; the rerun resumes and equals a clean build."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pipelines
    from pipelines.store import history
    from tests.helpers import assert_same_values

    config = REPO / "catalogs/demo/oakland.yaml"
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    env = dict(os.environ, GEOTWIN_BUILD_STEP_DELAY="60")
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "build",
        str(config),
        "--store",
        str(crashed),
        "--no-catalog",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if crashed.exists() and any(
            "step oakland_osm" in h["message"] for h in _safe_history(history, crashed)
        ):
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert pipelines.list_cubes(crashed) == []  # readable, the partial cube hidden
    result = runner.invoke(app, ["build", str(config), "--store", str(crashed), "--no-catalog"])
    assert result.exit_code == 0, result.output
    messages = [h["message"] for h in history(crashed)]
    assert messages.count("build oakland: step oakland_osm") == 1  # not redone
    assert runner.invoke(app, ["build", str(config), "--store", str(clean), "--no-catalog"]).exit_code == 0
    assert_same_values(pipelines.open_cube(clean, "oakland"), pipelines.open_cube(crashed, "oakland"))


def _safe_history(history, store: Path) -> list[dict]:
    try:
        return history(store)
    except Exception:  # the store may be half-created at the very start
        return []
