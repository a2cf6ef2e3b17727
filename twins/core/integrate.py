"""Explicit integrators as step factories for particle positions.

A *velocity function* ``vel(pos, t, c) -> dpos/dt`` maps a position pytree (e.g. ``(x, y)`` arrays),
the stage time ``t = t0 + c dt`` and the *static* stage fraction ``c`` (a Python float: 0, 0.5 or 1)
to a pytree of rates of the same structure. ``c`` lets a caller evaluate time-dependent forcing once
per distinct stage time and reuse it (RK4 has three distinct stage times, not four); simple velocity
functions ignore it. :func:`make_step` turns it into a pure
``step(pos, t, dt) -> pos`` using the chosen scheme; twins close over their forcing and parameters
inside ``vel`` and run the step in a ``jax.lax.scan``.

Schemes: ``"euler"`` (1st order, 1 evaluation), ``"rk2"`` (midpoint, 2nd order) and ``"rk4"``
(classical Runge-Kutta, 4th order, 4 evaluations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

VelocityFn = Callable[[Any, Any], Any]
SCHEMES = ("euler", "rk2", "rk4")
#: The distinct stage fractions ``c`` each scheme evaluates.
STAGE_FRACTIONS = {"euler": (0.0,), "rk2": (0.0, 0.5), "rk4": (0.0, 0.5, 1.0)}


def _axpy(a: Any, x: Any, y: Any) -> Any:
    """``y + a * x`` leaf by leaf."""
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


def euler(vel: VelocityFn, pos: Any, t: Any, dt: Any) -> Any:
    """Forward Euler: ``pos + dt * vel(pos, t)``."""
    return _axpy(dt, vel(pos, t, 0.0), pos)


def rk2(vel: VelocityFn, pos: Any, t: Any, dt: Any) -> Any:
    """Explicit midpoint rule (2nd order)."""
    k1 = vel(pos, t, 0.0)
    k2 = vel(_axpy(0.5 * dt, k1, pos), t + 0.5 * dt, 0.5)
    return _axpy(dt, k2, pos)


def rk4(vel: VelocityFn, pos: Any, t: Any, dt: Any) -> Any:
    """Classical 4th-order Runge-Kutta."""
    k1 = vel(pos, t, 0.0)
    k2 = vel(_axpy(0.5 * dt, k1, pos), t + 0.5 * dt, 0.5)
    k3 = vel(_axpy(0.5 * dt, k2, pos), t + 0.5 * dt, 0.5)
    k4 = vel(_axpy(dt, k3, pos), t + dt, 1.0)
    incr = jax.tree.map(lambda a, b, c, d: (a + 2.0 * b + 2.0 * c + d) / 6.0, k1, k2, k3, k4)
    return _axpy(dt, incr, pos)


def make_step(vel: VelocityFn, scheme: str = "rk4") -> Callable[[Any, Any, Any], Any]:
    """Return ``step(pos, t, dt) -> pos`` for ``vel`` with ``scheme`` in :data:`SCHEMES`.

    Raises
    ------
    ValueError
        For an unknown scheme name.
    """
    table = {"euler": euler, "rk2": rk2, "rk4": rk4}
    if scheme not in table:
        raise ValueError(f"integrator scheme {scheme!r} is not one of {SCHEMES}")
    fn = table[scheme]

    def step(pos: Any, t: Any, dt: Any) -> Any:
        return fn(vel, pos, t, dt)

    return step
