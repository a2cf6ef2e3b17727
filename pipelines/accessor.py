"""``ds.geotwin`` / ``da.geotwin``: the common cube operations as an xarray accessor.

Importing this module registers the accessors; it imports only xarray at module level (pyproj,
odc-geo and matplotlib are imported on first use), so ``import pipelines`` stays cheap. The accessor
is thin: it calls :mod:`pipelines.grid` and :mod:`pipelines.cube`.

Examples
--------
>>> ds = pipelines.open_cube("cubes", "barents")            # doctest: +SKIP
>>> ds.geotwin.crs.to_epsg()                                 # doctest: +SKIP
3413
>>> ds.geotwin.sel_lonlat(30.0, 75.0)["u10"]                 # doctest: +SKIP
>>> ds.geotwin.plot("sea_ice_concentration", time=-1)        # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:  # pragma: no cover
    from pyproj import CRS

    from .grid import RegionGrid


class _GeotwinBase:
    """Shared implementation of the Dataset and DataArray accessors."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    @property
    def _name(self) -> str:
        return str(getattr(self._obj, "name", None) or "cube")

    @property
    def grid(self) -> RegionGrid:
        """The cube's grid (:class:`pipelines.grid.RegionGrid`, with an odc-geo ``GeoBox``)."""
        from .grid import grid_from_cube

        return grid_from_cube(self._obj, name=self._name)

    @property
    def crs(self) -> CRS:
        """The cube's CRS (pyproj), from the ``spatial_ref`` coordinate."""
        from pyproj import CRS

        from .grid import GridError

        if "spatial_ref" not in self._obj.coords or "crs_wkt" not in self._obj["spatial_ref"].attrs:
            raise GridError(f"{self._name}: no 'spatial_ref' coordinate with 'crs_wkt'; not a gridded cube")
        return CRS.from_wkt(self._obj["spatial_ref"].attrs["crs_wkt"])

    def _geographic(self) -> CRS:
        """WGS84 for Earth grids, the body's own geographic CRS otherwise."""
        from pyproj import CRS

        from .grid import body_of

        crs = self.crs
        return CRS.from_epsg(4326) if body_of(crs) == "Earth" else crs.geodetic_crs

    def to_lonlat(self) -> tuple[xr.DataArray, xr.DataArray]:
        """Longitude and latitude (degrees) of the cell centres, each a 2-D ``(y, x)`` DataArray."""
        import numpy as np
        from pyproj import Transformer

        obj = self._obj
        xx, yy = np.meshgrid(obj["x"].values, obj["y"].values)
        lon, lat = Transformer.from_crs(self.crs, self._geographic(), always_xy=True).transform(xx, yy)
        coords = {"y": obj["y"], "x": obj["x"]}
        lon_da = xr.DataArray(
            lon,
            dims=("y", "x"),
            coords=coords,
            name="lon",
            attrs={"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"},
        )
        lat_da = xr.DataArray(
            lat,
            dims=("y", "x"),
            coords=coords,
            name="lat",
            attrs={"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"},
        )
        return lon_da, lat_da

    def sel_lonlat(self, lon: Any, lat: Any, method: str = "nearest") -> xr.Dataset | xr.DataArray:
        """Select the cell(s) containing geographic point(s).

        Parameters
        ----------
        lon, lat
            Degrees (scalars, or 1-D arrays of equal length: then the result has a ``points`` dim).
            Longitudes may be given in -180..180 or 0..360.
        method
            Passed to :meth:`xarray.Dataset.sel`; ``"nearest"`` picks the cell whose centre is nearest in
            CRS units, which on the regular cube grid is the cell that contains the point.

        Raises
        ------
        pipelines.grid.GridError
            If a point lies outside the grid.
        """
        import numpy as np
        from pyproj import Transformer

        from .grid import GridError

        lon_a, lat_a = (
            np.atleast_1d(np.asarray(lon, dtype=float)),
            np.atleast_1d(np.asarray(lat, dtype=float)),
        )
        if lon_a.shape != lat_a.shape or lon_a.ndim != 1:
            raise ValueError(
                f"lon and lat must be scalars or 1-D arrays of equal length, got {lon_a.shape} and {lat_a.shape}"
            )
        x, y = Transformer.from_crs(self._geographic(), self.crs, always_xy=True).transform(lon_a, lat_a)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        col, row = ~self.grid.geobox.affine * (x, y)
        ny, nx = self._obj.sizes["y"], self._obj.sizes["x"]
        outside = ~(np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < nx) & (row >= 0) & (row < ny))
        if outside.any():
            i = int(np.argmax(outside))
            raise GridError(f"{self._name}: point lon={lon_a[i]}, lat={lat_a[i]} is outside the grid")
        if np.ndim(lon) == 0 and np.ndim(lat) == 0:
            return self._obj.sel(x=x[0], y=y[0], method=method)
        points = {"x": xr.DataArray(x, dims="points"), "y": xr.DataArray(y, dims="points")}
        return self._obj.sel(points, method=method)

    def _plot(self, da: xr.DataArray, time: int | str | Any, ax: Any, **kw: Any) -> Any:
        import matplotlib.pyplot as plt

        if da.dims[-2:] != ("y", "x"):
            raise ValueError(
                f"{da.name!r}: dims {da.dims} are not on the cube grid (…, y, x); nothing to map"
            )
        title = [str(da.name)]
        if "time" in da.dims:
            da = da.isel(time=time) if isinstance(time, int) else da.sel(time=time, method="nearest")
            title.append(str(da["time"].values)[:19])
        for dim in da.dims[:-2]:  # other dims (band, layer, member…): the first entry
            da = da.isel({dim: 0})
            title.append(f"{dim}={da[dim].values if dim in da.coords else 0}")
        if ax is None:
            _, ax = plt.subplots()
        units, long_name = da.attrs.get("units", ""), da.attrs.get("long_name", da.name)
        kw.setdefault("cbar_kwargs", {"label": f"{long_name} [{units}]"})
        if hasattr(ax, "projection"):  # a cartopy GeoAxes: draw in the cube's CRS
            import cartopy.crs as ccrs

            kw.setdefault("transform", ccrs.Projection(self.crs))
        mesh = da.plot.pcolormesh(ax=ax, x="x", y="y", **kw)
        xu, yu = self._obj["x"].attrs.get("units", ""), self._obj["y"].attrs.get("units", "")
        ax.set_xlabel(f"x [{xu}]")
        ax.set_ylabel(f"y [{yu}]")
        ax.set_title(", ".join(title))
        if not hasattr(ax, "projection"):
            ax.set_aspect("equal")
        return mesh


@xr.register_dataset_accessor("geotwin")
class GeotwinDatasetAccessor(_GeotwinBase):
    """``ds.geotwin``: grid, CRS, verification, maps and geographic selection of a cube."""

    def verify(self, name: str = "cube") -> xr.Dataset:
        """Check the cube convention (:func:`pipelines.cube.verify_cube`); returns the Dataset."""
        from .cube import verify_cube

        return verify_cube(self._obj, name=name)

    def plot(self, var: str | None = None, time: int | str | Any = 0, ax: Any = None, **kw: Any) -> Any:
        """Map a variable on the cube grid (matplotlib ``pcolormesh``; axes in CRS units).

        Parameters
        ----------
        var
            Variable name (default: the first variable on the ``(y, x)`` grid).
        time
            Index (int) or label (datetime-like, nearest) of the time step to show.
        ax
            Matplotlib axes (a cartopy ``GeoAxes`` works too: the cube's CRS is used as ``transform``).
        **kw
            Passed to :meth:`xarray.DataArray.plot.pcolormesh` (``cmap``, ``vmin``, ``vmax``…).

        Returns
        -------
        The ``QuadMesh``; the colorbar is labelled ``long_name [units]``.
        """
        ds = self._obj
        if var is None:
            spatial = [n for n, v in ds.data_vars.items() if v.dims[-2:] == ("y", "x")]
            if not spatial:
                raise ValueError("cube has no variable on the (y, x) grid to plot")
            var = str(spatial[0])
        if var not in ds.data_vars:
            raise KeyError(f"variable {var!r} not in cube; available: {sorted(map(str, ds.data_vars))}")
        return self._plot(ds[var], time, ax, **kw)


@xr.register_dataarray_accessor("geotwin")
class GeotwinDataArrayAccessor(_GeotwinBase):
    """``da.geotwin``: grid, CRS, verification, maps and geographic selection of one cube variable."""

    def verify(self) -> xr.DataArray:
        """Check this variable against the cube convention (units, long_name, grid mapping, dims order).

        The variable is checked inside a one-variable cube with fresh provenance attributes, so only the
        variable-level rules apply; returns the DataArray.
        """
        from .cube import provenance_attrs, verify_cube

        ds = self._obj.to_dataset(name=self._obj.name or "var")
        ds.attrs = {**provenance_attrs(), **{k: v for k, v in self._obj.attrs.items() if k == "featureType"}}
        verify_cube(ds, name=str(self._obj.name or "var"))
        return self._obj

    def plot(self, time: int | str | Any = 0, ax: Any = None, **kw: Any) -> Any:
        """Map this variable (see :meth:`GeotwinDatasetAccessor.plot`)."""
        return self._plot(self._obj, time, ax, **kw)
