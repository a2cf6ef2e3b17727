"""Field economics ("digital asset"): yearly cash flow, NPV, profitability index, payback, ensembles.

All money in the YAML's currency; volumes at surface conditions in m3 (SI at this boundary; the
simulator's rates are m3/s). Conventions:

- year ``k`` (``k = 0 .. K-1``) collects the volumes produced/injected between ``k`` and ``k + 1`` years
  after the start (cumulatives interpolated at year ends); its cash flow is discounted at the year end,
  ``(1 + r)^-(k + 1)``; capex of year ``t`` is discounted by ``(1 + r)^-t`` (``t = 0``: at the start);
- ``cash_k = revenue - royalty - opex - tax - capex``, ``revenue = p_o V_o + p_g V_g``,
  ``royalty = royalty_rate * revenue``, ``opex = fixed + c_w V_w,prod + c_inj V_w,inj (+ c_ginj V_g,inj)``,
  ``tax = tax_rate * max(revenue - royalty - opex, 0)``;
- ``PI = PV(net operating inflows) / PV(capex)``; payback = first time the undiscounted cumulative
  cash flow reaches zero (linear within the year);
- ensembles: ``P90`` is the value exceeded with 90 % probability (the 10th percentile), ``P10`` the
  90th percentile, as in petroleum-resources reporting.

Everything here is differentiable (``jax.grad`` of NPV with respect to well controls).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .ensemble import map_members

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import Case
    from .solver import Report

YEAR = 365.25 * 86400.0  # s


class CapexItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    year: float = Field(ge=0)
    amount: float = Field(ge=0)


class Economics(BaseModel):
    """Economic assumptions (see the module docstring for the conventions)."""

    model_config = ConfigDict(extra="forbid")
    currency: str = "USD"
    oil_price: float = Field(default=0.0, ge=0, description="per sm3 of oil")
    gas_price: float = Field(default=0.0, ge=0, description="per sm3 of gas")
    water_production_cost: float = Field(default=0.0, ge=0, description="per sm3 of water produced")
    water_injection_cost: float = Field(default=0.0, ge=0, description="per sm3 of water injected")
    gas_injection_cost: float = Field(default=0.0, ge=0, description="per sm3 of gas injected")
    fixed_opex: float = Field(default=0.0, ge=0, description="per year")
    royalty: float = Field(default=0.0, ge=0, le=1)
    tax_rate: float = Field(default=0.0, ge=0, le=1)
    discount_rate: float = Field(default=0.1, gt=-1)
    capex: list[CapexItem] = Field(default_factory=list)
    years: int | None = Field(default=None, ge=1, description="evaluation horizon; default: the schedule")


class CashFlow(NamedTuple):
    """Yearly arrays (length K) and capex timing."""

    revenue: jnp.ndarray
    royalty: jnp.ndarray
    opex: jnp.ndarray
    tax: jnp.ndarray
    net_operating: jnp.ndarray  # revenue - royalty - opex - tax
    capex: jnp.ndarray  # capex booked in year k (at its start for k = 0)
    capex_discount: jnp.ndarray  # discount factor of each year's capex
    discount: jnp.ndarray  # end-of-year discount factors


def load_economics(path: str | Path) -> Economics:
    """Read an economics YAML (errors name the file and field)."""
    from pipelines.config import model_from_yaml

    return model_from_yaml(Economics, path)  # type: ignore[return-value]


def yearly_volumes(t: jnp.ndarray, cumulative: jnp.ndarray, years: int) -> jnp.ndarray:
    """Volumes per year from cumulative volumes ``cumulative`` (…, n) at times ``t`` (s, n)."""
    ends = jnp.arange(years + 1) * YEAR
    tt = jnp.concatenate([jnp.zeros(1), t])
    cc = jnp.concatenate([jnp.zeros(cumulative.shape[:-1] + (1,)), cumulative], axis=-1)
    at_ends = jnp.interp(ends, tt, cc)
    return jnp.diff(at_ends)


def cash_flow(volumes: dict[str, jnp.ndarray], econ: Economics) -> CashFlow:
    """Yearly cash flow from yearly volumes (m3): keys oil, gas, water_prod, water_inj, gas_inj."""
    zero = jnp.zeros_like(volumes["oil"])
    v = {k: volumes.get(k, zero) for k in ("oil", "gas", "water_prod", "water_inj", "gas_inj")}
    years = v["oil"].shape[-1]
    revenue = econ.oil_price * v["oil"] + econ.gas_price * v["gas"]
    royalty = econ.royalty * revenue
    opex = (
        econ.fixed_opex
        + econ.water_production_cost * v["water_prod"]
        + econ.water_injection_cost * v["water_inj"]
        + econ.gas_injection_cost * v["gas_inj"]
    )
    tax = econ.tax_rate * jnp.maximum(revenue - royalty - opex, 0.0)
    capex = np.zeros(years)
    for item in econ.capex:
        capex[min(int(item.year), years - 1)] += item.amount
    k = jnp.arange(years)
    discount = (1.0 + econ.discount_rate) ** -(k + 1.0)
    return CashFlow(
        revenue,
        royalty,
        opex,
        tax,
        revenue - royalty - opex - tax,
        jnp.asarray(capex),
        (1.0 + econ.discount_rate) ** -k.astype(float),
        discount,
    )


def npv(cf: CashFlow) -> jnp.ndarray:
    """Net present value."""
    return jnp.sum(cf.net_operating * cf.discount, axis=-1) - jnp.sum(cf.capex * cf.capex_discount, axis=-1)


def indicators(cf: CashFlow, econ: Economics) -> dict[str, Any]:
    """NPV, profitability index, payback (years) and the undiscounted total cash."""
    pv_capex = float(jnp.sum(cf.capex * cf.capex_discount))
    pv_in = float(jnp.sum(cf.net_operating * cf.discount))
    yearly = np.asarray(cf.net_operating) - np.asarray(cf.capex) * (np.arange(cf.capex.shape[-1]) > 0)
    # undiscounted cumulative cash at t = 0 (after the start-up capex), 1, 2, ... years
    points = np.concatenate([[-float(cf.capex[0])], -float(cf.capex[0]) + np.cumsum(yearly)])
    payback = 0.0 if points[0] >= 0 else float("nan")
    for i in range(1, points.size):
        if np.isnan(payback) and points[i] >= 0 > points[i - 1]:
            payback = (i - 1) + -points[i - 1] / (points[i] - points[i - 1])
    return {
        "npv": pv_in - pv_capex,
        "profitability_index": pv_in / pv_capex if pv_capex > 0 else float("inf"),
        "payback_years": float(payback),
        "undiscounted_cash": float(points[-1]),
        "currency": econ.currency,
    }


def case_volumes(case: Case, rep: Report, years: int) -> dict[str, jnp.ndarray]:
    """Yearly field volumes (m3) of a simulation (production positive, injection positive)."""
    t = jnp.cumsum(case.dts)
    is_inj = case.controls.is_inj > 0
    dcw = jnp.diff(jnp.concatenate([jnp.zeros((1, rep.cum_w.shape[-1])), rep.cum_w]), axis=0)
    dch = jnp.diff(jnp.concatenate([jnp.zeros((1, rep.cum_h.shape[-1])), rep.cum_h]), axis=0)
    field = {
        "water_prod": jnp.cumsum(jnp.sum(jnp.where(is_inj, 0.0, dcw), axis=1)),
        "water_inj": jnp.cumsum(jnp.sum(jnp.where(is_inj, -dcw, 0.0), axis=1)),
        "hc_prod": jnp.cumsum(jnp.sum(jnp.where(is_inj, 0.0, dch), axis=1)),
        "hc_inj": jnp.cumsum(jnp.sum(jnp.where(is_inj, -dch, 0.0), axis=1)),
    }
    vol = {k: yearly_volumes(t, v, years) for k, v in field.items()}
    out = {"water_prod": vol["water_prod"], "water_inj": vol["water_inj"]}
    if case.hydrocarbon == "OIL":
        out["oil"] = vol["hc_prod"]
    else:
        out["oil"] = jnp.zeros_like(vol["hc_prod"])
        out["gas"] = vol["hc_prod"]
        out["gas_inj"] = vol["hc_inj"]
    return out


def horizon(case: Case, econ: Economics) -> int:
    """Number of years evaluated (the config's ``years``, or the schedule length rounded up)."""
    return econ.years or max(1, int(np.ceil(float(np.sum(case.dts)) / YEAR - 1e-9)))


def case_cash_flow(case: Case, rep: Report, econ: Economics) -> CashFlow:
    """Yearly cash flow of one simulated case."""
    return cash_flow(case_volumes(case, rep, horizon(case, econ)), econ)


def ensemble_npv(
    case: Case, econ: Economics, perm_mults: np.ndarray, block: int | None | str = "auto"
) -> np.ndarray:
    """NPV of each permeability-multiplier member, simulated in one compiled run (members ``vmap``-ed
    in blocks of ``block``, see :func:`.ensemble.map_members`)."""
    years = horizon(case, econ)

    def member(m: jnp.ndarray) -> jnp.ndarray:
        rep = case.sim.run(case.model, case.x0, case.controls, case.dts, case.params(m))
        return npv(cash_flow(case_volumes(case, rep, years), econ))

    return np.asarray(map_members(member, jnp.asarray(perm_mults, float), block))


def percentiles(values: np.ndarray) -> tuple[float, float, float]:
    """(P10, P50, P90) with P90 the value exceeded with 90 % probability."""
    v = np.asarray(values)
    return float(np.percentile(v, 90)), float(np.percentile(v, 50)), float(np.percentile(v, 10))


def npv_of_injection(case: Case, econ: Economics, substeps: int = 2, iterations: int = 6) -> Any:
    """``f(scale) -> NPV``: NPV as a differentiable function of per-well injection-rate multipliers.

    Uses the fixed-step solver (``lax.scan`` only) so that ``jax.grad`` runs through the simulation.
    """
    years = horizon(case, econ)
    ctrl0 = case.controls
    adjustable = (ctrl0.is_inj > 0) & (ctrl0.rate < 1e29)

    def f(scale: jnp.ndarray) -> jnp.ndarray:
        rate = jnp.where(adjustable, ctrl0.rate * scale[None, :], ctrl0.rate)
        rep = case.sim.run_fixed(
            case.model,
            case.x0,
            ctrl0._replace(rate=rate),
            case.dts,
            case.params(),
            substeps=substeps,
            iterations=iterations,
        )
        return npv(cash_flow(case_volumes(case, rep, years), econ))

    return f


def optimise_injection(
    case: Case,
    econ: Economics,
    steps: int = 8,
    learning_rate: float = 0.05,
    bounds: tuple[float, float] = (0.2, 3.0),
) -> tuple[np.ndarray, list[float]]:
    """Raise NPV by gradient ascent (optax Adam on log multipliers) over per-well injection rates.

    Returns the best multipliers found and the NPV history (first entry: the base case). The NPV
    landscape has kinks (control switches, breakthrough), so the best iterate is kept.
    """
    import optax

    f = npv_of_injection(case, econ)
    value_and_grad = jax.jit(jax.value_and_grad(lambda z: -f(jnp.exp(z)) / 1e6))
    z = jnp.zeros(case.sim.nw)
    opt = optax.adam(learning_rate)
    state = opt.init(z)
    history: list[float] = []
    best_z, best = z, -np.inf
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    for _ in range(steps + 1):
        loss, g = value_and_grad(z)
        history.append(-float(loss) * 1e6)
        if history[-1] > best:
            best, best_z = history[-1], z
        updates, state = opt.update(g, state)
        z = jnp.clip(optax.apply_updates(z, updates), lo, hi)
    return np.exp(np.asarray(best_z)), history
