"""Transport to sensors: Gaussian-plume footprints (Jacobian H) of area cells and point sources.

Winds are uniform over the city in each hour (``u``, ``v`` at 10 m), so a cell's plume depends only on
its offset from the receptor; that makes the concentration map a convolution (done by FFT) and the
sensor Jacobian a vmapped kernel. Each grid cell is a ground-level area source collapsed to its centre
at ``release_height``; the near field (receptor within half a cell downwind or across) uses half a cell
as downwind distance. Calm hours are clipped to 0.5 m s-1 (the plume is invalid below).

Units: footprints convert kg m-3 to ppm (µmol mol-1) of CO2 in dry air at 15 °C, 1013.25 hPa.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .plume import briggs_plume_rise, gaussian_plume

M_AIR, M_CO2 = 28.9647e-3, 44.0095e-3  # kg mol-1
RHO_AIR = 101325.0 * M_AIR / (8.314462618 * 288.15)  # kg m-3
PPM_PER_KG_M3 = 1e6 * M_AIR / (M_CO2 * RHO_AIR)
MIN_WIND = 0.5  # m s-1
#: ISC3 urban wind-profile exponents by class A..F (U.S. EPA 1995, ISC3 User's Guide vol. II, Table 1-2)
WIND_EXPONENT_URBAN = (0.15, 0.15, 0.20, 0.25, 0.30, 0.30)
WIND_EXPONENT_RURAL = (0.07, 0.07, 0.10, 0.15, 0.35, 0.55)


def _frame(dx: jnp.ndarray, dy: jnp.ndarray, u: jnp.ndarray, v: jnp.ndarray, half: float):
    """Offsets receptor − source → (downwind, crosswind) in the wind frame; near field clipped."""
    speed = jnp.hypot(u, v)
    ex = jnp.where(speed > 0, u / jnp.where(speed > 0, speed, 1.0), 1.0)
    ey = jnp.where(speed > 0, v / jnp.where(speed > 0, speed, 1.0), 0.0)
    down = dx * ex + dy * ey
    cross = -dx * ey + dy * ex
    down = jnp.where(down > -half, jnp.maximum(down, half), down)
    return down, cross, jnp.maximum(speed, MIN_WIND)


@partial(jax.jit, static_argnames=("setting",))
def area_footprint(
    sensors: jnp.ndarray,
    cells: jnp.ndarray,
    cell_size: float,
    u: jnp.ndarray,
    v: jnp.ndarray,
    stability: jnp.ndarray,
    release_height: float = 10.0,
    setting: str = "urban",
) -> jnp.ndarray:
    """Footprint of area cells at sensors: ppm per (kg m-2 s-1), shape ``(sensor, hour, cell)``.

    Parameters
    ----------
    sensors
        ``(S, 3)`` receptor x, y (m, grid CRS) and height above ground (m).
    cells
        ``(C, 2)`` cell-centre x, y (m).
    cell_size
        Cell edge (m); the cell area is ``cell_size**2``.
    u, v, stability
        ``(T,)`` hourly 10 m wind components (m s-1) and Pasquill–Gifford class indices (0..5).
    """
    area = cell_size * cell_size

    def hour(uh, vh, kh):
        def sensor(s):
            down, cross, speed = _frame(s[0] - cells[:, 0], s[1] - cells[:, 1], uh, vh, 0.5 * cell_size)
            return gaussian_plume(area, speed, down, cross, s[2], release_height, kh, setting)

        return jax.vmap(sensor)(sensors)

    return jax.vmap(hour, out_axes=1)(u, v, stability) * PPM_PER_KG_M3


def _stack_wind(u10: jnp.ndarray, height: jnp.ndarray, stability: jnp.ndarray, setting: str) -> jnp.ndarray:
    p = jnp.asarray(WIND_EXPONENT_URBAN if setting == "urban" else WIND_EXPONENT_RURAL)[stability]
    return u10 * (jnp.maximum(height, 10.0) / 10.0) ** p


@partial(jax.jit, static_argnames=("setting",))
def point_footprint(
    sensors: jnp.ndarray,
    stacks: jnp.ndarray,
    u: jnp.ndarray,
    v: jnp.ndarray,
    stability: jnp.ndarray,
    air_temperature: float = 288.15,
    setting: str = "urban",
) -> jnp.ndarray:
    """Footprint of stacks at sensors: ppm per (kg s-1), shape ``(sensor, hour, stack)``.

    ``stacks`` is ``(P, 6)``: x, y (m), stack height (m), diameter (m), exit velocity (m s-1), exit
    temperature (K). The effective height adds Briggs final plume rise with the wind at stack top
    (power law of ISC3).
    """

    def hour(uh, vh, kh):
        speed10 = jnp.maximum(jnp.hypot(uh, vh), MIN_WIND)
        us = _stack_wind(speed10, stacks[:, 2], kh, setting)
        rise = briggs_plume_rise(us, stacks[:, 3], stacks[:, 4], stacks[:, 5], air_temperature, kh)
        heff = stacks[:, 2] + rise

        def sensor(s):
            down, cross, _ = _frame(s[0] - stacks[:, 0], s[1] - stacks[:, 1], uh, vh, 1.0)
            return gaussian_plume(1.0, us, down, cross, s[2], heff, kh, setting)

        return jax.vmap(sensor)(sensors)

    return jax.vmap(hour, out_axes=1)(u, v, stability) * PPM_PER_KG_M3


@partial(jax.jit, static_argnames=("setting",))
def concentration_map(
    flux: jnp.ndarray,
    dx: float,
    dy: float,
    u: jnp.ndarray,
    v: jnp.ndarray,
    stability: jnp.ndarray,
    receptor_height: float = 3.0,
    release_height: float = 10.0,
    setting: str = "urban",
) -> jnp.ndarray:
    """Hourly CO2 enhancement (ppm) at every cell from area fluxes, by FFT convolution.

    Parameters
    ----------
    flux
        ``(T, ny, nx)`` total area flux (kg m-2 s-1) in each hour.
    dx, dy
        Signed cell spacing of the ``x`` and ``y`` coordinates (m); ``dy < 0`` for north-up grids.
    """
    ny, nx = flux.shape[-2:]
    oy = jnp.arange(-(ny - 1), ny) * dy
    ox = jnp.arange(-(nx - 1), nx) * dx
    offy, offx = jnp.meshgrid(oy, ox, indexing="ij")
    half = 0.5 * jnp.minimum(jnp.abs(dx), jnp.abs(dy))

    def hour(f, uh, vh, kh):
        down, cross, speed = _frame(offx, offy, uh, vh, half)
        kernel = gaussian_plume(
            jnp.abs(dx * dy), speed, down, cross, receptor_height, release_height, kh, setting
        )
        return jax.scipy.signal.fftconvolve(f, kernel, mode="same")

    return jax.vmap(hour)(flux, u, v, stability) * PPM_PER_KG_M3
