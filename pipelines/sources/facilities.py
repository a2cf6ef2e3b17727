"""Facility tables → typed GeoDataFrames of point sources.

Two formats:

- the WRI Global Power Plant Database (GPPD v1.3 column schema: ``gppd_idnr``, ``name``,
  ``capacity_mw``, ``latitude``, ``longitude``, ``primary_fuel``, ``generation_gwh_2013..2019``,
  ``estimated_generation_gwh``), read by :func:`read_gppd`;
- a plain CSV or GeoJSON of factories with annual emissions (``name``, a location, ``co2_t_per_year``;
  optional ``fuel``, ``sector``, stack parameters), read by :func:`read_factories`.

Both return the same typed table (:data:`COLUMNS`), in EPSG:4326 unless the file says otherwise.
Emission factors are not applied here (see :mod:`twins.carbon.inventory`); unknown fuel names are
refused here, naming the file, the rows and the accepted vocabulary.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from . import SourceError

#: GPPD ``primary_fuel`` vocabulary (lower case); factories may use the same names.
FUELS = (
    "biomass",
    "coal",
    "cogeneration",
    "gas",
    "geothermal",
    "hydro",
    "nuclear",
    "oil",
    "other",
    "petcoke",
    "solar",
    "storage",
    "waste",
    "wind",
    "wave and tidal",
)

#: Columns (and dtypes) of the facility table returned by the readers.
COLUMNS = {
    "facility_id": "string",
    "name": "string",
    "fuel": "string",
    "sector": "string",
    "capacity_mw": "float64",
    "generation_mwh": "float64",
    "generation_year": "float64",
    "co2_t_per_year": "float64",
    "stack_height_m": "float64",
    "stack_diameter_m": "float64",
    "exit_velocity_m_s": "float64",
    "exit_temperature_k": "float64",
}

_GPPD_REQUIRED = ("gppd_idnr", "name", "capacity_mw", "latitude", "longitude", "primary_fuel")


class FacilityError(SourceError):
    """A facility table is malformed: missing columns, unknown fuels, bad locations."""


def _check_fuels(fuel: pd.Series, names: pd.Series, path: Path) -> pd.Series:
    norm = fuel.astype("string").str.strip().str.lower()
    bad = norm.notna() & ~norm.isin(FUELS)
    if bad.any():
        rows = ", ".join(f"{n!r}: {f!r}" for n, f in zip(names[bad][:5], fuel[bad][:5], strict=False))
        raise FacilityError(
            f"{path}: {int(bad.sum())} facilities have unknown fuel(s) ({rows}); expected one of {list(FUELS)}"
        )
    return norm


def _check_columns(df: pd.DataFrame, required: tuple[str, ...], path: Path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FacilityError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")


def _typed(df: pd.DataFrame, geometry: gpd.GeoSeries) -> gpd.GeoDataFrame:
    out = pd.DataFrame(index=df.index)
    for col, dtype in COLUMNS.items():
        out[col] = (df[col] if col in df.columns else pd.Series(np.nan, index=df.index)).astype(dtype)
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry=geometry.reset_index(drop=True))


def _points(df: pd.DataFrame, path: Path) -> gpd.GeoSeries:
    lat = pd.to_numeric(df["latitude"], errors="coerce")
    lon = pd.to_numeric(df["longitude"], errors="coerce")
    bad = lat.isna() | lon.isna() | (lat.abs() > 90) | (lon.abs() > 180)
    if bad.any():
        raise FacilityError(f"{path}: {int(bad.sum())} rows have missing or out-of-range latitude/longitude")
    return gpd.GeoSeries(gpd.points_from_xy(lon, lat), index=df.index, crs="EPSG:4326")


def read_gppd(path: str | Path, *, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    """Read a WRI Global Power Plant Database CSV (full database or a country/city subset).

    Parameters
    ----------
    path
        CSV in the GPPD v1.3 schema.
    bbox
        Optional ``(lon_min, lat_min, lon_max, lat_max)`` filter.

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`COLUMNS` + point geometry (EPSG:4326). ``generation_mwh`` is the latest reported
        ``generation_gwh_YYYY`` (its year in ``generation_year``), else ``estimated_generation_gwh``.
        Rows without a ``primary_fuel`` or without coordinates (the USA file has both) are dropped
        with a warning; counts in ``attrs["dropped_no_fuel"]``, ``attrs["dropped_no_location"]``. Sector is ``stationary_energy``.

    Raises
    ------
    FacilityError
        Missing columns, unknown fuel names or bad coordinates.
    """
    path = Path(path)
    if not path.exists():
        raise FacilityError(f"{path}: facility table not found")
    df = pd.read_csv(path, low_memory=False)
    _check_columns(df, _GPPD_REQUIRED, path)
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        df = df[df["longitude"].between(x0, x1) & df["latitude"].between(y0, y1)]
    no_fuel = df["primary_fuel"].isna() | (df["primary_fuel"].astype(str).str.strip() == "")
    if no_fuel.any():
        warnings.warn(f"{path}: dropped {int(no_fuel.sum())} plants with no primary_fuel", stacklevel=2)
    df = df[~no_fuel].copy()
    no_loc = df["latitude"].isna() | df["longitude"].isna()
    if no_loc.any():
        warnings.warn(f"{path}: dropped {int(no_loc.sum())} plants with no latitude/longitude", stacklevel=2)
    df = df[~no_loc].copy()
    df["fuel"] = _check_fuels(df["primary_fuel"], df["name"], path)
    gen = pd.Series(np.nan, index=df.index)
    year = pd.Series(np.nan, index=df.index)
    for col in sorted((c for c in df.columns if c.startswith("generation_gwh_")), reverse=True):
        take = gen.isna() & df[col].notna()
        gen[take] = pd.to_numeric(df.loc[take, col]) * 1000.0
        year[take] = float(col.rsplit("_", 1)[1])
    if "estimated_generation_gwh" in df.columns:
        take = gen.isna() & df["estimated_generation_gwh"].notna()
        gen[take] = pd.to_numeric(df.loc[take, "estimated_generation_gwh"]) * 1000.0
    df["generation_mwh"] = gen.clip(lower=0.0)
    df["generation_year"] = year
    df["facility_id"] = df["gppd_idnr"].astype(str)
    df["sector"] = "stationary_energy"
    gdf = _typed(df, _points(df, path))
    gdf.attrs.update(
        source=str(path),
        dropped_no_fuel=int(no_fuel.sum()),
        dropped_no_location=int(no_loc.sum()),
        format="gppd",
    )
    return gdf


def read_factories(
    path: str | Path, *, crs: str | None = None, default_sector: str = "ippu"
) -> gpd.GeoDataFrame:
    """Read a plain CSV (``latitude``/``longitude`` or ``x``/``y`` with ``crs``) or GeoJSON of factories.

    Required: ``name`` and ``co2_t_per_year`` (t CO2 per year, scope 1). Optional: ``facility_id``,
    ``fuel`` (GPPD vocabulary), ``sector`` (GPC sector; default ``default_sector``), ``stack_height_m``,
    ``stack_diameter_m``, ``exit_velocity_m_s``, ``exit_temperature_k``.
    """
    path = Path(path)
    if not path.exists():
        raise FacilityError(f"{path}: facility table not found")
    if path.suffix.lower() in (".geojson", ".json", ".gpkg", ".shp"):
        gdf = gpd.read_file(path)
        df, geometry = pd.DataFrame(gdf.drop(columns="geometry")), gdf.geometry
        if not (geometry.geom_type == "Point").all():
            raise FacilityError(f"{path}: factory geometries must be Points")
    else:
        df = pd.read_csv(path)
        if {"latitude", "longitude"} <= set(df.columns):
            geometry = _points(df, path)
        elif {"x", "y"} <= set(df.columns):
            if crs is None:
                raise FacilityError(f"{path}: columns x/y need the crs argument (e.g. 'EPSG:32610')")
            geometry = gpd.GeoSeries(gpd.points_from_xy(df["x"], df["y"]), index=df.index, crs=crs)
        else:
            raise FacilityError(f"{path}: needs latitude/longitude or x/y columns; found {list(df.columns)}")
    _check_columns(df, ("name", "co2_t_per_year"), path)
    co2 = pd.to_numeric(df["co2_t_per_year"], errors="coerce")
    if co2.isna().any() or (co2 < 0).any():
        raise FacilityError(f"{path}: column 'co2_t_per_year' must be non-negative numbers (t CO2 per year)")
    if "fuel" in df.columns:
        df["fuel"] = _check_fuels(df["fuel"], df["name"], path)
    if "facility_id" not in df.columns:
        df["facility_id"] = [f"{path.stem}-{i}" for i in range(len(df))]
    df["sector"] = df["sector"] if "sector" in df.columns else default_sector
    gdf = _typed(df, geometry)
    gdf.attrs.update(source=str(path), format="factories")
    return gdf


#: standard cubic metres per thousand standard cubic feet (Eclipse FIELD gas rates are Mscf/day)
SM3_PER_MSCF = 28.316846592


def reservoir_gas_rates(summary: str | Path, wells: list[str], deck_units: str = "METRIC") -> np.ndarray:
    """Time-averaged gas rate (sm3/day) of ``wells`` from a reservoir twin ``summary.csv``.

    Reads the Eclipse vectors ``TIME`` (days) and ``WGPR:<WELL>`` that ``geotwin run reservoir`` writes
    (and OPM Flow's summary holds), in the deck's units (METRIC sm3/day, FIELD Mscf/day); each report
    step's rate is weighted by its length.
    """
    path = Path(summary)
    if not path.exists():
        raise FacilityError(f"{path}: reservoir summary not found")
    table = pd.read_csv(path)
    missing = [f"WGPR:{w}" for w in wells if f"WGPR:{w}" not in table.columns]
    if "TIME" not in table.columns or missing:
        raise FacilityError(
            f"{path}: expected columns TIME and {missing or 'WGPR:<WELL>'} (a reservoir summary)"
        )
    if deck_units not in ("METRIC", "FIELD"):
        raise FacilityError(f"{path}: deck_units must be METRIC or FIELD, got {deck_units!r}")
    steps = np.diff(np.concatenate([[0.0], table["TIME"].to_numpy(dtype=float)]))
    rates = np.array([np.sum(table[f"WGPR:{w}"].to_numpy(dtype=float) * steps) / steps.sum() for w in wells])
    return rates * (SM3_PER_MSCF if deck_units == "FIELD" else 1.0)


def read_flares(
    path: str | Path, reservoir_summary: str | Path | None = None, deck_units: str = "METRIC"
) -> gpd.GeoDataFrame:
    """Read gas flares (e.g. a gas field's wells) as facilities.

    CSV columns: ``name``, ``latitude``, ``longitude``, ``gas_rate_sm3_per_day`` and optional
    ``flare_efficiency`` (default 0.98) and stack parameters. With ``reservoir_summary`` (the reservoir
    twin's ``summary.csv``) the rates come from it instead: ``name`` is the well, its rate the
    time-averaged ``WGPR:<name>`` (:func:`reservoir_gas_rates`). Returns :data:`COLUMNS` (``fuel`` gas,
    sector ``stationary_energy``, GPC fugitive emissions from oil and gas systems; ``co2_t_per_year``
    left empty for the inventory to compute) plus ``gas_rate_sm3_per_day`` and ``flare_efficiency``.
    """
    path = Path(path)
    if not path.exists():
        raise FacilityError(f"{path}: flare table not found")
    df = pd.read_csv(path)
    if reservoir_summary is not None:
        _check_columns(df, ("name", "latitude", "longitude"), path)
        df["gas_rate_sm3_per_day"] = reservoir_gas_rates(
            reservoir_summary, df["name"].astype(str).tolist(), deck_units
        )
    _check_columns(df, ("name", "latitude", "longitude", "gas_rate_sm3_per_day"), path)
    rate = pd.to_numeric(df["gas_rate_sm3_per_day"], errors="coerce")
    eff = pd.to_numeric(df.get("flare_efficiency", pd.Series(0.98, index=df.index)), errors="coerce").fillna(
        0.98
    )
    if rate.isna().any() or (rate < 0).any() or ((eff < 0) | (eff > 1)).any():
        raise FacilityError(f"{path}: gas_rate_sm3_per_day must be >= 0 and flare_efficiency within 0..1")
    df["fuel"], df["sector"] = "gas", "stationary_energy"
    df["co2_t_per_year"] = np.nan
    if "facility_id" not in df.columns:
        df["facility_id"] = [f"{path.stem}-flare-{i}" for i in range(len(df))]
    gdf = _typed(df, _points(df, path))
    gdf["gas_rate_sm3_per_day"] = rate.to_numpy()
    gdf["flare_efficiency"] = eff.to_numpy()
    gdf.attrs.update(source=str(path), format="flares")
    return gdf


def read_facilities(path: str | Path, **kwargs: object) -> gpd.GeoDataFrame:
    """Read a facility table, choosing :func:`read_gppd` when the file has a ``gppd_idnr`` column."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        header = pd.read_csv(path, nrows=0).columns
        if "gppd_idnr" in header:
            return read_gppd(path, **kwargs)  # type: ignore[arg-type]
    return read_factories(path, **kwargs)  # type: ignore[arg-type]
