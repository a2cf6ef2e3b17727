"""Three-phase live-oil decks -> :class:`.blackoil.BlackOilSimulator` cases, and their summary vectors.

The deck's grid and wells come from :func:`.adapter.grid_and_wells`; the black-oil keywords that the
generic reader does not keep (PVTO, RSVD, RS, DRSDT) are read here through OPM's parser. Initial state:
explicit PRESSURE/SWAT/SGAS/RS, or EQUIL: oil pressure integrated hydrostatically from the datum with
the live-oil density, water and gas pressures from the contacts (``p_w = p_o - p_cow`` at the OWC,
``p_g = p_o + p_cgo`` at the GOC), saturations by inverting the capillary pressures at cell centres
(sharp contacts when they are zero), ``R_s`` from RSVD (capped at saturation; saturated in the gas cap;
without RSVD the saturated value at the GOC).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from pipelines.sources.reservoir import DAY, UNITS, DeckData

from . import blackoil_props as bp
from . import props, wells
from .blackoil import BlackOilSimulator, BOControls, BOReport, BOState
from .solver import Model, Options

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import Case

#: keywords of three-phase decks that change the physics modelled here (Stone kro, bubble point vs
#: depth, Rs limits other than DRSDT, constant-Rs oil): refused by name
UNSUPPORTED_BLACK_OIL = {
    "STONE",
    "STONE1",
    "STONE2",
    "STONE1EX",
    "PBVD",
    "VAPPARS",
    "RSCONST",
    "RSCONSTT",
    "PVCO",
}


def _opm_deck(path: Any) -> Any:
    from opm.io.parser import Parser

    return Parser().parse(str(path))


def _extra(deck: DeckData) -> dict[str, Any]:
    """PVTO records, RSVD table, RS array and DRSDT (1/s or None) of the deck (SI)."""
    from .adapter import DeckError

    raw = _opm_deck(deck.path)
    for key in sorted(UNSUPPORTED_BLACK_OIL & {kw.name for kw in raw}):
        raise DeckError(f"{deck.path}: keyword {key} changes the black-oil physics and is not modelled")
    if "PVTO" not in raw:
        raise DeckError(f"{deck.path}: PVTO (live-oil PVT) is required for a DISGAS deck")
    if len(raw["PVTO"]) == 0:
        raise DeckError(f"{deck.path}: PVTO is empty")
    pvto = []
    for rec in raw["PVTO"]:
        rs = rec[0].get_SI_data_list()
        if len(rs) == 0:  # the terminating record of the table
            continue
        pvto.append((float(rs[0]), np.asarray(rec[1].get_SI_data_list(), float)))
    rsvd = np.asarray(raw["RSVD"][0][0].get_SI_data_list(), float).reshape(-1, 2) if "RSVD" in raw else None
    rs_arr = np.asarray(raw["RS"].get_SI_array(), float) if "RS" in raw else None
    drsdt_kw = [kw for kw in raw if kw.name == "DRSDT"]
    for kw in drsdt_kw:
        option = kw[0][1].get_str(0).strip() if getattr(kw[0][1], "__has_value")(0) else "ALL"
        if option != "ALL":
            raise DeckError(f"{deck.path}: DRSDT option {option!r} is not supported (ALL)")
    values = {float(kw[0][0].get_SI_data_list()[0]) for kw in drsdt_kw}
    if len(values) > 1:
        raise DeckError(
            f"{deck.path}: DRSDT changes during the schedule ({sorted(values)}); one value is supported"
        )
    drsdt = values.pop() if values else None
    return {"pvto": pvto, "rsvd": rsvd, "rs": rs_arr, "drsdt": drsdt}


def black_oil_fluid(deck: DeckData, pvto: list[tuple[float, np.ndarray]]) -> bp.BOFluid:
    """:class:`.blackoil_props.BOFluid` from the deck's tables (named errors for missing/bad tables)."""
    from .adapter import DeckError

    p = deck.props
    name = str(deck.path)
    for key in ("PVTW", "DENSITY", "PVDG", "SWOF", "SGOF"):
        if not p[key]:
            raise DeckError(f"{name}: {key} is required for a three-phase black-oil deck")
    pvtw = np.asarray(p["PVTW"][0][:5], float)
    pvtw = np.where(np.isnan(pvtw), 0.0, pvtw)
    rho_o, rho_w, rho_g = p["DENSITY"][0][:3]
    rock = np.asarray(p["ROCK"][0][:2], float) if p["ROCK"] else np.array([1e5, 0.0])
    g = p["PVDG"][0]
    props.check_pvt_table("PVDG", g[:, 0], g[:, 1], g[:, 2])
    swof, sgof = p["SWOF"][0], p["SGOF"][0]
    bp.check_three_phase_tables(swof, sgof)
    o = bp.pvto_tables(pvto)
    arr = jnp.asarray
    return bp.BOFluid(
        rho_w=arr(rho_w), rho_o=arr(rho_o), rho_g=arr(rho_g), pvtw=arr(pvtw), rock=arr(rock),
        g_p=arr(g[:, 0]), g_invb=arr(1 / g[:, 1]), g_invbmu=arr(1 / (g[:, 1] * g[:, 2])),
        rs_nodes=arr(o["rs_nodes"]), pb_nodes=arr(o["pb_nodes"]), o_p=arr(o["o_p"]), o_invb=arr(o["o_invb"]),
        o_invbmu=arr(o["o_invbmu"]), o_count=arr(o["o_count"]), swof=arr(swof), sgof=arr(sgof),
    )  # fmt: skip


def _pressure_profile(zs: np.ndarray, z0: float, p0: float, rho: Any) -> np.ndarray:
    """Hydrostatic pressure on the depth grid ``zs`` through ``(z0, p0)`` (explicit midpoint steps)."""
    p = np.empty_like(zs)
    i0 = int(np.searchsorted(zs, z0))
    cur, prev = p0, z0
    for i in range(i0, zs.size):
        dz = zs[i] - prev
        cur = (
            cur
            + rho(cur + 0.5 * rho(cur, prev) * props.GRAVITY * dz, 0.5 * (zs[i] + prev)) * props.GRAVITY * dz
        )
        p[i], prev = cur, zs[i]
    cur, prev = p0, z0
    for i in range(i0 - 1, -1, -1):
        dz = prev - zs[i]
        cur = (
            cur
            - rho(cur - 0.5 * rho(cur, prev) * props.GRAVITY * dz, 0.5 * (zs[i] + prev)) * props.GRAVITY * dz
        )
        p[i], prev = cur, zs[i]
    return p


def equilibrate(deck: DeckData, fluid: bp.BOFluid, depth: np.ndarray, rsvd: np.ndarray | None):
    """Initial ``(p_o, S_w, S_g, R_s)`` per active cell from EQUIL (see the module docstring)."""
    rec = deck.init["EQUIL"][0]
    datum, p_datum, owc = rec[0], rec[1], rec[2]
    pc_owc = 0.0 if len(rec) < 4 or np.isnan(rec[3]) else rec[3]
    goc = rec[4] if len(rec) > 4 and np.isfinite(rec[4]) else datum
    pc_goc = 0.0 if len(rec) < 6 or np.isnan(rec[5]) else rec[5]
    sat_fn = jax.jit(bp.rs_sat)
    oil_fn = jax.jit(lambda f, p, rs: (f.rho_o + rs * f.rho_g) * bp.oil_pvt(f, p, rs)[0])
    rs_sat = lambda p: float(sat_fn(fluid, jnp.asarray(p)))  # noqa: E731
    zs = np.linspace(min(depth.min(), datum, owc, goc) - 1, max(depth.max(), datum, owc, goc) + 1, 401)
    if rsvd is None:
        rs_z = None
    else:
        rs_z = lambda z: float(np.interp(z, rsvd[:, 0], rsvd[:, 1]))  # noqa: E731

    def rho_o(p: float, z: float) -> float:
        rs = min(rs_z(z), rs_sat(p)) if rs_z is not None else min(rs_goc, rs_sat(p))
        return float(oil_fn(fluid, jnp.asarray(p), jnp.asarray(rs)))

    rs_goc = np.inf
    if rs_z is None:  # saturated at the GOC pressure: needs that pressure, found with the datum's Rs
        rs_goc = rs_sat(p_datum)
        rs_goc = rs_sat(float(np.interp(goc, zs, _pressure_profile(zs, datum, p_datum, rho_o))))
    po = _pressure_profile(zs, datum, p_datum, rho_o)
    rho_w = lambda p, z: float(fluid.rho_w * props.water_pvt(fluid, jnp.asarray(p))[0])  # noqa: E731
    rho_g = lambda p, z: float(fluid.rho_g * bp.gas_pvt(fluid, jnp.asarray(p))[0])  # noqa: E731
    pw = _pressure_profile(zs, owc, float(np.interp(owc, zs, po)) - pc_owc, rho_w)
    pg = _pressure_profile(zs, goc, float(np.interp(goc, zs, po)) + pc_goc, rho_g)
    p_o, p_w, p_g = (np.interp(depth, zs, a) for a in (po, pw, pg))
    w, g = np.asarray(fluid.swof), np.asarray(fluid.sgof)
    if np.ptp(w[:, 3]) > 0:
        sw = np.interp(p_o - p_w, w[::-1, 3], w[::-1, 0])
    else:
        sw = np.where(depth > owc, w[-1, 0], w[0, 0])
    if np.ptp(g[:, 3]) > 0:
        sg = np.interp(p_g - p_o, g[:, 3], g[:, 0])
    else:
        sg = np.where(depth < goc, g[-1, 0], 0.0)
    sg = np.minimum(sg, 1.0 - sw)
    sat = np.asarray(bp.rs_sat(fluid, jnp.asarray(p_o)))
    rs_cell = np.array([rs_z(z) for z in depth]) if rs_z is not None else np.full(depth.shape, rs_goc)
    rs = np.where(sg > 0, sat, np.minimum(rs_cell, sat))
    return p_o, sw, sg, rs


def _controls(deck: DeckData, names: list[str]) -> BOControls:
    rows = []
    for step in deck.schedule.controls:
        cols = []
        for w in names:
            c = step.get(w)
            if c is None or c.status != "OPEN":
                cols.append((0, 0, 0, 0, 0, 0, wells.BIG, 0.0))
            elif c.kind == "INJ":
                rate = wells.BIG if c.mode == "BHP" or not np.isfinite(c.rate) else c.rate
                cols.append((1, 1, 1 if c.phase == "WATER" else 0, 0, 0, 0, rate, c.bhp))
            else:
                wts = {
                    "ORAT": (0, 1, 0),
                    "WRAT": (1, 0, 0),
                    "GRAT": (0, 0, 1),
                    "LRAT": (1, 1, 0),
                    "BHP": (0, 1, 0),
                }
                target = {"ORAT": c.orat, "GRAT": c.grat, "WRAT": c.wrat, "LRAT": c.lrat, "BHP": np.inf}[
                    c.mode
                ]
                rate = wells.BIG if not np.isfinite(target) else target
                cols.append((1, 0, 0, *wts[c.mode], rate, c.bhp))
        rows.append(cols)
    arr = np.asarray(rows, float).reshape(len(rows), len(names), 8)
    return BOControls(*(jnp.asarray(arr[:, :, k]) for k in range(8)))


_SIMULATORS: dict[tuple, BlackOilSimulator] = {}


def _simulator(n: int, nw: int, conn: Any, cells: np.ndarray, perf_well: np.ndarray, drsdt: float | None,
               options: Options | None) -> BlackOilSimulator:  # fmt: skip
    """One simulator (and its compiled run) per model layout, DRSDT and options, reused across builds."""
    import hashlib

    arrays = (conn.a, conn.b, cells, perf_well)
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()
    key = (n, nw, digest, drsdt, options or Options())
    if key not in _SIMULATORS:
        _SIMULATORS[key] = BlackOilSimulator(n, nw, conn, cells, perf_well, drsdt, options)
    return _SIMULATORS[key]


def build_blackoil(deck: DeckData, options: Options | None = None) -> Case:
    """A runnable :class:`.adapter.Case` (``hydrocarbon="BLACKOIL"``) for a three-phase live-oil deck."""
    from .adapter import Case, DeckError, grid_and_wells

    extra = _extra(deck)
    fluid = black_oil_fluid(deck, extra["pvto"])
    grid = grid_and_wells(deck)
    act, depth, cells, perf_well = grid["act"], grid["depth"], grid["cells"], grid["perf_well"]
    model = Model(jnp.asarray(grid["pv"]), jnp.asarray(depth), grid["conn"], cells, perf_well,
                  jnp.asarray(grid["wi"]), jnp.asarray(grid["ref_depth"]), fluid)  # fmt: skip
    init = deck.init
    if init["PRESSURE"] is not None:
        shape = grid["static"]["actnum"].shape
        p0 = init["PRESSURE"].reshape(shape)[act]
        swco = float(fluid.swof[0, 0])
        sw0 = init["SWAT"].reshape(shape)[act] if init["SWAT"] is not None else np.full(p0.shape, swco)
        sg0 = init["SGAS"].reshape(shape)[act] if init["SGAS"] is not None else np.zeros(p0.shape)
        if extra["rs"] is None:
            raise DeckError(f"{deck.path}: explicit initial state of a DISGAS deck needs RS with PRESSURE")
        rs0 = extra["rs"].reshape(shape)[act]
    elif init["EQUIL"]:
        p0, sw0, sg0, rs0 = equilibrate(deck, fluid, depth, extra["rsvd"])
    else:
        raise DeckError(f"{deck.path}: initial state needs EQUIL or PRESSURE (+SWAT/SGAS/RS)")
    names = grid["well_names"]
    bhp0 = np.array([p0[cells[perf_well == k]].mean() for k in range(len(names))])
    x0 = BOState(*(jnp.asarray(a, float) for a in (p0, sw0, sg0, rs0, bhp0)))
    controls = _controls(deck, names)
    dts = jnp.asarray(np.diff(deck.schedule.times) * DAY)
    sim = _simulator(len(p0), len(names), grid["conn"], cells, perf_well, extra["drsdt"], options)
    if len(dts):
        x0 = x0._replace(bhp=sim.initial_bhp3(model, x0, jax.tree_util.tree_map(lambda a: a[0], controls)))
    return Case(sim, model, x0, controls, dts, names, "BLACKOIL", deck.units, grid["idx"], deck)


def summary_blackoil(case: Case, rep: BOReport) -> pd.DataFrame:
    """Summary vectors (deck units) per report step of a black-oil run (see :mod:`.summary`)."""
    u = UNITS[case.units]
    liq, gas = u["liquid"], u["gas"]
    inj = np.asarray(case.controls.is_inj) > 0
    prod = ~inj
    q = {a: np.asarray(getattr(rep, f"q{a}")) for a in "wog"}
    dcum = {a: np.diff(np.vstack([np.zeros(q[a].shape[1]), np.asarray(getattr(rep, f"cum_{a}"))]), axis=0)
            for a in "wog"}  # fmt: skip
    unit = {"w": liq, "o": liq, "g": gas}
    pr = {a: np.where(prod, q[a], 0.0) / unit[a] for a in "wog"}
    ir = {a: np.where(inj, -q[a], 0.0) / unit[a] for a in "wg"}
    pt = {a: np.cumsum(np.where(prod, dcum[a], 0.0).sum(1)) / (unit[a] * DAY) for a in "wog"}
    wit = np.cumsum(np.where(inj, -dcum["w"], 0.0).sum(1)) / (liq * DAY)
    p, sw = np.asarray(rep.p), np.asarray(rep.sw)
    hcpv = np.asarray(props.pore_volume(case.model.fluid, case.model.pv_ref, jnp.asarray(p))) * (1.0 - sw)
    fpr = (p * hcpv).sum(axis=1) / hcpv.sum(axis=1) / u["pressure"]
    cols = {
        "TIME": case.deck.schedule.times[1:],
        "FOPR": pr["o"].sum(1), "FWPR": pr["w"].sum(1), "FGPR": pr["g"].sum(1), "FWIR": ir["w"].sum(1), "FPR": fpr,
        "FOPT": pt["o"], "FWPT": pt["w"], "FGPT": pt["g"], "FWIT": wit, "FGIR": ir["g"].sum(1),
    }  # fmt: skip
    bhp = np.asarray(rep.bhp) / u["pressure"]
    for k, name in enumerate(case.well_names):
        cols[f"WBHP:{name}"] = bhp[:, k]
        cols[f"WOPR:{name}"] = pr["o"][:, k]
        cols[f"WWPR:{name}"] = pr["w"][:, k]
        cols[f"WGPR:{name}"] = pr["g"][:, k]
        cols[f"WWIR:{name}"] = ir["w"][:, k]
        cols[f"WGIR:{name}"] = ir["g"][:, k]
    return pd.DataFrame(cols)
