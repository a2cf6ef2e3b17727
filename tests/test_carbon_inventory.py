"""Inventory: IPCC factors, exact conservation of sector totals, time profiles, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twins.carbon.inventory import (
    SECONDS_PER_YEAR,
    InventoryError,
    check_sectors,
    downscale,
    facility_emissions,
    flaring_emissions,
    time_factors,
)


def _table(**cols):
    n = len(next(iter(cols.values())))
    base = {
        "name": [f"f{i}" for i in range(n)],
        "co2_t_per_year": [np.nan] * n,
        "generation_mwh": [np.nan] * n,
    }
    base.update(cols)
    return pd.DataFrame(base)


def test_generation_times_ipcc_factor():
    # 1000 MWh of gas: 1e6 kWh * 7732 Btu/kWh (EIA 2019) * 1055.056 J/Btu = 8.1577 TJ; * 56,100 kg/TJ (IPCC)
    t = facility_emissions(
        _table(fuel=["gas", "coal", "solar", "biomass"], generation_mwh=[1000.0, 1000.0, 1e5, 1e3])
    )
    assert t[0] == pytest.approx(1e6 * 7732 * 1055.056e-12 * 56_100 / 1000, rel=1e-12)
    assert t[0] == pytest.approx(457.6, abs=0.1)
    assert t[1] == pytest.approx(1e6 * 10_551 * 1055.056e-12 * 94_600 / 1000, rel=1e-12)
    assert t[2] == 0.0 and t[3] == 0.0  # no combustion / biogenic CO2 (memo item)


def test_reported_emissions_win_and_bad_fuels_fail():
    t = facility_emissions(_table(fuel=["gas"], generation_mwh=[1000.0], co2_t_per_year=[12.5]))
    assert t[0] == 12.5
    with pytest.raises(InventoryError, match="no IPCC default factor"):
        facility_emissions(_table(fuel=["other"], generation_mwh=[10.0]))
    with pytest.raises(InventoryError, match="unknown fuel"):
        facility_emissions(_table(fuel=["plutonium"], generation_mwh=[10.0]))
    with pytest.raises(InventoryError, match="no generation"):
        facility_emissions(_table(fuel=["coal"]))


def test_downscaling_conserves_each_sector_total_exactly():
    rng = np.random.default_rng(3)
    proxies = {
        "stationary_energy": rng.random((40, 50)) * (rng.random((40, 50)) > 0.7),
        "transport": rng.random((40, 50)) * 120.0,
        "waste": np.ones((40, 50)),
    }
    totals = {"stationary_energy": 5.0e5, "transport": 3.3e5, "waste": 1.2e4}
    points = {"stationary_energy": 1.7e5}
    area = 200.0 * 200.0
    flux = downscale(totals, proxies, area, points)
    for sector, total in totals.items():
        integral = flux[sector].sum() * area * SECONDS_PER_YEAR / 1000.0 + points.get(sector, 0.0)
        assert integral == pytest.approx(total, rel=1e-13)
        assert np.all(flux[sector] >= 0)
        # the field is proportional to its proxy
        w = proxies[sector]
        np.testing.assert_allclose(flux[sector] * w.sum(), w * flux[sector].sum(), rtol=1e-12)


def test_downscaling_errors():
    with pytest.raises(InventoryError, match="more than the sector total"):
        downscale({"ippu": 10.0}, {"ippu": np.ones((2, 2))}, 1.0, {"ippu": 20.0})
    with pytest.raises(InventoryError, match="zero everywhere"):
        downscale({"transport": 10.0}, {"transport": np.zeros((2, 2))}, 1.0)
    with pytest.raises(InventoryError, match="negative"):
        downscale({"transport": 10.0}, {"transport": -np.ones((2, 2))}, 1.0)


def test_sector_totals_must_match_declared_sectors():
    check_sectors(["transport", "waste"], {"transport": 1.0, "waste": 2.0})
    with pytest.raises(InventoryError, match="do not match the declared sectors"):
        check_sectors(["transport", "waste"], {"transport": 1.0})
    with pytest.raises(InventoryError, match="not GPC sectors"):
        check_sectors(["aviation"], {"aviation": 1.0})


def test_time_profiles_tno():
    times = pd.date_range("2024-07-01", periods=24 * 7, freq="h")  # UTC, Monday..Sunday
    f = time_factors("F_RoadTransport", times, "UTC")
    # a full week averages to July's month factor (TNO 1.01, divided by the year's day-weighted mean)
    days = pd.date_range("2024-01-01", periods=12, freq="MS").days_in_month.to_numpy()
    road = np.array([0.88, 0.92, 0.98, 1.03, 1.05, 1.06, 1.01, 1.02, 1.06, 1.05, 1.01, 0.93])
    assert f.mean() == pytest.approx(1.01 / (np.sum(road * days) / days.sum()), rel=1e-12)
    # TNO road transport: evening peak 18:00 (factor 2.08) vs 04:00 (0.05), Friday 1.14 vs Sunday 0.79
    assert f[17] / f[3] == pytest.approx(2.08 / 0.05, rel=1e-12)
    assert f[4 * 24 + 17] / f[6 * 24 + 17] == pytest.approx(1.14 / 0.79, rel=1e-12)
    # local time: 17:00 in Los Angeles (PDT, UTC-7) is 00:00 UTC the next day
    la = time_factors("F_RoadTransport", pd.DatetimeIndex(["2024-07-02T00:00"]), "America/Los_Angeles")
    assert la[0] == pytest.approx(f[17], rel=1e-12)


def test_month_in_year_profile_keeps_the_annual_total():
    # TNO C_OtherStationaryComb (heating): January 1.7 vs July 0.2, same weekday and hour
    jan, jul = time_factors(
        "C_OtherStationaryComb", pd.DatetimeIndex(["2023-01-04T12:00", "2023-07-05T12:00"])
    )
    assert jan / jul == pytest.approx(1.7 / 0.2, rel=1e-12)
    # over whole calendar years (a normal and a leap year) the factors average to 1 within how weeks
    # fall into months (the hour and weekday cycles are normalised exactly)
    for year in (2023, 2024):
        times = pd.date_range(f"{year}-01-01", f"{year}-12-31T23:00", freq="h")
        for profile in ("C_OtherStationaryComb", "F_RoadTransport", "A_PublicPower"):
            assert time_factors(profile, times).mean() == pytest.approx(1.0, abs=5e-3)
        assert time_factors("flat", times).mean() == pytest.approx(1.0, rel=1e-12)


def test_flaring_emissions_by_hand():
    # 1e5 sm3/day of methane, 98 % burnt: 101325 / (8.314462618 * 288.15) = 42.293 mol per sm3
    co2, ch4 = flaring_emissions(np.array([1e5]), 0.98)
    mol = 101325 / (8.314462618 * 288.15)
    assert co2[0] == pytest.approx(1e5 * 0.98 * mol * 44.0095e-3 * 365.25 / 1000, rel=1e-12)
    assert co2[0] == pytest.approx(66_620, rel=1e-3)
    assert ch4[0] == pytest.approx(1e5 * 0.02 * mol * 16.0425e-3 * 365.25 / 1000, rel=1e-12)
    with pytest.raises(InventoryError, match="flare efficiencies"):
        flaring_emissions(np.array([1.0]), 1.5)
