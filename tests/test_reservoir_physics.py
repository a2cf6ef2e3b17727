"""Physics of the JAX reservoir simulator: Buckley-Leverett (Welge), mass balance, gas p/z material balance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("opm")
jax = pytest.importorskip("jax")

pytestmark = pytest.mark.usefixtures("reservoir_x64")


from pipelines.sources.reservoir import read_deck_full  # noqa: E402
from twins.reservoir import props  # noqa: E402
from twins.reservoir.adapter import build  # noqa: E402

CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "reservoir"
MU_W, MU_O, SWC, SOR = 0.5, 2.0, 0.2, 0.2


NX = (100, 50, 25)  # three disconnected 1-D reservoirs of 1000 m at three resolutions (one compile)


def _bl_deck(tmp_path: Path, steps: int, total_days: float) -> Path:
    table = props.corey_table(SWC, SOR, 2.0, 2.0, n=61)
    rows = "\n".join(f" {r[0]:.6f} {r[1]:.8f} {r[2]:.8f} 0" for r in table)
    n = NX[0]
    length, area, phi = 1000.0, 10.0 * 10.0, 0.2
    rate = 0.002 * length * area * phi  # 0.2 % of a pore volume per day
    dx = " ".join(f"{n}*{length / m}" for m in NX)
    act = " ".join(f"{m}*1 {n - m}*0" if m < n else f"{m}*1" for m in NX)
    wells = "\n".join(
        f" 'I{r}' 'G' 1 {r + 1} 1* 'WATER' /\n 'P{r}' 'G' {m} {r + 1} 1* 'OIL' /" for r, m in enumerate(NX)
    )
    comps = "\n".join(
        f" 'I{r}' 1 {r + 1} 1 1 'OPEN' 1* 1* 0.2 /\n 'P{r}' {m} {r + 1} 1 1 'OPEN' 1* 1* 0.2 /"
        for r, m in enumerate(NX)
    )
    inj = "\n".join(f" 'I{r}' 'WATER' 'OPEN' 'RATE' {rate} 1* 1000 /" for r in range(3))
    prod = "\n".join(f" 'P{r}' 'OPEN' 'BHP' 5* 100 /" for r in range(3))
    text = f"""RUNSPEC
DIMENS
 {n} 3 1 /
OIL
WATER
METRIC
START
 1 JAN 2025 /
TABDIMS
 1 1 80 20 /
WELLDIMS
 6 1 1 6 /
GRID
DX
 {dx} /
DY
 {3 * n}*10 /
DZ
 {3 * n}*10 /
TOPS
 {3 * n}*1000 /
ACTNUM
 {act} /
PERMX
 {3 * n}*500 /
PERMY
 {3 * n}*500 /
PERMZ
 {3 * n}*500 /
MULTY
 {3 * n}*0 /
PORO
 {3 * n}*{phi} /
PROPS
PVTW
 100 1.0 0 {MU_W} 0 /
PVCDO
 100 1.0 0 {MU_O} 0 /
DENSITY
 800 1000 1 /
ROCK
 100 0 /
SWOF
{rows} /
SOLUTION
PRESSURE
 {3 * n}*100 /
SWAT
 {3 * n}*{SWC} /
SCHEDULE
WELSPECS
{wells}
/
COMPDAT
{comps}
/
WCONINJE
{inj}
/
WCONPROD
{prod}
/
TSTEP
 {steps}*{total_days / steps} /
END
"""
    path = tmp_path / "BL.DATA"
    path.write_text(text)
    return path


def _welge() -> tuple[float, float, float]:
    """Shock saturation, PV injected at breakthrough and recovery factor at breakthrough (Welge tangent)."""
    s = np.linspace(SWC + 1e-6, 1 - SOR, 200001)
    se = (s - SWC) / (1 - SWC - SOR)
    krw, kro = se**2, (1 - se) ** 2
    f = (krw / MU_W) / (krw / MU_W + kro / MU_O)
    slope = f / (s - SWC)
    k = int(np.argmax(slope))
    pvi = 1.0 / slope[k]
    return s[k], pvi, pvi / (1 - SWC)


def test_buckley_leverett_welge_converges(tmp_path: Path) -> None:
    """Breakthrough time and recovery at breakthrough approach Welge's values as the grid is refined."""
    sf, pvi_bt, rf_bt = _welge()
    total_days = 500.0 * pvi_bt * 1.6  # rate injects 0.2 % PV/day
    errors = []
    case = build(read_deck_full(_bl_deck(tmp_path, 200, total_days)))
    rep = case.run()
    t = np.cumsum(np.asarray(case.dts)) / 86400.0
    pv_row = float(np.sum(case.model.pv_ref)) / 3
    se = (sf - SWC) / (1 - SWC - SOR)
    f_shock = (se**2 / MU_W) / (se**2 / MU_W + (1 - se) ** 2 / MU_O)
    for r, _ in sorted(enumerate(NX), key=lambda e: e[1]):
        k = case.well_names.index(f"P{r}")
        qw, qo = np.asarray(rep.qw)[:, k], np.asarray(rep.qh)[:, k]
        wcut = qw / (qw + qo)
        # breakthrough: the produced water cut crosses half the shock's fractional flow
        i = int(np.argmax(wcut > 0.5 * f_shock))
        t_bt = np.interp(0.5 * f_shock, wcut[i - 1 : i + 1], t[i - 1 : i + 1])
        pvi_num = t_bt * 0.002
        oil_bt = np.interp(t_bt, t, np.asarray(rep.cum_h)[:, k]) / (pv_row * (1 - SWC))
        errors.append((abs(pvi_num / pvi_bt - 1), abs(oil_bt / rf_bt - 1)))
    errors = np.array(errors)
    print(
        "Buckley-Leverett relative errors (nx=25, 50, 100) [breakthrough PVI, recovery]:",
        errors.round(4).tolist(),
    )
    # stated tolerance: within 10 % at 25 cells, 5 % at 100 cells, and shrinking with refinement
    assert np.all(errors[:, 0] < [0.10, 0.07, 0.05])
    assert np.all(errors[:, 1] < [0.10, 0.07, 0.05])
    assert errors[2, 0] < errors[0, 0] and errors[2, 1] < errors[0, 1]


def test_mass_balance_quarter_five_spot() -> None:
    """Fluid in place changes by exactly what the wells moved (checked from states, not the solver's own error)."""
    case = build(read_deck_full(CATALOG / "QFS_WATERFLOOD.DATA"))
    rep = case.run()
    f = case.model.fluid
    assert np.all(np.asarray(rep.mb_error) < 1e-9)  # solver's per-step bound

    def in_place(p: np.ndarray, sw: np.ndarray) -> tuple[float, float]:
        pv = np.asarray(props.pore_volume(f, case.model.pv_ref, p))
        bw = np.asarray(props.water_pvt(f, p)[0])
        bo = np.asarray(props.hydrocarbon_pvt(f, p, case.sim.tabulated)[0])
        return float(np.sum(pv * sw * bw)), float(np.sum(pv * (1 - sw) * bo))

    w0, o0 = in_place(np.asarray(case.x0.p), np.asarray(case.x0.sw))
    for n in (4, 19):
        w1, o1 = in_place(np.asarray(rep.p)[n], np.asarray(rep.sw)[n])
        cum_w = float(np.sum(np.asarray(rep.cum_w)[n]))  # production positive, injection negative
        cum_o = float(np.sum(np.asarray(rep.cum_h)[n]))
        assert (w0 - w1) == pytest.approx(cum_w, rel=1e-7, abs=1e-6 * w0)
        assert (o0 - o1) == pytest.approx(cum_o, rel=1e-7)


def _papay_z(p_bar: np.ndarray) -> np.ndarray:
    """Papay z-factor at Tpr = 1.6, Ppc = 46 bar (the correlation GAS_DEPLETION.DATA's PVDG was made from)."""
    ppr, tpr = p_bar / 46.0, 1.6
    return 1 - 3.52 * ppr / 10 ** (0.9813 * tpr) + 0.274 * ppr**2 / 10 ** (0.8157 * tpr)


def test_gas_depletion_p_over_z_linear_in_cumulative() -> None:
    """Volumetric dry gas: p/z falls linearly with Gp and extrapolates to the volumetric OGIP (material balance)."""
    from twins.reservoir.summary import summary_table

    case = build(read_deck_full(CATALOG / "GAS_DEPLETION.DATA"))
    rep = case.run()
    table = summary_table(case, rep)
    rate_ctrl = table["FGPR"] > 199999.0  # before the well hits its BHP limit
    assert rate_ctrl.sum() > 30
    p = table["FPR"].to_numpy()  # bar, gas-pore-volume weighted
    gp = table["FGPT"].to_numpy()  # sm3
    pz = p / _papay_z(p)
    slope, intercept = np.polyfit(gp, pz, 1)
    fit = slope * gp + intercept
    assert np.max(np.abs(fit - pz) / pz) < 0.01  # linear within 1 % over the whole depletion
    # volumetric OGIP from the deck's geometry and the correlation: PV * Sg / Bg(p_i)
    pv = 20 * 20 * 2 * 50 * 50 * 10 * 0.15
    t_ratio = 373.15 / 288.71
    bg_i = np.array([(1.01325 / pi) * _papay_z(np.array(pi)) * t_ratio for pi in (250.0, 251.0)])
    ogip = pv / 2 * 0.8 * np.sum(1 / bg_i)
    assert -intercept / slope == pytest.approx(ogip, rel=0.01)


def _assert_same_states(run: Any, ref: Any, sw_tol: float, rel_tol: float) -> None:
    """``run`` keeps the per-step mass balance below 1e-9 and reaches ``ref``'s states: saturations
    within ``sw_tol``, cumulatives, pressures and BHPs within ``rel_tol`` of ``ref``'s largest value."""
    assert np.max(np.asarray(run.mb_error)) < 1e-9
    assert np.max(np.abs(np.asarray(run.sw) - np.asarray(ref.sw))) < sw_tol
    for field in ("cum_h", "cum_w", "p", "bhp"):
        a, b = np.asarray(getattr(run, field)), np.asarray(getattr(ref, field))
        assert np.max(np.abs(a - b)) < rel_tol * np.max(np.abs(b)), field


def test_opm_style_stopping_test_keeps_the_strict_answer() -> None:
    """Newton's default stopping test (every cell's scaled residual below cnv_tol = 1e-3 plus the step's
    mass balance below 1e-9, as OPM's CNV + MB) gives the answer of the strict test (every cell below
    1e-7) with fewer iterations: saturations within cnv_tol (the residual is in saturation units),
    cumulatives and pressures within 1e-5 relative (the mass-balance test keeps the totals exact)."""
    from twins.reservoir.solver import Options

    deck = read_deck_full(CATALOG / "QFS_WATERFLOOD.DATA")
    strict = build(deck, Options(cnv_tol=None)).run()
    default = build(deck).run()
    assert int(np.sum(default.newton)) < int(np.sum(strict.newton))
    _assert_same_states(default, strict, sw_tol=1e-3, rel_tol=1e-5)


def test_float32_newton_solves_keep_the_float64_answer() -> None:
    """Newton steps solved in float32 (the default on CPU) converge to the float64 run's states: the residual,
    the state and the stopping test stay float64, so only the steps are inexact. Same sub-steps, Newton
    iterations within 5 %, saturations within 1e-5 and cumulatives and pressures within 1e-7 relative
    (far inside the stopping test's own spread, see the test above)."""
    from twins.reservoir.solver import Options

    deck = read_deck_full(CATALOG / "QFS_WATERFLOOD.DATA")
    exact = build(deck, Options(linear_precision="float64", krylov_iterations=0)).run()
    single = build(deck, Options(krylov_iterations=0)).run()
    assert not np.array_equal(np.asarray(single.p), np.asarray(exact.p))  # the float32 path was taken
    assert int(np.sum(single.substeps)) == int(np.sum(exact.substeps))
    assert abs(int(np.sum(single.newton)) - int(np.sum(exact.newton))) <= 0.05 * int(np.sum(exact.newton))
    _assert_same_states(single, exact, sw_tol=1e-5, rel_tol=1e-7)


@pytest.mark.parametrize("name", ["QFS_WATERFLOOD", "LAYERED_WATERFLOOD"])
def test_reused_factorisation_keeps_the_exact_newton_answer(name: str) -> None:
    """Factorising the Jacobian once per time step and solving the later Newton systems by GMRES
    (the default) converges to the states of exact Newton (a direct solve of every Newton system):
    the same sub-steps, the mass balance below 1e-9, saturations within cnv_tol (the residual is in
    saturation units) and cumulatives, pressures and BHPs within 1e-5 relative, as the stopping test
    allows (see test_opm_style_stopping_test_keeps_the_strict_answer)."""
    from twins.reservoir.solver import Options

    deck = read_deck_full(CATALOG / f"{name}.DATA")
    reused_case = build(deck)
    assert reused_case.sim.reuses_factorisation
    reused = reused_case.run()
    exact = build(deck, Options(krylov_iterations=0)).run()
    assert not np.array_equal(np.asarray(reused.p), np.asarray(exact.p))  # another path was taken
    assert int(np.sum(reused.substeps)) == int(np.sum(exact.substeps))
    assert int(np.sum(reused.failed)) == 0
    _assert_same_states(reused, exact, sw_tol=1e-3, rel_tol=1e-5)


@pytest.mark.parametrize("name", ["QFS_WATERFLOOD", "LAYERED_WATERFLOOD"])
def test_conservative_krylov_steps_keep_the_answer_in_fewer_iterations(name: str) -> None:
    """GMRES steps corrected to cancel each phase's linearised mass imbalance (the default) reach
    the states of plain GMRES steps (same sub-steps, no chopped step, mass balance below 1e-9,
    saturations within cnv_tol, cumulatives, pressures and BHPs within 1e-5 relative) with fewer
    Newton iterations: the stopping test's mass-balance part no longer needs iterations of its own."""
    from twins.reservoir.solver import Options

    deck = read_deck_full(CATALOG / f"{name}.DATA")
    conservative = build(deck).run()
    plain = build(deck, Options(conservative_krylov=False)).run()
    assert int(np.sum(conservative.substeps)) == int(np.sum(plain.substeps))
    assert int(np.sum(conservative.failed)) == 0
    assert float(np.max(conservative.mb_error)) < 1e-9
    assert int(np.sum(conservative.newton)) < int(np.sum(plain.newton))
    _assert_same_states(conservative, plain, sw_tol=1e-3, rel_tol=1e-5)


def test_float32_mode_is_refused_with_a_clear_error() -> None:
    """Without JAX float64 the simulator cannot hold pressures in Pa or balance mass to 1e-9 (every
    step fails and the run would return NaN); tracing it then raises and says how to enable float64."""
    case = build(read_deck_full(CATALOG / "GAS_DEPLETION.DATA"))
    with jax.enable_x64(False), pytest.raises(RuntimeError, match="x64_scope"):
        case.sim.run(case.model, case.x0, case.controls, case.dts, case.params())
