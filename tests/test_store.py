"""Cube store: round trip, append with a safe time encoding, atomic commits, crash and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipelines import list_cubes, open_cube
from pipelines.cube import CubeError
from pipelines.store import CubeBuild, StoreError, append_cube, history, open_repository, write_cube
from tests.helpers import assert_same_values, geobox, linear_cube


def test_round_trip_preserves_values_dtypes_and_grid(tmp_path: Path) -> None:
    times = pd.date_range("2020-01-01", periods=5, freq="1h")
    ds = linear_cube(times=times, chunks={"time": 2, "y": 3, "x": 4})
    write_cube(tmp_path / "s", "c", ds)
    out = open_cube(tmp_path / "s", "c")
    assert_same_values(ds, out)
    assert out["a"].dtype == np.float32 and out["b"].dtype == np.float64
    assert out["spatial_ref"].attrs["crs_wkt"] == ds["spatial_ref"].attrs["crs_wkt"]
    assert out["a"].chunks is not None  # lazy
    assert out.attrs["geotwin_config"] == ds.attrs["geotwin_config"]
    assert list_cubes(tmp_path / "s") == ["c"]


def test_append_keeps_time_encoding_right(tmp_path: Path) -> None:
    """First write has one daily step: xarray alone would infer 'days since' int64 and truncate hours."""
    store = tmp_path / "s"
    times = pd.DatetimeIndex(
        ["2020-01-01T00:00", "2020-01-01T01:00", "2020-01-01T01:30", "2020-01-02T07:15:09"]
    )
    ds = linear_cube(times=times)
    write_cube(store, "c", ds.isel(time=[0]))
    append_cube(store, "c", ds.isel(time=[1]))
    append_cube(store, "c", ds.isel(time=[2, 3]))
    out = open_cube(store, "c")
    np.testing.assert_array_equal(out["time"].values, times.values)
    assert_same_values(ds, out)


def test_append_rejects_overlapping_or_unordered_time(tmp_path: Path) -> None:
    store = tmp_path / "s"
    times = pd.date_range("2020-01-01", periods=4, freq="1h")
    ds = linear_cube(times=times)
    write_cube(store, "c", ds.isel(time=[0, 1]))
    before = history(store)
    with pytest.raises(CubeError, match="after the stored last value"):
        append_cube(store, "c", ds.isel(time=[1, 2]))
    assert history(store) == before  # nothing committed
    np.testing.assert_array_equal(open_cube(store, "c")["time"].values, times[:2].values)


def test_append_does_not_rewrite_old_chunks(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ds = linear_cube(times=pd.date_range("2020-01-01", periods=4, freq="1h"), chunks={"time": 2})
    write_cube(store, "c", ds.isel(time=slice(0, 2)))
    repo = open_repository(store)
    first = repo.ancestry(branch="main")
    snap_before = next(iter(first)).id
    append_cube(store, "c", ds.isel(time=slice(2, 4)))
    snap_after = next(iter(repo.ancestry(branch="main"))).id
    diff = repo.diff(from_snapshot_id=snap_before, to_snapshot_id=snap_after)
    updated = diff.updated_chunks
    # only time-chunk index 1 of a/b (and the time coordinate's new chunk) changed; chunk 0 untouched
    for var in ("/c/a", "/c/b"):
        indices = [tuple(i) for i in updated.get(var, [])]
        assert indices and all(i[0] >= 1 for i in indices), (var, indices)


def test_failed_write_leaves_store_at_last_commit(tmp_path: Path) -> None:
    store = tmp_path / "s"
    good = linear_cube()
    write_cube(store, "c", good)
    bad = good.copy()
    bad["a"].attrs.pop("units")
    with pytest.raises(CubeError, match="'a'.*units"):
        write_cube(store, "c", bad)
    assert_same_values(good, open_cube(store, "c"))


def test_open_cube_errors_name_store_and_cube(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found"):
        open_cube(tmp_path / "missing", "c")
    write_cube(tmp_path / "s", "c", linear_cube())
    with pytest.raises(StoreError, match="no cube named 'nope'.*available: \\['c'\\]"):
        open_cube(tmp_path / "s", "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a geotwin cube store"):
        list_cubes(tmp_path / "plain")


def test_incomplete_build_is_hidden_until_finished(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ds = linear_cube()
    build = CubeBuild(store, "c", "id-1")
    build.write_step("a", ds[["a"]])
    assert list_cubes(store) == []
    with pytest.raises(StoreError, match="incomplete"):
        open_cube(store, "c")
    again = CubeBuild(store, "c", "id-1")
    assert again.done("a") and not again.done("b")
    again.write_step("b", ds[["b"]])
    again.finish(ds.attrs)
    assert list_cubes(store) == ["c"]
    assert_same_values(ds, open_cube(store, "c"))
    restarted = CubeBuild(store, "c", "id-2")  # different inputs start over
    assert not restarted.done("a")


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import pandas as pd
    from pipelines.store import CubeBuild
    from tests.helpers import linear_cube
    store, delay = sys.argv[1], float(sys.argv[2])
    ds = linear_cube(times=pd.date_range("2020-01-01", periods=6, freq="1h"), chunks={"time": 2})
    build = CubeBuild(store, "c", "crash-test")
    for step in ["a", "b"]:
        if build.done(step):
            print("skipped", step, flush=True)
            continue
        build.write_step(step, ds[[step]])
        print("committed", step, flush=True)
        time.sleep(delay)
    build.finish(ds.attrs)
    print("finished", flush=True)
    """
)


def _run_build(store: Path, delay: float) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(store), str(delay)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_kill_9_mid_build_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    other = linear_cube()
    crashed = tmp_path / "crashed"
    write_cube(crashed, "other", other)  # a committed cube that must survive the crash
    proc = _run_build(crashed, delay=30.0)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("committed a")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert list_cubes(crashed) == ["other"]  # readable at its last commit, the partial cube hidden
    assert_same_values(other, open_cube(crashed, "other"))
    resumed = _run_build(crashed, delay=0.0)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    assert "skipped a" in out and "committed b" in out and "finished" in out  # step a was not redone
    clean = tmp_path / "clean"
    proc = _run_build(clean, delay=0.0)
    proc.communicate(timeout=120)
    assert_same_values(open_cube(clean, "c"), open_cube(crashed, "c"))
    messages = [h["message"] for h in history(crashed)]
    assert messages.count("build c: step a") == 1


def test_cube_attrs_survive_round_trip_as_json(tmp_path: Path) -> None:
    ds = linear_cube(gbox=geobox("EPSG:4326", (10.0, 60.0, 12.0, 61.0), 0.25))
    write_cube(tmp_path / "s", "c", ds)
    out = open_cube(tmp_path / "s", "c")
    assert json.loads(out.attrs["geotwin_config"]) == {"test": True}
    assert out["x"].attrs["units"] == "degrees_east" and out["y"].attrs["units"] == "degrees_north"
    xr.testing.assert_allclose(out["a"].load(), ds["a"])


def test_write_on_a_distributed_cluster_round_trips(tmp_path: Path) -> None:
    """With a dask.distributed client the workers write the chunks; the committed cube is the same."""
    distributed = pytest.importorskip("distributed")
    ds = linear_cube(
        times=pd.date_range("2020-01-01", periods=4, freq="1h"), chunks={"time": 1, "y": 2, "x": 5}
    )
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster):
            write_cube(tmp_path / "s", "c", ds)
            append_cube(tmp_path / "s", "c", ds.assign_coords(time=ds.time + np.timedelta64(4, "h")))
    out = open_cube(tmp_path / "s", "c")
    assert out.sizes["time"] == 8
    assert_same_values(ds, out.isel(time=slice(0, 4)))
    np.testing.assert_array_equal(out["a"].values[4:], ds["a"].values)


def test_in_memory_cubes_are_tiled(tmp_path: Path) -> None:
    """A NumPy-backed cube is stored in tiles of at most 512 x 512 cells and one time step."""
    ds = linear_cube(
        gbox=geobox("EPSG:3413", (0.0, 0.0, 700 * 1000.0, 600 * 1000.0), 1000.0),
        times=pd.date_range("2020-01-01", periods=2, freq="1h"),
    ).load()
    write_cube(tmp_path / "s", "c", ds)
    out = open_cube(tmp_path / "s", "c")
    assert out["a"].encoding["chunks"] == (1, 512, 512)
    assert_same_values(ds, out)
