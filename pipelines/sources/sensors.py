"""Greenhouse-gas sensor networks: site tables and observation time series.

Readers return two things: a site table (GeoDataFrame with :data:`SITE_COLUMNS`, EPSG:4326) and a long
observation table (``time`` UTC naive datetime64, ``site_id``, ``co2_ppm``). Supported:

- a plain site CSV (``site_id``, ``latitude``, ``longitude``, optional ``name``, ``height_m``) and a plain
  observation CSV (``time``, ``site_id``, ``co2_ppm``): :func:`read_sites`, :func:`read_observations`;
- AQMesh pods as distributed with OpenGHG (``co2_data.csv`` + ``co2_metadata.csv``): :func:`read_aqmesh`;
- BEACO2N node CSVs (``datetime`` in UTC, ``co2_ppm`` with -999 as missing): :func:`read_beaco2n`.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from . import SourceError

SITE_COLUMNS = {"site_id": "string", "name": "string", "height_m": "float64"}
MISSING = -999.0


class SensorError(SourceError):
    """A sensor table is malformed (missing columns, bad times/locations)."""


def _need(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SensorError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")


def _sites(
    site_id: pd.Series, name: pd.Series, lat: pd.Series, lon: pd.Series, height: pd.Series, path: Path
):
    lat = pd.to_numeric(lat, errors="coerce")
    lon = pd.to_numeric(lon, errors="coerce")
    bad = lat.isna() | lon.isna() | (lat.abs() > 90) | (lon.abs() > 180)
    if bad.any():
        raise SensorError(
            f"{path}: sites {list(site_id[bad].astype(str))} have missing/out-of-range coordinates"
        )
    out = pd.DataFrame(
        {
            "site_id": site_id.astype(str).values,
            "name": name.astype(str).values,
            "height_m": pd.to_numeric(height, errors="coerce").fillna(3.0).values,
        }
    ).astype(SITE_COLUMNS)
    if out["site_id"].duplicated().any():
        raise SensorError(
            f"{path}: duplicate site_id(s) {sorted(out['site_id'][out['site_id'].duplicated()])}"
        )
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(lon.values, lat.values), crs="EPSG:4326")


def read_sites(path: str | Path) -> gpd.GeoDataFrame:
    """Plain site CSV: ``site_id``, ``latitude``, ``longitude`` and optional ``name``, ``height_m``
    (inlet height above ground, default 3 m)."""
    path = Path(path)
    df = pd.read_csv(path)
    _need(df, ("site_id", "latitude", "longitude"), path)
    name = df["name"] if "name" in df.columns else df["site_id"]
    height = df["height_m"] if "height_m" in df.columns else pd.Series(np.nan, index=df.index)
    return _sites(df["site_id"], name, df["latitude"], df["longitude"], height, path)


def _long(time: pd.Series, site: pd.Series, co2: pd.Series, path: Path) -> pd.DataFrame:
    t = pd.to_datetime(time, errors="coerce", utc=True)
    if t.isna().any():
        raise SensorError(f"{path}: {int(t.isna().sum())} unparseable times (expected ISO 8601, UTC)")
    values = pd.to_numeric(co2, errors="coerce").astype("float64")
    values[values <= MISSING] = np.nan
    out = pd.DataFrame(
        {"time": t.dt.tz_localize(None).values, "site_id": site.astype(str).values, "co2_ppm": values}
    )
    return out.dropna(subset=["co2_ppm"]).sort_values(["site_id", "time"]).reset_index(drop=True)


def read_observations(path: str | Path) -> pd.DataFrame:
    """Plain observation CSV: ``time`` (UTC), ``site_id``, ``co2_ppm``; -999 and blanks are missing."""
    path = Path(path)
    df = pd.read_csv(path)
    _need(df, ("time", "site_id", "co2_ppm"), path)
    return _long(df["time"], df["site_id"], df["co2_ppm"], path)


def read_aqmesh(data_path: str | Path, metadata_path: str | Path) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """AQMesh CO2 pods (OpenGHG test format): hourly ``co2_data.csv`` and site ``co2_metadata.csv``.

    ``date_UTC`` is UTC; the metadata ``Height`` is the inlet height (m). Sites are keyed by
    ``pod_id_location``.
    """
    data_path, metadata_path = Path(data_path), Path(metadata_path)
    meta = pd.read_csv(metadata_path)
    _need(meta, ("pod_id_location", "location_name", "Latitude", "Longitude"), metadata_path)
    height = meta["Height"] if "Height" in meta.columns else pd.Series(np.nan, index=meta.index)
    sites = _sites(
        meta["pod_id_location"],
        meta["location_name"],
        meta["Latitude"],
        meta["Longitude"],
        height,
        metadata_path,
    )
    data = pd.read_csv(data_path)
    _need(data, ("date_UTC", "co2_ppm", "pod_id_location"), data_path)
    obs = _long(data["date_UTC"], data["pod_id_location"], data["co2_ppm"], data_path)
    unknown = sorted(set(obs["site_id"]) - set(sites["site_id"]))
    if unknown:
        raise SensorError(f"{data_path}: observations from pods {unknown} that {metadata_path} does not list")
    return sites, obs


def read_beaco2n(
    path: str | Path, *, latitude: float | None = None, longitude: float | None = None, height_m: float = 3.0
) -> tuple[gpd.GeoDataFrame | None, pd.DataFrame]:
    """A BEACO2N node CSV (``datetime`` UTC, ``node_id``, ``co2_ppm``; -999 = missing).

    The file carries no coordinates; pass ``latitude``/``longitude`` to get a one-row site table
    (otherwise the site table is ``None``).
    """
    path = Path(path)
    df = pd.read_csv(path)
    _need(df, ("datetime", "node_id", "co2_ppm"), path)
    obs = _long(df["datetime"], df["node_id"], df["co2_ppm"], path)
    if latitude is None or longitude is None:
        return None, obs
    node = df["node_id"].astype(str).iloc[:1]
    sites = _sites(node, node, pd.Series([latitude]), pd.Series([longitude]), pd.Series([height_m]), path)
    return sites, obs


def observation_matrix(obs: pd.DataFrame, site_ids: list[str], times: pd.DatetimeIndex) -> np.ndarray:
    """Long observations → ``(site, time)`` array on the given hourly axis (NaN where absent).

    Observations are matched to the nearest time step within half a step; several in one step are averaged.
    """
    times = pd.DatetimeIndex(times)
    out = np.full((len(site_ids), len(times)), np.nan)
    if len(times) == 0 or obs.empty:
        return out
    step = (times[1] - times[0]) if len(times) > 1 else pd.Timedelta(hours=1)
    idx = np.rint((obs["time"].values - times[0].to_datetime64()) / step.to_timedelta64()).astype(int)
    keep = (idx >= 0) & (idx < len(times)) & obs["site_id"].isin(site_ids).values
    frame = pd.DataFrame({"s": obs["site_id"].values[keep], "t": idx[keep], "v": obs["co2_ppm"].values[keep]})
    mean = frame.groupby(["s", "t"])["v"].mean()
    pos = {s: i for i, s in enumerate(site_ids)}
    for (s, t), v in mean.items():
        out[pos[s], t] = v
    return out
