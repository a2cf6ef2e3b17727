"""Grid geometry and two-point-flux transmissibilities (numpy at set-up, jax for multipliers).

Cells are numbered over active cells in Eclipse order (x fastest, then y, then layer). Each
connection joins two logical neighbours ``a < b`` in x, y or z. A connection's transmissibility is the
harmonic combination of the two half-transmissibilities ``t = k A / (d / 2)`` (``A`` face area,
``d`` cell length across the face, horizontal ``k`` times NTG), times MULTX/Y/Z of the cell on the
minus side, as in Eclipse/OPM for Cartesian cells::

    T_ab = mult / (1 / t_a + 1 / t_b)

Permeability multipliers (history matching, ensembles) scale ``t_a``, ``t_b`` in :func:`transmissibility`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

MD = 9.86923266716013e-16  # m^2 per millidarcy (as OPM)


class Connections(NamedTuple):
    """Neighbour pairs (active-cell indices) with their half-transmissibilities (m^3) and multiplier."""

    a: np.ndarray
    b: np.ndarray
    t_a: np.ndarray
    t_b: np.ndarray
    mult: np.ndarray


def active_index(actnum: np.ndarray) -> np.ndarray:
    """Map from (layer, y, x) to active-cell index (-1 where inactive)."""
    flat = actnum.reshape(-1) > 0
    idx = np.full(flat.size, -1, dtype=np.int64)
    idx[flat] = np.arange(int(flat.sum()))
    return idx.reshape(actnum.shape)


def connections(static: dict[str, np.ndarray]) -> Connections:
    """TPFA connections of a grid given as ``(layer, y, x)`` arrays (SI: m, m^2).

    ``static`` needs ``permx/permy/permz`` (m^2), ``dx/dy/dz`` (m), ``ntg``, ``multx/multy/multz``
    and ``actnum``.
    """
    act = active_index(static["actnum"])
    kx = static["permx"] * static["ntg"]
    ky = static["permy"] * static["ntg"]
    kz = static["permz"]
    dx, dy, dz = static["dx"], static["dy"], static["dz"]
    half = {
        2: 2.0 * kx * dy * dz / dx,  # x faces
        1: 2.0 * ky * dx * dz / dy,
        0: 2.0 * kz * dx * dy / dz,
    }
    mults = {2: static["multx"], 1: static["multy"], 0: static["multz"]}
    a_all, b_all, ta_all, tb_all, m_all = [], [], [], [], []
    for axis in (2, 1, 0):
        n = act.shape[axis]
        if n < 2:
            continue
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        ia, ib = act[tuple(lo)], act[tuple(hi)]
        ok = (ia >= 0) & (ib >= 0)
        a_all.append(ia[ok])
        b_all.append(ib[ok])
        ta_all.append(half[axis][tuple(lo)][ok])
        tb_all.append(half[axis][tuple(hi)][ok])
        m_all.append(mults[axis][tuple(lo)][ok])
    cat = np.concatenate
    conn = Connections(cat(a_all), cat(b_all), cat(ta_all), cat(tb_all), cat(m_all))
    keep = (conn.t_a > 0) & (conn.t_b > 0) & (conn.mult > 0)
    return Connections(*(np.asarray(f)[keep] for f in conn))


def transmissibility(conn: Connections, perm_mult: jnp.ndarray) -> jnp.ndarray:
    """Harmonic-mean TPFA transmissibility (m^3) per connection; ``perm_mult`` has one value per active cell."""
    ta = conn.t_a * perm_mult[conn.a]
    tb = conn.t_b * perm_mult[conn.b]
    return conn.mult * ta * tb / (ta + tb)
