"""Deck/cube -> JAX arrays (the only place where the reservoir twin meets xarray/pandas).

:func:`build` turns :class:`pipelines.sources.reservoir.DeckData` into a :class:`.solver.Simulator`,
its :class:`.solver.Model`, the initial :class:`.solver.State`, the per-report-step well controls and
the report-step lengths; three-phase live-oil decks (OIL, WATER, GAS, DISGAS) go to
:func:`.blackoil_deck.build_blackoil`. Unsupported physics (unknown phase sets, rate modes that do not
exist in the model) raise :class:`DeckError` naming the deck and the feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pipelines.sources.reservoir import DAY, MD, UNITS, DeckData

from . import geometry, props, wells
from .solver import Model, Options, Simulator, State


class DeckError(ValueError):
    """A deck asks for something the simulator does not model (the message names deck and feature)."""


@dataclass
class Case:
    """A simulation case ready to run."""

    sim: Simulator
    model: Model
    x0: State
    controls: wells.WellControls
    dts: jnp.ndarray
    well_names: list[str]
    hydrocarbon: str  # "OIL", "GAS" or "BLACKOIL" (three-phase live oil)
    units: str
    cell_index: np.ndarray  # (layer, y, x) -> active index (-1 inactive)
    deck: DeckData

    def params(self, perm_mult: Any = 1.0, poro_mult: Any = 1.0) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Per-cell multipliers (broadcast from scalars)."""
        n = self.sim.n
        return jnp.broadcast_to(jnp.asarray(perm_mult, float), (n,)), jnp.broadcast_to(
            jnp.asarray(poro_mult, float), (n,)
        )

    def run(self, perm_mult: Any = 1.0, poro_mult: Any = 1.0) -> Any:
        """Adaptive run of the whole schedule (jit-compiled entry)."""
        return self.sim.run(self.model, self.x0, self.controls, self.dts, self.params(perm_mult, poro_mult))


def _fluid(deck: DeckData, hydrocarbon: str) -> tuple[props.Fluid, bool]:
    p = deck.props
    name = str(deck.path)
    if not p["PVTW"]:
        raise DeckError(f"{name}: PVTW (water PVT) is required")
    if not p["DENSITY"]:
        raise DeckError(f"{name}: DENSITY is required")
    pvtw = np.asarray(p["PVTW"][0][:5], float)
    pvtw = np.where(np.isnan(pvtw), 0.0, pvtw)
    rho_o, rho_w, rho_g = p["DENSITY"][0][:3]
    rock = np.asarray(p["ROCK"][0][:2], float) if p["ROCK"] else np.array([1e5, 0.0])
    pvcd = np.array([1e5, 1.0, 0.0, 1e-3, 0.0])
    h_tab = np.array([[1e5, 1.0, 1e-3], [1e8, 0.99, 1e-3]])
    if hydrocarbon == "OIL":
        rho_h = rho_o
        if p["PVDO"]:
            h_tab, tabulated = p["PVDO"][0], True
            props.check_pvt_table("PVDO", h_tab[:, 0], h_tab[:, 1], h_tab[:, 2])
        elif p["PVCDO"]:
            pvcd, tabulated = np.asarray(p["PVCDO"][0][:5], float), False
            pvcd = np.where(np.isnan(pvcd), 0.0, pvcd)
        else:
            raise DeckError(f"{name}: oil PVT (PVDO or PVCDO) is required for an oil-water deck")
    else:
        rho_h, tabulated = rho_g, True
        if not p["PVDG"]:
            raise DeckError(f"{name}: PVDG is required for a gas-water deck")
        h_tab = p["PVDG"][0]
        props.check_pvt_table("PVDG", h_tab[:, 0], h_tab[:, 1], h_tab[:, 2])
    if hydrocarbon == "OIL":
        if not p["SWOF"]:
            raise DeckError(f"{name}: SWOF is required for an oil-water deck")
        t = p["SWOF"][0]
        props.check_saturation_table("SWOF", t[:, 0], [t[:, 1], t[:, 2]])
        sat = (t[:, 0], t[:, 1], t[:, 2], t[:, 3])
    else:
        if not (p["SWFN"] and p["SGFN"]):
            raise DeckError(f"{name}: SWFN and SGFN are required for a gas-water deck")
        w, g = p["SWFN"][0], p["SGFN"][0]
        props.check_saturation_table("SWFN", w[:, 0], [w[:, 1]])
        props.check_saturation_table("SGFN", g[:, 0], [g[:, 1]])
        sw = np.unique(np.concatenate([w[:, 0], 1.0 - g[:, 0]]))
        sat = (
            sw,
            np.interp(sw, w[:, 0], w[:, 1]),
            np.interp(1 - sw, g[:, 0], g[:, 1]),
            np.interp(sw, w[:, 0], w[:, 2]),
        )
    fluid = props.Fluid(
        rho_w=jnp.asarray(rho_w), rho_h=jnp.asarray(rho_h), pvtw=jnp.asarray(pvtw), pvcd_h=jnp.asarray(pvcd),
        h_p=jnp.asarray(h_tab[:, 0]), h_invb=jnp.asarray(1 / h_tab[:, 1]), h_invbmu=jnp.asarray(1 / (h_tab[:, 1] * h_tab[:, 2])),
        sat_sw=jnp.asarray(sat[0]), sat_krw=jnp.asarray(sat[1]), sat_krh=jnp.asarray(sat[2]), sat_pc=jnp.asarray(sat[3]),
        rock=jnp.asarray(rock),
    )  # fmt: skip
    return fluid, tabulated


def _equilibrate(
    deck: DeckData, fluid: props.Fluid, tabulated: bool, depth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hydrostatic initial pressure and saturation from EQUIL (contact, datum pressure in the h phase)."""
    rec = deck.init["EQUIL"][0]
    datum, p_datum, contact = rec[0], rec[1], rec[2]
    pc_contact = 0.0 if len(rec) < 4 or np.isnan(rec[3]) else rec[3]
    zs = np.linspace(min(depth.min(), datum, contact) - 1, max(depth.max(), datum, contact) + 1, 2001)

    def integrate(z0: float, p0: float, rho: Any) -> np.ndarray:
        p = np.empty_like(zs)
        i0 = int(np.searchsorted(zs, z0))
        p_up, p_dn = p0, p0
        for i in range(i0, zs.size):  # downwards
            zprev = z0 if i == i0 else zs[i - 1]
            p_dn = p_dn + rho(p_dn) * props.GRAVITY * (zs[i] - zprev)
            p[i] = p_dn
        for i in range(i0 - 1, -1, -1):
            znext = z0 if i == i0 - 1 else zs[i + 1]
            p_up = p_up - rho(p_up) * props.GRAVITY * (znext - zs[i])
            p[i] = p_up
        return p

    def rho_h(p: float) -> float:
        return float(fluid.rho_h * props.hydrocarbon_pvt(fluid, jnp.asarray(p), tabulated)[0])

    def rho_w(p: float) -> float:
        return float(fluid.rho_w * props.water_pvt(fluid, jnp.asarray(p))[0])

    ph = integrate(datum, p_datum, rho_h)
    p_contact = float(np.interp(contact, zs, ph)) - pc_contact
    pw = integrate(contact, p_contact, rho_w)
    p_h, p_w = np.interp(depth, zs, ph), np.interp(depth, zs, pw)
    pc_tab, sw_tab = np.asarray(fluid.sat_pc), np.asarray(fluid.sat_sw)
    if np.ptp(pc_tab) > 0:  # invert pc(sw) (decreasing)
        sw = np.interp(p_h - p_w, pc_tab[::-1], sw_tab[::-1])
    else:
        sw = np.where(depth > contact, sw_tab.max(), sw_tab.min())
    p = np.where(depth > contact, p_w + np.interp(sw, sw_tab, pc_tab), p_h)
    return p, sw


def grid_and_wells(deck: DeckData) -> dict[str, Any]:
    """Active cells, TPFA connections, pore volumes, depths and well completions of a read deck (SI).

    Returns a dict with ``static`` (full-grid arrays), ``idx`` (active index), ``act``, ``conn``,
    ``pv``, ``depth``, ``cells`` (active cell of each completion), ``perf_well``, ``well_names``,
    ``wi`` (well indices, 0 for shut completions) and ``ref_depth`` (per well).
    """
    name = str(deck.path)
    cube = deck.cube
    static = {
        k: np.asarray(cube[k].values, float)
        for k in ("dx", "dy", "dz", "ntg", "actnum", "multx", "multy", "multz", "depth", "porosity")
    }
    for k in ("permx", "permy", "permz"):
        static[k] = np.asarray(cube[k].values, float) * MD
    static["actnum"] = np.where(static["porosity"] * static["dz"] > 0, static["actnum"], 0)
    idx = geometry.active_index(static["actnum"])
    act = idx >= 0
    conn = geometry.connections(static)
    pv = (static["porosity"] * static["ntg"] * static["dx"] * static["dy"] * static["dz"])[act]
    depth = static["depth"][act]
    wt = deck.wells
    well_names = list(dict.fromkeys(wt["well"]))
    cells = idx[wt["k"].to_numpy(), wt["j"].to_numpy(), wt["i"].to_numpy()]
    if np.any(cells < 0):
        bad = wt[cells < 0].iloc[0]
        raise DeckError(
            f"{name}: well {bad.well} is completed in inactive cell ({bad.i + 1},{bad.j + 1},{bad.k + 1})"
        )
    sel = tuple(wt[c].to_numpy() for c in ("k", "j", "i"))
    wi = wells.peaceman_index(
        static["permx"][sel], static["permy"][sel], static["permz"][sel], static["dx"][sel], static["dy"][sel],
        static["dz"][sel], static["ntg"][sel], wt["diameter"].to_numpy() / 2, wt["skin"].to_numpy(), wt["dir"].to_numpy(),
    )  # fmt: skip
    u = UNITS[deck.units]
    cf_si = wt["cf"].to_numpy(float) * 1e-3 * u["liquid"] / u["pressure"]
    wi = np.where(np.isfinite(cf_si), cf_si, wi) * (wt["state"].to_numpy() == "OPEN")
    perf_well = np.array([well_names.index(w) for w in wt["well"]])
    ref = []
    for k, w in enumerate(well_names):
        r = wt[wt["well"] == w]["ref_depth"].iloc[0]
        ref.append(r if r is not None and np.isfinite(r) else depth[cells[perf_well == k]].min())
    return {
        "static": static, "idx": idx, "act": act, "conn": conn, "pv": pv, "depth": depth, "cells": cells,
        "perf_well": perf_well, "well_names": well_names, "wi": wi, "ref_depth": np.array(ref, float),
    }  # fmt: skip


def build(deck: DeckData, options: Options | None = None) -> Case:
    """Build a runnable :class:`Case` from a read deck."""
    name = str(deck.path)
    phases = set(deck.phases)
    if "DISGAS" in phases or phases == {"OIL", "WATER", "GAS"}:
        if phases != {"OIL", "WATER", "GAS", "DISGAS"}:
            raise DeckError(
                f"{name}: phase set {sorted(phases)} is not supported: three-phase decks need live oil "
                "(OIL, WATER, GAS and DISGAS); dead-oil three-phase and two-phase live-oil decks are not modelled"
            )
        from .blackoil_deck import build_blackoil

        return build_blackoil(deck, options)
    if phases == {"OIL", "WATER"}:
        hydrocarbon = "OIL"
    elif phases == {"GAS", "WATER"}:
        hydrocarbon = "GAS"
    else:
        raise DeckError(f"{name}: phase set {sorted(phases)} is not supported (OIL+WATER or GAS+WATER)")
    fluid, tabulated = _fluid(deck, hydrocarbon)
    grid = grid_and_wells(deck)
    static, idx, act, conn, pv, depth = (grid[k] for k in ("static", "idx", "act", "conn", "pv", "depth"))
    cells, perf_well, well_names = grid["cells"], grid["perf_well"], grid["well_names"]
    model = Model(
        jnp.asarray(pv),
        jnp.asarray(depth),
        conn,
        cells,
        perf_well,
        jnp.asarray(grid["wi"]),
        jnp.asarray(grid["ref_depth"]),
        fluid,
    )
    # initial state
    if deck.init["PRESSURE"] is not None:
        p0 = deck.init["PRESSURE"].reshape(static["actnum"].shape)[act]
        sw0 = (
            deck.init["SWAT"].reshape(static["actnum"].shape)[act]
            if deck.init["SWAT"] is not None
            else np.full(p0.shape, float(fluid.sat_sw[0]))
        )
        if hydrocarbon == "GAS" and deck.init["SGAS"] is not None:
            sw0 = 1 - deck.init["SGAS"].reshape(static["actnum"].shape)[act]
    elif deck.init["EQUIL"]:
        p0, sw0 = _equilibrate(deck, fluid, tabulated, depth)
    else:
        raise DeckError(f"{name}: initial state needs EQUIL or PRESSURE (+SWAT/SGAS)")
    bhp0 = np.array([p0[cells[perf_well == k]].mean() for k in range(len(well_names))])
    x0 = State(jnp.asarray(p0), jnp.asarray(sw0), jnp.asarray(bhp0))
    controls = _controls(deck, well_names, hydrocarbon)
    dts = jnp.asarray(np.diff(deck.schedule.times) * DAY)
    sim = _simulator(len(pv), len(well_names), conn, cells, perf_well, tabulated, options)
    if len(dts):
        x0 = x0._replace(bhp=sim.initial_bhp(model, x0, jax.tree_util.tree_map(lambda a: a[0], controls)))
    return Case(sim, model, x0, controls, dts, well_names, hydrocarbon, deck.units, idx, deck)


_SIMULATORS: dict[tuple, Simulator] = {}


def _simulator(
    n: int,
    nw: int,
    conn: Any,
    cells: np.ndarray,
    perf_well: np.ndarray,
    tabulated: bool,
    options: Options | None,
) -> Simulator:
    """One :class:`Simulator` (and its compiled functions) per model layout, reused across builds.

    Cases built from the same grid, wells, fluid kind and :class:`Options` share one simulator: treat
    it as read-only (changing an attribute of one case's ``sim`` changes every such case's, and a
    function already compiled keeps what it traced); build with different ``Options`` to get another.
    """
    import hashlib

    digest = hashlib.sha1(
        b"".join(np.ascontiguousarray(a).tobytes() for a in (conn.a, conn.b, cells, perf_well))
    ).hexdigest()
    key = (n, nw, digest, tabulated, options or Options())
    if key not in _SIMULATORS:
        _SIMULATORS[key] = Simulator(n, nw, conn, cells, perf_well, tabulated, options)
    return _SIMULATORS[key]


def _controls(deck: DeckData, names: list[str], hydrocarbon: str) -> wells.WellControls:
    rows = []
    for step in deck.schedule.controls:
        cols = []
        for w in names:
            c = step.get(w)
            if c is None or c.status != "OPEN":
                cols.append((0, 0, 0, 0, 0, wells.BIG, 0.0))
                continue
            bhp = c.bhp
            if c.kind == "INJ":
                if c.phase == "GAS" and hydrocarbon != "GAS":
                    raise DeckError(f"{deck.path}: well {w} injects GAS into an oil-water model")
                rate = wells.BIG if c.mode == "BHP" or not np.isfinite(c.rate) else c.rate
                cols.append((1, 1, 1 if c.phase == "WATER" else 0, 0, 0, rate, bhp))
            else:
                if c.mode == "ORAT" and hydrocarbon != "OIL" or c.mode == "GRAT" and hydrocarbon != "GAS":
                    raise DeckError(
                        f"{deck.path}: well {w} is controlled by {c.mode} but the model has no such phase"
                    )
                wts = {"ORAT": (0, 1), "GRAT": (0, 1), "WRAT": (1, 0), "LRAT": (1, 1), "BHP": (0, 1)}[c.mode]
                target = {"ORAT": c.orat, "GRAT": c.grat, "WRAT": c.wrat, "LRAT": c.lrat, "BHP": np.inf}[
                    c.mode
                ]
                rate = wells.BIG if not np.isfinite(target) else target
                cols.append((1, 0, 0, wts[0], wts[1], rate, bhp))
        rows.append(cols)
    arr = np.asarray(rows, float)  # (steps, wells, 7)
    return wells.WellControls(*(jnp.asarray(arr[:, :, k]) for k in range(7)))
