"""The offshore ice-hazard forecast: will ice reach a platform or route zone in the next 72 h?

Steps: seed particles on the ice (one per forcing cell with ``sea_ice_concentration >= threshold`` near
the zone, or a given iceberg list), run an ensemble forward with :func:`twins.ice.simulate`, and
report per lead time

- ``p_reach``: the probability (fraction of members) that ice has entered the zone by then;
- ``p_present``: the probability that ice is inside the zone at that time;
- ``particles_in_zone``: the ensemble-mean number of particles inside;

and the earliest arrival (the first lead time at which any member has ice in the zone) with each
member's arrival time. A member "has ice in the zone" when any active or stranded particle lies
inside the zone polygon (tested exactly with shapely on the trajectory positions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS

from .adapter import crs_of
from .simulate import presence_probability, simulate


def load_zone(path: str | Path, crs: CRS) -> Any:
    """Read a zone polygon file (GeoJSON, GeoPackage, ...) as one shapely geometry in ``crs``.

    Raises
    ------
    ValueError
        When the file is missing, has no CRS, or holds no polygon.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"ice zone file {path} not found")
    gdf = gpd.read_file(path)
    if gdf.crs is None:
        raise ValueError(f"ice zone file {path}: has no CRS")
    if len(gdf) == 0 or not gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        raise ValueError(
            f"ice zone file {path}: expected polygon features, got {list(gdf.geom_type.unique())}"
        )
    return gdf.to_crs(crs).union_all()


def seeds_from_concentration(
    forcing: xr.Dataset,
    zone: Any,
    *,
    time: Any = None,
    threshold: float = 0.15,
    max_distance_m: float = 300_000.0,
) -> pd.DataFrame:
    """One seed per forcing cell with ice (``sea_ice_concentration >= threshold``) within ``max_distance_m``.

    The ``concentration`` column records the cell's ice fraction at ``time`` (default: the first time).
    """
    import shapely

    if "sea_ice_concentration" not in forcing:
        raise ValueError("ice hazard: forcing cube has no 'sea_ice_concentration' to seed from")
    conc = forcing["sea_ice_concentration"]
    if "time" in conc.dims:
        conc = (
            conc.sel(time=np.datetime64(pd.Timestamp(time).tz_localize(None)), method="nearest")
            if time
            else conc.isel(time=0)
        )
    c = np.asarray(conc.values, float)
    xx, yy = np.meshgrid(forcing["x"].values, forcing["y"].values)
    wet = np.isfinite(
        np.asarray(
            forcing["uo"].isel(time=0).values if "time" in forcing["uo"].dims else forcing["uo"].values
        )
    )
    near = shapely.distance(zone, shapely.points(xx.ravel(), yy.ravel())).reshape(xx.shape) <= max_distance_m
    pick = (np.nan_to_num(c) >= threshold) & wet & near
    return pd.DataFrame({"x": xx[pick], "y": yy[pick], "concentration": c[pick]})


def zone_statistics(traj: xr.Dataset, zone: Any) -> dict[str, np.ndarray]:
    """Per-member/lead-time zone occupancy from a trajectory cube (dims ``member, trajectory, time``)."""
    import shapely

    x, y, st = traj["x"].values, traj["y"].values, traj["status"].values
    if "member" not in traj.dims:
        x, y, st = x[None], y[None], st[None]
    finite = np.isfinite(x) & np.isfinite(y)
    inside = np.zeros(x.shape, bool)
    inside[finite] = shapely.contains_xy(zone, x[finite], y[finite])
    inside &= st <= 1
    present = inside.any(axis=1)  # (member, time)
    reached = np.maximum.accumulate(present, axis=1)
    lead_s = (traj["time"].values - traj["time"].values[0]) / np.timedelta64(1, "s")
    first = np.where(reached.any(axis=1), np.argmax(reached, axis=1), -1)
    arrival_h = np.where(first >= 0, lead_s[np.maximum(first, 0)] / 3600.0, np.nan)
    return {
        "p_reach": reached.mean(axis=0),
        "p_present": present.mean(axis=0),
        "particles_in_zone": inside.sum(axis=1).mean(axis=0),
        "arrival_h": arrival_h,
        "lead_h": lead_s / 3600.0,
    }


def hazard_cube(traj: xr.Dataset, stats: dict[str, np.ndarray], zone_name: str, zone: Any) -> xr.Dataset:
    """The hazard forecast as a cube with dims ``reference_time, lead_time`` (and ``member``)."""
    from pipelines.cube import make_cube

    ref = traj["time"].values[:1]
    lead = (traj["time"].values - traj["time"].values[0]).astype("timedelta64[ns]")
    coords = {"reference_time": ref, "lead_time": lead}
    dims = ("reference_time", "lead_time")

    def da(values: np.ndarray, **attrs: Any) -> xr.DataArray:
        return xr.DataArray(values[None].astype(np.float32), dims=dims, coords=coords, attrs=attrs)

    members = np.arange(stats["arrival_h"].size, dtype=np.int32)
    data = {
        "p_reach": da(
            stats["p_reach"],
            units="1",
            long_name=f"probability that ice has reached zone {zone_name} by the lead time",
        ),
        "p_present": da(
            stats["p_present"],
            units="1",
            long_name=f"probability of ice inside zone {zone_name} at the lead time",
        ),
        "particles_in_zone": da(
            stats["particles_in_zone"],
            units="1",
            long_name="ensemble-mean number of ice particles in the zone",
        ),
        "arrival_lead_time": xr.DataArray(
            stats["arrival_h"][None].astype(np.float32),
            dims=("reference_time", "member"),
            coords={"reference_time": ref, "member": members},
            attrs={
                "units": "h",
                "long_name": "lead time of first ice in the zone per member (NaN: none within the forecast)",
            },
        ),
    }
    attrs = {
        "featureType": "timeSeries",
        "zone_name": zone_name,
        "zone_wkt": zone.wkt,
        "model": traj.attrs.get("model", ""),
        "geotwin_wind": traj.attrs.get("geotwin_wind", ""),
    }
    return make_cube(data, None, attrs=attrs, config={"zone": zone_name})


def summary(stats: dict[str, np.ndarray], traj: xr.Dataset, zone_name: str, n_seeds: int) -> dict[str, Any]:
    """A short JSON-able summary of the hazard forecast."""
    lead_h = stats["lead_h"]
    ref = pd.Timestamp(traj["time"].values[0])
    arrivals = stats["arrival_h"][np.isfinite(stats["arrival_h"])]
    earliest = float(arrivals.min()) if arrivals.size else None
    marks = [h for h in (0, 6, 12, 24, 36, 48, 72) if h <= lead_h[-1] + 1e-9]
    idx = [int(np.argmin(np.abs(lead_h - h))) for h in marks]
    return {
        "zone": zone_name,
        "reference_time": ref.isoformat(),
        "model": traj.attrs.get("model"),
        "wind": traj.attrs.get("geotwin_wind"),
        "members": int(stats["arrival_h"].size),
        "n_particles": int(n_seeds),
        "horizon_h": float(lead_h[-1]),
        "p_reach_by_lead_h": {
            str(h): round(float(stats["p_reach"][i]), 4) for h, i in zip(marks, idx, strict=True)
        },
        "p_reach_final": round(float(stats["p_reach"][-1]), 4),
        "earliest_arrival_lead_h": earliest,
        "earliest_arrival_time": (ref + pd.Timedelta(hours=earliest)).isoformat()
        if earliest is not None
        else None,
        "median_arrival_lead_h": float(np.median(arrivals)) if arrivals.size else None,
    }


def ice_hazard(
    forcing: xr.Dataset,
    zone: Any,
    *,
    zone_name: str = "zone",
    seeds: pd.DataFrame | None = None,
    model: str = "sea_ice",
    duration: Any = "72h",
    dt: Any = "1h",
    members: int = 20,
    params: dict[str, Any] | None = None,
    threshold: float = 0.15,
    max_distance_m: float = 300_000.0,
) -> dict[str, Any]:
    """Run the ice-hazard forecast for one zone.

    Parameters
    ----------
    forcing
        Forcing cube (see :func:`twins.ice.simulate`).
    zone
        Shapely polygon in the forcing CRS (see :func:`load_zone`).
    seeds
        Iceberg/floe list; default: seeds from ``sea_ice_concentration`` (:func:`seeds_from_concentration`).

    Returns
    -------
    dict
        ``summary`` (JSON-able), ``hazard`` (cube), ``trajectories`` (cube), ``probability`` (gridded
        presence-probability cube).
    """
    crs_of(forcing)
    params = dict(params or {})
    if seeds is None:
        seeds = seeds_from_concentration(
            forcing, zone, time=params.get("start_time"), threshold=threshold, max_distance_m=max_distance_m
        )
        if len(seeds) == 0:
            raise ValueError(
                f"ice hazard: no cell with sea_ice_concentration >= {threshold} within {max_distance_m / 1000:g} km of zone {zone_name!r}"
            )
    traj = simulate(forcing, seeds, model=model, duration=duration, dt=dt, members=members, params=params)
    stats = zone_statistics(traj, zone)
    return {
        "summary": summary(stats, traj, zone_name, len(seeds)),
        "hazard": hazard_cube(traj, stats, zone_name, zone),
        "trajectories": traj,
        "probability": presence_probability(traj, forcing),
    }


def write_summary(result: dict[str, Any], path: str | Path) -> Path:
    """Write the summary JSON next to the other outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from pipelines.outputs import write_text

    return write_text(path, json.dumps(result["summary"], indent=2))
