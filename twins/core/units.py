"""Physical constants (SI, units in the names/docstrings) and small unit helpers shared by the twins."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

#: Earth's rotation rate, rad s-1 (sidereal day).
OMEGA_EARTH_RAD_S = 7.2921e-5
#: Standard gravity, m s-2.
G_M_S2 = 9.81
#: Mean Earth radius, m (IUGG).
EARTH_RADIUS_M = 6371008.8
#: Seconds per hour / day.
HOUR_S = 3600.0
DAY_S = 86400.0
#: One knot in m s-1.
KNOT_M_S = 1852.0 / 3600.0


def coriolis_parameter(lat_deg: Array | float) -> Array:
    """Coriolis parameter ``f = 2 Ω sin(φ)`` in s-1 for latitude ``φ`` in degrees."""
    return 2.0 * OMEGA_EARTH_RAD_S * jnp.sin(jnp.deg2rad(jnp.asarray(lat_deg)))


def to_seconds(value: float | str | object) -> float:
    """Convert a duration (seconds as a number, a pandas/ISO string such as ``"72h"``, or a timedelta) to seconds."""
    import pandas as pd

    if isinstance(value, int | float):
        return float(value)
    return float(pd.Timedelta(value).total_seconds())
