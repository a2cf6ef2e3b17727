"""Wells: Peaceman well index, perforation inflow and the rate/BHP control equation with switching.

Peaceman (1983) for a vertical well in an anisotropic Cartesian cell::

    r0 = 0.28 sqrt(sqrt(ky/kx) dx^2 + sqrt(kx/ky) dy^2) / ((ky/kx)^(1/4) + (kx/ky)^(1/4))
    WI = 2 pi sqrt(kx ky) h / (ln(r0 / rw) + skin)

(``h = dz * NTG``; x/y-directed completions permute the axes). The perforation rate of phase ``a``
(surface m^3/s, production positive) is ``q = WI * lambda_a * (p_cell - p_well(z))`` with
``lambda_a = kr_a / (B_a mu_a)`` for producers; injectors use the cell's total mobility and the
injected phase's ``1/B``. ``p_well(z) = bhp + rho_mix g (z - z_ref)``.

Control: each well solves ``min(g_rate, g_bhp) = 0`` with ``g_rate`` the scaled distance to its rate
target and ``g_bhp`` to its BHP limit, so a well switches between rate and BHP control inside
Newton's iteration when a limit is hit (semismooth Newton).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

BIG = 1e30
P_SCALE = 1e5  # Pa (1 bar) for well equations
Q_SCALE = 1.0 / 86400.0  # m3/s (1 m3/day)


def peaceman_index(
    kx: np.ndarray,
    ky: np.ndarray,
    kz: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    dz: np.ndarray,
    ntg: np.ndarray,
    rw: np.ndarray,
    skin: np.ndarray,
    direction: np.ndarray | None = None,
) -> np.ndarray:
    """Peaceman well index (m^3) per completion (SI inputs; ``direction`` 'X', 'Y' or 'Z')."""
    direction = np.asarray(["Z"] * np.size(kx)) if direction is None else np.asarray(direction)
    wi = np.empty(np.size(kx))
    for d in ("X", "Y", "Z"):
        sel = direction == d
        if not np.any(sel):
            continue
        if d == "Z":
            k1, k2, l1, l2, h = kx[sel], ky[sel], dx[sel], dy[sel], dz[sel] * ntg[sel]
        elif d == "X":
            k1, k2, l1, l2, h = ky[sel], kz[sel], dy[sel], dz[sel], dx[sel]
        else:
            k1, k2, l1, l2, h = kx[sel], kz[sel], dx[sel], dz[sel], dy[sel]
        r0 = (
            0.28
            * np.sqrt(np.sqrt(k2 / k1) * l1**2 + np.sqrt(k1 / k2) * l2**2)
            / ((k2 / k1) ** 0.25 + (k1 / k2) ** 0.25)
        )
        wi[sel] = 2 * np.pi * np.sqrt(k1 * k2) * h / (np.log(r0 / rw[sel]) + skin[sel])
    return wi


class WellControls(NamedTuple):
    """Per-well controls of one report step (arrays of length n_wells, SI)."""

    is_open: jnp.ndarray  # 1 open, 0 shut
    is_inj: jnp.ndarray  # 1 injector, 0 producer
    inj_water: jnp.ndarray  # injectors: 1 water, 0 hydrocarbon (gas)
    w_water: jnp.ndarray  # producers: weight of water rate in the controlled rate
    w_hc: jnp.ndarray  # producers: weight of hydrocarbon rate in the controlled rate
    rate: jnp.ndarray  # target surface rate (m3/s), BIG when BHP-controlled
    bhp: jnp.ndarray  # producer minimum / injector maximum BHP (Pa)


def perforation_rates(
    wi: jnp.ndarray,
    dp: jnp.ndarray,
    dp_w: jnp.ndarray,
    lam_w: jnp.ndarray,
    lam_h: jnp.ndarray,
    lam_tot_w: jnp.ndarray,
    lam_tot_h: jnp.ndarray,
    is_inj: jnp.ndarray,
    inj_water: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Surface rates (water, hydrocarbon) per perforation, production positive.

    ``dp`` is ``p_h,cell - p_well`` and ``dp_w`` ``p_w,cell - p_well``. ``lam_*`` are ``kr/(B mu)``;
    ``lam_tot_w``/``lam_tot_h`` the cell's total mobility times ``1/B`` of water/hydrocarbon (injection).
    """
    qw_prod = wi * lam_w * dp_w
    qh_prod = wi * lam_h * dp
    qw_inj = wi * lam_tot_w * dp_w * inj_water
    qh_inj = wi * lam_tot_h * dp * (1.0 - inj_water)
    qw = jnp.where(is_inj > 0, qw_inj, qw_prod)
    qh = jnp.where(is_inj > 0, qh_inj, qh_prod)
    return qw, qh


def control_equation(
    ctrl: WellControls, bhp: jnp.ndarray, qw: jnp.ndarray, qh: jnp.ndarray, p_ref: jnp.ndarray
) -> jnp.ndarray:
    """Scaled well equations ``min(g_rate, g_bhp)``; shut wells pin their BHP to ``p_ref``.

    ``qw``, ``qh`` are the well's total surface rates (production positive).
    """
    q_prod = ctrl.w_water * qw + ctrl.w_hc * qh
    q_inj = -(ctrl.inj_water * qw + (1.0 - ctrl.inj_water) * qh)
    # relative distances to the rate target and the BHP limit: comparable scales for the switch
    q_scale = jnp.where(ctrl.rate < 0.5 * BIG, jnp.maximum(jnp.abs(ctrl.rate), Q_SCALE), Q_SCALE)
    p_scale = jnp.maximum(jnp.abs(ctrl.bhp), P_SCALE)
    g_rate = jnp.where(ctrl.is_inj > 0, ctrl.rate - q_inj, ctrl.rate - q_prod) / q_scale
    g_bhp = jnp.where(ctrl.is_inj > 0, ctrl.bhp - bhp, bhp - ctrl.bhp) / p_scale
    eq = jnp.minimum(g_rate, g_bhp)
    return jnp.where(ctrl.is_open > 0, eq, (bhp - p_ref) / P_SCALE)
