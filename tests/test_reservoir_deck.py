"""Reading Eclipse decks through opm.io: SPE1 grid and wells, clear errors for bad decks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import edited_copy, shared_file

pytest.importorskip("opm")

from pipelines.sources import SourceError  # noqa: E402
from pipelines.sources.reservoir import load, read_deck, read_deck_full  # noqa: E402

FT = 0.3048
CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "reservoir"


def test_spe1_grid_and_wells(shared_data: Path) -> None:
    deck = shared_file(shared_data, "reservoir/spe1/SPE1CASE1.DATA")
    cube, wells, schedule = read_deck(deck)
    assert dict(cube.sizes) == {"layer": 3, "y": 10, "x": 10}
    # Odeh (1981): layer permeabilities 500, 50, 200 mD; thicknesses 20, 30, 50 ft; top 8325 ft
    np.testing.assert_allclose(cube.permx.values[:, 0, 0], [500, 50, 200], rtol=1e-9)
    np.testing.assert_allclose(cube.dz.values[:, 0, 0], np.array([20, 30, 50]) * FT, rtol=1e-9)
    np.testing.assert_allclose(cube.depth.values[0, 0, 0], (8325 + 10) * FT, rtol=1e-9)
    np.testing.assert_allclose(cube.dx.values, 1000 * FT)
    assert cube.attrs["deck_units"] == "FIELD"
    inj = wells[wells.well == "INJ"].iloc[0]
    prod = wells[wells.well == "PROD"].iloc[0]
    assert (inj.i, inj.j, inj.k) == (0, 0, 0)
    assert (prod.i, prod.j, prod.k) == (9, 9, 2)
    ctrl = schedule.controls[0]
    # 20000 stb/day oil, 1000 psia minimum BHP; 100 MMscf/day gas injection
    np.testing.assert_allclose(ctrl["PROD"].orat, 20000 * 0.158987294928 / 86400, rtol=1e-9)
    np.testing.assert_allclose(ctrl["PROD"].bhp, 1000 * 6894.757293168, rtol=1e-9)
    np.testing.assert_allclose(ctrl["INJ"].rate, 100000 * 28.316846592 / 86400, rtol=1e-9)
    assert ctrl["INJ"].phase == "GAS"
    # report dates agree with OPM's own Schedule (120 monthly-ish steps, 2015-01-01 to 2024-12-29)
    from opm.io.ecl_state import EclipseState
    from opm.io.parser import Parser
    from opm.io.schedule import Schedule

    raw = Parser().parse(str(deck))
    ref = Schedule(raw, EclipseState(raw)).reportsteps
    assert list(schedule.dates.to_pydatetime()) == list(ref)


def test_peaceman_matches_opm_connection_factor(shared_data: Path) -> None:
    """Our Peaceman WI equals OPM's own connection transmissibility factor (independent implementation)."""
    from opm.io.ecl_state import EclipseState
    from opm.io.parser import Parser
    from opm.io.schedule import Schedule

    from twins.reservoir.geometry import MD
    from twins.reservoir.wells import peaceman_index

    path = shared_file(shared_data, "reservoir/spe1/SPE1CASE1.DATA")
    cube, wells, _ = read_deck(path)
    raw = Parser().parse(str(path))
    state = EclipseState(raw)
    ref = {w.name: w.connections()[0].cf for w in Schedule(raw, state).get_wells(0)}
    for row in wells.itertuples():
        sel = (row.k, row.j, row.i)
        wi = peaceman_index(*(np.array([cube[v].values[sel]]) * (MD if v.startswith("perm") else 1)
                              for v in ("permx", "permy", "permz", "dx", "dy", "dz", "ntg")),
                            np.array([row.diameter / 2]), np.array([row.skin]))  # fmt: skip
        assert wi[0] == pytest.approx(ref[row.well], rel=1e-6)


def _edit(tmp_path: Path, old: str, new: str) -> Path:
    return edited_copy(CATALOG / "QFS_WATERFLOOD.DATA", tmp_path / "BAD.DATA", old, new)


def test_unsupported_physics_keyword_is_named(tmp_path: Path) -> None:
    bad = _edit(tmp_path, "SOLUTION\n", "SWATINIT\n 400*0.3 /\nSOLUTION\n")
    with pytest.raises(SourceError, match="SWATINIT"):
        read_deck(bad)


def test_well_outside_grid(tmp_path: Path) -> None:
    bad = _edit(tmp_path, "'PROD' 20 20 1  1", "'PROD' 21 20 1  1")
    with pytest.raises((SourceError, ValueError), match="PROD|outside|21"):
        read_deck(bad)


def test_non_physical_tables(tmp_path: Path) -> None:
    from twins.reservoir.adapter import build
    from twins.reservoir.props import TableError

    bad = _edit(tmp_path, "   1.00   1.0      0.0      0 /", "   1.00   1.3      0.0      0 /")
    with pytest.raises(TableError, match=r"SWOF.*\[0, 1\]"):
        build(read_deck_full(bad))
    bad = _edit(tmp_path, "SWOF\n", "SWOF\n")
    text = bad.read_text().replace("PVCDO\n-- pref  Bo    co       muo  cv\n   200   1.2   1.4E-4   2.0  0 /",
                                   "PVDO\n 100 1.10 2.0\n 200 1.20 2.0\n 300 1.05 2.0 /")  # fmt: skip
    bad.write_text(text)
    with pytest.raises((TableError, SourceError), match="PVDO"):  # OPM's own check or ours
        build(read_deck_full(bad))


def test_three_phase_refused_with_reason(shared_data: Path, tmp_path: Path) -> None:
    """Three phases without DISGAS (dead oil + gas) are not modelled: the error says so."""
    from twins.reservoir.adapter import DeckError, build

    spe1 = shared_file(shared_data, "reservoir/spe1/SPE1CASE1.DATA")
    deck = edited_copy(spe1, tmp_path / "DEAD_OIL_3PHASE.DATA", "\nDISGAS\n", "\n", 1)
    with pytest.raises(DeckError, match="three-phase"):
        build(read_deck_full(deck))


def test_corner_point_spe10_model1(shared_data: Path) -> None:
    """SPE10 model 1 (COORD/ZCORN): 100 x 1 x 20 cells of 25 ft x 25 ft x 2.5 ft."""
    cube, wells, _ = read_deck(shared_file(shared_data, "reservoir/spe10model1/SPE10_MODEL1.DATA"))
    assert dict(cube.sizes) == {"layer": 20, "y": 1, "x": 100}
    np.testing.assert_allclose(cube.dx.values, 25 * FT, rtol=1e-6)
    np.testing.assert_allclose(cube.dz.values, 2.5 * FT, rtol=1e-6)
    np.testing.assert_allclose(np.diff(cube.x.values), 25 * FT, rtol=1e-6)
    assert set(wells.well) == {"INJ", "PROD"}


def test_load_onto_region_grid() -> None:
    """The static model lands on a region grid in the field CRS (origin from the config), NaN outside."""
    from pipelines.config import RegionConfig, SourceConfig
    from pipelines.grid import region_grid

    src = SourceConfig(
        name="field", kind="reservoir", path=str(CATALOG / "QFS_WATERFLOOD.DATA"),
        variables={"perm": {"name": "permx"}, "phi": {"name": "porosity"}},
        options={"crs": "EPSG:32631", "origin": [500000.0, 6000000.0]},
    )  # fmt: skip
    region = RegionConfig(
        name="f", crs="EPSG:32631", bounds=(499950, 5999950, 500250, 6000250), resolution=10.0
    )
    ds = load(src, region_grid(region))
    assert ds["perm"].dims == ("layer", "y", "x")
    x, y = ds.x.values, ds.y.values
    inside = ((x > 500000) & (x < 500200))[None, :] & ((y > 6000000) & (y < 6000200))[:, None]
    np.testing.assert_allclose(ds["perm"].values[0][inside], 200.0)
    np.testing.assert_allclose(ds["phi"].values[0][inside], 0.2)
    assert np.isnan(ds["perm"].values[0][~inside]).all()
