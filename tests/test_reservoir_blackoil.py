"""Three-phase black oil: PVTO/relperm hand values, conservation, gas liberation, SPE1 against OPM Flow.

The fluid is SPE1's (Odeh 1981, the shipped deck), typed here in FIELD units and converted to SI, so
the expected numbers below are read off the table by hand.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import edited_copy, shared_file

PSI = 6894.757293168
STB = 0.158987294928
MSCF = 28.316846592
RS_UNIT = MSCF / STB  # sm3/sm3 per Mscf/stb
CP = 1e-3
# SPE1 PVTO: (Rs Mscf/stb, [(p psia, Bo, mu cP), ...])
PVTO = [
    (0.001, [(14.7, 1.062, 1.04)]), (0.0905, [(264.7, 1.15, 0.975)]), (0.18, [(514.7, 1.207, 0.91)]),
    (0.371, [(1014.7, 1.295, 0.83)]), (0.636, [(2014.7, 1.435, 0.695)]), (0.775, [(2514.7, 1.5, 0.641)]),
    (0.93, [(3014.7, 1.565, 0.594)]), (1.27, [(4014.7, 1.695, 0.51), (9014.7, 1.579, 0.74)]),
    (1.618, [(5014.7, 1.827, 0.449), (9014.7, 1.737, 0.631)]),
]  # fmt: skip
PVDG = [(14.7, 166.666, 0.008), (264.7, 12.093, 0.0096), (514.7, 6.274, 0.0112), (1014.7, 3.197, 0.014),
        (2014.7, 1.614, 0.0189), (2514.7, 1.294, 0.0208), (3014.7, 1.08, 0.0228), (4014.7, 0.811, 0.0268),
        (5014.7, 0.649, 0.0309), (9014.7, 0.386, 0.047)]  # fmt: skip
SWOF = [(0.12, 0, 1, 0), (0.18, 4.6e-8, 1, 0), (0.24, 1.9e-7, 0.997, 0), (0.3, 4.2e-7, 0.98, 0),
        (0.36, 7.4e-7, 0.7, 0), (0.42, 1.2e-6, 0.35, 0), (0.48, 1.7e-6, 0.2, 0), (0.54, 2.3e-6, 0.09, 0),
        (0.6, 3.0e-6, 0.021, 0), (0.66, 3.8e-6, 0.01, 0), (0.72, 4.6e-6, 0.001, 0), (0.78, 5.6e-6, 0.0001, 0),
        (0.84, 6.7e-6, 0, 0), (0.91, 8.1e-6, 0, 0), (1.0, 1e-5, 0, 0)]  # fmt: skip
SGOF = [(0, 0, 1, 0), (0.001, 0, 1, 0), (0.02, 0, 0.997, 0), (0.05, 0.005, 0.98, 0), (0.12, 0.025, 0.7, 0),
        (0.2, 0.075, 0.35, 0), (0.25, 0.125, 0.2, 0), (0.3, 0.19, 0.09, 0), (0.4, 0.41, 0.021, 0),
        (0.45, 0.6, 0.01, 0), (0.5, 0.72, 0.001, 0), (0.6, 0.87, 0.0001, 0), (0.7, 0.94, 0, 0),
        (0.85, 0.98, 0, 0), (0.88, 0.984, 0, 0)]  # fmt: skip
PVTW = (4017.55 * PSI, 1.038, 3.22e-6 / PSI, 0.318 * CP, 0.0)
ROCK = (14.7 * PSI, 3e-6 / PSI)
SAT_P = np.array([rows[0][0] for _, rows in PVTO])  # saturated rows: bubble point psia ...
SAT_RS = np.array([rs for rs, _ in PVTO])  # ... Rs Mscf/stb ...
SAT_INVB = np.array([1 / rows[0][1] for _, rows in PVTO])  # ... and 1/Bo


def spe1_fluid():
    """SPE1's black-oil fluid in SI (lb/ft3 densities 53.66 / 64.49 / 0.0533)."""
    import jax.numpy as jnp

    from twins.reservoir import blackoil_props as bp

    lbft3 = 16.01846337
    recs = [(rs * RS_UNIT, np.array([(p * PSI, b, mu * CP) for p, b, mu in rows])) for rs, rows in PVTO]
    o = bp.pvto_tables(recs)
    g = np.array([(p * PSI, b * STB / MSCF, mu * CP) for p, b, mu in PVDG])  # rb/Mscf -> rm3/sm3
    a = jnp.asarray
    return bp.BOFluid(
        rho_w=a(64.49 * lbft3), rho_o=a(53.66 * lbft3), rho_g=a(0.0533 * lbft3), pvtw=a(PVTW), rock=a(ROCK),
        g_p=a(g[:, 0]), g_invb=a(1 / g[:, 1]), g_invbmu=a(1 / (g[:, 1] * g[:, 2])),
        rs_nodes=a(o["rs_nodes"]), pb_nodes=a(o["pb_nodes"]), o_p=a(o["o_p"]), o_invb=a(o["o_invb"]),
        o_invbmu=a(o["o_invbmu"]), o_count=a(o["o_count"]), swof=a(np.array(SWOF, float)), sgof=a(np.array(SGOF, float)),
    )  # fmt: skip


def test_pvto_hand_values(reservoir_x64) -> None:
    import jax.numpy as jnp

    from twins.reservoir import blackoil_props as bp

    f = spe1_fluid()

    def bo_mu(p_psi: float, rs: float) -> tuple[float, float]:
        invb, invbmu = bp.oil_pvt(f, jnp.asarray([p_psi * PSI]), jnp.asarray([rs * RS_UNIT]))
        return 1 / float(invb[0]), float(invb[0] / invbmu[0]) / CP

    # table rows themselves
    assert bo_mu(4014.7, 1.27) == pytest.approx((1.695, 0.51), rel=1e-12)
    assert bo_mu(9014.7, 1.618) == pytest.approx((1.737, 0.631), rel=1e-12)
    # saturated oil between rows: Rs, 1/Bo and 1/(Bo mu) linear in p (midway 1014.7 .. 2014.7 psia)
    assert float(bp.rs_sat(f, jnp.asarray(1514.7 * PSI))) / RS_UNIT == pytest.approx(0.5035, rel=1e-12)
    b, mu = bo_mu(1514.7, 0.5035)
    assert 1 / b == pytest.approx(0.5 * (1 / 1.295 + 1 / 1.435), rel=1e-12)
    assert 1 / (b * mu) == pytest.approx(0.5 * (1 / (1.295 * 0.83) + 1 / (1.435 * 0.695)), rel=1e-12)
    # undersaturated on the 1.27 branch, halfway in pressure: linear in 1/Bo
    assert 1 / bo_mu(6514.7, 1.27)[0] == pytest.approx(0.5 * (1 / 1.695 + 1 / 1.579), rel=1e-12)
    # a row without a branch borrows the 1.27 one (OPM): Rs 0.93 at 3014.7 + 5000 psi
    b, mu = bo_mu(8014.7, 0.93)
    assert b == pytest.approx(1.565 * 1.579 / 1.695, rel=1e-12)
    assert mu == pytest.approx(0.594 * 0.74 / 0.51, rel=1e-12)
    # between two branches (Rs 1.444): each branch at the same distance above its bubble point
    ib_127 = 1 / 1.695 + (6514.7 - 4014.7) / 5000 * (1 / 1.579 - 1 / 1.695)
    ib_1618 = 1 / 1.827 + (7514.7 - 5014.7) / 4000 * (1 / 1.737 - 1 / 1.827)
    assert 1 / bo_mu(7014.7, 1.444)[0] == pytest.approx(0.5 * (ib_127 + ib_1618), rel=1e-12)


def test_three_phase_relperm_hand_values(reservoir_x64) -> None:
    import jax.numpy as jnp

    from twins.reservoir import blackoil_props as bp

    f = spe1_fluid()
    krw, kro, krg, _, _ = bp.relperm3(f, jnp.asarray([0.12, 0.3, 0.3]), jnp.asarray([0.12, 0.0, 0.12]))
    assert np.asarray(kro) == pytest.approx([0.7, 0.98, (0.12 * 0.09 + 0.18 * 0.35) / 0.3], rel=1e-12)
    assert np.asarray(krg) == pytest.approx([0.025, 0.0, 0.025], rel=1e-12)
    assert np.asarray(krw) == pytest.approx([0.0, 4.2e-7, 4.2e-7], rel=1e-12)


def test_bad_tables_are_named() -> None:
    from twins.reservoir import blackoil_props as bp
    from twins.reservoir.props import TableError

    recs = [(rs * RS_UNIT, np.array([(p * PSI, b, mu * CP) for p, b, mu in rows])) for rs, rows in PVTO]
    with pytest.raises(TableError, match="PVTO: R_s column must increase"):
        bp.pvto_tables([recs[1], recs[0], *recs[2:]])
    with pytest.raises(TableError, match="last R_s row must have an undersaturated branch"):
        bp.pvto_tables(recs[:-2])
    bad = np.array(SGOF, float)
    bad[-1, 1] = 1.2
    with pytest.raises(TableError, match=r"SGOF.*\[0, 1\]"):
        bp.check_three_phase_tables(np.array(SWOF, float), bad)


_BOX: dict = {}


def _box(open_well: bool, p0_psi: float, rs0: float, bhp_psi: float, solver: str = "superlu"):
    """2x2x1 box (100 m cells, 10 m thick, 100 mD, porosity 0.2), one well in the first cell, 6 x 30 days.

    Newton's tolerance is 1e-10 (scaled residual) so that the imbalance left is below 1e-8.
    """
    import jax.numpy as jnp

    from twins.reservoir import geometry
    from twins.reservoir.blackoil import BlackOilSimulator, BOControls, BOState
    from twins.reservoir.solver import Model, Options

    shape = (1, 2, 2)
    ones = np.ones(shape)
    static = {"permx": 100 * geometry.MD * ones, "permy": 100 * geometry.MD * ones, "permz": 100 * geometry.MD * ones,
              "dx": 100 * ones, "dy": 100 * ones, "dz": 10 * ones, "ntg": ones, "actnum": ones,
              "multx": ones, "multy": ones, "multz": ones}  # fmt: skip
    conn = geometry.connections(static)
    cells, perf_well = np.array([0]), np.array([0])
    if solver not in _BOX:
        _BOX[solver] = BlackOilSimulator(
            4, 1, conn, cells, perf_well, None, Options(tol=1e-10, linear_solver=solver)
        )
    sim = _BOX[solver]
    model = Model(jnp.full(4, 0.2 * 1e5), jnp.full(4, 2000.0), conn, cells, perf_well, jnp.asarray([1e-12]),
                  jnp.asarray([2000.0]), spe1_fluid())  # fmt: skip
    steps = 6
    ctrl = BOControls(
        *(jnp.full((steps, 1), v, float) for v in (float(open_well), 0, 0, 0, 1, 0, 1e30, bhp_psi * PSI))
    )
    x0 = BOState(jnp.full(4, p0_psi * PSI), jnp.full(4, 0.12), jnp.zeros(4), jnp.full(4, rs0 * RS_UNIT),
                 jnp.asarray([p0_psi * PSI]))  # fmt: skip
    dts = jnp.full(steps, 30 * 86400.0)
    rep = sim.run(model, x0, ctrl, dts, (jnp.ones(4), jnp.ones(4)))
    return sim, model, x0, rep


def _in_place(model, p, sw, sg, rs) -> np.ndarray:
    """Surface volumes of water, oil and gas (free + dissolved) in the box."""
    import jax.numpy as jnp

    from twins.reservoir import blackoil_props as bp
    from twins.reservoir import props

    f = model.fluid
    p = jnp.asarray(p)
    pv = props.pore_volume(f, model.pv_ref, p)
    bw = props.water_pvt(f, p)[0]
    bo = bp.oil_pvt(f, p, jnp.asarray(rs))[0]
    bg = bp.gas_pvt(f, p)[0]
    so = 1 - sw - sg
    return np.array([np.sum(pv * sw * bw), np.sum(pv * so * bo), np.sum(pv * (sg * bg + so * bo * rs))])


def test_depletion_below_bubble_point_conserves_each_component(reservoir_x64) -> None:
    """Producer at 1500 psia BHP in undersaturated oil (pb 4014.7 psia): gas comes out of solution."""
    _, model, x0, rep = _box(True, 4500.0, 1.27, 1500.0)
    assert np.all(np.asarray(rep.failed) == 0) and np.all(np.isfinite(np.asarray(rep.p)))
    assert np.max(np.asarray(rep.mb_error)) < 1e-8  # every sub-step, every component
    start = _in_place(model, x0.p, x0.sw, x0.sg, x0.rs)
    for t in range(rep.p.shape[0]):
        now = _in_place(model, rep.p[t], rep.sw[t], rep.sg[t], rep.rs[t])
        produced = np.array([float(rep.cum_w[t, 0]), float(rep.cum_o[t, 0]), float(rep.cum_g[t, 0])])
        assert np.all(np.abs(now + produced - start) <= 1e-8 * start), t  # water, oil, gas (free + dissolved)
    assert float(rep.cum_g[-1, 0]) > 0.2 * start[2]  # a real depletion
    p_end = np.asarray(rep.p[-1]) / PSI
    assert p_end.max() < 4014.7  # below the bubble point of Rs = 1.27 ...
    assert np.asarray(rep.sg[-1]).min() > 0.01  # ... free gas everywhere ...
    rs_end = np.asarray(rep.rs[-1]) / RS_UNIT  # ... and the oil is saturated at its pressure
    assert rs_end == pytest.approx(np.interp(p_end, SAT_P, SAT_RS), rel=1e-9)


def test_block_solver_gives_the_superlu_run(reservoir_x64) -> None:
    """The pure-JAX block and red-black solvers (vmap-able) and SuperLU give the same depletion run."""
    runs = [_box(True, 4500.0, 1.27, 1500.0, solver)[3] for solver in ("superlu", "block", "redblack")]
    for other in runs[1:]:
        for field in ("p", "sg", "rs", "bhp", "cum_o", "cum_g"):
            a, b = np.asarray(getattr(runs[0], field)), np.asarray(getattr(other, field))
            assert b == pytest.approx(a, rel=1e-7, abs=1e-12), field


def test_closed_box_flash_matches_material_balance(reservoir_x64) -> None:
    """Oil with Rs 1.27 Mscf/stb put at 3000 psia (below its bubble point), no flow: it flashes.

    Independent equilibrium: the pressure where water, stock-tank oil and all the gas (fixed surface
    amounts) fill the pore volume with saturated oil, ``pv(p) = W B_w + N B_o,sat + (G - N R_s,sat) B_g``.
    """
    from scipy.optimize import brentq

    _, model, x0, rep = _box(False, 3000.0, 1.27, 1000.0)
    assert np.max(np.asarray(rep.mb_error)) < 1e-8

    def pore_volume(p: float) -> float:
        y = 3e-6 * (p - 14.7)
        return 0.2e5 * (1 + y + y * y / 2)

    invbo0 = 1 / 1.695 + (3000 - 4014.7) / 5000 * (1 / 1.579 - 1 / 1.695)  # 1.27 branch, extrapolated
    n_oil = pore_volume(3000) * 0.88 * invbo0  # per cell: stock-tank oil and all its gas
    g_tot = n_oil * 1.27 * RS_UNIT
    w_p = np.array([p for p, _, _ in PVDG])
    w_invbg = 1 / (np.array([b for _, b, _ in PVDG]) * STB / MSCF)

    def excess(p: float) -> float:
        xw, xw0 = 3.22e-6 * (p - 4017.55), 3.22e-6 * (3000 - 4017.55)
        vol_w = pore_volume(3000) * 0.12 * (1 + xw0 + xw0**2 / 2) / (1 + xw + xw * xw / 2)
        rs = np.interp(p, SAT_P, SAT_RS) * RS_UNIT
        return (
            pore_volume(p)
            - vol_w
            - n_oil / np.interp(p, SAT_P, SAT_INVB)
            - (g_tot - n_oil * rs) / np.interp(p, w_p, w_invbg)
        )

    p_eq = brentq(excess, 3000.0, 4014.7, xtol=1e-10)  # the liberated gas raises the pressure
    assert np.asarray(rep.p[-1]) / PSI == pytest.approx(np.full(4, p_eq), rel=1e-7)
    rs_eq = np.interp(p_eq, SAT_P, SAT_RS)
    assert np.asarray(rep.rs[-1]) / RS_UNIT == pytest.approx(np.full(4, rs_eq), rel=1e-7)
    sg_eq = (g_tot - n_oil * rs_eq * RS_UNIT) / np.interp(p_eq, w_p, w_invbg) / pore_volume(p_eq)
    assert np.asarray(rep.sg[-1]) == pytest.approx(np.full(4, sg_eq), rel=1e-6)


def test_spe1_initial_state_is_hydrostatic(shared_data: Path, reservoir_x64) -> None:
    """EQUIL 4800 psia at 8400 ft, Rs 1.27 (undersaturated): layer 1 (8335 ft) by the live-oil gradient."""
    from pipelines.sources.reservoir import read_deck_full
    from twins.reservoir.adapter import build

    case = build(read_deck_full(shared_file(shared_data, "reservoir/spe1/SPE1CASE1.DATA")))
    x0 = case.x0
    assert np.asarray(x0.p)[200:] / PSI == pytest.approx(
        np.full(100, 4800.0), abs=1e-3
    )  # layer 3 centre 8400 ft
    assert np.asarray(x0.sg) == pytest.approx(np.zeros(300))
    assert np.asarray(x0.sw) == pytest.approx(np.full(300, 0.12))
    assert np.asarray(x0.rs) / RS_UNIT == pytest.approx(np.full(300, 1.27), rel=1e-9)
    # oil density: (53.66 lb/ft3 * 5.6146 ft3 + 1270 scf * 0.0533 lb/scf) per Bo * 5.6146 ft3
    ft3_per_stb = STB / 0.3048**3
    bo = 1 / (1 / 1.695 + (4790 - 4014.7) / 5000 * (1 / 1.579 - 1 / 1.695))
    grad = (53.66 * ft3_per_stb + 1270 * 0.0533) / (bo * ft3_per_stb) / 144  # psi/ft
    assert np.asarray(x0.p)[:100] / PSI == pytest.approx(np.full(100, 4800 - 65 * grad), abs=0.05)


def test_explicit_initial_state_in_deck_units(shared_data: Path, tmp_path: Path, reservoir_x64) -> None:
    """PRESSURE/SWAT/SGAS/RS instead of EQUIL: read in FIELD units, converted to SI (1 Mscf/stb = 178.1 sm3/sm3)."""
    from pipelines.sources.reservoir import read_deck_full
    from twins.reservoir.adapter import build

    text = shared_file(shared_data, "reservoir/spe1/SPE1CASE1.DATA").read_text()
    explicit = "\nPRESSURE\n300*4500 /\nSWAT\n300*0.12 /\nSGAS\n100*0.1 200*0 /\nRS\n100*0.93 200*1.2 /\n"
    text = re.sub(r"\nRSVD\n[^/]*/", "\n", re.sub(r"\nEQUIL\n[^/]*/", explicit, text, count=1), count=1)
    assert "EQUIL" not in text and "\nRSVD" not in text
    deck = tmp_path / "EXPLICIT.DATA"
    deck.write_text(text)
    x0 = build(read_deck_full(deck)).x0
    assert np.asarray(x0.p) / PSI == pytest.approx(np.full(300, 4500.0), rel=1e-12)
    assert np.asarray(x0.sg) == pytest.approx(np.r_[np.full(100, 0.1), np.zeros(200)])
    assert np.asarray(x0.rs) == pytest.approx(
        np.r_[np.full(100, 0.93), np.full(200, 1.2)] * 178.10760667903525
    )


def test_unmodelled_black_oil_keyword_is_named(shared_data: Path, tmp_path: Path) -> None:
    """STONE1 would switch OPM to Stone's kro: refused rather than silently run with the default model."""
    from pipelines.sources.reservoir import read_deck_full
    from twins.reservoir.adapter import DeckError, build

    spe1 = shared_file(shared_data, "reservoir/spe1/SPE1CASE1.DATA")
    deck = edited_copy(spe1, tmp_path / "STONE.DATA", "\nPROPS\n", "\nPROPS\nSTONE1\n", 1)
    with pytest.raises(DeckError, match="STONE1"):
        build(read_deck_full(deck))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stem", "tol", "cell_tol"),
    [("SPE1CASE1", 0.01, (20.0, 0.01, 0.005)), ("SPE1CASE2", 0.02, (60.0, 0.04, 0.08))],
)
def test_spe1_matches_opm_flow(
    stem: str, tol: float, cell_tol: tuple[float, float, float], shared_data: Path, tmp_path: Path
) -> None:
    """SPE1 through ``run_deck`` and OPM Flow: FOPR, FGOR, FGPR, FPR, WBHP (both wells), every report step.

    Measured max relative differences: case 1 (DRSDT 0) 0.74 % (WBHP:INJ at day 31), case 2 (gas
    re-dissolves) 1.88 % (WBHP:INJ at day 31); OPM's own results move by up to 0.3 % / 2.0 % when its
    Newton tolerances are tightened (README), so the bounds are 1 % and the issue's 2 %. Cell by cell
    over all report steps (restart file): case 1 pressure 14.1 psi, S_g 0.0065, R_s 0.0026 Mscf/stb;
    case 2 42.4 psi, 0.023, 0.053 (both largest after the first month).
    """
    pytest.importorskip("opm")
    if not shutil.which("flow"):
        pytest.skip("OPM Flow is not installed (apt-get install libopm-simulators-bin)")
    import pandas as pd
    from opm.io.ecl import ESmry

    from twins.reservoir.run import run_deck

    text = shared_file(shared_data, f"reservoir/spe1/{stem}.DATA").read_text()
    deck = tmp_path / f"{stem}.DATA"  # same deck, with field vectors added to its SUMMARY section
    deck.write_text(text.replace("\nSUMMARY\n", "\nSUMMARY\nFPR\nFGPR\nFOPT\nFGPT\nFGIR\n", 1))
    subprocess.run(["flow", str(deck), f"--output-dir={tmp_path / 'opm'}"], check=True, capture_output=True)
    ours = pd.read_csv(run_deck(deck, tmp_path / "ours"))
    ref = ESmry(str(tmp_path / "opm" / f"{stem}.SMSPEC"))
    assert np.asarray(ref["TIME", True]) == pytest.approx(ours["TIME"].to_numpy())
    ours["FGOR"] = ours["FGPR"] / ours["FOPR"]
    for key in ("FOPR", "FGOR", "FGPR", "FPR", "WBHP:PROD", "WBHP:INJ", "FOPT", "FGPT", "FGIR"):
        r = np.asarray(ref[key, True], float)
        rel = np.max(np.abs(ours[key].to_numpy() - r) / np.abs(r))
        assert rel < tol, f"{key}: max relative difference {rel:.4f}"
    # cell by cell, every report step: ours state.zarr (deck units) against OPM's restart file
    import xarray as xr
    from opm.io.ecl import ERst

    state = xr.open_zarr(tmp_path / "ours" / "state.zarr")
    rst = ERst(str(tmp_path / "opm" / f"{stem}.UNRST"))
    assert len(rst.report_steps) == state.sizes["time"]
    for ours_name, opm_name, bound in (("pressure", "PRESSURE", cell_tol[0]), ("sgas", "SGAS", cell_tol[1]),
                                       ("rs", "RS", cell_tol[2])):  # fmt: skip
        mine = state[ours_name].values.reshape(state.sizes["time"], -1)
        diff = max(
            np.max(np.abs(mine[k] - np.asarray(rst[opm_name, s]))) for k, s in enumerate(rst.report_steps)
        )
        assert diff < bound, f"{ours_name}: max abs difference {diff:.4g}"
    if stem == "SPE1CASE1":  # DRSDT 0: dissolved gas never rises above the initial 1.27 Mscf/stb
        assert float(state["rs"].max()) <= 1.27 * (1 + 1e-9)


@pytest.mark.slow
def test_spe1_gas_cap_matches_opm_flow_at_equal_time_steps(shared_data: Path, tmp_path: Path) -> None:
    """SPE1 case 2 with its GOC moved into layer 1 (a gas cap: exercises EQUIL's contacts), first year.

    With both simulators' steps capped at 1 day the time-discretisation error is small and the same
    physics must give the same vectors: measured max relative difference 0.033 % (FOPR). At default
    steps the two differ by up to 16 % (FOPR) in the second month while gas cones into the producer.
    """
    pytest.importorskip("opm")
    if not shutil.which("flow"):
        pytest.skip("OPM Flow is not installed (apt-get install libopm-simulators-bin)")
    import jax
    from opm.io.ecl import ESmry

    from pipelines.sources.reservoir import read_deck_full
    from twins.reservoir.adapter import build
    from twins.reservoir.run import x64_scope
    from twins.reservoir.solver import Options
    from twins.reservoir.summary import summary_table

    text = shared_file(shared_data, "reservoir/spe1/SPE1CASE2.DATA").read_text()
    text = text.replace("8400 4800 8450 0 8300 0 1 0 0", "8400 4800 8450 0 8340 0 1 0 0")
    head, tail = text.split("\nTSTEP\n", 1)
    text = head + "\nTSTEP\n31 28 31 30 31 30 31 31 30 31 30 31 /\n" + tail.split("/", 1)[1]
    deck = tmp_path / "CAP.DATA"
    deck.write_text(text.replace("\nSUMMARY\n", "\nSUMMARY\nFPR\nFGPR\n", 1))
    opm = ["flow", str(deck), f"--output-dir={tmp_path / 'opm'}", "--solver-max-time-step-in-days=1"]
    subprocess.run(opm, check=True, capture_output=True)
    with x64_scope():
        case = build(read_deck_full(deck), Options(dt_max=86400.0))
        assert float(np.max(np.asarray(case.x0.sg))) == pytest.approx(0.88)  # layer 1 is gas cap
        ours = summary_table(case, jax.block_until_ready(case.run()))
    ref = ESmry(str(tmp_path / "opm" / "CAP.SMSPEC"))
    assert np.asarray(ref["TIME", True]) == pytest.approx(ours["TIME"].to_numpy())
    for key in ("FOPR", "FGPR", "FPR", "WBHP:PROD", "WBHP:INJ"):
        r = np.asarray(ref[key, True], float)
        rel = np.max(np.abs(ours[key].to_numpy() - r) / np.abs(r))
        assert rel < 0.002, f"{key}: max relative difference {rel:.5f}"
