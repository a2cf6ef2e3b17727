"""Eclipse decks (``.DATA`` with INCLUDEs) and GRDECL grids, read through OPM's parser (``opm.io``).

:func:`read_deck` returns the static model as a cube with dims ``(layer, y, x)``, the wells as a
completion table and the schedule (report steps with the well controls in force during each).
:func:`read_deck_full` also returns the fluid/rock tables and the initial state (all SI) that the
reservoir twin needs. :func:`load` is the ``kind: reservoir`` source reader of region builds.

Geometry: Cartesian grids (DX/DY/DZ/TOPS) are exact. Corner-point grids (COORD/ZCORN) are reduced to
cell centres and mean edge lengths (dx, dy, dz: the average of the four parallel edges of each cell),
so transmissibilities are computed as for a Cartesian cell of those sizes between logical neighbours
(no non-neighbour connections across faults). Cell volumes come from OPM's own corner-point geometry.

Units: the cube holds SI-based units (m, mD, 1); the deck's unit system (METRIC or FIELD) is kept in
``attrs["deck_units"]`` so that results can be written back in it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from . import SourceError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import SourceConfig
    from ..grid import RegionGrid

log = logging.getLogger(__name__)

MD = 9.86923266716013e-16  # m^2 per millidarcy (as OPM)
DAY = 86400.0
#: factors from deck units to SI: pressure (Pa), liquid rate (m3/s), gas rate (m3/s), length (m)
UNITS = {
    "METRIC": {"pressure": 1e5, "liquid": 1.0 / DAY, "gas": 1.0 / DAY, "length": 1.0},
    "FIELD": {
        "pressure": 6894.757293168,
        "liquid": 0.158987294928 / DAY,
        "gas": 28.316846592 / DAY,
        "length": 0.3048,
    },
}

#: keywords the reader understands (grid, props, solution, schedule)
SUPPORTED = {
    "DIMENS",
    "DX",
    "DY",
    "DZ",
    "TOPS",
    "COORD",
    "ZCORN",
    "SPECGRID",
    "PERMX",
    "PERMY",
    "PERMZ",
    "PORO",
    "NTG",
    "ACTNUM",
    "MULTX",
    "MULTY",
    "MULTZ",
    "PVTW",
    "PVDO",
    "PVCDO",
    "PVDG",
    "PVTO",
    "DENSITY",
    "ROCK",
    "SWOF",
    "SGOF",
    "SWFN",
    "SGFN",
    "EQUIL",
    "PRESSURE",
    "SWAT",
    "SGAS",
    "WELSPECS",
    "COMPDAT",
    "WCONPROD",
    "WCONINJE",
    "TSTEP",
    "DATES",
    "MAPAXES",
    "OIL",
    "WATER",
    "GAS",
    "DISGAS",
    "METRIC",
    "FIELD",
    "START",
    "RSVD",
    "COPY",
    "MULTIPLY",
    "EQUALS",
    "ADD",
    "BOX",
    "ENDBOX",
    "GRIDUNIT",
    "MAPUNITS",
    "DRSDT",
}
#: keywords that change the physics in ways this project does not model: reading refuses them
UNSUPPORTED_PHYSICS = {
    "VAPOIL",
    "POLYMER",
    "BRINE",
    "SOLVENT",
    "THERMAL",
    "TEMP",
    "FAULTS",
    "MULTFLT",
    "NNC",
    "EDITNNC",
    "AQUCT",
    "AQUFETP",
    "AQUANCON",
    "AQUNUM",
    "AQUCON",
    "THPRES",
    "SWATINIT",
    "ENDSCALE",
    "SWL",
    "SWCR",
    "SWU",
    "SOWCR",
    "KRW",
    "KRO",
    "DUALPORO",
    "DUALPERM",
    "LGR",
    "CARFIN",
    "WELSEGS",
    "COMPSEGS",
    "VFPPROD",
    "VFPINJ",
    "WCONHIST",
    "WCONINJH",
    "GCONPROD",
    "GCONINJE",
    "WECON",
    "WTEST",
    "ACTIONX",
    "PINCH",
    "MINPV",
    "PLYVISC",
    "HYSTER",
    "SATOPTS",
    "WPOLYMER",
    "WTRACER",
    "DRVDT",
}


@dataclass(frozen=True)
class WellControl:
    """Controls of one well during one report step (SI: m3/s at surface, Pa)."""

    well: str
    kind: str  # "PROD" or "INJ"
    status: str  # OPEN, SHUT, STOP
    mode: str  # ORAT WRAT GRAT LRAT BHP (producers); RATE BHP (injectors)
    phase: str = "OIL"  # injected phase for injectors
    orat: float = np.inf
    wrat: float = np.inf
    grat: float = np.inf
    lrat: float = np.inf
    rate: float = np.inf  # injector surface rate
    bhp: float = np.nan  # producer minimum / injector maximum BHP


@dataclass
class Schedule:
    """Report steps: ``times`` (days since ``start``, one per report, the first 0) and controls per step.

    ``controls[n]`` holds the controls in force from report ``n`` to ``n + 1``.
    """

    start: dt.datetime
    times: np.ndarray
    controls: list[dict[str, WellControl]] = field(default_factory=list)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex([self.start + dt.timedelta(days=float(t)) for t in self.times])


@dataclass
class DeckData:
    """Everything read from a deck: static cube, completions, schedule, tables (SI), initial state."""

    path: Path
    cube: xr.Dataset
    wells: pd.DataFrame
    schedule: Schedule
    props: dict[str, Any]
    init: dict[str, Any]
    units: str
    phases: tuple[str, ...]
    ignored: list[str]


def _parse(path: Path) -> Any:
    try:
        from opm.io.parser import Parser
    except ImportError as err:  # pragma: no cover - optional dependency
        raise SourceError(f"{path}: reading Eclipse decks needs OPM's parser: pip install opm") from err
    if not path.is_file():
        raise SourceError(f"{path}: deck file not found")
    try:
        return Parser().parse(str(path))
    except Exception as err:  # opm raises RuntimeError/ValueError with its own message
        raise SourceError(f"{path}: OPM parser could not read the deck: {err}") from err


def _item(rec: Any, name: str) -> Any:
    for it in rec:
        if it.name() == name:
            return it
    raise KeyError(name)


def _value(rec: Any, name: str, factor: float = 1.0, default: Any = None) -> Any:
    """An item's first value (UDA/number scaled by ``factor`` from deck units, or string); ``default`` if defaulted."""
    it = _item(rec, name)
    if getattr(it, "__defaulted")(0) or not getattr(it, "__has_value")(0):
        return default
    if it.is_uda():
        uda = it.get_uda(0)
        return uda.get_double() * factor if uda.is_double() else default
    if it.is_string():
        return it.get_str(0).strip()
    if it.is_int():
        return it.get_int(0)
    return it.get_raw(0) * factor


def _table(deck: Any, name: str, ncol: int) -> list[np.ndarray] | None:
    if name not in deck:
        return None
    out = []
    for rec in deck[name]:
        data = np.asarray(rec[0].get_SI_data_list(), dtype=float)
        if data.size % ncol:
            raise SourceError(f"{name}: expected rows of {ncol} values, got {data.size} values")
        out.append(data.reshape(-1, ncol))
    return out


def _records(deck: Any, name: str) -> list[list[float]]:
    if name not in deck:
        return []
    out = []
    for rec in deck[name]:
        row = []
        for it in rec:
            if it.is_double() and getattr(it, "__has_value")(0):
                row.extend(float(v) for v in it.get_SI_data_list())
            elif it.is_double():
                row.append(np.nan)
        out.append(row)
    return out


def _array(deck: Any, name: str, n: int, default: float | None = None) -> np.ndarray | None:
    if name in deck:
        kw = deck[name]
        try:
            arr = np.asarray(kw.get_SI_array(), dtype=float)
        except ValueError:  # integer keywords (ACTNUM)
            arr = np.asarray(kw.get_int_array(), dtype=float)
        if arr.size != n:
            raise SourceError(f"{name}: expected {n} values (one per cell), got {arr.size}")
        return arr
    return None if default is None else np.full(n, default)


def _corner_geometry(
    coord: np.ndarray, zcorn: np.ndarray, dims: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """Cell centres and mean edge lengths from COORD/ZCORN (pillars assumed straight)."""
    nx, ny, nz = dims
    pil = coord.reshape(ny + 1, nx + 1, 6)
    z = zcorn.reshape(nz, 2, ny, 2, nx, 2)  # k, top/bottom, j, front/back, i, left/right
    # pillar top/bottom points
    top, bot = pil[..., :3], pil[..., 3:]
    corners = np.empty((nz, 2, ny, 2, nx, 2, 3))
    for a in range(2):
        for b in range(2):
            p0 = top[a : a + ny, b : b + nx]  # (ny, nx, 3)
            p1 = bot[a : a + ny, b : b + nx]
            dz = np.where(np.abs(p1[..., 2] - p0[..., 2]) > 0, p1[..., 2] - p0[..., 2], 1.0)
            for c in range(2):
                zz = z[:, c, :, a, :, b]  # (nz, ny, nx)
                t = (zz - p0[..., 2]) / dz
                corners[:, c, :, a, :, b, 0] = p0[..., 0] + t * (p1[..., 0] - p0[..., 0])
                corners[:, c, :, a, :, b, 1] = p0[..., 1] + t * (p1[..., 1] - p0[..., 1])
                corners[:, c, :, a, :, b, 2] = zz
    centre = corners.mean(axis=(1, 3, 5))
    ex = np.linalg.norm(corners[..., 1, :] - corners[..., 0, :], axis=-1).mean(axis=(1, 3))
    ey = np.linalg.norm(corners[:, :, :, 1] - corners[:, :, :, 0], axis=-1).mean(axis=(1, 3))
    ez = np.linalg.norm(corners[:, 1] - corners[:, 0], axis=-1).mean(axis=(1, 3))
    return {"cx": centre[..., 0], "cy": centre[..., 1], "depth": centre[..., 2], "dx": ex, "dy": ey, "dz": ez}


def _cartesian_geometry(deck: Any, dims: tuple[int, int, int]) -> dict[str, np.ndarray]:
    nx, ny, nz = dims
    n = nx * ny * nz
    sizes = {}
    for key in ("DX", "DY", "DZ"):
        arr = _array(deck, key, n)
        if arr is None:
            raise SourceError(
                f"grid: neither {key} nor COORD/ZCORN given (expected a Cartesian or corner-point grid)"
            )
        sizes[key] = arr.reshape(nz, ny, nx)
    tops = np.asarray(deck["TOPS"].get_SI_array(), dtype=float) if "TOPS" in deck else None
    if tops is None:
        raise SourceError("grid: TOPS is missing (needed with DX/DY/DZ)")
    if tops.size == nx * ny:  # only the top layer given
        tops_full = np.empty((nz, ny, nx))
        tops_full[0] = tops.reshape(ny, nx)
        for k in range(1, nz):
            tops_full[k] = tops_full[k - 1] + sizes["DZ"][k - 1]
    elif tops.size == n:
        tops_full = tops.reshape(nz, ny, nx)
    else:
        raise SourceError(f"TOPS: expected {nx * ny} or {n} values, got {tops.size}")
    dx, dy, dz = sizes["DX"], sizes["DY"], sizes["DZ"]
    cx = np.cumsum(dx, axis=2) - dx / 2
    cy = np.cumsum(dy, axis=1) - dy / 2
    return {"cx": cx, "cy": cy, "depth": tops_full + dz / 2, "dx": dx, "dy": dy, "dz": dz}


def _xy_axes(
    geo: dict[str, np.ndarray], mapaxes: list[float] | None, options: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, str]:
    """1-D x/y cell-centre coordinates in the field CRS and the CRS WKT."""
    from pyproj import CRS

    cx = geo["cx"][0].mean(axis=0)
    cy = geo["cy"][0].mean(axis=1)
    ox, oy = options.get("origin", (0.0, 0.0))
    ux, uy = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    if mapaxes is not None:
        y1 = np.array(mapaxes[0:2])
        org = np.array(mapaxes[2:4])
        x1 = np.array(mapaxes[4:6])
        ox, oy = org
        ux = (x1 - org) / np.linalg.norm(x1 - org)
        uy = (y1 - org) / np.linalg.norm(y1 - org)
    rot = float(options.get("rotation", 0.0))
    if rot:
        c, s = np.cos(np.radians(rot)), np.sin(np.radians(rot))
        ux, uy = np.array([c, s]), np.array([-s, c])
    if abs(ux[1]) > 1e-9 or abs(uy[0]) > 1e-9:
        raise SourceError(
            "MAPAXES/rotation: the grid is rotated against the CRS axes; only axis-aligned grids map to a "
            f"(layer, y, x) cube (got x axis direction {ux.round(6).tolist()})"
        )
    x = ox + ux[0] * cx
    y = oy + uy[1] * cy
    crs = options.get("crs")
    if crs:
        wkt = CRS.from_user_input(crs).to_wkt()
    else:
        wkt = (
            'ENGCRS["reservoir local grid",EDATUM["deck origin"],CS[Cartesian,2],'
            'AXIS["x",east,ORDER[1],LENGTHUNIT["metre",1]],AXIS["y",north,ORDER[2],LENGTHUNIT["metre",1]]]'
        )
    return x, y, wkt


def _check_keywords(deck: Any, path: Path) -> list[str]:
    ignored = []
    for kw in deck:
        name = kw.name
        if name in UNSUPPORTED_PHYSICS:
            raise SourceError(
                f"{path}: keyword {name} changes the physics and is not supported by geotwin's reader"
            )
        if name not in SUPPORTED and name not in ignored:
            ignored.append(name)
    if ignored:
        log.info("%s: ignored keywords without effect on the modelled physics: %s", path, ", ".join(ignored))
    return ignored


def _schedule(deck: Any, units: str, start: dt.datetime, path: Path) -> tuple[Schedule, pd.DataFrame]:
    f = UNITS[units]
    times = [0.0]
    controls: list[dict[str, WellControl]] = []
    current: dict[str, WellControl] = {}
    welspecs: dict[str, dict[str, Any]] = {}
    comps: list[dict[str, Any]] = []
    in_schedule = False
    for kw in deck:
        name = kw.name
        if name == "SCHEDULE":
            in_schedule = True
        if not in_schedule:
            continue
        if name == "WELSPECS":
            for rec in kw:
                w = _value(rec, "WELL")
                welspecs[w] = {
                    "group": _value(rec, "GROUP"),
                    "head_i": _value(rec, "HEAD_I") - 1,
                    "head_j": _value(rec, "HEAD_J") - 1,
                    "ref_depth": _value(rec, "REF_DEPTH", f["length"]),
                    "phase": _value(rec, "PHASE"),
                }
        elif name == "COMPDAT":
            for rec in kw:
                w = _value(rec, "WELL")
                if w not in welspecs:
                    raise SourceError(f"{path}: COMPDAT names well {w!r} before its WELSPECS")
                i = _value(rec, "I", default=0) or welspecs[w]["head_i"] + 1
                j = _value(rec, "J", default=0) or welspecs[w]["head_j"] + 1
                for k in range(_value(rec, "K1"), _value(rec, "K2") + 1):
                    comps.append(
                        {
                            "well": w, "i": i - 1, "j": j - 1, "k": k - 1,
                            "state": _value(rec, "STATE", default="OPEN"),
                            "cf": _value(rec, "CONNECTION_TRANSMISSIBILITY_FACTOR", default=np.nan),
                            "diameter": _value(rec, "DIAMETER", f["length"], default=0.3048 * 1.0),
                            "skin": _value(rec, "SKIN", default=0.0),
                            "dir": _value(rec, "DIR", default="Z"),
                        }
                    )  # fmt: skip
        elif name in ("WCONPROD", "WCONINJE"):
            for rec in kw:
                w = _value(rec, "WELL")
                if w not in welspecs:
                    raise SourceError(f"{path}: {name} names well {w!r} that has no WELSPECS")
                status = _value(rec, "STATUS", default="OPEN")
                if name == "WCONPROD":
                    lim = {
                        k.lower(): _value(rec, k, f["gas" if k == "GRAT" else "liquid"], np.inf)
                        for k in ("ORAT", "WRAT", "GRAT", "LRAT")
                    }
                    mode = _value(rec, "CMODE")
                    if mode not in ("ORAT", "WRAT", "GRAT", "LRAT", "BHP"):
                        raise SourceError(
                            f"{path}: WCONPROD control mode {mode!r} of well {w} is not supported (ORAT/WRAT/GRAT/LRAT/BHP)"
                        )
                    bhp = _value(rec, "BHP", f["pressure"], 101325.0)
                    current[w] = WellControl(w, "PROD", status, mode, bhp=bhp, **lim)
                else:
                    phase = _value(rec, "TYPE")
                    mode = _value(rec, "CMODE")
                    if mode not in ("RATE", "BHP"):
                        raise SourceError(
                            f"{path}: WCONINJE control mode {mode!r} of well {w} is not supported (RATE/BHP)"
                        )
                    if phase not in ("WATER", "GAS", "WAT"):
                        raise SourceError(
                            f"{path}: WCONINJE injection type {phase!r} of well {w} is not supported"
                        )
                    phase = "WATER" if phase.startswith("WAT") else phase
                    rate = _value(rec, "RATE", f["gas" if phase == "GAS" else "liquid"], np.inf)
                    bhp = _value(rec, "BHP", f["pressure"], 1e12)
                    current[w] = WellControl(w, "INJ", status, mode, phase=phase, rate=rate, bhp=bhp)
        elif name in ("TSTEP", "DATES"):
            if name == "TSTEP":
                steps = [v / DAY for v in kw[0][0].get_SI_data_list()]
            else:
                steps = []
                t_prev = start + dt.timedelta(days=times[-1])
                for rec in kw:
                    day, mon, year = rec[0].get_int(0), rec[1].get_str(0), rec[2].get_int(0)
                    when = dt.datetime.strptime(f"{day} {mon[:3].title()} {year}", "%d %b %Y")
                    if rec[3].get_str(0).strip() if getattr(rec[3], "__has_value")(0) else "":
                        hh = [int(p) for p in rec[3].get_str(0).split(":")]
                        when = when.replace(hour=hh[0], minute=hh[1] if len(hh) > 1 else 0)
                    steps.append((when - t_prev).total_seconds() / DAY)
                    t_prev = when
            for s in steps:
                if s <= 0:
                    raise SourceError(f"{path}: {name} gives a non-positive report step ({s} days)")
                controls.append(dict(current))
                times.append(times[-1] + s)
    wells = pd.DataFrame(comps, columns=["well", "i", "j", "k", "state", "cf", "diameter", "skin", "dir"])
    for key in ("group", "head_i", "head_j", "ref_depth", "phase"):
        wells[key] = [welspecs[w][key] for w in wells["well"]]
    return Schedule(start, np.asarray(times), controls), wells


def _field_properties(deck: Any, path: Path, n: int) -> dict[str, np.ndarray]:
    """Cell properties after OPM's own processing of COPY/MULTIPLY/EQUALS/BOX edits (full-grid arrays)."""
    from opm.io.ecl_state import EclipseState

    for key in ("PERMX", "PORO"):
        if key not in deck:
            raise SourceError(f"{path}: {key} is missing (needed for every cell)")
    actnum = _array(deck, "ACTNUM", n, 1.0)
    try:
        props = EclipseState(deck).field_props()
    except Exception as err:
        raise SourceError(f"{path}: OPM rejected the deck: {err}") from err
    active = np.flatnonzero(actnum > 0)

    def full(name: str, fallback: str | None = None, default: float | None = None) -> np.ndarray:
        key = name if name in props else fallback
        out = np.full(n, np.nan if default is None else default)
        if key is not None and key in props:
            values = np.asarray(props.get_double_array(key), dtype=float)
            if values.size != active.size:
                raise SourceError(
                    f"{path}: {key} has {values.size} active values, expected {active.size} (ACTNUM)"
                )
            out[active] = values
        elif default is None:
            raise SourceError(f"{path}: {name} is missing")
        return out

    return {
        "permx": full("PERMX") / MD, "permy": full("PERMY", "PERMX") / MD, "permz": full("PERMZ", "PERMX") / MD,
        "porosity": np.nan_to_num(full("PORO")), "ntg": full("NTG", default=1.0), "actnum": actnum,
        "multx": full("MULTX", default=1.0), "multy": full("MULTY", default=1.0), "multz": full("MULTZ", default=1.0),
    }  # fmt: skip


def read_deck_full(path: str | Path, options: dict[str, Any] | None = None) -> DeckData:
    """Read an Eclipse deck with OPM's parser into a :class:`DeckData` (see module docstring).

    Parameters
    ----------
    path
        ``.DATA`` deck (INCLUDEs resolved by OPM) or a GRDECL grid file.
    options
        ``crs`` (any pyproj CRS), ``origin`` ``(x0, y0)``, ``rotation`` (degrees) used when the deck
        has no MAPAXES.

    Raises
    ------
    SourceError
        Unreadable deck, an unsupported physics keyword (named), inconsistent array sizes, a well
        outside the grid.
    """
    path = Path(path)
    options = dict(options or {})
    deck = _parse(path)
    ignored = _check_keywords(deck, path)
    units = "FIELD" if "FIELD" in deck else "METRIC"
    if "DIMENS" in deck:
        nx, ny, nz = (int(deck["DIMENS"][0][k].get_int(0)) for k in range(3))
    elif "SPECGRID" in deck:
        nx, ny, nz = (int(deck["SPECGRID"][0][k].get_int(0)) for k in range(3))
    else:
        raise SourceError(f"{path}: neither DIMENS nor SPECGRID: cannot size the grid")
    n = nx * ny * nz
    if "COORD" in deck and "ZCORN" in deck:
        geo = _corner_geometry(deck["COORD"].get_SI_array(), deck["ZCORN"].get_SI_array(), (nx, ny, nz))
        geometry = "corner-point (centres and mean edge lengths)"
    else:
        geo = _cartesian_geometry(deck, (nx, ny, nz))
        geometry = "cartesian"
    fields = _field_properties(deck, path, n)
    for key, arr in fields.items():
        if key != "actnum" and np.any(arr < 0):
            raise SourceError(f"{path}: {key.upper()} has negative values (min {arr.min():g})")
    if np.any(fields["porosity"] > 1):
        raise SourceError(f"{path}: PORO has values above 1 (max {fields['porosity'].max():g})")
    mapaxes = list(deck["MAPAXES"].get_SI_array()) if "MAPAXES" in deck else None
    x, y, wkt = _xy_axes(geo, mapaxes, options)
    shape = (nz, ny, nx)
    meta = {
        "permx": ("mD", "permeability in x", None), "permy": ("mD", "permeability in y", None),
        "permz": ("mD", "permeability in z", None), "porosity": ("1", "porosity", None),
        "ntg": ("1", "net-to-gross ratio", None), "actnum": ("1", "active cell flag", None),
        "multx": ("1", "transmissibility multiplier x", None), "multy": ("1", "transmissibility multiplier y", None),
        "multz": ("1", "transmissibility multiplier z", None),
        "dx": ("m", "cell size in x", None), "dy": ("m", "cell size in y", None), "dz": ("m", "cell thickness", None),
        "depth": ("m", "cell centre depth", "depth"),
    }  # fmt: skip
    data = {k: v.reshape(shape) for k, v in fields.items()}
    data.update({k: geo[k] for k in ("dx", "dy", "dz", "depth")})
    coords = {
        "layer": ("layer", np.arange(nz)),
        "y": (
            "y",
            y,
            {"units": "m", "axis": "Y", "standard_name": "projection_y_coordinate", "long_name": "y"},
        ),
        "x": (
            "x",
            x,
            {"units": "m", "axis": "X", "standard_name": "projection_x_coordinate", "long_name": "x"},
        ),
        "spatial_ref": ((), 0, {"crs_wkt": wkt}),
    }
    dvars = {}
    for k, arr in data.items():
        units_, long_name, std = meta[k]
        attrs = {"units": units_, "long_name": long_name, "grid_mapping": "spatial_ref"}
        if std:
            attrs["standard_name"] = std
        dvars[k] = xr.DataArray(arr, dims=("layer", "y", "x"), attrs=attrs)
    from ..cube import make_cube, sha256_file

    start = dt.datetime(2000, 1, 1)
    if "START" in deck:
        rec = deck["START"][0]
        start = dt.datetime.strptime(
            f"{rec[0].get_int(0)} {rec[1].get_str(0)[:3].title()} {rec[2].get_int(0)}", "%d %b %Y"
        )
    schedule, wells = _schedule(deck, units, start, path)
    for row in wells.itertuples():
        if not (0 <= row.i < nx and 0 <= row.j < ny and 0 <= row.k < nz):
            raise SourceError(
                f"{path}: well {row.well} has a completion at (I,J,K)=({row.i + 1},{row.j + 1},{row.k + 1}) "
                f"outside the {nx}x{ny}x{nz} grid"
            )
    phases = tuple(p for p in ("OIL", "WATER", "GAS") if p in deck) + (
        ("DISGAS",) if "DISGAS" in deck else ()
    )
    ds = xr.Dataset(dvars, coords=coords)
    cube = make_cube(
        ds.data_vars,
        attrs={
            "deck_units": units,
            "geometry": geometry,
            "phases": ",".join(phases),
            "start": start.isoformat(),
            "title": path.stem,
        },
        sources=[{"path": str(path), "sha256": sha256_file(path)}],
        config=json.dumps({"path": str(path), **{k: str(v) for k, v in options.items()}}),
    ).assign_coords({k: (v[0], v[1], v[2]) if len(v) == 3 else v for k, v in coords.items() if k != "layer"})
    props = {
        "PVTW": _records(deck, "PVTW"), "PVCDO": _records(deck, "PVCDO"), "ROCK": _records(deck, "ROCK"),
        "DENSITY": _records(deck, "DENSITY"), "PVDO": _table(deck, "PVDO", 3), "PVDG": _table(deck, "PVDG", 3),
        "SWOF": _table(deck, "SWOF", 4), "SGOF": _table(deck, "SGOF", 4), "SWFN": _table(deck, "SWFN", 3),
        "SGFN": _table(deck, "SGFN", 3),
    }  # fmt: skip
    init = {
        "EQUIL": _records(deck, "EQUIL"),
        "PRESSURE": _array(deck, "PRESSURE", n), "SWAT": _array(deck, "SWAT", n), "SGAS": _array(deck, "SGAS", n),
    }  # fmt: skip
    return DeckData(path, cube, wells, schedule, props, init, units, phases, ignored)


def read_deck(path: str | Path) -> tuple[xr.Dataset, pd.DataFrame, Schedule]:
    """Read a deck: ``(static cube (layer, y, x), completions table, schedule)``.

    See :func:`read_deck_full` for the errors and the fluid tables.
    """
    deck = read_deck_full(path)
    return deck.cube, deck.wells, deck.schedule


def load(source: SourceConfig, grid: RegionGrid) -> xr.Dataset:
    """Reservoir source reader: the static model of ``source.path`` on the region grid (nearest cell).

    ``source.options`` may give ``crs``, ``origin`` and ``rotation`` (see :func:`read_deck_full`);
    ``source.variables`` maps output names to cube variables (``{"perm": {"name": "permx"}}``); empty
    means all static variables. Region cells outside the reservoir grid are NaN.
    """
    from ..grid import check_same_body

    deck = read_deck_full(source.path, source.options)
    cube = deck.cube
    if "crs" in source.options:
        check_same_body(cube["spatial_ref"].attrs["crs_wkt"], grid.crs, what=f"source {source.name}")
    wanted = {k: (v.name or k) for k, v in source.variables.items()} or {k: k for k in cube.data_vars}
    coords = grid.coords()
    gx, gy = np.asarray(coords["x"]), np.asarray(coords["y"])

    def nearest(centres: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(centres)
        c = centres[order]
        edges = np.concatenate([[c[0] - (c[1] - c[0]) / 2 if c.size > 1 else c[0] - 0.5], (c[1:] + c[:-1]) / 2,
                                [c[-1] + (c[-1] - c[-2]) / 2 if c.size > 1 else c[0] + 0.5]])  # fmt: skip
        idx = np.searchsorted(edges, targets) - 1
        ok = (idx >= 0) & (idx < c.size)
        return order[np.clip(idx, 0, c.size - 1)], ok

    ix, okx = nearest(np.asarray(cube.x), gx)
    iy, oky = nearest(np.asarray(cube.y), gy)
    mask = oky[:, None] & okx[None, :]
    out = {}
    for name, var in wanted.items():
        if var not in cube:
            raise SourceError(
                f"source {source.name}: variable {var!r} is not in the deck cube (have {list(cube.data_vars)})"
            )
        vals = np.asarray(cube[var].values, dtype="float64")[:, iy][:, :, ix]
        vals = np.where(mask[None], vals, np.nan)
        attrs = {k: v for k, v in cube[var].attrs.items() if k != "grid_mapping"}
        out[name] = xr.DataArray(
            vals, dims=("layer", "y", "x"), coords={"layer": cube.layer.values}, attrs=attrs
        )
    ds = xr.Dataset(out).assign_coords(coords)
    for v in ds.data_vars.values():
        v.attrs["grid_mapping"] = "spatial_ref"
    ds.attrs["geotwin_source_files"] = json.loads(cube.attrs["geotwin_sources"])
    return ds
