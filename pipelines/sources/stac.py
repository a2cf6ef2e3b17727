"""STAC items: read a STAC Item (or ItemCollection) JSON offline with pystac, load its assets with odc-stac.

Assets are loaded by odc-stac straight onto the region's GeoBox (lazy, dask; several items are
mosaicked and grouped into time steps by solar day). Asset hrefs are resolved without the network:

- relative hrefs are taken relative to the item JSON file;
- with ``options.local_assets: true`` every asset is looked up **by file name next to the item JSON**
  (for items copied from a cloud catalogue together with their files, like the shared Sentinel-2 item
  whose hrefs point at S3);
- absolute local paths and ``file://`` URLs are used as they are; other URLs are only fetched when
  ``options.allow_network: true``.

The asset's ``raster:bands`` nodata becomes NaN and its ``scale``/``offset`` are applied
(``options.apply_scale``, default true). Config example::

    - name: s2
      kind: stac
      path: S2A_29RKH_20200219_0_L2A/S2A_29RKH_20200219_0_L2A.json
      options: {local_assets: true}
      variables:
        red: {name: red, units: "1", long_name: "surface reflectance, Sentinel-2 B04"}
        scl: {name: scl, units: "1", long_name: "scene classification", resampling: nearest}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import xarray as xr

from . import SourceError

if TYPE_CHECKING:  # pragma: no cover
    import pystac

    from ..config import SourceConfig
    from ..grid import RegionGrid


def open_items(path: str | os.PathLike[str]) -> list[pystac.Item]:
    """Read a STAC Item or ItemCollection (FeatureCollection) JSON file offline.

    Raises
    ------
    SourceError
        Missing file, invalid JSON, or JSON that is not a STAC Item/ItemCollection.
    """
    import pystac

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: STAC item file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SourceError(f"{path}: not valid JSON: {err}") from None
    kind = data.get("type") if isinstance(data, dict) else None
    try:
        if kind == "Feature":
            return [pystac.Item.from_dict(data, preserve_dict=False)]
        if kind == "FeatureCollection":
            return list(pystac.ItemCollection.from_dict(data).items)
    except (KeyError, ValueError, TypeError, pystac.STACError) as err:
        raise SourceError(f"{path}: not a valid STAC item: {err}") from None
    raise SourceError(
        f"{path}: expected a STAC Item ('type': 'Feature') or ItemCollection, got type {kind!r}"
    )


def resolve_href(
    href: str, base_dir: Path, *, local_assets: bool = False, allow_network: bool = False
) -> str:
    """Resolve an asset href to a local path (or keep a URL when the network is allowed).

    Raises
    ------
    SourceError
        When the asset is remote and neither ``local_assets`` nor ``allow_network`` is set, or when the
        local file is missing.
    """
    parsed = urlparse(href)
    remote = parsed.scheme not in ("", "file") and not (len(parsed.scheme) == 1 and os.name == "nt")
    if local_assets:
        path = base_dir / Path(parsed.path).name
    elif parsed.scheme == "file":
        path = Path(parsed.path)
    elif remote:
        if allow_network:
            return href
        raise SourceError(
            f"asset {href} is remote; set options.local_assets: true to read the file of the same name "
            f"next to the item ({base_dir}), or options.allow_network: true"
        )
    else:
        path = Path(href) if Path(href).is_absolute() else base_dir / href
    if not path.is_file():
        raise SourceError(f"asset file {path} not found (href {href})")
    return str(path)


def _asset_key(var: str, spec: Any, options: dict[str, Any]) -> str:
    return str((options.get("assets") or {}).get(var) or spec.name or var)


def _band_info(items: list[pystac.Item], key: str) -> dict[str, Any]:
    """``nodata``/``scale``/``offset`` of an asset from the first item's ``raster:bands``."""
    asset = items[0].assets[key]
    bands = asset.extra_fields.get("raster:bands") or [{}]
    info = bands[0] if bands else {}
    return {k: info.get(k) for k in ("nodata", "scale", "offset", "unit")}


def _check_overlap(items: list[pystac.Item], grid: RegionGrid, path: str) -> None:
    """Refuse items whose footprints all miss the region (checked in the grid's CRS with odc-geo)."""
    from odc.geo.geom import Geometry

    region = grid.geobox.extent
    for item in items:
        if item.geometry is None:
            return
        try:
            foot = Geometry(item.geometry, "EPSG:4326").to_crs(grid.geobox.crs)
        except Exception:  # footprints that cannot be projected (e.g. over the pole): let the load decide
            return
        if foot.is_valid and foot.intersects(region):
            return
    raise SourceError(
        f"{path}: no STAC item footprint overlaps the region grid (item bbox {items[0].bbox}, "
        f"region {tuple(round(v, 4) for v in grid.geobox.geographic_extent.boundingbox)} lon/lat)"
    )


def load(source: SourceConfig, grid: RegionGrid) -> xr.Dataset:
    """Load the assets named by ``source.variables`` onto ``grid`` (lazy, dask).

    Each variable's asset key is ``options.assets[var]``, else the spec's ``name``, else the variable
    name. ``options``: ``local_assets``, ``allow_network``, ``apply_scale`` (default true),
    ``groupby`` (odc-stac grouping of items into time steps, default ``solar_day``), ``time_method``
    (``nearest``/``linear`` onto the grid's time axis), ``categorical`` (bool or list of variables),
    ``use_overviews`` (default false: read full resolution; overviews are often nearest-resampled).

    Returns
    -------
    xarray.Dataset
        Variables with dims ``(time, y, x)`` on the grid, float32 with NaN for nodata, scale/offset
        applied, ``units``/``long_name``/``grid_mapping``; ``attrs["geotwin_source_files"]`` lists the
        item JSON and each local asset file with its sha256.

    Raises
    ------
    SourceError
        Naming the item file and asset: unknown asset, missing asset file, remote asset without
        permission, no units, or items that do not overlap the region.
    """
    import odc.stac

    from ..align import align_time, auto_resampling
    from ..cube import grid_coords, sha256_file
    from ..grid import GridError, check_same_body

    opts = source.options
    items = open_items(source.path)
    if not items:
        raise SourceError(f"{source.path}: the ItemCollection has no items")
    if not source.variables:
        raise SourceError(f"{source.path}: source {source.name!r} declares no variables")
    base = Path(source.path).parent
    local, network = bool(opts.get("local_assets", False)), bool(opts.get("allow_network", False))
    keys = {var: _asset_key(var, spec, opts) for var, spec in source.variables.items()}
    hrefs: dict[str, str] = {}
    for var, key in keys.items():
        for item in items:
            if key not in item.assets:
                raise SourceError(
                    f"{source.path}: variable {var!r}: item {item.id} has no asset {key!r}; "
                    f"available: {sorted(item.assets)}"
                )
            href = item.assets[key].href
            try:
                hrefs[href] = resolve_href(href, base, local_assets=local, allow_network=network)
            except SourceError as err:
                raise SourceError(f"{source.path}: variable {var!r}: {err}") from None
    _check_overlap(items, grid, source.path)

    resampling: dict[str, str] = {}
    for var, key in keys.items():
        spec = source.variables[var]
        cat = opts.get("categorical", False)
        categorical = bool(cat) if isinstance(cat, bool) else var in cat
        method = spec.resampling or "auto"
        if method == "auto":
            method = auto_resampling(
                _native_resolution(hrefs, items, key, grid), grid.geobox.resolution.x, categorical
            )
        resampling[key] = method
        first = hrefs[items[0].assets[key].href]
        if "://" not in first:
            import rasterio

            with rasterio.open(first) as src:
                if src.crs is None:
                    raise SourceError(f"{first}: asset {key!r} has no CRS")
                try:
                    check_same_body(src.crs.to_wkt(), grid.geobox.crs.to_wkt(), what=f"{first}")
                except GridError as err:
                    raise SourceError(str(err)) from None

    chunks = {"y": grid.chunks.get("y", 512), "x": grid.chunks.get("x", 512)}
    resolved = []
    for item in items:  # odc-stac wants absolute hrefs: point the assets at the resolved files
        clone = item.clone()
        clone.set_self_href(str(Path(source.path).resolve()))  # not the catalogue's (s3://) self link
        for key in set(keys.values()):
            clone.assets[key].href = hrefs[item.assets[key].href]
        resolved.append(clone)
    loaded = odc.stac.load(
        resolved,
        bands=sorted(set(keys.values())),
        geobox=grid.geobox,
        chunks=chunks,
        resampling=resampling,
        dtype="float32",  # resample in float (no rounding back to the integer source type)
        groupby=opts.get("groupby", "solar_day"),
        fail_on_error=True,
        # full resolution by default: overviews are often built with nearest and break conservation
        use_overviews=bool(opts.get("use_overviews", False)),
    )
    coords = grid_coords(grid.geobox)
    out: dict[str, xr.DataArray] = {}
    for var, key in keys.items():
        spec = source.variables[var]
        info = _band_info(items, key)
        raw = loaded[key]
        nodata = info["nodata"] if info["nodata"] is not None else raw.attrs.get("nodata")
        data = raw.astype("float32")
        if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
            data = data.where(raw != nodata)
        if opts.get("apply_scale", True):
            scale, offset = info["scale"], info["offset"]
            if scale not in (None, 1, 1.0):
                data = data * np.float32(scale)
            if offset not in (None, 0, 0.0):
                data = data + np.float32(offset)
        if spec.scale is not None:
            data = data * np.float32(spec.scale)
        units = spec.units or info.get("unit")
        if not units:
            raise SourceError(
                f"{source.path}: variable {var!r}: asset {key!r} declares no unit; "
                "set 'units' in the config (UDUNITS, '1' for dimensionless)"
            )
        title = items[0].assets[key].title
        data = data.drop_vars([c for c in ("x", "y", "spatial_ref") if c in data.coords]).assign_coords(
            coords
        )
        data = data.assign_coords(time=data["time"].values.astype("datetime64[ns]"))
        data.attrs = {"units": units, "long_name": spec.long_name or title or f"{key} of {items[0].id}"}
        data.attrs["grid_mapping"] = "spatial_ref"
        data.name = var
        out[var] = data
    ds = xr.Dataset(out)
    if grid.time is not None:
        try:
            ds = align_time(ds, grid, opts.get("time_method", "nearest"), what=source.path)
        except GridError as err:
            raise SourceError(str(err)) from None
    files = [{"path": str(source.path), "sha256": sha256_file(source.path)}]
    files += [{"path": p, "sha256": sha256_file(p)} for p in sorted(set(hrefs.values())) if "://" not in p]
    ds.attrs["geotwin_source_files"] = files
    return ds


def _native_resolution(hrefs: dict[str, str], items: list[pystac.Item], key: str, grid: RegionGrid) -> float:
    """Pixel size of an asset in grid units, from the file itself (STAC proj: fields can be stale)."""
    import rasterio
    from odc.geo.geobox import GeoBox

    from ..align import source_resolution_on_grid

    path = hrefs[items[0].assets[key].href]
    with rasterio.open(path) as src:
        gbox = GeoBox(src.shape, src.transform, src.crs.to_wkt() if src.crs else None)
    if gbox.crs is None:
        raise SourceError(f"{path}: asset {key!r} has no CRS")
    return source_resolution_on_grid(gbox, grid.geobox)
