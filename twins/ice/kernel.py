"""The ice-drift time stepper: particle pytree, pure ``step(state, forcing, params)``, ``lax.scan`` loop.

Only JAX is imported. The forcing is a stacked ``(nt, nv, ny, nx)`` array whose channel names (a
static tuple) are chosen by :mod:`twins.ice.adapter`; besides the physical variables it always holds
``wet`` (1 water, 0 land/missing), ``f`` (Coriolis parameter, s-1) and the local Jacobian of the map
``jex, jey, jnx, jny``: grid units per metre moved east (``je*``) and north (``jn*``). Velocities in
the physics are east/north (m s-1); the Jacobian turns them into grid-coordinate rates, which
accounts for the meridian convergence and the map scale factor of any CRS.

Time stepping:

- steady models (``passive``; ``sea_ice`` with ``dynamics="steady"``): the velocity is a function of
  position and time, integrated with RK4 (or Euler/RK2 for comparison) from :mod:`twins.core.integrate`;
- inertial models (``iceberg``; ``sea_ice`` with ``dynamics="inertial"``): the velocity is part of the
  state and advanced with the exponential integrator of :func:`twins.ice.physics.exp_update` as a
  predictor-corrector (forcing sampled at the start and at the predicted end of the step).

After each step a particle whose new position is outside the grid is flagged ``outside`` and one whose
new position is on land (``wet < 0.5``) ``stranded``; both keep their last valid position and never
move again. Particles are never dropped. Status codes: 0 active, 1 stranded, 2 outside, 3 not yet
released.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from twins.core import STAGE_FRACTIONS, GridSpec, field_at_time, make_step, sample_snapshot

from .physics import (
    Config,
    IceParams,
    as_complex,
    exp_update,
    iceberg_drag_ratio,
    iceberg_linear_system,
    sea_ice_linear_system,
    sea_ice_velocity,
    steady_velocity,
)

ACTIVE, STRANDED, OUTSIDE, NOT_RELEASED = 0, 1, 2, 3


class Forcing(NamedTuple):
    """Forcing arrays: ``fields`` ``(nt, nv, ny, nx)``, ``times`` ``(nt,)`` seconds since the start, grid."""

    fields: Array
    times: Array
    grid: GridSpec


class Particles(NamedTuple):
    """Particle state (a pytree). ``u``, ``v``: east/north velocity (m s-1) of inertial models."""

    x: Array
    y: Array
    u: Array
    v: Array
    status: Array
    release: Array
    t: Array


def sample_env(
    snapshot: Array, grid: GridSpec, channels: tuple[str, ...], x: Array, y: Array
) -> tuple[dict, Array]:
    """Forcing snapshot ``(nv, ny, nx)`` at the particles as ``{channel: (n,)}`` and the inside flag.

    Only the first ``len(channels)`` channels of the snapshot are gathered.
    """
    vals, ok = sample_snapshot(snapshot[: len(channels)], grid, x, y)
    return {name: vals[i] for i, name in enumerate(channels)}, ok


def stage_channels(channels: tuple[str, ...], model: str) -> tuple[str, ...]:
    """The prefix of ``channels`` the physics needs at every stage (everything but ``wet``; passive: no ``f``)."""
    drop = {"wet", "f", "metric"} if model == "passive" else {"wet"}
    k = len(channels)
    while k and channels[k - 1] in drop:
        k -= 1
    if any(c in ("wet",) for c in channels[:k]):
        raise ValueError(f"channel order {channels}: 'wet' must come after the stage channels")
    return channels[:k]


def snapshots(forcing: Forcing, t: Array, dt: float, fractions: tuple[float, ...]) -> dict[float, Array]:
    """Forcing interpolated to ``t + c dt`` for each static stage fraction ``c`` (once per step)."""
    return {c: field_at_time(forcing.fields, forcing.times, t + c * dt) for c in fractions}


def grid_rate(env: Mapping[str, Array], u: Array) -> tuple[Array, Array]:
    """Grid-coordinate rates ``(dx/dt, dy/dt)`` of an east/north velocity ``u`` (complex)."""
    ue, vn = jnp.real(u), jnp.imag(u)
    return ue * env["jex"] + vn * env["jnx"], ue * env["jey"] + vn * env["jny"]


def _finish(
    state: Particles, xn: Array, yn: Array, un: Array, vn: Array, snap1: Array, grid: GridSpec, channels, dt
) -> Particles:
    t1 = state.t + dt
    wet_frac, ok = sample_snapshot(snap1[channels.index("wet") :][:1], grid, xn, yn)
    active = state.status == ACTIVE
    wet = wet_frac[0] >= 0.5
    moved = active & ok & wet
    status = jnp.where(active & ~ok, OUTSIDE, jnp.where(active & ok & ~wet, STRANDED, state.status))
    status = jnp.where((status == NOT_RELEASED) & (state.release <= t1 + 1e-3 * dt), ACTIVE, status)
    zero = jnp.zeros_like(un)
    return Particles(
        x=jnp.where(moved, xn, state.x),
        y=jnp.where(moved, yn, state.y),
        u=jnp.where(moved, un, zero),
        v=jnp.where(moved, vn, zero),
        status=status.astype(state.status.dtype),
        release=state.release,
        t=t1,
    )


def make_stepper(cfg: Config, channels: tuple[str, ...], dt: float) -> Any:
    """Return the pure ``step(state, forcing, params, props) -> state`` for ``cfg``."""
    inertial = cfg.model == "iceberg" or (cfg.model == "sea_ice" and cfg.dynamics == "inertial")
    stage = stage_channels(channels, cfg.model)

    if not inertial:
        fractions = tuple(sorted(set(STAGE_FRACTIONS.get(cfg.scheme, ())) | {1.0}))

        def step(
            state: Particles, forcing: Forcing, params: IceParams, props: Mapping[str, Array]
        ) -> Particles:
            snaps = snapshots(forcing, state.t, dt, fractions)

            def vel(pos, t, c):
                env, _ = sample_env(snaps[c], forcing.grid, stage, pos[0], pos[1])
                return grid_rate(env, steady_velocity(env, params, cfg))

            xn, yn = make_step(vel, cfg.scheme)((state.x, state.y), state.t, dt)
            zero = jnp.zeros_like(xn)
            return _finish(state, xn, yn, zero, zero, snaps[1.0], forcing.grid, channels, dt)

        return step

    def system(env, u, params, props):
        if cfg.model == "iceberg":
            return iceberg_linear_system(env, u, props, params, cfg)
        k, s, m = sea_ice_linear_system(env, u, params, cfg)
        return k, s, m, jnp.zeros(u.shape, bool), u

    def steady_start(env, params, props):
        """Velocity of a particle at release: the steady velocity of its momentum balance, so it does
        not start at rest. Sea ice: the steady free drift; icebergs: OpenBerg's no-acceleration
        estimate ``Vw + k (Va - Vw)``, ``k = √(Da/Dw) / (1 + √(Da/Dw))``, refined by 4 damped
        fixed-point passes ``V = S(V) / K(V)`` (Coriolis included)."""
        if cfg.model != "iceberg":
            return sea_ice_velocity(env, params, cfg._replace(ice_velocity="free_drift"))
        uw, ua = as_complex(env["uo"], env["vo"]), as_complex(env["u10"], env["v10"])
        ratio = jnp.sqrt(iceberg_drag_ratio(props, params))
        v = uw + ratio / (1 + ratio) * (ua - uw)
        for _ in range(4):
            k, s, _, lock, vi = system(env, v, params, props)
            v = jnp.where(lock, vi, 0.5 * v + 0.5 * s / jnp.where(jnp.abs(k) > 0, k, 1.0))
        return v

    def step(state: Particles, forcing: Forcing, params: IceParams, props: Mapping[str, Array]) -> Particles:
        u0 = as_complex(state.u, state.v)
        snaps = snapshots(forcing, state.t, dt, (0.0, 1.0))
        env0, _ = sample_env(snaps[0.0], forcing.grid, stage, state.x, state.y)
        # just released (active, velocity exactly zero): start from the steady velocity
        fresh = (state.status == ACTIVE) & (state.u == 0) & (state.v == 0)
        u0 = jnp.where(fresh, steady_start(env0, params, props), u0)
        k0, s0, m0, lock0, vi0 = system(env0, u0, params, props)
        u1, d1 = exp_update(u0, k0, s0, m0, dt)
        u1 = jnp.where(lock0, vi0, u1)
        d1 = jnp.where(lock0, vi0 * dt, d1)
        rx, ry = grid_rate(env0, d1)
        env1, _ = sample_env(snaps[1.0], forcing.grid, stage, state.x + rx, state.y + ry)
        k1, s1, m1, lock1, vi1 = system(env1, u1, params, props)
        u2, d2 = exp_update(u0, 0.5 * (k0 + k1), 0.5 * (s0 + s1), 0.5 * (m0 + m1), dt)
        lock = lock0 & lock1
        vi = 0.5 * (vi0 + vi1)
        u2 = jnp.where(lock, vi1, u2)
        d2 = jnp.where(lock, vi * dt, d2)
        jx0, jy0 = grid_rate(env0, d2)
        jx1, jy1 = grid_rate(env1, d2)
        xn = state.x + 0.5 * (jx0 + jx1)
        yn = state.y + 0.5 * (jy0 + jy1)
        return _finish(state, xn, yn, jnp.real(u2), jnp.imag(u2), snaps[1.0], forcing.grid, channels, dt)

    return step


def run(
    cfg: Config,
    channels: tuple[str, ...],
    n_steps: int,
    dt: float,
    forcing: Forcing,
    params: IceParams,
    state: Particles,
    props: Mapping[str, Array],
    every: int = 1,
) -> tuple[Particles, tuple[Array, Array, Array]]:
    """Integrate ``n_steps`` with ``lax.scan``; return the final state and ``(x, y, status)`` records.

    The state is recorded after every ``every`` steps (``n_steps`` must be a multiple of ``every``), so
    the records have shape ``(n_steps // every, n)``: ``every=1`` keeps every step, ``every=n_steps``
    only the final state, and the memory of a run is O(particles x records). The steps between two
    records run in an inner ``lax.scan`` that stores nothing.
    """
    if every < 1 or n_steps % every:
        raise ValueError(f"record interval {every} steps must be >= 1 and divide n_steps={n_steps}")
    step = make_stepper(cfg, channels, dt)

    def inner(s: Particles, _: Any) -> tuple[Particles, None]:
        return step(s, forcing, params, props), None

    def body(s: Particles, _: Any) -> tuple[Particles, tuple[Array, Array, Array]]:
        if every == 1:
            s = step(s, forcing, params, props)
        else:
            s, _ = jax.lax.scan(inner, s, None, length=every)
        return s, (s.x, s.y, s.status)

    return jax.lax.scan(body, state, None, length=n_steps // every)
