"""The carbon twin's only xarray/GeoDataFrame ↔ array conversions (cubes in, cubes out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.cube import make_cube
from pipelines.grid import grid_from_cube


class CarbonInputError(ValueError):
    """Inputs of the carbon twin do not fit together (grid, sensors, proxies, winds)."""


def grid_arrays(ds: xr.Dataset, name: str = "city cube") -> dict[str, Any]:
    """Cell centres ``(C, 2)``, ``x``, ``y``, signed spacings, cell size/area and the GeoBox of a city cube."""
    grid = grid_from_cube(ds, name=name)
    x, y = ds["x"].values.astype(float), ds["y"].values.astype(float)
    if x.size < 2 or y.size < 2:
        raise CarbonInputError(f"{name}: needs at least 2x2 cells")
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    if not np.isclose(abs(dx), abs(dy), rtol=1e-6):
        raise CarbonInputError(f"{name}: cells must be square, got {abs(dx)} x {abs(dy)} m")
    if not grid.crs.is_projected or grid.crs.axis_info[0].unit_name not in ("metre", "meter"):
        raise CarbonInputError(
            f"{name}: the city grid needs a projected CRS in metres (e.g. UTM), got {grid.crs.name}"
        )
    xx, yy = np.meshgrid(x, y)
    return {
        "geobox": grid.geobox,
        "crs": grid.crs,
        "x": x,
        "y": y,
        "dx": dx,
        "dy": dy,
        "cell_size": abs(dx),
        "cell_area": abs(dx * dy),
        "cells": np.stack([xx.ravel(), yy.ravel()], axis=1),
        "shape": (y.size, x.size),
    }


def proxy_arrays(ds: xr.Dataset, proxies: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Proxy weights per sector: a cube variable, ``uniform`` or ``open_land`` (1 − building_fraction)."""
    out = {}
    for sector, proxy in proxies.items():
        if proxy == "uniform":
            out[sector] = np.ones((ds.sizes["y"], ds.sizes["x"]))
        elif proxy == "open_land":
            out[sector] = 1.0 - _var(ds, "building_fraction", sector)
        else:
            out[sector] = _var(ds, proxy, sector)
    return out


def _var(ds: xr.Dataset, name: str, sector: str) -> np.ndarray:
    if name not in ds.data_vars:
        raise CarbonInputError(
            f"sector {sector!r}: proxy variable {name!r} is not in the city cube; available {sorted(ds.data_vars)}"
        )
    var = ds[name]
    if var.dims != ("y", "x"):
        var = var.mean([d for d in var.dims if d not in ("y", "x")])
    return np.nan_to_num(var.values.astype(float))


def to_grid_xy(gdf: Any, crs: Any) -> np.ndarray:
    """Point geometries → ``(N, 2)`` coordinates in the grid CRS."""
    pts = gdf.to_crs(crs).geometry
    return np.stack([pts.x.to_numpy(), pts.y.to_numpy()], axis=1)


def inside(xy: np.ndarray, g: Mapping[str, Any]) -> np.ndarray:
    """Whether points lie inside the grid's outer cell edges."""
    x0, x1 = g["x"].min() - g["cell_size"] / 2, g["x"].max() + g["cell_size"] / 2
    y0, y1 = g["y"].min() - g["cell_size"] / 2, g["y"].max() + g["cell_size"] / 2
    return (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)


def sensor_array(sites: Any, g: Mapping[str, Any]) -> np.ndarray:
    """Sensor table → ``(S, 3)`` x, y, inlet height; sensors outside the grid are an error."""
    xy = to_grid_xy(sites, g["crs"])
    ok = inside(xy, g)
    if not ok.all():
        bad = list(sites["site_id"].astype(str)[~ok])
        raise CarbonInputError(
            f"sensors {bad} lie outside the city grid (x {g['x'].min():.0f}..{g['x'].max():.0f}, "
            f"y {g['y'].min():.0f}..{g['y'].max():.0f} m in {g['crs'].name})"
        )
    return np.column_stack([xy, sites["height_m"].to_numpy(dtype=float)])


def hourly_winds(
    ds: xr.Dataset | None, times: pd.DatetimeIndex, stated: Mapping[str, Any] | None, timezone: str
):
    """Hourly ``u``, ``v`` (m s-1): the city mean of cube ``u10``/``v10`` when present, else the stated wind.

    A stated wind gives ``speed_m_s`` and ``from_deg`` (meteorological, degrees from north) as scalars or
    24-hour local-time cycles.
    """
    if ds is not None and {"u10", "v10"} <= set(ds.data_vars) and "time" in ds["u10"].dims:
        sel = (
            ds[["u10", "v10"]]
            .mean(["y", "x"])
            .reindex(time=times, method="nearest", tolerance=pd.Timedelta("30min"))
        )
        if bool(sel["u10"].isnull().any()):
            raise CarbonInputError(f"city cube u10/v10 do not cover the period {times[0]}..{times[-1]}")
        return sel["u10"].values.astype(float), sel["v10"].values.astype(float), "cube u10/v10 (city mean)"
    if not stated:
        raise CarbonInputError(
            "no winds: the city cube has no hourly u10/v10 and the config states no 'wind'"
        )
    local = times.tz_localize("UTC").tz_convert(timezone).hour.to_numpy()
    speed = _cycle(stated.get("speed_m_s", 3.0), local, "speed_m_s")
    direction = np.deg2rad(_cycle(stated.get("from_deg", 270.0), local, "from_deg"))
    return -speed * np.sin(direction), -speed * np.cos(direction), "stated wind (assumption, not data)"


def _cycle(value: float | Sequence[float], hours: np.ndarray, what: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.size == 1:
        return np.full(hours.shape, arr[0])
    if arr.size != 24:
        raise CarbonInputError(
            f"wind.{what}: give one value or 24 hourly (local time) values, got {arr.size}"
        )
    return arr[hours]


def _da(data: Any, dims: tuple[str, ...], units: str, long_name: str, **attrs: Any) -> xr.DataArray:
    return xr.DataArray(
        np.asarray(data, dtype=np.float32), dims=dims, attrs={"units": units, "long_name": long_name, **attrs}
    )


def flux_cube(
    g: Mapping[str, Any],
    times: pd.DatetimeIndex,
    sectors: Sequence[str],
    flux: np.ndarray,
    sd: np.ndarray,
    totals: np.ndarray,
    totals_sd: np.ndarray,
    *,
    which: str,
    config: Any = None,
    sources: Sequence[Mapping[str, Any]] = (),
) -> xr.Dataset:
    """Hourly flux cube ``(time, sector, y, x)`` in kg m-2 s-1 with per-cell and per-sector uncertainties."""
    data = {
        "co2_flux": _da(
            flux, ("time", "sector", "y", "x"), "kg m-2 s-1", f"{which} CO2 emission flux (scope 1)"
        ),
        "co2_flux_sd": _da(
            sd, ("sector", "y", "x"), "kg m-2 s-1", f"{which} standard deviation of the period-mean flux"
        ),
        "sector_total": _da(totals, ("sector",), "t year-1", f"{which} city total CO2 emissions per sector"),
        "sector_total_sd": _da(
            totals_sd, ("sector",), "t year-1", f"{which} standard deviation of the sector total"
        ),
    }
    ds = make_cube(data, g["geobox"], config=config, sources=sources, attrs={"title": f"{which} CO2 fluxes"})
    return ds.assign_coords(
        time=("time", times.values), sector=("sector", np.array(list(sectors), dtype=object))
    )


def concentration_cube(
    g: Mapping[str, Any],
    times: pd.DatetimeIndex,
    prior: np.ndarray,
    posterior: np.ndarray,
    height: float,
    config: Any = None,
) -> xr.Dataset:
    """Map cube ``(time, y, x)`` of the CO2 enhancement (ppm) at ``height`` from all sources."""
    data = {
        "co2_enhancement_prior": _da(
            prior,
            ("time", "y", "x"),
            "ppm",
            f"prior CO2 enhancement at {height:g} m (area and point sources)",
        ),
        "co2_enhancement_posterior": _da(
            posterior,
            ("time", "y", "x"),
            "ppm",
            f"posterior CO2 enhancement at {height:g} m (area and point sources)",
        ),
    }
    ds = make_cube(data, g["geobox"], config=config)
    return ds.assign_coords(time=("time", times.values))


def sensor_cube(
    sites: Any, xyz: np.ndarray, times: pd.DatetimeIndex, series: Mapping[str, np.ndarray], config: Any = None
) -> xr.Dataset:
    """CF ``timeSeries`` feature cube ``(station, time)`` of sensor CO2 enhancements (ppm)."""
    long = {
        "co2_observed": "observed CO2 enhancement above background",
        "co2_prior": "prior modelled CO2 enhancement",
        "co2_posterior": "posterior modelled CO2 enhancement",
    }
    data = {k: _da(v, ("station", "time"), "ppm", long.get(k, k)) for k, v in series.items()}
    ll = sites.to_crs("EPSG:4326").geometry
    ds = make_cube(data, config=config, attrs={"featureType": "timeSeries", "title": "CO2 at sensors"})
    coords = {
        "time": ("time", times.values),
        "station": ("station", sites["site_id"].astype(str).to_numpy().astype(object)),
        "lat": ("station", ll.y.to_numpy(), {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("station", ll.x.to_numpy(), {"units": "degrees_east", "standard_name": "longitude"}),
        "height": ("station", xyz[:, 2], {"units": "m", "long_name": "inlet height above ground"}),
        "easting": ("station", xyz[:, 0], {"units": "m", "long_name": "x in the city grid CRS"}),
        "northing": ("station", xyz[:, 1], {"units": "m", "long_name": "y in the city grid CRS"}),
    }
    ds = ds.assign_coords(coords)
    ds["station"].attrs["cf_role"] = "timeseries_id"
    return ds
