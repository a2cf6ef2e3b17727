"""Ocean/atmosphere model grids: ROMS Arakawa-C staggering and grid-relative vector rotation.

* :func:`roms_to_rho` (used by the gridded reader for ROMS files) averages u/v-point fields onto rho
  points and applies the land masks;
* :func:`rotation_angle` / :func:`angle_from_lonlat` give the angle between true east and a grid's
  x axis (from a CRS, or from 2-D lon/lat arrays), and :func:`rotate_to_east_north` turns
  grid-relative components into east/north ones (ROMS ``angle`` convention).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from pyproj import CRS, Transformer

from . import SourceError

_ROMS_POINTS = {"u": ("eta_u", "xi_u"), "v": ("eta_v", "xi_v")}


# ------------------------------------------------------------------------------- ROMS C-grid
def is_roms(ds: xr.Dataset) -> bool:
    return "xi_rho" in ds.dims and "eta_rho" in ds.dims and "lon_rho" in ds.variables


def roms_to_rho(ds: xr.Dataset, names: list[str]) -> xr.Dataset:
    """Average u/v-point variables to rho points (land u/v = 0, a wall), mask rho-point land with NaN.

    ROMS index convention: ``u[..., j]`` lies between ``rho[..., j]`` and ``rho[..., j+1]``
    (``v`` likewise along eta), for full grids (``xi_u = xi_rho - 1``) and for subsets cut at the
    same indices (``xi_u = xi_rho``). Rho points without a u/v neighbour on both sides get NaN.
    """
    out = {}
    mask_rho = ds["mask_rho"].fillna(0) if "mask_rho" in ds.variables else None
    for name in names:
        var = ds[name]
        kind = next(
            (k for k, dims in _ROMS_POINTS.items() if dims[1] in var.dims or dims[0] in var.dims), None
        )
        if kind is not None:
            eta, xi = _ROMS_POINTS[kind]
            if f"mask_{kind}" in ds.variables:
                var = var.where(ds[f"mask_{kind}"].fillna(0) > 0.5, 0.0)
            along, rho_dim = (xi, "xi_rho") if kind == "u" else (eta, "eta_rho")
            n_rho = ds.sizes[rho_dim]
            var = var.reset_coords(drop=True)
            padded = var.pad({along: (1, n_rho - var.sizes[along])}, constant_values=np.nan)
            left = padded.isel({along: slice(0, n_rho)})
            right = padded.isel({along: slice(1, n_rho + 1)})
            var = left.copy(data=0.5 * (left.data + right.data)).rename({eta: "eta_rho", xi: "xi_rho"})
            var.attrs = dict(ds[name].attrs)
        if mask_rho is not None and {"eta_rho", "xi_rho"} <= set(var.dims):
            var = var.where(mask_rho > 0.5)
            var.attrs = dict(ds[name].attrs)
        out[name] = var
    new = xr.Dataset(out, attrs=ds.attrs)
    new = new.assign_coords(
        lon=ds["lon_rho"].reset_coords(drop=True), lat=ds["lat_rho"].reset_coords(drop=True)
    )
    for extra in ("angle",):
        if extra in ds.variables:
            new[extra] = ds[extra].reset_coords(drop=True)
    return new


# ------------------------------------------------------------------------------------ vectors
def rotation_angle(crs: CRS | str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Angle (radians, counter-clockwise) from true east to the grid x axis at ``(x, y)`` (2-D, metres).

    Computed by finite differences of the projection: the direction of a small step north is mapped
    into the grid and measured from the grid's y axis. Valid for conformal projections (polar
    stereographic, Lambert conformal, Mercator), where the grid axes stay orthogonal on the ground.
    Same convention as the ROMS ``angle`` variable.
    """
    crs = CRS.from_user_input(crs)
    geo = crs.geodetic_crs or CRS.from_epsg(4326)
    inv = Transformer.from_crs(crs, geo, always_xy=True)
    fwd = Transformer.from_crs(geo, crs, always_xy=True)
    lon, lat = inv.transform(x, y)
    step = 1e-4
    sign = np.where(lat + step > 90.0, -1.0, 1.0)
    x2, y2 = fwd.transform(lon, lat + sign * step)
    nx, ny = sign * (x2 - x), sign * (y2 - y)
    return np.arctan2(nx, ny)


def angle_from_lonlat(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Angle (radians, counter-clockwise) from east to the grid's second (x) axis, from 2-D lon/lat."""
    dlon = np.gradient(np.unwrap(np.radians(lon), axis=1), axis=1)
    dlat = np.gradient(np.radians(lat), axis=1)
    return np.arctan2(dlat, dlon * np.cos(np.radians(lat)))


def rotate_to_east_north(u: Any, v: Any, angle: Any) -> tuple[Any, Any]:
    """Grid-relative ``(u, v)`` to ``(east, north)`` with the ROMS convention ``angle`` (x axis from east)."""
    cos, sin = np.cos(angle), np.sin(angle)
    return u * cos - v * sin, u * sin + v * cos


def rotate_dataset(ds: xr.Dataset, pair: list[str], where: str) -> xr.Dataset:
    if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(p in ds.data_vars for p in pair)):
        raise SourceError(
            f"{where}: option rotate must be [x_var, y_var] naming two selected variables, got {pair}"
        )
    xname, yname = pair
    u, v = ds[xname], ds[yname]
    if ds.attrs.get("geotwin_grid") == "regular":
        crs = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
        if crs.is_geographic:
            raise SourceError(
                f"{where}: rotate asked for {pair} but the grid is geographic (already east/north)"
            )
        xx, yy = np.meshgrid(ds["x"].values, ds["y"].values)
        angle = xr.DataArray(rotation_angle(crs, xx, yy), dims=("y", "x"))
    elif "angle" in ds.variables:
        angle = ds["angle"]
    else:
        angle = xr.DataArray(angle_from_lonlat(ds["lon"].values, ds["lat"].values), dims=u.dims[-2:])
    east, north = rotate_to_east_north(u, v, angle)
    for new, old, prefix in ((east, u, "eastward"), (north, v, "northward")):
        new.attrs = dict(old.attrs)
        sn = str(old.attrs.get("standard_name", ""))
        if sn.startswith(("x_", "y_")):
            new.attrs["standard_name"] = f"{prefix}_{sn[2:]}"
        elif sn.startswith(("grid_eastward_", "grid_northward_")):
            new.attrs["standard_name"] = sn.replace("grid_", "", 1)
        new.attrs["geotwin_rotated"] = "grid-relative components rotated to east/north"
    ds = ds.assign({xname: east, yname: north})
    return ds.drop_vars("angle", errors="ignore")
