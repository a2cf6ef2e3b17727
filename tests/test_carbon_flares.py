"""The gas case: flares whose gas rates come from the reservoir twin's summary.csv (Eclipse vectors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.sources.facilities import FacilityError, read_flares, reservoir_gas_rates
from twins.carbon.inventory import flaring_emissions


def _summary(tmp_path: Path) -> Path:
    # report steps of 10, 20 and 30 days; G1 flows 1e5, 2e5, 4e5 sm3/day; G2 a constant 5e4
    table = pd.DataFrame(
        {
            "TIME": [10.0, 30.0, 60.0],
            "FGPR": [1.5e5, 2.5e5, 4.5e5],
            "WGPR:G1": [1e5, 2e5, 4e5],
            "WGPR:G2": [5e4] * 3,
        }
    )
    path = tmp_path / "summary.csv"
    table.to_csv(path, index=False)
    return path


def test_time_weighted_rates_and_units(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    # (1e5*10 + 2e5*20 + 4e5*30) / 60 = 2.8333e5 sm3/day
    np.testing.assert_allclose(reservoir_gas_rates(summary, ["G1", "G2"]), [17e6 / 60, 5e4])
    # FIELD decks report Mscf/day: 1 Mscf = 28.316846592 sm3
    np.testing.assert_allclose(reservoir_gas_rates(summary, ["G2"], "FIELD"), [5e4 * 28.316846592])
    with pytest.raises(FacilityError, match=r"WGPR:G9"):
        reservoir_gas_rates(summary, ["G9"])


def test_flares_from_the_reservoir_summary_emit_the_burnt_gas(tmp_path: Path) -> None:
    sites = tmp_path / "flares.csv"
    pd.DataFrame(
        {
            "name": ["G1", "G2"],
            "latitude": [60.1, 60.2],
            "longitude": [2.1, 2.2],
            "flare_efficiency": [0.98, 0.9],
        }
    ).to_csv(sites, index=False)
    flares = read_flares(sites, _summary(tmp_path))
    np.testing.assert_allclose(flares["gas_rate_sm3_per_day"], [17e6 / 60, 5e4])
    co2, ch4 = flaring_emissions(
        flares["gas_rate_sm3_per_day"].to_numpy(), flares["flare_efficiency"].to_numpy()
    )
    # methane at 15 C / 1 atm: 42.29 mol per sm3, 44.0095 g CO2 per mol burnt, over 365.25 days
    mol = 101325 / (8.314462618 * 288.15)
    np.testing.assert_allclose(
        co2, np.array([17e6 / 60 * 0.98, 5e4 * 0.9]) * mol * 44.0095e-3 * 365.25 / 1000
    )
    assert (flares["fuel"] == "gas").all()
