"""The one place where cubes (xarray) become JAX arrays for the ice twin, and seeds become particles.

Conventions of the forcing cube (the cube convention of ARCHITECTURE.md):

- ``uo``, ``vo`` (sea-water velocity), ``u10``, ``v10`` (10 m wind) and, when present, ``siu``, ``siv``
  (sea-ice velocity) are **eastward / northward** components (CF ``eastward_sea_water_velocity``
  etc.), m s-1, whatever the grid's CRS. The twin never rotates the fields: it keeps the physics in the
  local east/north frame and converts the resulting velocity to grid-coordinate rates with the local
  Jacobian of the map (computed here with pyproj: it contains the meridian convergence and the scale
  factor, exactly for any CRS, including geographic ones);
- ``sea_ice_concentration`` is a fraction (0-1; a cube in percent is rejected), ``sea_ice_thickness``
  in m, optional ``zos`` (sea-surface height, m) feeds the ``tilt="ssh"`` option and optional ``swh``
  (significant wave height, m) the iceberg wave-radiation force;
- land or missing forcing is NaN in ``uo``: it becomes ``wet = 0`` (particles that reach it strand);
  other NaNs become 0;
- ``x``/``y`` must be regular (constant spacing); a cube without ``time`` or with one time step is
  steady.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS, Geod, Transformer

from twins.core import coriolis_parameter

#: Channel order after the physical variables. The kernels sample a *prefix* of the channels at every
#: integration stage (physics + Jacobian, + f for sea ice/icebergs, + metric for inertial models) and
#: ``wet`` (last) only once per step, so keep this order.
GEOMETRY_CHANNELS = ("jex", "jey", "jnx", "jny", "f")
INERTIAL_CHANNELS = ("metric",)
ICEBERG_DEFAULTS = {"length": 100.0, "width": 30.0, "draft": 90.0, "sail": 10.0}  # OpenBerg defaults, m


class ForcingError(ValueError):
    """The forcing cube lacks a variable or has an unusable grid; the message names it."""


class SeedError(ValueError):
    """The seeds table is malformed or its points are outside the forcing grid."""


@dataclass
class ForcingMeta:
    """What the result cube needs to know about the forcing grid."""

    crs: CRS
    x: np.ndarray
    y: np.ndarray
    t0: np.datetime64
    times: np.ndarray  # datetime64 of the forcing
    spatial_ref: xr.DataArray
    keel_depths: np.ndarray | None = None  # z levels (m) of the keel-current channels uo_k/vo_k

    def to_lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude/latitude (degrees) of grid coordinates (NaN stays NaN)."""
        tr = Transformer.from_crs(self.crs, self.crs.geodetic_crs, always_xy=True)
        lon, lat = tr.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon), np.asarray(lat)


def crs_of(ds: xr.Dataset, what: str = "forcing") -> CRS:
    """CRS of a cube from ``spatial_ref.crs_wkt``."""
    if "spatial_ref" not in ds.coords or "crs_wkt" not in ds["spatial_ref"].attrs:
        raise ForcingError(f"{what}: cube has no 'spatial_ref' coordinate with a 'crs_wkt' attribute")
    return CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])


def _regular(values: np.ndarray, name: str) -> tuple[float, float]:
    if values.size < 2:
        raise ForcingError(f"forcing: coordinate {name!r} needs at least 2 cells, got {values.size}")
    d = np.diff(values)
    if not np.allclose(d, d[0], rtol=1e-6, atol=0):
        raise ForcingError(
            f"forcing: coordinate {name!r} is not regularly spaced (min step {d.min()}, max {d.max()})"
        )
    return float(values[0]), float(d[0])


def geometry_channels(crs: CRS, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Coriolis parameter and map Jacobian on the grid ``(ny, nx)`` of centres ``x``, ``y`` (see :func:`jacobian`)."""
    xx, yy = np.meshgrid(x, y)
    return jacobian(crs, xx, yy)


def jacobian(crs: CRS, xx: np.ndarray, yy: np.ndarray, eps_deg: float = 1e-4) -> dict[str, np.ndarray]:
    """Coriolis parameter ``f`` and map Jacobian at points ``(xx, yy)`` of ``crs``.

    ``jex, jey`` are the grid-coordinate increments per metre moved east, ``jnx, jny`` per metre moved
    north; computed by finite differences of the projection over ``eps_deg`` and geodesic distances
    on the CRS's own ellipsoid (so any body and any CRS work).
    """
    xx, yy = np.asarray(xx, float), np.asarray(yy, float)
    geo = crs.geodetic_crs
    inv = Transformer.from_crs(crs, geo, always_xy=True)
    fwd = Transformer.from_crs(geo, crs, always_xy=True)
    lon, lat = inv.transform(xx, yy)
    geod: Geod = crs.get_geod() or Geod(ellps="WGS84")
    lat_n = np.clip(lat + eps_deg, -90, 90)
    xe, ye = fwd.transform(lon + eps_deg, lat)
    xn, yn = fwd.transform(lon, lat_n)
    _, _, de = geod.inv(lon, lat, lon + eps_deg, lat)
    _, _, dn = geod.inv(lon, lat, lon, lat_n)
    if crs.is_geographic:  # x is longitude: keep increments continuous across the antimeridian
        xe = lon + eps_deg
    return {
        "f": np.asarray(coriolis_parameter(lat)),
        "jex": (xe - xx) / de,
        "jey": (ye - yy) / de,
        "jnx": (xn - xx) / dn,
        "jny": (yn - yy) / dn,
        "lat": lat,
        # metric term of the momentum equations in east/north components: tan(lat) / R (m-1)
        "metric": np.tan(np.deg2rad(np.clip(lat, -89.9, 89.9))) / geod.a,
    }


def required_variables(model: str, ice_velocity: str, wind: str) -> list[str]:
    """Cube variables a model needs (``wind="none"`` drops ``u10``/``v10``)."""
    need = ["uo", "vo"]
    if (
        model in ("sea_ice", "iceberg")
        and wind != "none"
        and not (model == "sea_ice" and ice_velocity == "forcing")
    ):
        need += ["u10", "v10"]
    if model == "sea_ice" and ice_velocity == "forcing":
        need += ["siu", "siv"]
    return need


def _channels(
    ds: xr.Dataset, model: str, ice_velocity: str, tilt: str, wind: str
) -> list[tuple[str, str | None]]:
    """(channel, cube variable or None for zeros) pairs for a model."""
    chans: list[tuple[str, str | None]] = [("uo", "uo"), ("vo", "vo")]
    has_wind = "u10" in ds and "v10" in ds
    want_wind = model in ("sea_ice", "iceberg") or (model == "passive" and has_wind)
    if want_wind and not (model == "sea_ice" and ice_velocity == "forcing"):
        src = (None, None) if wind == "none" else ("u10", "v10")
        chans += [("u10", src[0]), ("v10", src[1])]
    if model == "sea_ice" and ice_velocity == "forcing" or model == "iceberg" and "siu" in ds and "siv" in ds:
        chans += [("siu", "siu"), ("siv", "siv")]
    if model in ("sea_ice", "iceberg") and "sea_ice_thickness" in ds:
        chans.append(("hi", "sea_ice_thickness"))
    if model == "iceberg":
        chans.append(("sic", "sea_ice_concentration" if "sea_ice_concentration" in ds else None))
        if "swh" in ds:
            chans.append(("swh", "swh"))
    if tilt == "ssh":
        chans += [("detadx", "zos"), ("detady", "zos")]
    return chans


def forcing_arrays(
    ds: xr.Dataset,
    *,
    model: str,
    ice_velocity: str = "free_drift",
    tilt: str = "none",
    wind: str = "auto",
    dynamics: str = "steady",
    max_draft: float = 0.0,
) -> tuple[dict[str, Any], tuple[str, ...], ForcingMeta]:
    """Turn a forcing cube into NumPy arrays for :class:`twins.ice.kernel.Forcing`.

    Currents with a ``depth`` dim (z levels, m, e.g. built with the gridded source's
    ``level: {max_depth: ...}``): the models take the first (surface) level as ``uo``/``vo``; the
    iceberg model also gets the levels down to ``max_draft`` as channels ``uo_k``/``vo_k`` (below the
    sea floor filled with the deepest level above) for its keel current (:func:`keel_weights`).

    Returns ``({"fields": (nt, nv, ny, nx), "times": (nt,) s, "grid": (x0, y0, dx, dy)}, channels, meta)``.
    Arrays keep the cube's float dtype (float32 or float64).

    Raises
    ------
    ForcingError
        When a variable the model needs is missing (naming it), the grid is irregular, or
        ``sea_ice_concentration`` looks like percent.
    """
    missing = [v for v in required_variables(model, ice_velocity, wind) if v not in ds.data_vars]
    if missing:
        hint = ""
        if set(missing) & {"u10", "v10"}:
            hint = " (a cube without wind can run with params={'wind': 'none'}: wind is then taken as zero)"
        raise ForcingError(
            f"forcing cube: model {model!r} needs variable(s) {missing}, not in {sorted(ds.data_vars)}{hint}"
        )
    if tilt == "ssh" and "zos" not in ds:
        raise ForcingError("forcing cube: tilt='ssh' needs variable 'zos' (sea-surface height, m)")
    for dim in ("x", "y"):
        if dim not in ds.dims:
            raise ForcingError(f"forcing cube: needs dims 'y', 'x'; got {tuple(ds.dims)}")
    crs = crs_of(ds)
    x = np.asarray(ds["x"].values, float)
    y = np.asarray(ds["y"].values, float)
    x0, dx = _regular(x, "x")
    y0, dy = _regular(y, "y")
    if "time" in ds.dims:
        times = np.asarray(ds["time"].values, "datetime64[ns]")
    elif "time" in ds.coords:
        times = np.atleast_1d(np.asarray(ds["time"].values, "datetime64[ns]"))
    else:
        times = np.array([np.datetime64("1970-01-01T00:00:00", "ns")])
    nt, ny, nx = len(times), len(y), len(x)
    dtypes = [ds[v].dtype for v in ("uo", "vo") if v in ds]
    dtype = np.result_type(*dtypes) if all(np.issubdtype(d, np.floating) for d in dtypes) else np.float32
    if "sea_ice_concentration" in ds:
        conc_max = float(ds["sea_ice_concentration"].max())
        if conc_max > 1.5:
            raise ForcingError(
                f"forcing cube: 'sea_ice_concentration' max is {conc_max:g}; expected a fraction 0-1, not percent"
            )

    def grid_var(name: str, level: int = 0) -> np.ndarray:
        da = ds[name]
        if "depth" in da.dims:
            da = da.isel(depth=level)
        extra = [d for d in da.dims if d not in ("time", "y", "x")]
        if extra:
            raise ForcingError(
                f"forcing cube: variable {name!r} has extra dims {extra}; expected (time, y, x)"
            )
        da = da.transpose(*[d for d in ("time", "y", "x") if d in da.dims])
        arr = np.asarray(da.values, dtype=dtype)
        return np.broadcast_to(arr if "time" in da.dims else arr[None], (nt, ny, nx))

    geom = geometry_channels(crs, x, y)
    chans = _channels(ds, model, ice_velocity, tilt, wind)
    out: list[np.ndarray] = []
    names: list[str] = []
    uo = grid_var("uo")
    vo = grid_var("vo")
    wet = (np.isfinite(uo) & np.isfinite(vo)).astype(dtype)
    keel = None
    if model == "iceberg" and "depth" in ds["uo"].dims and "depth" in ds["vo"].dims:
        # keel current: the z levels the deepest keel reaches, filled downward below the sea floor
        keel = _keel_levels(ds, max_draft)
        chans += [(f"{c}_{k}", c) for k in range(1, len(keel)) for c in ("uo", "vo")]
    above = {"uo": uo, "vo": vo}  # per current component: the last level read, filled from above
    for name, var in chans:
        if name.startswith(("uo_", "vo_")):  # levels come in increasing depth
            raw = grid_var(var, int(name.split("_")[1]))
            above[var] = np.where(np.isfinite(raw), raw, above[var])  # below the sea floor: level above
            arr = np.nan_to_num(above[var], nan=0.0)
        elif var is None:
            arr = np.zeros((nt, ny, nx), dtype)
        elif name in ("detadx", "detady"):
            eta = np.nan_to_num(grid_var(var))
            ge, gn = _eta_gradient(eta, dx, dy, geom)
            arr = ge if name == "detadx" else gn
        else:
            arr = np.nan_to_num(grid_var(var), nan=0.0)
        out.append(arr.astype(dtype))
        names.append(name)
    inertial = model == "iceberg" or dynamics == "inertial"
    for name in GEOMETRY_CHANNELS + (INERTIAL_CHANNELS if inertial else ()):
        out.append(np.broadcast_to(geom[name].astype(dtype), (nt, ny, nx)))
        names.append(name)
    out.append(wet)
    names.append("wet")
    fields = np.stack(out, axis=1)  # (nt, nv, ny, nx): channel-major, see twins.core.interp
    tsec = ((times - times[0]) / np.timedelta64(1, "s")).astype(dtype)
    ref = ds["spatial_ref"]
    meta = ForcingMeta(crs=crs, x=x, y=y, t0=times[0], times=times, spatial_ref=ref, keel_depths=keel)
    grid = np.array([x0, y0, dx, dy], dtype=dtype)
    return {"fields": fields, "times": tsec, "grid": grid}, tuple(names), meta


def _eta_gradient(
    eta: np.ndarray, dx: float, dy: float, geom: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """East/north sea-surface slope (m per m) from a gridded ``eta`` ``(nt, ny, nx)``."""
    dex = np.gradient(eta, dx, axis=2)  # per grid unit
    dey = np.gradient(eta, dy, axis=1)
    # chain rule: d/d(east metre) = jex d/dx + jey d/dy
    return geom["jex"] * dex + geom["jey"] * dey, geom["jnx"] * dex + geom["jny"] * dey


def keel_weights(depths: np.ndarray, draft: np.ndarray) -> np.ndarray:
    """Weights ``(K, n)`` of the current at z levels ``depths`` (m, increasing) in its mean over a keel
    from the surface to ``draft`` (m): level ``k`` stands for the layer between the midpoints to its
    neighbours (the first from the surface, the last to any depth), and its weight is the fraction of
    the keel inside that layer. Levels 0, 10, 50 m and a 40 m draft give ``[5, 25, 10] / 40``."""
    top, bottom = _layers(depths)
    draft = np.asarray(draft, float)[None, :]
    return np.clip(np.minimum(draft, bottom[:, None]) - top[:, None], 0.0, None) / draft


def _layers(depths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom (m) of the layer each z level stands for: midpoints to its neighbours, the
    first from the surface, the last to any depth."""
    mids = 0.5 * (np.asarray(depths[1:], float) + np.asarray(depths[:-1], float))
    return np.concatenate([[0.0], mids]), np.concatenate([mids, [np.inf]])


def _keel_levels(ds: xr.Dataset, max_draft: float) -> np.ndarray:
    """The z levels of the cube's ``depth`` dim a keel of ``max_draft`` m reaches (at least the first)."""
    depths = np.asarray(ds["depth"].values, float)
    if depths.ndim != 1 or np.any(np.diff(depths) <= 0) or depths[0] < 0:
        raise ForcingError(
            f"forcing cube: 'depth' must be increasing metres below the surface, got {depths.tolist()}"
        )
    return depths[: max(int(np.sum(_layers(depths)[0] < max_draft)), 1)]


def _release_seconds(seeds: pd.DataFrame, meta: ForcingMeta, start: np.datetime64) -> np.ndarray:
    for col in ("release_time", "time"):
        if col in seeds.columns:
            t = pd.to_datetime(seeds[col], utc=True).dt.tz_convert(None).to_numpy("datetime64[ns]")
            return (t - start) / np.timedelta64(1, "s")
    return np.zeros(len(seeds))


def iceberg_dimensions(seeds: pd.DataFrame) -> dict[str, np.ndarray]:
    """Iceberg ``length``, ``width``, ``draft``, ``sail`` (m) per seed (OpenBerg defaults where absent)."""
    props = {}
    for name, default in ICEBERG_DEFAULTS.items():
        vals = np.asarray(seeds[name], float) if name in seeds.columns else np.full(len(seeds), default)
        if not np.all(np.isfinite(vals) & (vals > 0)):
            raise SeedError(f"seeds: iceberg column {name!r} must be positive metres")
        props[name] = vals
    return props


def particles_from_seeds(
    seeds: pd.DataFrame, meta: ForcingMeta, start: np.datetime64, *, model: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Seed table → initial particle arrays and per-particle properties.

    ``seeds`` has ``x``, ``y`` in the forcing CRS, or ``lon``, ``lat`` (degrees), or is a GeoDataFrame
    of points (reprojected to the forcing CRS); optional ``release_time`` (or ``time``) and, for
    icebergs, ``length``, ``width``, ``draft``, ``sail`` in m (OpenBerg defaults 100, 30, 90, 10).

    Raises
    ------
    SeedError
        For an empty or malformed table or any seed outside the forcing grid (rows named).
    """
    if not isinstance(seeds, pd.DataFrame):
        raise SeedError(f"seeds: expected a pandas/geopandas DataFrame, got {type(seeds).__name__}")
    if len(seeds) == 0:
        raise SeedError("seeds: table is empty")
    if "x" in seeds.columns and "y" in seeds.columns:
        x, y = np.asarray(seeds["x"], float), np.asarray(seeds["y"], float)
    elif "lon" in seeds.columns and "lat" in seeds.columns:
        tr = Transformer.from_crs(meta.crs.geodetic_crs, meta.crs, always_xy=True)
        x, y = tr.transform(np.asarray(seeds["lon"], float), np.asarray(seeds["lat"], float))
    elif hasattr(seeds, "geometry") and getattr(seeds, "crs", None) is not None:
        pts = seeds.geometry.to_crs(meta.crs)
        x, y = np.asarray(pts.x, float), np.asarray(pts.y, float)
    else:
        raise SeedError(
            f"seeds: need columns x, y (forcing CRS) or lon, lat, or point geometry; got {list(seeds.columns)}"
        )
    lo_x, hi_x = sorted((meta.x[0], meta.x[-1]))
    lo_y, hi_y = sorted((meta.y[0], meta.y[-1]))
    bad = ~(np.isfinite(x) & np.isfinite(y) & (x >= lo_x) & (x <= hi_x) & (y >= lo_y) & (y <= hi_y))
    if bad.any():
        rows = [int(i) for i in np.flatnonzero(bad)[:10]]
        raise SeedError(
            f"seeds: {int(bad.sum())} seed(s) outside the forcing grid x[{lo_x:g}, {hi_x:g}] y[{lo_y:g}, {hi_y:g}] (rows {rows})"
        )
    props: dict[str, np.ndarray] = {}
    if model == "iceberg":
        props.update(iceberg_dimensions(seeds))
        if meta.keel_depths is not None:
            for k, w in enumerate(keel_weights(meta.keel_depths, props["draft"])):
                props[f"keel_w{k}"] = w
    release = _release_seconds(seeds, meta, start)
    return {"x": x, "y": y, "release": release}, props
