"""Bottom-up CO2 inventory (the prior): facilities, area sources downscaled on proxies, time profiles.

Pure NumPy (no files, no xarray): the adapter hands in proxy arrays and facility tables.

Emission factors
    IPCC (2006) *Guidelines for National Greenhouse Gas Inventories*, vol. 2 (Energy), chapter 1,
    Table 1.4 "Default CO2 emission factors for combustion" (kg CO2 per TJ, net calorific basis).
    Biomass CO2 is biogenic and reported as a memo item (IPCC 2006 vol. 2 ch. 2), so it is 0 here.
Heat rates (fuel energy per unit of electricity)
    U.S. EIA, *Electric Power Annual 2019*, Table 8.1 "Average operating heat rate for selected energy
    sources" (Btu per kWh): coal 10,551; petroleum 10,834; natural gas 7,732. Petroleum coke takes the
    coal value, waste and "cogeneration" the stated assumptions below (documented, not data).
Time profiles
    TNO hour-in-day, day-in-week and month-in-year profiles for GNFR sectors (Denier van der Gon et al.,
    2011, TNO report for EU FP7 MACC, D_D-EMIS_1.3; GNFR mapping by A. Visschedijk, 2018, as distributed
    with C2SM-RCM/emiproc ``files/profiles/tno/timeprofiles-*_GNFR.csv``). They describe European
    activity cycles (e.g. winter heating in C_OtherStationaryComb); a city elsewhere may need its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

#: GPC sectors (Greenhouse Gas Protocol for Cities, scope 1) supported as inventory sectors.
GPC_SECTORS = ("stationary_energy", "transport", "waste", "ippu", "afolu")
SECONDS_PER_YEAR = 365.25 * 86400.0
BTU_J = 1055.056

#: kg CO2 per TJ (IPCC 2006 vol. 2 ch. 1 Table 1.4 defaults); 0 for non-combustion and biogenic fuels.
EMISSION_FACTOR_KG_PER_TJ: dict[str, float | None] = {
    "gas": 56_100.0,  # natural gas
    "oil": 74_100.0,  # gas/diesel oil
    "coal": 94_600.0,  # other bituminous coal
    "petcoke": 97_500.0,  # petroleum coke
    "waste": 91_700.0,  # municipal wastes, non-biomass fraction
    "cogeneration": 56_100.0,  # assumption: gas-fired CHP
    "biomass": 0.0,  # biogenic (memo item)
    "solar": 0.0,
    "wind": 0.0,
    "hydro": 0.0,
    "nuclear": 0.0,
    "geothermal": 0.0,
    "storage": 0.0,
    "wave and tidal": 0.0,
    "other": None,  # no default factor: needs a reported co2_t_per_year
}

#: Btu per kWh of net generation (EIA Electric Power Annual 2019 Table 8.1; waste/cogeneration assumed).
HEAT_RATE_BTU_PER_KWH = {
    "gas": 7_732.0,
    "oil": 10_834.0,
    "coal": 10_551.0,
    "petcoke": 10_551.0,
    "waste": 13_500.0,  # assumption (~25 % net efficiency)
    "cogeneration": 7_732.0,
}

#: Stack defaults when a facility table has none (assumptions, stated in the docs).
STACK_DEFAULTS = {
    "stack_height_m": 30.0,
    "stack_diameter_m": 2.0,
    "exit_velocity_m_s": 10.0,
    "exit_temperature_k": 400.0,
}

_HOUR_POWER = [0.79, 0.72, 0.72, 0.71, 0.74, 0.8, 0.92, 1.08, 1.19, 1.22, 1.21, 1.21,
               1.17, 1.15, 1.14, 1.13, 1.1, 1.07, 1.04, 1.02, 1.02, 1.01, 0.96, 0.88]  # fmt: skip
_HOUR_INDUSTRY = [0.75, 0.75, 0.78, 0.82, 0.88, 0.95, 1.02, 1.09, 1.16, 1.22, 1.28, 1.3,
                  1.22, 1.24, 1.25, 1.16, 1.08, 1.01, 0.95, 0.9, 0.85, 0.81, 0.78, 0.75]  # fmt: skip
_HOUR_OTHER_STATIONARY = [0.38, 0.36, 0.36, 0.36, 0.37, 0.5, 1.19, 1.53, 1.57, 1.56, 1.35, 1.16,
                          1.07, 1.06, 1.0, 0.98, 0.99, 1.12, 1.41, 1.52, 1.39, 1.35, 1.0, 0.42]  # fmt: skip
_HOUR_ROAD = [0.19, 0.09, 0.06, 0.05, 0.09, 0.22, 0.86, 1.84, 1.86, 1.41, 1.24, 1.2,
              1.32, 1.44, 1.45, 1.59, 2.03, 2.08, 1.51, 1.06, 0.74, 0.62, 0.61, 0.44]  # fmt: skip

#: name → month-in-year factors (Jan..Dec), TNO GNFR table (timeprofiles-month-in-year_GNFR.csv, 2018).
MONTHS: dict[str, list[float]] = {
    "A_PublicPower": [1.2, 1.15, 1.05, 1.0, 0.9, 0.85, 0.8, 0.875, 0.95, 1.0, 1.075, 1.15],
    "B_Industry": [1.1, 1.075, 1.05, 1.0, 0.95, 0.9, 0.93, 0.95, 0.97, 1.0, 1.025, 1.05],
    "C_OtherStationaryComb": [1.7, 1.5, 1.3, 1.0, 0.7, 0.4, 0.2, 0.4, 0.7, 1.05, 1.4, 1.65],
    "F_RoadTransport": [0.88, 0.92, 0.98, 1.03, 1.05, 1.06, 1.01, 1.02, 1.06, 1.05, 1.01, 0.93],
    "flat": [1.0] * 12,
}

#: name → (hour-in-day (24, local time), day-in-week (Mon..Sun)) TNO GNFR profiles.
PROFILES: dict[str, tuple[list[float], list[float]]] = {
    "A_PublicPower": (_HOUR_POWER, [1.06, 1.06, 1.06, 1.06, 1.06, 0.85, 0.85]),
    "B_Industry": (_HOUR_INDUSTRY, [1.08, 1.08, 1.08, 1.08, 1.08, 0.8, 0.8]),
    "C_OtherStationaryComb": (_HOUR_OTHER_STATIONARY, [1.08, 1.08, 1.08, 1.08, 1.08, 0.8, 0.8]),
    "F_RoadTransport": (_HOUR_ROAD, [1.02, 1.06, 1.08, 1.1, 1.14, 0.81, 0.79]),
    "flat": ([1.0] * 24, [1.0] * 7),
}

#: GPC sector → TNO profile of its area sources; facilities use A_PublicPower (power) or B_Industry.
SECTOR_PROFILE = {
    "stationary_energy": "C_OtherStationaryComb",
    "transport": "F_RoadTransport",
    "waste": "flat",
    "ippu": "B_Industry",
    "afolu": "flat",
}


#: Gas flaring, gas taken as methane at 15 °C, 101.325 kPa (42.29 mol sm-3): CO2 of the burnt part and CH4 of
#: the unburnt part (a "flare efficiency" below 1; heavier hydrocarbons would raise the CO2 per sm3).
MOL_PER_SM3 = 101325.0 / (8.314462618 * 288.15)
CO2_KG_PER_SM3_BURNT = MOL_PER_SM3 * 44.0095e-3
CH4_KG_PER_SM3 = MOL_PER_SM3 * 16.0425e-3


class InventoryError(ValueError):
    """The inventory inputs are inconsistent (sectors, totals, proxies, fuels)."""


def facility_emissions(table: pd.DataFrame) -> np.ndarray:
    """Annual CO2 (t per year) of each facility.

    ``co2_t_per_year`` when reported; otherwise ``generation_mwh`` × heat rate × IPCC emission factor.

    Raises
    ------
    InventoryError
        A facility needs a factor that does not exist (fuel ``other``) or has no generation.
    """
    reported = table["co2_t_per_year"].to_numpy(dtype=float)
    out = reported.copy()
    todo = np.isnan(reported)
    fuels = table["fuel"].astype("string").fillna("<missing>").to_numpy(dtype=str)
    unknown = sorted({f for f in fuels[todo] if f not in EMISSION_FACTOR_KG_PER_TJ})
    if unknown:
        raise InventoryError(
            f"facilities: unknown fuel(s) {unknown}; expected one of {list(EMISSION_FACTOR_KG_PER_TJ)}"
        )
    ef = np.array(
        [
            np.nan if EMISSION_FACTOR_KG_PER_TJ[f] is None else EMISSION_FACTOR_KG_PER_TJ[f]
            for f in fuels[todo]
        ]
    )
    names = table["name"].astype(str).to_numpy()[todo]
    if np.isnan(ef).any():
        raise InventoryError(
            f"facilities {list(names[np.isnan(ef)][:5])}: fuel has no IPCC default factor; give co2_t_per_year"
        )
    heat = np.array([HEAT_RATE_BTU_PER_KWH.get(f, 0.0) for f in fuels[todo]])
    gen = table["generation_mwh"].to_numpy(dtype=float)[todo]
    missing = (ef > 0) & np.isnan(gen)
    if missing.any():
        raise InventoryError(f"facilities {list(names[missing][:5])}: no generation and no co2_t_per_year")
    tj = np.nan_to_num(gen) * 1000.0 * heat * BTU_J * 1e-12  # MWh → kWh → Btu → J → TJ
    out[todo] = tj * ef / 1000.0  # kg → t
    return out


def stack_parameters(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Stack height/diameter/exit velocity/temperature per facility, defaults where missing."""
    return {k: table[k].fillna(v).to_numpy(dtype=float) for k, v in STACK_DEFAULTS.items()}


def check_sectors(sectors: Sequence[str], totals: Mapping[str, float]) -> None:
    """Sector totals must name exactly the declared sectors, all GPC, non-negative."""
    unknown = sorted(set(sectors) - set(GPC_SECTORS))
    if unknown:
        raise InventoryError(f"sectors {unknown} are not GPC sectors {list(GPC_SECTORS)}")
    if set(sectors) != set(totals):
        raise InventoryError(
            f"sector totals {sorted(totals)} do not match the declared sectors {sorted(sectors)} "
            f"(missing {sorted(set(sectors) - set(totals))}, extra {sorted(set(totals) - set(sectors))})"
        )
    negative = [s for s, v in totals.items() if not np.isfinite(v) or v < 0]
    if negative:
        raise InventoryError(f"sector totals {negative} must be finite and >= 0 (t CO2 per year)")


def downscale(
    totals_t_per_year: Mapping[str, float],
    proxies: Mapping[str, np.ndarray],
    cell_area_m2: float,
    point_t_per_year: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Spread each sector's area total over its proxy so the sector total is conserved exactly.

    ``flux_s = (T_s - P_s) w_s / (A sum(w_s))`` (kg m-2 s-1), with ``T_s`` the sector total, ``P_s`` the
    sector's point sources (facilities), ``w_s >= 0`` the proxy and ``A`` the cell area; hence
    ``sum(flux_s) A + P_s = T_s`` to rounding.

    Raises
    ------
    InventoryError
        A proxy is negative or all zero while the area part is positive, or the sector's facilities
        emit more than its total.
    """
    point = dict(point_t_per_year or {})
    out = {}
    for sector, total in totals_t_per_year.items():
        area_total = float(total) - float(point.get(sector, 0.0))
        if area_total < -1e-9 * max(float(total), 1.0):
            raise InventoryError(
                f"sector {sector!r}: facilities emit {point[sector]:.6g} t/yr, more than the sector total {total:.6g}"
            )
        w = np.nan_to_num(np.asarray(proxies[sector], dtype=float))
        if (w < 0).any():
            raise InventoryError(f"sector {sector!r}: proxy has negative values")
        if w.sum() <= 0 and area_total > 0:
            raise InventoryError(
                f"sector {sector!r}: proxy is zero everywhere but {area_total:.6g} t/yr must be spread"
            )
        rate = max(area_total, 0.0) * 1000.0 / SECONDS_PER_YEAR  # kg/s
        out[sector] = w * (rate / (cell_area_m2 * w.sum())) if w.sum() > 0 else np.zeros_like(w)
    return out


def time_factors(profile: str, times_utc: pd.DatetimeIndex, timezone: str = "UTC") -> np.ndarray:
    """Multiplicative hour-in-day × day-in-week × month-in-year factors at UTC ``times``.

    Hour and day factors have mean 1 over a day and a week; month factors have a day-weighted mean of 1
    over each calendar year, so an annual total is kept (up to how weeks fall in months).
    """
    if profile not in PROFILES:
        raise InventoryError(f"time profile {profile!r} unknown; expected one of {list(PROFILES)}")
    hours, days = (np.asarray(p, dtype=float) for p in PROFILES[profile])
    hours = hours / hours.mean()  # TNO tables are normalised to mean 1 up to rounding of two decimals
    days = days / days.mean()
    local = pd.DatetimeIndex(times_utc).tz_localize("UTC").tz_convert(timezone)
    months = np.asarray(MONTHS[profile], dtype=float)
    month_factor = np.empty(len(local))
    for year in np.unique(local.year):  # day-weighted normalisation per calendar year (leap years)
        in_year = local.year == year
        lengths = pd.date_range(f"{year}-01-01", periods=12, freq="MS").days_in_month.to_numpy()
        norm = months / (np.sum(months * lengths) / lengths.sum())
        month_factor[in_year] = norm[local.month.to_numpy()[in_year] - 1]
    return hours[local.hour.to_numpy()] * days[local.day_of_week.to_numpy()] * month_factor


def flaring_emissions(gas_rate_sm3_per_day: np.ndarray, flare_efficiency: np.ndarray | float = 0.98):
    """Annual CO2 and CH4 (t per year) of flaring ``gas_rate_sm3_per_day`` (e.g. a gas field's rates).

    ``CO2 = rate × efficiency × 1.861 kg sm-3``, ``CH4 = rate × (1 − efficiency) × 0.678 kg sm-3``
    (methane at standard conditions); the CH4 is reported, not transported (the twin is CO2 only).
    """
    rate = np.asarray(gas_rate_sm3_per_day, dtype=float)
    eff = np.broadcast_to(np.asarray(flare_efficiency, dtype=float), rate.shape)
    if (rate < 0).any() or ((eff < 0) | (eff > 1)).any():
        raise InventoryError("flaring: gas rates must be >= 0 and flare efficiencies within 0..1")
    days = SECONDS_PER_YEAR / 86400.0
    return rate * eff * CO2_KG_PER_SM3_BURNT * days / 1000.0, rate * (
        1.0 - eff
    ) * CH4_KG_PER_SM3 * days / 1000.0
