"""Forcing-cube factories for the ice twin tests (analytic fields on odc-geo grids); no tests here."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from pipelines.cube import grid_coords, make_cube

ATTRS = {
    "uo": ("m s-1", "eastward sea water velocity", "eastward_sea_water_velocity"),
    "vo": ("m s-1", "northward sea water velocity", "northward_sea_water_velocity"),
    "u10": ("m s-1", "eastward wind at 10 m", "eastward_wind"),
    "v10": ("m s-1", "northward wind at 10 m", "northward_wind"),
    "siu": ("m s-1", "eastward sea ice velocity", "eastward_sea_ice_velocity"),
    "siv": ("m s-1", "northward sea ice velocity", "northward_sea_ice_velocity"),
    "sea_ice_concentration": ("1", "sea ice area fraction", "sea_ice_area_fraction"),
    "sea_ice_thickness": ("m", "sea ice thickness", "sea_ice_thickness"),
    "zos": ("m", "sea surface height above geoid", "sea_surface_height_above_geoid"),
}

#: Conformal stereographic grid centred on 80N 0E: east = +x, north = +y and scale 1 at the origin,
#: scale error < 1e-4 within 100 km of it.
ST80 = "+proj=stere +lat_0=80 +lon_0=0 +k=1 +R=6371000 +units=m +no_defs"
#: Same at the equator (f ~ 0).
EQC0 = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +R=6371000 +units=m +no_defs"


def grid(crs: str, x0: float, y0: float, nx: int, ny: int, res: float) -> GeoBox:
    """North-up GeoBox with its top-left corner at (x0, y0 + ny * res)."""
    return GeoBox((ny, nx), Affine(res, 0.0, x0, 0.0, -res, y0 + ny * res), crs)


def forcing_cube(
    gbox: GeoBox,
    times: pd.DatetimeIndex | None = None,
    dtype: str = "float64",
    **fields: float | np.ndarray | Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> xr.Dataset:
    """A forcing cube on ``gbox``; each field is a constant, an array or ``fn(t_s, y2d, x2d)``."""
    times = times if times is not None else pd.DatetimeIndex(["2016-02-01T12:00"])
    coords = grid_coords(gbox)
    x, y = coords["x"].values, coords["y"].values
    xx, yy = np.meshgrid(x, y)
    ts = (times - times[0]).total_seconds().to_numpy()
    data = {}
    for name, spec in fields.items():
        if callable(spec):
            arr = np.stack([spec(t, yy, xx) for t in ts])
        else:
            arr = np.broadcast_to(np.asarray(spec, float), (len(ts), len(y), len(x)))
        units, long_name, std = ATTRS[name]
        data[name] = xr.DataArray(
            arr.astype(dtype),
            dims=("time", "y", "x"),
            coords={"time": times.values},
            attrs={"units": units, "long_name": long_name, "standard_name": std},
        )
    return make_cube(data, gbox)


def build_barents_store(shared_data, tmp_path, *, end: str = "2016-02-04T12:00"):
    """Build the demo ``barents`` cube (catalogs/demo/barents.yaml) from shared/data's Arctic20 file.

    Returns ``(store_path, cube)``; the time axis is cut at ``end`` to keep the build short.
    """
    import yaml

    from pipelines import open_cube
    from pipelines.build import build_region
    from tests.conftest import REPO, shared_file

    nc = shared_file(shared_data, "ocean_ice/Arctic20_1to5Feb_2016.nc")
    cfg = yaml.safe_load((REPO / "catalogs" / "demo" / "barents.yaml").read_text())
    cfg["sources"][0]["path"] = str(nc)
    cfg["time"]["end"] = end
    path = tmp_path / "barents.yaml"
    path.write_text(yaml.safe_dump(cfg))
    store = tmp_path / "store"
    build_region(path, store)
    return store, open_cube(store, "barents").load()
