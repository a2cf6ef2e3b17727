"""Public entry point of the ice drift twin: :func:`simulate` (trajectory cube) and
:func:`presence_probability` (gridded probability of ice presence).

``params`` (all optional) mixes three kinds of keys:

- physics: any field of :class:`twins.ice.physics.IceParams` (drag coefficients, densities, ...);
- model choices: ``scheme`` (``"rk4"``/``"rk2"``/``"euler"``, steady models), ``ice_velocity``
  (``"free_drift"``, ``"forcing"`` = the cube's ``siu``/``siv`` as OpenDrift's SeaIceDrift does,
  ``"wind_factor"``), ``dynamics`` (``"steady"`` free drift per evaluation, or ``"inertial"``),
  ``tilt`` (``"none"``, ``"geostrophic"``, ``"ssh"``; default ``"ssh"`` when the cube has ``zos``),
  ``velocity_field`` (steady models: ``"grid"`` evaluates the velocity on the forcing grid at every
  forcing time and interpolates it, ``"particles"`` evaluates it at every particle and RK stage,
  see :mod:`twins.ice.kernel`; default ``"auto"``: whichever does fewer evaluations,
  :func:`auto_velocity_field`),
  ``wind`` (``"auto"``; ``"none"`` runs a wind-driven model on a cube without ``u10``/``v10`` with the
  wind taken as zero, which is recorded in the result attrs), ``start_time``;
- output: ``output_every`` (default 1): record the particles every this many steps (it must divide
  the number of steps); ``"final"`` keeps only the release and the final state. The kernel's memory
  grows only with the particle count; the records add particles x recorded times;
- ensemble (``members > 1``; member 0 is the unperturbed control): ``seed``, ``perturb_drag`` (sigma of
  a log-normal factor on the air and water drag coefficients, default 0.2), ``perturb_wind`` (on the
  wind factors, default 0.2), ``perturb_position_m`` (Gaussian jitter of the release position,
  default 0), ``perturb_release_s`` (uniform jitter of the release time, ±, default 0).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from twins.core import GridSpec, to_seconds

from . import kernel
from .adapter import ForcingError, forcing_arrays, iceberg_dimensions, particles_from_seeds
from .physics import DYNAMICS, ICE_VELOCITY_MODES, TILT_MODES, VELOCITY_FIELDS, Config, IceParams

MODELS = ("passive", "sea_ice", "iceberg")
STATUS_FLAGS = {"flag_values": [0, 1, 2, 3], "flag_meanings": "active stranded outside not_released"}
CONFIG_KEYS = {
    "scheme",
    "ice_velocity",
    "dynamics",
    "tilt",
    "wind",
    "start_time",
    "output_every",
    "velocity_field",
}
ENSEMBLE_KEYS = {"seed", "perturb_drag", "perturb_wind", "perturb_position_m", "perturb_release_s"}


def _split_params(
    params: dict[str, Any] | None, model: str, forcing: xr.Dataset
) -> tuple[Config, IceParams, dict]:
    params = dict(params or {})
    unknown = set(params) - CONFIG_KEYS - ENSEMBLE_KEYS - set(IceParams._fields)
    if unknown:
        raise ValueError(
            f"simulate: unknown params {sorted(unknown)}; known: {sorted(CONFIG_KEYS | ENSEMBLE_KEYS | set(IceParams._fields))}"
        )
    if model not in MODELS:
        raise ValueError(f"simulate: model must be one of {MODELS}, got {model!r}")
    cfg = Config(
        model=model,
        ice_velocity=params.get("ice_velocity", "free_drift"),
        dynamics=params.get("dynamics", "steady"),
        tilt=params.get("tilt", "ssh" if "zos" in forcing else "none"),
        scheme=params.get("scheme", "rk4"),
        velocity_field=params.get("velocity_field", "auto"),
    )
    for key, allowed in (
        ("ice_velocity", ICE_VELOCITY_MODES),
        ("dynamics", DYNAMICS),
        ("tilt", TILT_MODES),
        ("velocity_field", ("auto", *VELOCITY_FIELDS)),
    ):
        if getattr(cfg, key) not in allowed:
            raise ValueError(f"simulate: params[{key!r}] must be one of {allowed}, got {getattr(cfg, key)!r}")
    if params.get("wind", "auto") not in ("auto", "none"):
        raise ValueError(f"simulate: params['wind'] must be 'auto' or 'none', got {params['wind']!r}")
    phys = IceParams(**{k: float(v) for k, v in params.items() if k in IceParams._fields})
    extra = {k: params[k] for k in params if k in ENSEMBLE_KEYS | {"wind", "start_time", "output_every"}}
    return cfg, phys, extra


def _member_params(
    phys: IceParams, members: int, extra: dict, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    base = {k: np.full(members, v) for k, v in phys._asdict().items()}
    if members == 1:
        return base
    sd, sw = float(extra.get("perturb_drag", 0.2)), float(extra.get("perturb_wind", 0.2))
    z = rng.standard_normal((3, members))
    z[:, 0] = 0.0  # member 0: control
    fa, fw, fwind = np.exp(sd * z[0]), np.exp(sd * z[1]), np.exp(sw * z[2])
    for k in ("ca_ice", "berg_air_form_drag", "berg_air_skin_drag"):
        base[k] = base[k] * fa
    for k in ("cw_ice", "berg_water_form_drag", "berg_water_skin_drag"):
        base[k] = base[k] * fw
    for k in ("wind_factor", "wind_drift_factor"):
        base[k] = base[k] * fwind
    return base


@partial(jax.jit, static_argnames=("cfg", "channels", "n_steps", "dt", "every"))
def _run_ensemble(cfg, channels, n_steps, dt, every, forcing, params, state, props):
    """vmap over members of the scanned kernel; jitted once per static configuration."""

    def one(p, s):
        return kernel.run(cfg, channels, n_steps, dt, forcing, p, s, props, every=every)

    # time is shared by all members (unbatched): the forcing is interpolated in time once per stage
    axes = kernel.Particles(x=0, y=0, u=0, v=0, status=0, release=0, t=None)
    return jax.vmap(one, in_axes=(0, axes), out_axes=(axes, 0))(params, state)


def _float_dtype(arrays: dict[str, np.ndarray]) -> Any:
    want = arrays["fields"].dtype
    x64 = jax.dtypes.canonicalize_dtype(jnp.float64) == jnp.float64
    return jnp.float64 if want == np.float64 and x64 else jnp.float32


class Prepared(NamedTuple):
    """Everything :func:`simulate` passes to the jitted ensemble kernel, plus what the cube needs."""

    static: tuple  # (cfg, channels, n_steps, dt_s, every): static arguments of the jitted call
    args: tuple  # (forcing, params, state, props): JAX pytrees
    meta: Any
    start: np.datetime64
    attrs: dict


def prepare(
    forcing: xr.Dataset,
    seeds: pd.DataFrame,
    *,
    model: str = "passive",
    duration: Any,
    dt: Any,
    members: int = 1,
    params: dict[str, Any] | None = None,
) -> Prepared:
    """Validate the inputs of :func:`simulate` and build the kernel's arrays (no time stepping)."""
    if not isinstance(members, int | np.integer) or members < 1:
        raise ValueError(f"simulate: members must be a positive integer, got {members!r}")
    cfg, phys, extra = _split_params(params, model, forcing)
    wind = extra.get("wind", "auto")
    dur_s, dt_s = to_seconds(duration), to_seconds(dt)
    if dt_s <= 0 or dur_s <= 0:
        raise ValueError(f"simulate: duration and dt must be positive, got {duration!r}, {dt!r}")
    n_steps = int(round(dur_s / dt_s))
    if abs(n_steps * dt_s - dur_s) > 1e-6 * dur_s:
        raise ValueError(f"simulate: duration {dur_s} s is not a multiple of dt {dt_s} s")
    every = _output_every(extra.get("output_every", 1), n_steps)
    max_draft = 0.0
    if model == "iceberg" and isinstance(seeds, pd.DataFrame) and len(seeds):
        max_draft = float(iceberg_dimensions(seeds)["draft"].max())
    arrays, channels, meta = forcing_arrays(
        forcing,
        model=model,
        ice_velocity=cfg.ice_velocity,
        tilt=cfg.tilt,
        wind=wind,
        dynamics=cfg.dynamics,
        max_draft=max_draft,
    )
    start = (
        np.datetime64(pd.Timestamp(extra["start_time"]).tz_localize(None), "ns")
        if "start_time" in extra
        else meta.t0
    )
    s0 = float((start - meta.t0) / np.timedelta64(1, "s"))
    if len(meta.times) > 1:
        end = start + np.timedelta64(int(dur_s * 1e9), "ns")
        if start < meta.times[0] or end > meta.times[-1]:
            raise ForcingError(
                f"forcing cube: covers {meta.times[0]}..{meta.times[-1]}, the run needs {start}..{end}"
            )
    init, props = particles_from_seeds(seeds, meta, meta.t0, model=model)
    if cfg.velocity_field == "auto":
        field = auto_velocity_field(cfg, len(init["x"]), n_steps, arrays["fields"].shape)
        cfg = cfg._replace(velocity_field=field)
    rng = np.random.default_rng(int(extra.get("seed", 0)))
    dtype = _float_dtype(arrays)
    n = len(init["x"])
    x = np.broadcast_to(init["x"], (members, n)).copy()
    y = np.broadcast_to(init["y"], (members, n)).copy()
    rel = np.broadcast_to(np.maximum(init["release"], s0), (members, n)).copy()
    if members > 1:
        sp, sr = float(extra.get("perturb_position_m", 0.0)), float(extra.get("perturb_release_s", 0.0))
        if sp > 0:  # jitter in metres, converted with the local map scale (grid units per metre)
            from .adapter import jacobian

            g = jacobian(meta.crs, init["x"], init["y"])
            kx, ky = np.hypot(g["jex"], g["jey"]), np.hypot(g["jnx"], g["jny"])
            x[1:] += sp * kx * rng.standard_normal((members - 1, n))
            y[1:] += sp * ky * rng.standard_normal((members - 1, n))
        if sr > 0:
            rel[1:] = np.maximum(rel[1:] + rng.uniform(-sr, sr, (members - 1, n)), s0)
    status = np.where(rel <= s0 + 1e-3 * dt_s, kernel.ACTIVE, kernel.NOT_RELEASED).astype(np.int32)
    cfg = cfg._replace(releases_during_run=bool(np.any(status == kernel.NOT_RELEASED)))
    member_params = _member_params(phys, members, extra, rng)
    fj = kernel.Forcing(
        fields=jnp.asarray(arrays["fields"], dtype),
        times=jnp.asarray(arrays["times"], dtype),
        grid=GridSpec(*[jnp.asarray(v, dtype) for v in arrays["grid"]]),
    )
    zeros = jnp.zeros((members, n), dtype)
    state = kernel.Particles(
        x=jnp.asarray(x, dtype),
        y=jnp.asarray(y, dtype),
        u=zeros,
        v=zeros,
        status=jnp.asarray(status),
        release=jnp.asarray(rel, dtype),
        t=jnp.asarray(s0, dtype),
    )
    pj = IceParams(**{k: jnp.asarray(v, dtype) for k, v in member_params.items()})
    props_j = {k: jnp.asarray(v, dtype) for k, v in props.items()}
    inertial = model == "iceberg" or cfg.dynamics == "inertial"
    attrs = {
        "model": model,
        "scheme": "exponential-heun" if inertial else cfg.scheme,
        "ice_velocity": cfg.ice_velocity if model == "sea_ice" else "n/a",
        "dynamics": ("inertial" if inertial else "steady") if model != "passive" else "n/a",
        "tilt": cfg.tilt,
        "velocity_field": "n/a" if inertial else cfg.velocity_field,
        "geotwin_wind": _wind_note(model, wind, channels),
        "time_step_s": dt_s,
        "members": int(members),
        "params": json.dumps({k: v.tolist() for k, v in member_params.items()}),
        "ensemble": json.dumps({k: extra[k] for k in extra if k in ENSEMBLE_KEYS}),
        "forcing_sources": str(forcing.attrs.get("geotwin_sources", "[]")),
    }
    attrs["output_every_steps"] = every
    return Prepared((cfg, channels, n_steps, dt_s, every), (fj, pj, state, props_j), meta, start, attrs)


def auto_velocity_field(cfg: Config, n_particles: int, n_steps: int, forcing_shape: tuple[int, ...]) -> str:
    """``"grid"`` when evaluating the velocity on the grid at every forcing time (``nt x ny x nx``
    evaluations) costs no more than evaluating it at every particle and RK stage, else
    ``"particles"``. A static choice by shape; ``forcing_shape`` is ``(nt, nv, ny, nx)``."""
    stages = {"euler": 1, "rk2": 2, "rk4": 4}.get(cfg.scheme, 4)
    nt, _, ny, nx = forcing_shape
    return "grid" if nt * ny * nx <= stages * n_particles * n_steps else "particles"


def _output_every(value: Any, n_steps: int) -> int:
    """Record interval in steps: ``params["output_every"]``, a positive divisor of ``n_steps`` or ``"final"``."""
    if isinstance(value, str) and value == "final":
        return n_steps
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1 or n_steps % value:
        raise ValueError(
            f"simulate: params['output_every'] must be 'final' or a positive integer dividing the "
            f"{n_steps} steps, got {value!r}"
        )
    return int(value)


def _wind_note(model: str, wind: str, channels: tuple[str, ...]) -> str:
    if wind == "none":
        return "none (no wind in the forcing; wind taken as zero)"
    return "forcing u10/v10" if "u10" in channels else "not used"


def shard_particles(prep: Prepared) -> Prepared:
    """Split the particles of ``prep`` across all local JAX devices (the forcing is replicated).

    Particles do not interact, so each device integrates its share; XLA partitions the jitted kernel
    (GSPMD). With one device, or a particle count the device count does not divide, ``prep`` is
    returned unchanged. On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` (set
    before JAX starts) makes each core a device.
    """
    devices = jax.devices()
    forcing, params, state, props = prep.args
    if len(devices) < 2 or state.x.shape[1] % len(devices):
        return prep
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(devices), ("particles",))
    by_particle = NamedSharding(mesh, P(None, "particles"))
    per_particle = [k for k in state._fields if k != "t"]  # t is one time shared by all particles
    state = state._replace(**{k: jax.device_put(getattr(state, k), by_particle) for k in per_particle})
    props = {k: jax.device_put(v, NamedSharding(mesh, P("particles"))) for k, v in props.items()}
    return prep._replace(args=(forcing, params, state, props))


def run_prepared(prep: Prepared) -> tuple[Any, tuple[Any, Any, Any]]:
    """Run the jitted, vmapped kernel on prepared inputs; returns ``(final_state, (x, y, status))``.

    The particles are split across the local devices when there are several (:func:`shard_particles`).
    """
    return _run_ensemble(*prep.static, *shard_particles(prep).args)


def simulate(
    forcing: xr.Dataset,
    seeds: pd.DataFrame,
    *,
    model: str = "passive",
    duration: Any,
    dt: Any,
    members: int = 1,
    params: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Drift particles (ice floes, icebergs or passive tracers) on a forcing cube.

    Parameters
    ----------
    forcing
        Forcing cube: ``uo``, ``vo`` (eastward/northward m s-1), ``u10``, ``v10``,
        ``sea_ice_concentration``, optional ``sea_ice_thickness``, ``siu``, ``siv``, ``zos``, ``swh``;
        any CRS (``spatial_ref.crs_wkt``); one time step is taken as steady.
    seeds
        Table of ``x``, ``y`` in the forcing CRS (or ``lon``, ``lat``, or point geometry) with optional
        ``release_time`` and iceberg ``length``, ``width``, ``draft``, ``sail`` (m).
    model
        ``"passive"``, ``"sea_ice"`` or ``"iceberg"``.
    duration, dt
        Seconds or pandas timedelta strings (``"72h"``, ``"1h"``); ``duration`` a multiple of ``dt``.
    members
        Ensemble size (>= 1); > 1 perturbs parameters (and optionally release) per member.
    params
        See the module docstring.

    Returns
    -------
    xarray.Dataset
        A CF discrete-sampling-geometry trajectory cube: dims ``(member,) trajectory, time``; variables
        ``x``, ``y`` (forcing CRS), ``lon``, ``lat``, ``status`` (0 active, 1 stranded, 2 outside,
        3 not released); positions before release are NaN.
    """
    prep = prepare(forcing, seeds, model=model, duration=duration, dt=dt, members=members, params=params)
    _, (xs, ys, st) = run_prepared(prep)
    state = prep.args[2]
    x0, y0, s0 = (np.asarray(a) for a in (state.x, state.y, state.status))
    xs = np.concatenate([x0[:, None, :].astype(xs.dtype), np.asarray(xs)], axis=1)
    ys = np.concatenate([y0[:, None, :].astype(ys.dtype), np.asarray(ys)], axis=1)
    st = np.concatenate([s0[:, None, :], np.asarray(st)], axis=1)
    n_steps, dt_s, every = prep.static[2], prep.static[3], prep.static[4]
    times = prep.start + (np.arange(0, n_steps + 1, every) * dt_s * 1e9).astype("timedelta64[ns]")
    return _trajectory_cube(xs, ys, st, times, prep.meta, prep.attrs, members_dim=members > 1)


def _trajectory_cube(xs, ys, st, times, meta, attrs: dict, *, members_dim: bool) -> xr.Dataset:
    from pipelines.cube import make_cube

    xs = np.swapaxes(xs, 1, 2)  # (member, trajectory, time)
    ys = np.swapaxes(ys, 1, 2)
    st = np.swapaxes(st, 1, 2).astype(np.int8)
    unreleased = st == kernel.NOT_RELEASED
    xs = np.where(unreleased, np.nan, xs)
    ys = np.where(unreleased, np.nan, ys)
    lon, lat = meta.to_lonlat(xs.ravel(), ys.ravel())
    lon, lat = lon.reshape(xs.shape), lat.reshape(xs.shape)
    dims = ("member", "trajectory", "time")
    sel = slice(None) if members_dim else 0
    dims = dims if members_dim else dims[1:]
    unit = "degrees" if meta.crs.is_geographic else "m"
    mk = lambda data, **a: xr.DataArray(data[sel], dims=dims, attrs=a)  # noqa: E731
    data = {
        "x": mk(
            xs,
            units=unit,
            long_name="particle x in the forcing CRS",
            standard_name="projection_x_coordinate",
            grid_mapping="spatial_ref",
        ),
        "y": mk(
            ys,
            units=unit,
            long_name="particle y in the forcing CRS",
            standard_name="projection_y_coordinate",
            grid_mapping="spatial_ref",
        ),
        "lon": mk(lon, units="degrees_east", long_name="longitude", standard_name="longitude"),
        "lat": mk(lat, units="degrees_north", long_name="latitude", standard_name="latitude"),
        "status": mk(st, units="1", long_name="particle status", **STATUS_FLAGS),
    }
    ntraj = xs.shape[1]
    coords = {
        "trajectory": xr.DataArray(
            np.arange(ntraj, dtype=np.int32),
            dims="trajectory",
            attrs={"cf_role": "trajectory_id", "long_name": "particle id"},
        ),
        "time": xr.DataArray(times, dims="time", attrs={"standard_name": "time", "axis": "T"}),
        "spatial_ref": meta.spatial_ref.drop_vars(
            [c for c in meta.spatial_ref.coords if c != "spatial_ref"], errors="ignore"
        ),
    }
    if members_dim:
        coords["member"] = xr.DataArray(
            np.arange(xs.shape[0], dtype=np.int32),
            dims="member",
            attrs={"long_name": "ensemble member (0 = control)"},
        )
    ds = xr.Dataset(data, coords=coords)
    cube_attrs = {"featureType": "trajectory", **attrs}
    return make_cube(
        dict(ds.data_vars), None, attrs=cube_attrs, config={"model": attrs["model"]}
    ).assign_coords(coords)


def presence_probability(traj: xr.Dataset, forcing: xr.Dataset) -> xr.Dataset:
    """Gridded probability of ice presence on the forcing grid, dims ``(time, y, x)``.

    The probability of a cell at a time is the fraction of ensemble members in which at least one
    released, not-outside particle (active or stranded) lies in that cell (1 member: 0 or 1).
    """
    from pipelines.cube import make_cube
    from pipelines.grid import grid_from_cube

    x = np.asarray(forcing["x"].values, float)
    y = np.asarray(forcing["y"].values, float)
    px, py, st = traj["x"].values, traj["y"].values, traj["status"].values
    if "member" not in traj.dims:
        px, py, st = px[None], py[None], st[None]
    ix = np.rint((px - x[0]) / (x[1] - x[0]))
    iy = np.rint((py - y[0]) / (y[1] - y[0]))
    ok = (st <= 1) & np.isfinite(ix) & np.isfinite(iy) & (ix >= 0) & (ix < len(x)) & (iy >= 0) & (iy < len(y))
    m, _, t = np.nonzero(ok)
    cell = iy[ok].astype(np.int64) * len(x) + ix[ok].astype(np.int64)
    hit = np.zeros((px.shape[0], px.shape[2], len(y) * len(x)), bool)
    hit[m, t, cell] = True
    prob = hit.mean(axis=0).reshape(px.shape[2], len(y), len(x)).astype(np.float32)
    geobox = grid_from_cube(forcing).geobox
    da = xr.DataArray(
        prob,
        dims=("time", "y", "x"),
        coords={"time": traj["time"].values},
        attrs={"units": "1", "long_name": "probability of ice presence (fraction of ensemble members)"},
    )
    return make_cube(
        {"ice_presence_probability": da},
        geobox,
        attrs={"members": int(px.shape[0]), "model": traj.attrs.get("model", "")},
    )
