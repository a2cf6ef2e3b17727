"""Eclipse-style summary vectors and result cubes from a simulation (deck units at the boundary).

``summary_table`` gives one row per report step (``TIME`` in days, no row at time 0, as OPM Flow's
report-step summary) with field vectors ``FOPR FWPR FGPR FWIR FPR FOPT FWPT FGPT FWIT`` and per well
``WBHP WOPR WWPR WGPR WWIR`` (``<VECTOR>:<WELL>``). Rates are the rates of the last sub-step of each
report step (what OPM reports), cumulatives integrate every sub-step. ``FPR`` is the hydrocarbon
pore-volume weighted average pressure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.sources.reservoir import DAY, UNITS

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import Case
    from .solver import Report

FIELD_VECTORS = ("FOPR", "FWPR", "FGPR", "FWIR", "FPR", "FOPT", "FWPT", "FGPT", "FWIT")
WELL_VECTORS = ("WBHP", "WOPR", "WWPR", "WGPR", "WWIR")


def summary_table(case: Case, rep: Report) -> pd.DataFrame:
    """Summary vectors (deck units) per report step."""
    if case.hydrocarbon == "BLACKOIL":
        from .blackoil_deck import summary_blackoil

        return summary_blackoil(case, rep)  # type: ignore[arg-type]
    u = UNITS[case.units]
    is_inj = np.asarray(case.controls.is_inj) > 0  # (steps, wells)
    qw = np.asarray(rep.qw)
    qh = np.asarray(rep.qh)
    cw = np.diff(np.vstack([np.zeros(qw.shape[1]), np.asarray(rep.cum_w)]), axis=0)
    ch = np.diff(np.vstack([np.zeros(qh.shape[1]), np.asarray(rep.cum_h)]), axis=0)
    liq, gas = u["liquid"], u["gas"]
    hc_unit = liq if case.hydrocarbon == "OIL" else gas
    prod = ~is_inj
    w_wpr = np.where(prod, qw, 0.0) / liq * 1.0
    w_hpr = np.where(prod, qh, 0.0) / hc_unit
    w_wir = np.where(is_inj, -qw, 0.0) / liq
    zero = np.zeros_like(w_wpr)
    w_opr, w_gpr = (w_hpr, zero) if case.hydrocarbon == "OIL" else (zero, w_hpr)
    d_wpt = np.where(prod, cw, 0.0) / (liq * DAY)
    d_hpt = np.where(prod, ch, 0.0) / (hc_unit * DAY)
    d_wit = np.where(is_inj, -cw, 0.0) / (liq * DAY)
    d_opt, d_gpt = (d_hpt, 0 * d_hpt) if case.hydrocarbon == "OIL" else (0 * d_hpt, d_hpt)
    p = np.asarray(rep.p)
    sw = np.asarray(rep.sw)
    pv = np.asarray(case.model.pv_ref)
    hcpv = pv * (1.0 - sw)
    fpr = (p * hcpv).sum(axis=1) / hcpv.sum(axis=1) / u["pressure"]
    cols = {
        "TIME": case.deck.schedule.times[1:],
        "FOPR": w_opr.sum(1), "FWPR": w_wpr.sum(1), "FGPR": w_gpr.sum(1), "FWIR": w_wir.sum(1), "FPR": fpr,
        "FOPT": np.cumsum(d_opt.sum(1)), "FWPT": np.cumsum(d_wpt.sum(1)), "FGPT": np.cumsum(d_gpt.sum(1)),
        "FWIT": np.cumsum(d_wit.sum(1)),
    }  # fmt: skip
    bhp = np.asarray(rep.bhp) / u["pressure"]
    for k, name in enumerate(case.well_names):
        cols[f"WBHP:{name}"] = bhp[:, k]
        cols[f"WOPR:{name}"] = w_opr[:, k]
        cols[f"WWPR:{name}"] = w_wpr[:, k]
        cols[f"WGPR:{name}"] = w_gpr[:, k]
        cols[f"WWIR:{name}"] = w_wir[:, k]
    return pd.DataFrame(cols)


def state_cube(case: Case, rep: Report) -> xr.Dataset:
    """Pressure and saturations per report step as a ``(time, layer, y, x)`` cube (deck pressure unit)."""
    from pipelines.cube import make_cube

    u = UNITS[case.units]
    cube = case.deck.cube
    idx = case.cell_index
    act = idx >= 0
    nt = np.asarray(rep.p).shape[0]

    def grid(values: np.ndarray) -> np.ndarray:
        out = np.full((nt,) + idx.shape, np.nan)
        out[:, act] = values[:, idx[act]]
        return out

    time = case.deck.schedule.dates[1:].values
    punit = "bar" if case.units == "METRIC" else "psi"
    sw = grid(np.asarray(rep.sw))
    hc = "oil" if case.hydrocarbon in ("OIL", "BLACKOIL") else "gas"
    dims = ("time", "layer", "y", "x")
    coords = {"time": time, "layer": cube.layer.values}
    data = {
        "pressure": xr.DataArray(grid(np.asarray(rep.p)) / u["pressure"], dims=dims, coords=coords,
                                 attrs={"units": punit, "long_name": f"{hc} phase pressure"}),
        "swat": xr.DataArray(sw, dims=dims, coords=coords, attrs={"units": "1", "long_name": "water saturation"}),
        ("soil" if hc == "oil" else "sgas"): xr.DataArray(1 - sw, dims=dims, coords=coords,
                                                          attrs={"units": "1", "long_name": f"{hc} saturation"}),
    }  # fmt: skip
    if case.hydrocarbon == "BLACKOIL":  # three phases: S_o = 1 - S_w - S_g, and dissolved gas
        sg = grid(np.asarray(rep.sg))
        rs_unit = {"METRIC": (1.0, "sm3/sm3"), "FIELD": (u["gas"] / u["liquid"], "Mscf/stb")}[case.units]
        extra = {
            "soil": (1 - sw - sg, "1", "oil saturation"), "sgas": (sg, "1", "gas saturation"),
            "rs": (grid(np.asarray(rep.rs)) / rs_unit[0], rs_unit[1], "dissolved gas-oil ratio"),
        }  # fmt: skip
        for key, (arr, unit, long_name) in extra.items():
            data[key] = xr.DataArray(
                arr, dims=dims, coords=coords, attrs={"units": unit, "long_name": long_name}
            )
    ds = xr.Dataset(data).assign_coords({k: cube[k] for k in ("x", "y", "spatial_ref")})
    for v in ds.data_vars.values():
        v.attrs["grid_mapping"] = "spatial_ref"
    return make_cube(
        ds.data_vars,
        sources=[{"path": str(case.deck.path), "sha256": _sources(cube)}],
        attrs={"deck_units": case.units},
    )


def wells_cube(table: pd.DataFrame, case: Case) -> xr.Dataset:
    """Well vectors as a ``(time, well)`` feature cube (deck units)."""
    from pipelines.cube import make_cube

    time = case.deck.schedule.dates[1:].values
    data = {}
    units = {
        "METRIC": {"WBHP": "bar", "WOPR": "m3/day", "WWPR": "m3/day", "WGPR": "m3/day", "WWIR": "m3/day"},
        "FIELD": {"WBHP": "psi", "WOPR": "stb/day", "WWPR": "stb/day", "WGPR": "Mscf/day", "WWIR": "stb/day"},
    }[case.units]
    for vec in WELL_VECTORS:
        arr = np.stack([table[f"{vec}:{w}"].to_numpy() for w in case.well_names], axis=1)
        data[vec.lower()] = xr.DataArray(
            arr, dims=("time", "well"), coords={"time": time, "well": np.array(case.well_names, dtype=object)},
            attrs={"units": units[vec], "long_name": f"Eclipse summary vector {vec}"},
        )  # fmt: skip
    return make_cube(data, attrs={"featureType": "timeSeries", "deck_units": case.units},
                     sources=[{"path": str(case.deck.path), "sha256": _sources(case.deck.cube)}])  # fmt: skip


def _sources(cube: xr.Dataset) -> str:
    import json

    src = json.loads(cube.attrs.get("geotwin_sources", "[]"))
    return src[0]["sha256"] if src else ""
