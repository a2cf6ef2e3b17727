"""Region grid: a validated config becomes an immutable odc-geo ``GeoBox`` plus time axis and chunks.

Any pyproj CRS works: UTM for fields and cities, polar stereographic (EPSG:3413/3995/3031) for the
poles, geographic, and CRSs of other bodies (e.g. ``IAU_2015:49900`` for Mars). Grids of different
bodies never mix: :func:`check_same_body` refuses to align a Mars raster onto an Earth grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from pyproj import CRS

from .config import RegionConfig


class GridError(ValueError):
    """A grid/CRS problem: mismatched bodies, unknown CRS, a source that misses the region."""


@dataclass(frozen=True)
class RegionGrid:
    """The common grid of a region.

    Attributes
    ----------
    name
        Region name (also the default cube name).
    geobox
        odc-geo GeoBox: CRS, affine transform (north-up), shape ``(ny, nx)``.
    time
        Regular time axis (UTC, naive ``datetime64[ns]``) or ``None`` for static cubes.
    chunks
        Chunk sizes by dim name (``time``, ``y``, ``x`` and any extra dims).
    """

    name: str
    geobox: GeoBox
    time: pd.DatetimeIndex | None = None
    chunks: dict[str, int] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def crs(self) -> CRS:
        return CRS.from_user_input(self.geobox.crs.to_wkt())

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.geobox.shape)  # type: ignore[return-value]

    def coords(self) -> dict[str, xr.DataArray]:
        """Cell-centre ``y``/``x`` coordinates and the CF ``spatial_ref`` coordinate."""
        from .cube import grid_coords

        coords = grid_coords(self.geobox)
        if self.time is not None:
            coords["time"] = xr.DataArray(
                self.time.values, dims=("time",), attrs={"standard_name": "time", "axis": "T"}
            )
        return coords

    def template(self, dtype: str = "float32") -> xr.DataArray:
        """An all-NaN lazy template on the grid (useful for tests and alignment)."""
        import dask.array as da

        dims = ("time", "y", "x") if self.time is not None else ("y", "x")
        shape = ((len(self.time),) if self.time is not None else ()) + self.shape
        chunks = tuple(min(self.chunks.get(d, n), n) for d, n in zip(dims, shape, strict=True))
        data = da.full(shape, np.nan, dtype=dtype, chunks=chunks)
        return xr.DataArray(data, dims=dims, coords=self.coords())


def body_of(crs: CRS) -> str:
    """Name of the celestial body a CRS refers to (from its ellipsoid/datum, 'Earth' by default)."""
    texts = [crs.name or "", crs.ellipsoid.name if crs.ellipsoid else "", crs.datum.name if crs.datum else ""]
    joined = " ".join(texts).lower()
    for body in (
        "mars",
        "moon",
        "mercury",
        "venus",
        "jupiter",
        "europa",
        "titan",
        "enceladus",
        "ceres",
        "vesta",
    ):
        if body in joined:
            return body.capitalize()
    if crs.ellipsoid is not None and not 6.3e6 < crs.ellipsoid.semi_major_metre < 6.4e6:
        return f"body with radius {crs.ellipsoid.semi_major_metre:.0f} m"
    return "Earth"


def check_same_body(source_crs: CRS | str, grid_crs: CRS | str, *, what: str = "source") -> None:
    """Raise :class:`GridError` when two CRSs belong to different celestial bodies."""
    a, b = CRS.from_user_input(source_crs), CRS.from_user_input(grid_crs)
    if body_of(a) != body_of(b):
        raise GridError(
            f"{what}: CRS is on {body_of(a)} but the region grid is on {body_of(b)}; they cannot be aligned"
        )


def region_grid(config: RegionConfig) -> RegionGrid:
    """Build the :class:`RegionGrid` of a validated region config.

    The bounds are snapped outwards to whole cells, so the grid covers at least the declared bounds.
    """
    crs = CRS.from_user_input(config.crs)
    if config.body is not None and body_of(crs).lower() != config.body.lower():
        raise GridError(
            f"region {config.name!r}: field 'body' says {config.body} but crs is on {body_of(crs)}"
        )
    res = config.resolution
    rx, ry = (res, res) if isinstance(res, float | int) else res
    xmin, ymin, xmax, ymax = config.bounds
    nx = int(np.ceil(round((xmax - xmin) / rx, 9)))
    ny = int(np.ceil(round((ymax - ymin) / ry, 9)))
    from affine import Affine

    geobox = GeoBox((ny, nx), Affine(rx, 0.0, xmin, 0.0, -ry, ymax), crs.to_wkt())
    time = None
    if config.time is not None:
        time = pd.date_range(config.time.start, config.time.end, freq=config.time.freq, tz=None)
        if time.tz is not None:
            time = time.tz_convert("UTC").tz_localize(None)
    return RegionGrid(
        name=config.name, geobox=geobox, time=time, chunks=dict(config.chunks), attrs=dict(config.attrs)
    )


def grid_from_cube(ds: xr.Dataset | xr.DataArray, name: str = "cube") -> RegionGrid:
    """Recover the :class:`RegionGrid` of a cube from its ``x``/``y`` coords and ``spatial_ref``."""
    from affine import Affine

    if "spatial_ref" not in ds.coords:
        raise GridError(f"{name}: no 'spatial_ref' coordinate; cannot recover the grid")
    wkt = ds.coords["spatial_ref"].attrs.get("crs_wkt")
    if not wkt:
        raise GridError(f"{name}: 'spatial_ref' has no 'crs_wkt' attribute")
    x, y = ds["x"].values, ds["y"].values
    rx = float(x[1] - x[0]) if x.size > 1 else float(ds["x"].attrs.get("resolution", 1.0))
    ry = float(y[1] - y[0]) if y.size > 1 else float(ds["y"].attrs.get("resolution", -1.0))
    transform = Affine(rx, 0.0, float(x[0]) - rx / 2, 0.0, ry, float(y[0]) - ry / 2)
    geobox = GeoBox((y.size, x.size), transform, wkt)
    time = pd.DatetimeIndex(ds["time"].values) if "time" in ds.dims else None
    return RegionGrid(name=name, geobox=geobox, time=time)
