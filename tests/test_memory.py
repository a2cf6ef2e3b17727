"""Memory stays bounded: writing a cube larger than the memory it may use works (dask streams chunks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import dask.array as da
    import numpy as np
    import xarray as xr
    from odc.geo.geobox import GeoBox
    from pipelines.cube import make_cube
    from pipelines.store import open_cube, write_cube

    ny = nx = 4096
    nt = 16  # 16 x 4096 x 4096 int32 = 1 GiB
    gbox = GeoBox.from_bbox((0, 0, nx * 100.0, ny * 100.0), "EPSG:3413", resolution=100.0)
    data = da.arange(nt * ny * nx, dtype="int32", chunks=1024 * 1024 * 4).reshape((nt, ny, nx)).rechunk((1, 1024, 1024))
    import pandas as pd
    times = pd.date_range("2020-01-01", periods=nt, freq="1h")
    var = xr.DataArray(data, dims=("time", "y", "x"), coords={"time": times.values}, attrs={"units": "1", "long_name": "ramp"})
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_cube(sys.argv[1], "big", make_cube({"v": var}, gbox))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    last = float(open_cube(sys.argv[1], "big")["v"][-1, -1, -1].values)
    print(json.dumps({"base_mb": base, "peak_mb": peak, "last": last, "size_mb": nt * ny * nx * 4 / 2**20}))
    """
)


def test_writing_a_1_gib_cube_keeps_memory_bounded(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), DASK_NUM_WORKERS="2")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["last"] == float(16 * 4096 * 4096 - 1)  # the final element is exact
    # the whole cube is 1024 MiB; the process grows by far less than that while writing it
    assert figures["peak_mb"] - figures["base_mb"] < 0.5 * figures["size_mb"], figures
