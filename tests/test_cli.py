"""The command line: help, one-line errors with exit code 2, info/verify on a store."""

from __future__ import annotations

from pathlib import Path

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
