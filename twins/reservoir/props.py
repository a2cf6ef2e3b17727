"""Fluid and rock properties of the two-phase (water + one hydrocarbon phase) model, in SI units.

The hydrocarbon phase ``h`` is dead oil (PVDO table or PVCDO constant compressibility) or dry gas
(PVDG table). Following OPM, table PVT is interpolated linearly in ``1/B`` and ``1/(B mu)`` against
pressure (extrapolated linearly outside the table); PVTW/PVCDO use the second-order expansions
``1/B = (1 + X + X^2/2)/B_ref`` with ``X = c (p - p_ref)`` and ``1/(B mu)`` likewise with
``Y = (c - c_v)(p - p_ref)``. Pore volume follows ROCK: ``pv = pv_ref (1 + X + X^2/2)``,
``X = c_r (p - p_ref)``. Relative permeabilities and capillary pressure are tabulated against water
saturation (SWOF, or SWFN with SGFN expressed in ``S_w = 1 - S_g``), interpolated linearly and held
constant outside the table. Only jax and numpy are imported here.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

GRAVITY = 9.80665  # m/s^2


class TableError(ValueError):
    """A fluid or saturation table is non-physical (the message names the table and the rule)."""


class Fluid(NamedTuple):
    """Pytree of property parameters (SI). ``h_*`` describe the hydrocarbon phase."""

    rho_w: jnp.ndarray  # surface density of water, kg/m3
    rho_h: jnp.ndarray  # surface density of the hydrocarbon phase, kg/m3
    pvtw: jnp.ndarray  # (p_ref Pa, B_ref, c 1/Pa, mu Pa s, c_v 1/Pa)
    pvcd_h: jnp.ndarray  # same five numbers for PVCDO oil (unused with a table)
    h_p: jnp.ndarray  # table pressures (Pa)
    h_invb: jnp.ndarray  # 1/B at h_p
    h_invbmu: jnp.ndarray  # 1/(B mu) at h_p, 1/(Pa s)
    sat_sw: jnp.ndarray  # saturation table: water saturation
    sat_krw: jnp.ndarray
    sat_krh: jnp.ndarray
    sat_pc: jnp.ndarray  # capillary pressure p_h - p_w (Pa)
    rock: jnp.ndarray  # (p_ref Pa, c_r 1/Pa)


SHORT_TABLE = 64  # up to this many nodes a table is searched by comparing with every node (vectorises)


def table_segment(x: jnp.ndarray, xp: jnp.ndarray, side: str = "left") -> tuple[jnp.ndarray, jnp.ndarray]:
    """Segment ``[xp[i-1], xp[i]]`` of every ``x`` in the increasing nodes ``xp`` and the weight of ``xp[i]``.

    ``i`` is ``searchsorted(xp, x, side)`` clipped to ``[1, len(xp) - 1]`` (so points outside the table
    use the end segments); short tables count the nodes below ``x`` instead of a binary search.
    """
    n = xp.shape[0]
    if n > SHORT_TABLE:
        i = jnp.searchsorted(xp, x, side=side)
    elif side == "left":
        i = jnp.sum(x[..., None] > xp, axis=-1)
    else:
        i = jnp.sum(x[..., None] >= xp, axis=-1)
    i = jnp.clip(i, 1, n - 1)
    x0 = xp[i - 1]
    return i, (x - x0) / (xp[i] - x0)


def _interp_extrap(x: jnp.ndarray, xp: jnp.ndarray, fp: jnp.ndarray) -> jnp.ndarray:
    """Piecewise-linear interpolation with linear extrapolation at both ends."""
    i, w = table_segment(x, xp)
    return fp[i - 1] + w * (fp[i] - fp[i - 1])


def interp_clamped(x: jnp.ndarray, xp: jnp.ndarray, *fps: jnp.ndarray) -> list[jnp.ndarray]:
    """``jnp.interp(x, xp, fp)`` for several tables ``fps`` on the same nodes (one search for all):
    linear inside, constant beyond the ends, same segment choice at the nodes."""
    i, w = table_segment(x, xp, side="right")
    below, above = x < xp[0], x > xp[-1]
    return [
        jnp.where(below, fp[0], jnp.where(above, fp[-1], fp[i - 1] + w * (fp[i] - fp[i - 1]))) for fp in fps
    ]


def _expansion(p: jnp.ndarray, pars: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    pref, bref, c, mu, cv = pars[0], pars[1], pars[2], pars[3], pars[4]
    x = c * (p - pref)
    y = (c - cv) * (p - pref)
    invb = (1.0 + x + 0.5 * x * x) / bref
    invbmu = (1.0 + y + 0.5 * y * y) / (bref * mu)
    return invb, invbmu


def water_pvt(fluid: Fluid, p: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(1/B_w, 1/(B_w mu_w))`` at pressure ``p`` (Pa)."""
    return _expansion(p, fluid.pvtw)


def hydrocarbon_pvt(fluid: Fluid, p: jnp.ndarray, tabulated: bool) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(1/B_h, 1/(B_h mu_h))`` at ``p``; ``tabulated`` (static) selects PVDO/PVDG over PVCDO."""
    if tabulated:
        return _interp_extrap(p, fluid.h_p, fluid.h_invb), _interp_extrap(p, fluid.h_p, fluid.h_invbmu)
    return _expansion(p, fluid.pvcd_h)


def pore_volume(fluid: Fluid, pv_ref: jnp.ndarray, p: jnp.ndarray) -> jnp.ndarray:
    """Pore volume (m3) at pressure ``p`` from the reference pore volume and ROCK compressibility."""
    x = fluid.rock[1] * (p - fluid.rock[0])
    return pv_ref * (1.0 + x + 0.5 * x * x)


def relperm(fluid: Fluid, sw: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """``(k_rw, k_rh, p_c)`` at water saturation ``sw`` (constant beyond the table ends)."""
    krw, krh, pc = interp_clamped(sw, fluid.sat_sw, fluid.sat_krw, fluid.sat_krh, fluid.sat_pc)
    return krw, krh, pc


def check_saturation_table(name: str, sat: np.ndarray, krs: list[np.ndarray]) -> None:
    """Raise :class:`TableError` unless saturations increase and every kr lies in [0, 1]."""
    if np.any(np.diff(sat) <= 0):
        raise TableError(f"{name}: saturation column must increase strictly, got {sat.tolist()}")
    if sat.min() < 0 or sat.max() > 1:
        raise TableError(f"{name}: saturations must lie in [0, 1], got [{sat.min()}, {sat.max()}]")
    for kr in krs:
        if kr.min() < 0 or kr.max() > 1:
            raise TableError(f"{name}: relative permeability outside [0, 1] (range [{kr.min()}, {kr.max()}])")


def check_pvt_table(name: str, p: np.ndarray, b: np.ndarray, mu: np.ndarray) -> None:
    """Raise :class:`TableError` unless pressure increases, B decreases and B, mu are positive."""
    if np.any(np.diff(p) <= 0):
        raise TableError(f"{name}: pressure column must increase strictly (non-monotonic PVT table)")
    if np.any(b <= 0) or np.any(mu <= 0):
        raise TableError(f"{name}: formation volume factor and viscosity must be positive")
    if np.any(np.diff(b) >= 0):
        raise TableError(
            f"{name}: formation volume factor must decrease with pressure (non-physical PVT table)"
        )


def corey_table(
    swc: float, sor: float, nw: float, no: float, krw_max: float = 1.0, kro_max: float = 1.0, n: int = 41
) -> np.ndarray:
    """SWOF-like table ``[sw, krw, krow, pcow=0]`` of Corey curves (for analytical tests and decks)."""
    sw = np.linspace(swc, 1.0 - sor, n)
    se = (sw - swc) / (1.0 - swc - sor)
    tab = np.stack([sw, krw_max * se**nw, kro_max * (1 - se) ** no, np.zeros(n)], axis=1)
    if sor > 0:
        tab = np.vstack([tab, [1.0, krw_max, 0.0, 0.0]])
    return tab
