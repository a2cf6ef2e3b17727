"""Gaussian plume physics: Briggs dispersion coefficients, Briggs plume rise, Pasquill–Gifford stability.

Pure JAX/NumPy; every function is traceable and broadcasts over array arguments.

References
----------
- Briggs, G. A. (1973): Diffusion estimation for small emissions, ATDL contribution 79, NOAA. The
  open-country ("rural") and urban interpolation formulas for sigma_y(x), sigma_z(x) as published in
  Gifford, F. A. (1976), Turbulent diffusion-typing schemes: a review, *Nuclear Safety* 17, 68–86,
  Table 4, and reproduced in Seinfeld & Pandis (2016), *Atmospheric Chemistry and Physics*, 3rd ed.,
  Table 18.4 (valid 100 m < x < 10 km).
- Gaussian plume with total ground reflection: Seinfeld & Pandis (2016), eq. 18.57.
- Final plume rise: Briggs, G. A. (1975), Plume rise predictions, in *Lectures on Air Pollution and
  Environmental Impact Analyses*, AMS; in the form of U.S. EPA (1995) ISC3 User's Guide vol. II,
  eqs. 1-5 to 1-9 (buoyancy flux, neutral/unstable and stable final rise; momentum rise ignored).
- Stability classes: Pasquill (1961), *Met. Mag.* 90, 33–49; Turner (1964), *J. Appl. Meteor.* 3, 83–91
  (wind speed × insolation/night-time cloud table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

CLASSES = "ABCDEF"
GRAVITY = 9.80665  # m s-2

# sigma_y = a x (1 + b x)^-1/2 ; sigma_z = c x (1 + d x)^e       rows: A..F
_RURAL = np.array(
    [
        # a     b       c      d       e
        [0.22, 1e-4, 0.20, 0.0, 0.0],
        [0.16, 1e-4, 0.12, 0.0, 0.0],
        [0.11, 1e-4, 0.08, 2e-4, -0.5],
        [0.08, 1e-4, 0.06, 1.5e-3, -0.5],
        [0.06, 1e-4, 0.03, 3e-4, -1.0],
        [0.04, 1e-4, 0.016, 3e-4, -1.0],
    ]
)
_URBAN = np.array(
    [
        [0.32, 4e-4, 0.24, 1e-3, 0.5],  # A-B
        [0.32, 4e-4, 0.24, 1e-3, 0.5],
        [0.22, 4e-4, 0.20, 0.0, 0.0],  # C
        [0.16, 4e-4, 0.14, 3e-4, -0.5],  # D
        [0.11, 4e-4, 0.08, 1.5e-3, -0.5],  # E-F
        [0.11, 4e-4, 0.08, 1.5e-3, -0.5],
    ]
)
_TABLES = {"rural": _RURAL, "urban": _URBAN}


def stability_index(stability: Any) -> Any:
    """Class letters ``"A".."F"`` (a string or a sequence/array of them) → integer indices 0..5.

    Integer arrays (already indices, possibly traced) pass through unchanged.
    """
    if isinstance(stability, str):
        if stability.upper() not in CLASSES or len(stability) != 1:
            raise ValueError(f"stability: expected one of 'A'..'F', got {stability!r}")
        return CLASSES.index(stability.upper())
    if isinstance(stability, Sequence) or (
        isinstance(stability, np.ndarray) and stability.dtype.kind in "USO"
    ):
        arr = np.asarray(stability, dtype=str)
        bad = sorted({s for s in arr.ravel().tolist() if s.upper() not in CLASSES or len(s) != 1})
        if bad:
            raise ValueError(f"stability: expected classes 'A'..'F', got {bad}")
        return np.vectorize(lambda s: CLASSES.index(s.upper()), otypes=[np.int32])(arr)
    return stability


def _table(setting: str) -> jnp.ndarray:
    if setting not in _TABLES:
        raise ValueError(f"setting: expected 'rural' or 'urban', got {setting!r}")
    return jnp.asarray(_TABLES[setting])


def briggs_sigmas(x: Any, stability: Any, setting: str = "rural") -> tuple[jnp.ndarray, jnp.ndarray]:
    """Briggs (1973) horizontal and vertical dispersion coefficients.

    Parameters
    ----------
    x
        Downwind distance (m), any shape; non-positive distances give ``sigma = 0``.
    stability
        Pasquill–Gifford class ``"A".."F"``, an array of letters, or integer indices 0..5 (traceable);
        broadcast against ``x``.
    setting
        ``"rural"`` (open country) or ``"urban"`` coefficient table.

    Returns
    -------
    sigma_y, sigma_z
        Metres, shape ``broadcast(x, stability)``.
    """
    coef = _table(setting)[jnp.asarray(stability_index(stability))]
    a, b, c, d, e = (coef[..., i] for i in range(5))
    x = jnp.maximum(jnp.asarray(x) * 1.0, 0.0)
    sigma_y = a * x * jax.lax.rsqrt(1.0 + b * x)
    # (1 + d x)^e with e in {0, -1/2, -1, 1/2}: cheap roots instead of a general power (same values)
    t = 1.0 + d * x
    root = jnp.sqrt(t)
    factor = jnp.where(e == 0.0, 1.0, jnp.where(e == 0.5, root, jnp.where(e == -0.5, 1.0 / root, 1.0 / t)))
    return sigma_y, c * x * factor


def gaussian_plume(
    Q: Any, u: Any, x: Any, y: Any, z: Any, H: Any, stability: Any, setting: str = "rural"
) -> jnp.ndarray:
    """Steady Gaussian plume concentration with total ground reflection.

    ``C = Q / (2 pi u sy sz) exp(-y^2 / 2 sy^2) [exp(-(z-H)^2 / 2 sz^2) + exp(-(z+H)^2 / 2 sz^2)]``
    for ``x > 0`` and 0 upwind (``x <= 0``).

    Parameters
    ----------
    Q
        Emission rate (kg s-1).
    u
        Wind speed at the effective height (m s-1), > 0.
    x, y, z
        Receptor downwind distance, crosswind offset and height above ground (m).
    H
        Effective source height (stack height + plume rise) (m).
    stability, setting
        As in :func:`briggs_sigmas`.

    Returns
    -------
    jax.Array
        Concentration (kg m-3), broadcast shape of the arguments.
    """
    x = jnp.asarray(x)
    downwind = x > 0
    xs = jnp.where(downwind, x, 1.0)  # keeps gradients finite upwind
    sy, sz = briggs_sigmas(xs, stability, setting)
    lateral = (y / sy) ** 2
    vertical = jnp.exp(-0.5 * (lateral + ((z - H) / sz) ** 2)) + jnp.exp(
        -0.5 * (lateral + ((z + H) / sz) ** 2)
    )
    conc = Q / (2.0 * jnp.pi * u * sy * sz) * vertical
    return jnp.where(downwind, conc, 0.0)


def buoyancy_flux(
    diameter: Any, exit_velocity: Any, exit_temperature: Any, air_temperature: Any
) -> jnp.ndarray:
    """Briggs buoyancy flux ``F = g v d^2 (Ts - Ta) / (4 Ts)`` (m4 s-3); temperatures in K."""
    dt = jnp.maximum(exit_temperature - air_temperature, 0.0)
    return GRAVITY * exit_velocity * diameter**2 * dt / (4.0 * exit_temperature)


def briggs_plume_rise(
    u: Any,
    diameter: Any,
    exit_velocity: Any,
    exit_temperature: Any,
    air_temperature: Any,
    stability: Any,
) -> jnp.ndarray:
    """Final buoyant plume rise (m) after Briggs (1975) as used in ISC3.

    Neutral/unstable (A–D): ``21.425 F^(3/4) / u`` for ``F < 55``, ``38.71 F^(3/5) / u`` otherwise;
    stable (E, F): ``2.6 (F / (u s))^(1/3)`` with ``s = g/Ta dtheta/dz`` and ``dtheta/dz`` = 0.020 (E),
    0.035 (F) K m-1.
    """
    idx = jnp.asarray(stability_index(stability))
    f = buoyancy_flux(diameter, exit_velocity, exit_temperature, air_temperature)
    u = jnp.maximum(u, 0.5)
    neutral = jnp.where(f < 55.0, 21.425 * f**0.75, 38.71 * f**0.6) / u
    dtheta = jnp.where(idx >= 5, 0.035, 0.020)
    s = GRAVITY / air_temperature * dtheta
    stable = 2.6 * (f / (u * s)) ** (1.0 / 3.0)
    return jnp.where(idx >= 4, stable, neutral)


# Turner (1964) table; rows: u10 < 2, 2-3, 3-5, 5-6, >= 6 m/s; columns: strong, moderate, slight insolation,
# night with cloud >= 4/8, night with cloud <= 3/8. Intermediate classes (A-B, B-C, C-D) take the more
# stable class; Turner's blank night/calm cells use E (cloudy) and F (clear).
_TURNER = np.array(
    [
        [0, 1, 1, 4, 5],
        [1, 1, 2, 4, 5],
        [1, 2, 2, 3, 4],
        [2, 3, 3, 3, 3],
        [2, 3, 3, 3, 3],
    ],
    dtype=np.int32,
)


def solar_elevation(lat_deg: Any, lon_deg: Any, day_of_year: Any, utc_hour: Any) -> jnp.ndarray:
    """Approximate solar elevation angle (degrees): Cooper (1969) declination, mean solar time."""
    decl = jnp.deg2rad(23.45) * jnp.sin(2.0 * jnp.pi * (284.0 + day_of_year) / 365.0)
    hour_angle = jnp.deg2rad(15.0 * (utc_hour + lon_deg / 15.0 - 12.0))
    lat = jnp.deg2rad(lat_deg)
    sin_el = jnp.sin(lat) * jnp.sin(decl) + jnp.cos(lat) * jnp.cos(decl) * jnp.cos(hour_angle)
    return jnp.rad2deg(jnp.arcsin(jnp.clip(sin_el, -1.0, 1.0)))


def stability_class(wind_speed: Any, solar_elevation_deg: Any, cloud_fraction: Any = 0.5) -> jnp.ndarray:
    """Pasquill–Gifford class index (0=A .. 5=F) from 10 m wind speed, sun elevation and cloud cover.

    Insolation: strong above 60°, moderate 35–60°, slight 15–35°; between 0° and 15° and under full
    overcast (cloud fraction ≥ 7/8) the class is neutral D; below 0° the night-time columns apply.
    """
    u = jnp.asarray(wind_speed)
    row = jnp.searchsorted(jnp.array([2.0, 3.0, 5.0, 6.0]), u, side="right")
    el = jnp.asarray(solar_elevation_deg)
    cloud = jnp.asarray(cloud_fraction)
    col = jnp.where(
        el > 60.0, 0, jnp.where(el > 35.0, 1, jnp.where(el > 15.0, 2, jnp.where(cloud >= 0.5, 3, 4)))
    )
    cls = jnp.asarray(_TURNER)[row, col]
    neutral = ((el > 0.0) & (el <= 15.0)) | (cloud >= 0.875)
    return jnp.where(neutral, 3, cls)
