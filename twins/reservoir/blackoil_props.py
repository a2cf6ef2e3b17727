"""Three-phase black-oil properties (water, live oil with dissolved gas, dry gas) in SI units.

Follows OPM Flow's conventions so that results can be compared with it:

- **Live oil (PVTO).** ``R_s(p)`` of saturated oil and ``1/B_o``, ``1/(B_o mu_o)`` are tabulated on
  the saturated rows; each ``R_s`` node carries an undersaturated branch in ``p``. A node without a
  branch borrows the next node's branch (same pressure steps, same ratios ``B_k/B_{k-1}`` and
  ``mu_k/mu_{k-1}``: OPM's ``extendPvtoTable_``). ``1/B_o(R_s, p)`` and ``1/(B_o mu_o)(R_s, p)`` are
  interpolated linearly between the two bracketing ``R_s`` nodes at the same pressure *above each
  node's bubble point* (OPM's ``LeftExtreme`` policy), linearly in ``p`` along each branch, with linear
  extrapolation everywhere. On the saturation curve this equals linear interpolation of the saturated
  rows, so one formula serves both states.
- **Dry gas (PVDG)** and **water (PVTW)**, **rock (ROCK)**: as :mod:`.props` (linear in ``1/B`` and
  ``1/(B mu)``; second-order compressibility expansions).
- **Relative permeability.** SWOF ``k_rw(S_w), k_row(S_w), p_cow(S_w)`` and SGOF
  ``k_rg(S_g), k_rog(S_g), p_cgo(S_g)``; three-phase oil by Eclipse's default (segregated) model,
  OPM's default when neither STONE1 nor STONE2 is given::

      k_ro = (S_g k_rog(S_g + S_w - S_wco) + (S_w - S_wco) k_row(S_g + S_w)) / (S_g + S_w - S_wco)

  (``S_w`` floored at the connate ``S_wco``, the first SWOF saturation; ``(k_rog + k_row)/2`` when the
  denominator vanishes). Tables are held constant beyond their ends.

Only jax and numpy are imported here.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .props import (
    TableError,
    _interp_extrap,
    check_pvt_table,
    check_saturation_table,
    interp_clamped,
    table_segment,
)

PAD = 1e30  # pressure padding of the undersaturated branches


class BOFluid(NamedTuple):
    """Pytree of black-oil property parameters (SI)."""

    rho_w: jnp.ndarray  # surface densities kg/m3
    rho_o: jnp.ndarray
    rho_g: jnp.ndarray
    pvtw: jnp.ndarray  # (p_ref, B_ref, c, mu, c_v)
    rock: jnp.ndarray  # (p_ref, c_r)
    g_p: jnp.ndarray  # PVDG pressures
    g_invb: jnp.ndarray
    g_invbmu: jnp.ndarray
    rs_nodes: jnp.ndarray  # (M,) R_s of the PVTO rows (sm3/sm3)
    pb_nodes: jnp.ndarray  # (M,) bubble-point pressure of each row
    o_p: jnp.ndarray  # (M, L) branch pressures (padded with PAD)
    o_invb: jnp.ndarray  # (M, L) 1/B_o
    o_invbmu: jnp.ndarray  # (M, L) 1/(B_o mu_o)
    o_count: jnp.ndarray  # (M,) points per branch
    swof: jnp.ndarray  # (K, 4) sw krw krow pcow
    sgof: jnp.ndarray  # (K', 4) sg krg krog pcgo


def pvto_tables(records: list[tuple[float, np.ndarray]]) -> dict[str, np.ndarray]:
    """PVTO records ``(R_s, [[p, B_o, mu_o], ...])`` (SI) -> padded arrays of :class:`BOFluid`.

    Raises :class:`~.props.TableError` for a non-increasing ``R_s`` or bubble-point column, a branch
    whose ``B_o`` does not fall with pressure, non-positive values, or no branch to borrow from.
    """
    rs = np.array([r for r, _ in records], float)
    rows = [np.asarray(t, float).reshape(-1, 3) for _, t in records]
    if len(rows) < 2:
        raise TableError("PVTO: at least two saturated rows (R_s values) are needed")
    if np.any(np.diff(rs) <= 0):
        raise TableError(
            f"PVTO: R_s column must increase strictly (non-monotonic PVT table), got {rs.tolist()}"
        )
    pb = np.array([t[0, 0] for t in rows])
    if np.any(np.diff(pb) <= 0):
        raise TableError("PVTO: bubble-point pressure must increase with R_s (non-monotonic PVT table)")
    for k, t in enumerate(rows):
        if np.any(t[:, 1:] <= 0):
            raise TableError(f"PVTO: row {k + 1} (R_s={rs[k]:g}): B_o and viscosity must be positive")
        if len(t) > 1:
            check_pvt_table(f"PVTO undersaturated branch {k + 1} (R_s={rs[k]:g})", t[:, 0], t[:, 1], t[:, 2])
    ext = []
    for k, t in enumerate(rows):
        if len(t) == 1:
            master = next((m for m in range(k + 1, len(rows)) if len(rows[m]) > 1), None)
            if master is None:
                raise TableError(
                    "PVTO: the last R_s row must have an undersaturated branch (two or more rows)"
                )
            m = rows[master]
            p, b, mu = [t[0, 0]], [t[0, 1]], [t[0, 2]]
            for j in range(1, len(m)):
                p.append(p[-1] + m[j, 0] - m[j - 1, 0])
                b.append(b[-1] * m[j, 1] / m[j - 1, 1])
                mu.append(mu[-1] * m[j, 2] / m[j - 1, 2])
            t = np.stack([p, b, mu], axis=1)
        ext.append(t)
    width = max(len(t) for t in ext)
    o_p = np.full((len(ext), width), PAD)
    o_invb = np.zeros((len(ext), width))
    o_invbmu = np.zeros((len(ext), width))
    for k, t in enumerate(ext):
        n = len(t)
        o_p[k, :n] = t[:, 0] + 0.0
        o_p[k, n:] = PAD * (1 + np.arange(width - n))
        o_invb[k, :n] = 1 / t[:, 1]
        o_invbmu[k, :n] = 1 / (t[:, 1] * t[:, 2])
    count = np.array([len(t) for t in ext])
    return {
        "rs_nodes": rs,
        "pb_nodes": pb,
        "o_p": o_p,
        "o_invb": o_invb,
        "o_invbmu": o_invbmu,
        "o_count": count,
    }


def check_three_phase_tables(swof: np.ndarray, sgof: np.ndarray) -> None:
    """Raise :class:`~.props.TableError` for non-monotonic saturations or kr outside [0, 1]."""
    check_saturation_table("SWOF", swof[:, 0], [swof[:, 1], swof[:, 2]])
    check_saturation_table("SGOF", sgof[:, 0], [sgof[:, 1], sgof[:, 2]])


def rs_sat(fluid: BOFluid, p: jnp.ndarray) -> jnp.ndarray:
    """Gas dissolution factor of saturated oil at ``p`` (linear in the saturated rows, extrapolated)."""
    return _interp_extrap(p, fluid.pb_nodes, fluid.rs_nodes)


def _branch(fluid: BOFluid, row: jnp.ndarray, p: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Linear interpolation/extrapolation of ``1/B``, ``1/(B mu)`` along branch ``row`` at ``p``."""
    bp = fluid.o_p[row]  # (N, L)
    j = jnp.clip(jnp.sum(bp <= p[:, None], axis=1) - 1, 0, fluid.o_count[row] - 2)
    take = lambda a, jj: jnp.take_along_axis(a, jj[:, None], axis=1)[:, 0]  # noqa: E731
    p0, p1 = take(bp, j), take(bp, j + 1)
    w = (p - p0) / (p1 - p0)
    ib = fluid.o_invb[row]
    ibm = fluid.o_invbmu[row]
    return take(ib, j) + w * (take(ib, j + 1) - take(ib, j)), take(ibm, j) + w * (
        take(ibm, j + 1) - take(ibm, j)
    )


def oil_pvt(fluid: BOFluid, p: jnp.ndarray, rs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(1/B_o, 1/(B_o mu_o))`` of oil with dissolved gas ``rs`` at pressure ``p`` (arrays of one shape)."""
    shape = jnp.shape(p)
    p = jnp.reshape(jnp.asarray(p, float), (-1,))
    rs = jnp.reshape(jnp.broadcast_to(rs, shape), (-1,))
    nodes = fluid.rs_nodes
    upper, alpha = table_segment(rs, nodes)
    i = upper - 1
    shift = fluid.pb_nodes[i + 1] - fluid.pb_nodes[i]
    b1, bm1 = _branch(fluid, i, p - alpha * shift)
    b2, bm2 = _branch(fluid, i + 1, p + (1 - alpha) * shift)
    invb = b1 * (1 - alpha) + b2 * alpha
    invbmu = bm1 * (1 - alpha) + bm2 * alpha
    return jnp.reshape(invb, shape), jnp.reshape(invbmu, shape)


def gas_pvt(fluid: BOFluid, p: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(1/B_g, 1/(B_g mu_g))`` from PVDG (linear in pressure, extrapolated)."""
    return _interp_extrap(p, fluid.g_p, fluid.g_invb), _interp_extrap(p, fluid.g_p, fluid.g_invbmu)


def relperm3(
    fluid: BOFluid, sw: jnp.ndarray, sg: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """``(k_rw, k_ro, k_rg, p_cow, p_cgo)``: SWOF/SGOF with Eclipse's default three-phase oil model."""
    w, g = fluid.swof, fluid.sgof
    swco = w[0, 0]
    krw, pcow = interp_clamped(sw, w[:, 0], w[:, 1], w[:, 3])
    krg, pcgo = interp_clamped(sg, g[:, 0], g[:, 1], g[:, 3])
    swf = jnp.maximum(sw, swco)
    (krow,) = interp_clamped(sg + swf, w[:, 0], w[:, 2])
    (krog,) = interp_clamped(sg + swf - swco, g[:, 0], g[:, 2])
    den = sg + swf - swco
    safe = jnp.where(den > 1e-5, den, 1.0)
    kro = jnp.where(den > 1e-5, (sg * krog + (swf - swco) * krow) / safe, 0.5 * (krog + krow))
    return krw, kro, krg, pcow, pcgo
