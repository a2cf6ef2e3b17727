"""Shared JAX building blocks for the twins.

- :mod:`twins.core.interp`: regular-grid geometry, bilinear-in-space / linear-in-time sampling of a
  stacked ``(time, channel, y, x)`` forcing array;
- :mod:`twins.core.integrate`: Euler / RK2 / RK4 step factories for position pytrees;
- :mod:`twins.core.units`: physical constants (SI) and unit helpers.

Everything here imports only JAX/NumPy (and pandas for parsing durations) and is device-agnostic.
"""

from __future__ import annotations

from .integrate import SCHEMES, STAGE_FRACTIONS, euler, make_step, rk2, rk4
from .interp import (
    GridSpec,
    bilinear,
    bilinear_stencil,
    corner_stencil,
    field_at_time,
    fractional_index,
    inside,
    packed_stencil,
    sample,
    sample_packed,
    sample_snapshot,
    time_weights,
)
from .units import DAY_S, EARTH_RADIUS_M, G_M_S2, HOUR_S, OMEGA_EARTH_RAD_S, coriolis_parameter, to_seconds

__all__ = [
    "SCHEMES",
    "STAGE_FRACTIONS",
    "DAY_S",
    "EARTH_RADIUS_M",
    "G_M_S2",
    "HOUR_S",
    "OMEGA_EARTH_RAD_S",
    "GridSpec",
    "bilinear",
    "bilinear_stencil",
    "corner_stencil",
    "coriolis_parameter",
    "euler",
    "field_at_time",
    "fractional_index",
    "inside",
    "packed_stencil",
    "sample_packed",
    "make_step",
    "rk2",
    "rk4",
    "sample",
    "sample_snapshot",
    "time_weights",
    "to_seconds",
]
