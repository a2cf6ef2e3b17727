"""Side by side with OPM Flow (Debian's ``flow``) on our own decks: every summary vector within 2 %."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("opm")
pytestmark = pytest.mark.slow

CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "reservoir"


@pytest.mark.parametrize("stem", ["QFS_WATERFLOOD", "LAYERED_WATERFLOOD", "GAS_DEPLETION"])
def test_summary_matches_opm_flow(stem: str, tmp_path: Path) -> None:
    if not shutil.which("flow"):
        pytest.skip("OPM Flow is not installed (apt-get install libopm-simulators-bin)")
    from opm.io.ecl import ESmry

    from twins.reservoir.run import run_deck

    deck = CATALOG / f"{stem}.DATA"
    subprocess.run(["flow", str(deck), f"--output-dir={tmp_path / 'opm'}"], check=True, capture_output=True)
    ours = pd.read_csv(run_deck(deck, tmp_path / "ours"))
    ref = ESmry(str(tmp_path / "opm" / f"{stem}.SMSPEC"))
    have = set(ref.keys())
    compared = 0
    for key in ours.columns:
        if key == "TIME" or key not in have:
            continue
        r = np.asarray(ref[key, True], float)
        assert r.shape == ours[key].shape, key  # one row per report step, as OPM's report-step summary
        scale = np.max(np.abs(r))
        if scale == 0:
            assert np.allclose(ours[key], 0.0), key
            continue
        err = np.max(np.abs(ours[key].to_numpy() - r)) / scale
        assert err < 0.02, f"{stem} {key}: max relative error {err:.4f}"
        compared += 1
    assert compared >= 5
    np.testing.assert_allclose(ours["TIME"], np.asarray(ref["TIME", True]), rtol=1e-6)
