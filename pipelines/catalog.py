"""STAC catalog of the cubes in a store (pystac; offline; datacube + projection extensions).

:func:`write_catalog` writes a self-contained STAC Catalog with one Collection per cube, each holding
one Item that describes the cube: its footprint in WGS84 (densified along the grid edge, split at the
antimeridian and closed over a pole as the STAC/GeoJSON rules ask, via the ``antimeridian`` package),
its time range, its grid (projection extension), its dimensions and variables (datacube extension),
its provenance, and an asset pointing at the Icechunk store with the group to open.

Where the catalog goes: by default ``<store>/stac/``. An Icechunk repository only reads and lists its
own prefixes (``refs/``, ``snapshots/``, ``manifests/``, ``chunks/``, ``transactions/``); a ``stac/``
folder beside them is ignored by reads, commits, snapshot expiry and garbage collection (checked with
icechunk 1.1), so the catalog travels with the store. The catalog itself is not versioned by Icechunk;
re-run :func:`write_catalog` (``geotwin catalog STORE``) after writing cubes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pystac
import xarray as xr
from pyproj import CRS, Transformer

ICECHUNK_MEDIA_TYPE = "application/vnd.zarr+icechunk"
PROCESSING_EXT = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
SSYS_EXT = "https://stac-extensions.github.io/ssys/v1.1.0/schema.json"
FINGERPRINT = "geotwin:fingerprint"
PTS_PER_SIDE = 128
GEOMETRY_PTS = 16
MAX_VALUES = 1000


class CatalogError(ValueError):
    """The catalog folder holds something that is not a geotwin catalog, or a cube cannot be described."""


def _utc(value: Any) -> datetime:
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _iso(value: Any) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _crs(ds: xr.Dataset | xr.DataArray) -> CRS:
    return CRS.from_wkt(ds.coords["spatial_ref"].attrs["crs_wkt"])


def _code(crs: CRS) -> str | None:
    auth = crs.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else None


# ---------------------------------------------------------------------------------------------- footprint


def _pole_flags(crs: CRS, geo: CRS, ring: Any) -> tuple[bool, bool]:
    """Whether the grid contains the north / south pole (the pole projected into the grid CRS)."""
    import shapely

    back = Transformer.from_crs(geo, crs, always_xy=True)
    flags = []
    for lat in (90.0, -90.0):
        try:
            px, py = back.transform(0.0, lat, errcheck=True)
        except Exception:  # the pole is outside the projection's domain
            flags.append(False)
            continue
        flags.append(bool(np.isfinite(px) and np.isfinite(py) and ring.covers(shapely.Point(px, py))))
    return flags[0], flags[1]


def footprint(geobox: Any, *, pts_per_side: int = PTS_PER_SIDE) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON geometry and bbox in geographic lon/lat of a GeoBox, following the STAC antimeridian rules.

    The grid's outer edge is densified (``pts_per_side`` points per side) and transformed to WGS84
    (EPSG:4326; for another body, that body's geographic CRS). A footprint crossing the antimeridian is
    split into a MultiPolygon and its bbox has ``west > east``; one around a pole is closed over the pole
    and its bbox spans all longitudes up to latitude ±90.

    Returns
    -------
    geometry, bbox
        A GeoJSON mapping and ``[west, south, east, north]``.
    """
    import antimeridian
    import shapely

    from .grid import body_of

    crs = CRS.from_wkt(geobox.crs.to_wkt())
    geo = CRS.from_epsg(4326) if body_of(crs) == "Earth" else crs.geodetic_crs
    lon, lat, north, south = _edge_lonlat(geobox, crs, geo, pts_per_side)
    unwrapped = np.rad2deg(np.unwrap(np.deg2rad(lon)))
    if np.ptp(unwrapped) >= 360.0 - 1e-9 and abs(unwrapped[-1] - unwrapped[0]) < 180.0:
        # the edge spans all longitudes without winding around a pole: a global (cylindrical) band
        s, n = float(lat.min()), float(lat.max())
        return shapely.geometry.mapping(shapely.box(-180.0, s, 180.0, n)), [-180.0, s, 180.0, n]

    def fix(lon: np.ndarray, lat: np.ndarray) -> Any:
        lon = np.where(lon > 180.0, lon - 360.0, np.where(lon < -180.0, lon + 360.0, lon))
        polygon = shapely.Polygon(np.column_stack([lon, lat]))
        return antimeridian.fix_polygon(
            polygon, force_north_pole=north, force_south_pole=south, fix_winding=True, great_circle=False
        )

    # the bbox comes from the dense edge; the stored geometry from a lighter one (GEOMETRY_PTS per side)
    bbox = [float(v) for v in antimeridian.bbox(fix(lon, lat))]
    lon, lat, _, _ = _edge_lonlat(geobox, crs, geo, min(GEOMETRY_PTS, pts_per_side))
    simple = shapely.simplify(fix(lon, lat), 1e-7, preserve_topology=True)
    return shapely.geometry.mapping(shapely.set_precision(simple, 1e-9)), bbox


def _edge_lonlat(
    geobox: Any, crs: CRS, geo: CRS, pts_per_side: int
) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """Longitudes/latitudes along the grid's outer edge, and whether it holds the north/south pole."""
    import shapely

    pix = geobox.boundary(pts_per_side)
    xs, ys = geobox.affine * (pix[:, 0], pix[:, 1])
    lon, lat = Transformer.from_crs(crs, geo, always_xy=True).transform(xs, ys)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise CatalogError(
            f"grid edge does not map to {geo.name}: part of the grid is outside the CRS domain"
        )
    north, south = _pole_flags(crs, geo, shapely.Polygon(np.column_stack([xs, ys])))
    return lon, lat, north, south


def _feature_footprint(ds: xr.Dataset) -> tuple[dict[str, Any] | None, list[float] | None]:
    """Bbox/geometry of a feature cube from its longitude/latitude variables (None when it has none)."""
    import shapely

    names = {str(v.attrs.get("standard_name", n)): n for n, v in ds.variables.items()}
    lon_name = names.get("longitude", "lon" if "lon" in ds.variables else None)
    lat_name = names.get("latitude", "lat" if "lat" in ds.variables else None)
    if lon_name is None or lat_name is None:
        return None, None
    lon = np.asarray(ds[lon_name].values, dtype=float).ravel()
    lat = np.asarray(ds[lat_name].values, dtype=float).ravel()
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return None, None
    lon, lat = (lon[ok] + 180.0) % 360.0 - 180.0, lat[ok]
    south, north = float(lat.min()), float(lat.max())
    shifted = lon % 360.0  # the same points in 0..360: narrower when they straddle the antimeridian
    if np.ptp(shifted) < np.ptp(lon) and shifted.max() > 180.0 >= shifted.min():
        west, east = float(shifted.min()), float(shifted.max()) - 360.0
        parts = [shapely.box(west, south, 180.0, north), shapely.box(-180.0, south, east, north)]
        return shapely.geometry.mapping(shapely.MultiPolygon(parts)), [west, south, east, north]
    west, east = float(lon.min()), float(lon.max())
    return shapely.geometry.mapping(shapely.box(west, south, east, north)), [west, south, east, north]


# ------------------------------------------------------------------------------------- time and datacube


def _temporal(ds: xr.Dataset) -> tuple[datetime | None, datetime, datetime] | None:
    """``(datetime, start, end)`` of a cube, or None for a static cube without a declared time."""
    if "time" in ds.coords and ds["time"].size:
        times = pd.DatetimeIndex(np.ravel(ds["time"].values))
    elif "reference_time" in ds.coords and ds["reference_time"].size:
        ref = pd.DatetimeIndex(np.ravel(ds["reference_time"].values))
        lead = pd.to_timedelta(np.ravel(ds["lead_time"].values)) if "lead_time" in ds.coords else None
        end = ref.max() + (lead.max() if lead is not None and len(lead) else pd.Timedelta(0))
        times = pd.DatetimeIndex([ref.min(), end])
    else:
        try:
            cfg = json.loads(ds.attrs.get("geotwin_config") or "{}")
        except json.JSONDecodeError:
            cfg = {}
        axis = cfg.get("time") if isinstance(cfg, dict) else None
        if not isinstance(axis, dict) or "start" not in axis or "end" not in axis:
            return None
        times = pd.DatetimeIndex([pd.Timestamp(axis["start"]), pd.Timestamp(axis["end"])])
    start, end = _utc(times.min()), _utc(times.max())
    return (start if start == end else None), start, end


def _json_values(values: np.ndarray) -> list[Any] | None:
    if values.size > MAX_VALUES:
        return None
    if np.issubdtype(values.dtype, np.datetime64):
        return [_iso(v) for v in values]
    if values.dtype.kind in "iu":
        return [int(v) for v in values]
    if values.dtype.kind == "f":
        return [float(v) for v in values]
    return [str(v) for v in values]


def _duration(values: np.ndarray) -> str | None:
    """ISO 8601 step of a regular datetime/timedelta axis, else None."""
    if values.size < 2:
        return None
    steps = np.unique(np.diff(values))
    return pd.Timedelta(steps[0]).isoformat() if steps.size == 1 else None


def _dimensions(ds: xr.Dataset, crs: CRS | None) -> dict[str, dict[str, Any]]:
    dims: dict[str, dict[str, Any]] = {}
    for dim in ds.dims:
        name = str(dim)
        values = np.asarray(ds[name].values) if name in ds.coords else None
        if name in ("x", "y") and crs is not None and values is not None:
            auth = crs.to_authority()
            ref: Any = int(auth[1]) if auth and auth[0] == "EPSG" else crs.to_wkt()
            entry = {"type": "spatial", "axis": name, "extent": [float(values.min()), float(values.max())]}
            entry["reference_system"] = ref
            entry["step"] = float(values[1] - values[0]) if values.size > 1 else None
            entry["unit"] = ds[name].attrs.get("units")
        elif values is not None and np.issubdtype(values.dtype, np.datetime64):
            entry = {"type": "temporal", "extent": [_iso(values.min()), _iso(values.max())]}
            entry["step"] = _duration(values)
            if entry["step"] is None:
                entry["values"] = _json_values(values)
        elif values is not None and np.issubdtype(values.dtype, np.timedelta64):
            hours = values.astype("timedelta64[s]").astype(np.int64) / 3600.0
            entry = {"type": "other", "extent": [float(hours.min()), float(hours.max())], "unit": "h"}
            entry["values"] = _json_values(hours)
        else:
            entry = {"type": "bands" if name == "band" else "other"}
            if values is None:
                entry["extent"] = [0, int(ds.sizes[name]) - 1]
            else:
                if values.dtype.kind in "iuf":
                    entry["extent"] = [float(np.nanmin(values)), float(np.nanmax(values))]
                entry["values"] = _json_values(values)
                if ds[name].attrs.get("units"):
                    entry["unit"] = ds[name].attrs["units"]
        if name in ds.coords and ds[name].attrs.get("long_name"):
            entry["description"] = ds[name].attrs["long_name"]
        dims[name] = {k: v for k, v in entry.items() if v is not None}
    return dims


def _variables(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    aux = [n for n in ds.coords if n not in ds.dims and n != "spatial_ref" and ds[n].ndim > 0]
    for name in [*ds.data_vars, *aux]:
        var = ds[name]
        entry: dict[str, Any] = {
            "dimensions": [str(d) for d in var.dims],
            "type": "data" if name in ds.data_vars else "auxiliary",
            "description": var.attrs.get("long_name"),
            "unit": var.attrs.get("units"),
        }
        if var.attrs.get("standard_name"):
            entry["geotwin:standard_name"] = var.attrs["standard_name"]
        out[str(name)] = {k: v for k, v in entry.items() if v is not None}
    return out


# ------------------------------------------------------------------------------------------------ items


def _provenance(ds: xr.Dataset) -> dict[str, Any]:
    try:
        sources = json.loads(ds.attrs.get("geotwin_sources") or "[]")
    except json.JSONDecodeError:
        sources = []
    config = str(ds.attrs.get("geotwin_config", ""))
    version = str(ds.attrs.get("geotwin_version", "unknown"))
    return {
        "processing:software": {"geotwin": version},
        "geotwin:version": version,
        "geotwin:sources": [
            {k: s.get(k) for k in ("name", "path", "sha256") if s.get(k) is not None} for s in sources
        ],
        "geotwin:config_sha256": hashlib.sha256(config.encode()).hexdigest(),
        "geotwin:history": ds.attrs.get("history"),
    }


def _fingerprint(item: pystac.Item) -> str:
    content = {
        "geometry": item.geometry,
        "bbox": item.bbox,
        "properties": {
            k: v for k, v in item.properties.items() if k not in ("created", "updated", FINGERPRINT)
        },
        "assets": {k: {f: v for f, v in a.to_dict().items() if f != "href"} for k, a in item.assets.items()},
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def cube_item(ds: xr.Dataset, name: str, href: str, *, created: Any = None) -> pystac.Item:
    """A STAC Item describing cube ``name`` stored at ``href`` (the Icechunk store).

    Parameters
    ----------
    ds
        The cube (lazy is fine: only coordinates and attributes are read, except for feature cubes
        whose longitude/latitude extent is computed).
    name
        Cube name: the Item id and the Zarr group inside the store.
    href
        Location of the store (path or URL) for the ``data`` asset.
    created
        Creation time to record (defaults to the time of the cube's ``history`` attr, else now).
    """
    from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.xarray_assets import XarrayAssetsExtension

    from .grid import body_of, grid_from_cube

    gridded = "x" in ds.dims and "y" in ds.dims
    crs = grid = None
    if gridded:
        grid = grid_from_cube(ds, name=name)
        crs = _crs(ds)
        if crs.geodetic_crs is None:  # a local engineering CRS (e.g. a reservoir deck without MAPAXES)
            geometry, bbox = None, None
        else:
            try:
                geometry, bbox = footprint(grid.geobox)
            except CatalogError as err:
                raise CatalogError(f"cube {name!r}: {err}") from None
    else:
        geometry, bbox = _feature_footprint(ds)
    when = _temporal(ds)
    created_at = _utc(created) if created is not None else _created(ds)
    dt, start, end = when if when is not None else (created_at, None, None)
    props: dict[str, Any] = {"title": ds.attrs.get("title", name)}
    if ds.attrs.get("description") or ds.attrs.get("summary"):
        props["description"] = ds.attrs.get("description") or ds.attrs.get("summary")
    props.update({k: v for k, v in _provenance(ds).items() if v is not None})
    item = pystac.Item(
        id=name,
        geometry=geometry,
        bbox=bbox,
        datetime=dt,
        start_datetime=start if dt is None else None,
        end_datetime=end if dt is None else None,
        properties=props,
    )
    if when is not None and dt is not None:
        item.common_metadata.start_datetime, item.common_metadata.end_datetime = start, end
    item.stac_extensions.append(PROCESSING_EXT)
    if crs is not None and grid is not None:
        gb = grid.geobox
        ProjectionExtension.ext(item, add_if_missing=True).apply(
            code=_code(crs),
            wkt2=crs.to_wkt(),
            shape=[int(n) for n in gb.shape],
            transform=[float(v) for v in list(gb.affine)[:6]],
            bbox=[float(v) for v in gb.extent.boundingbox],
        )
        body = body_of(crs)
        if body != "Earth":
            item.properties["ssys:targets"] = [body]
            item.stac_extensions.append(SSYS_EXT)
    DatacubeExtension.ext(item, add_if_missing=True).apply(
        {k: Dimension.from_dict(v) for k, v in _dimensions(ds, crs).items()},
        {k: Variable(v) for k, v in _variables(ds).items()},
    )
    asset = pystac.Asset(
        href=href,
        title=f"Icechunk store, group {name!r}",
        description=(
            f"Icechunk repository (Zarr v3), branch 'main', group {name!r}. Open with "
            f"pipelines.open_cube(store, {name!r}) or xarray.open_zarr(repo.readonly_session('main').store, "
            f"group={name!r}, consolidated=False)."
        ),
        media_type=ICECHUNK_MEDIA_TYPE,
        roles=["data"],
        extra_fields={"icechunk:branch": "main"},
    )
    item.add_asset("data", asset)
    XarrayAssetsExtension.ext(asset, add_if_missing=True).open_kwargs = {
        "engine": "zarr",
        "group": name,
        "consolidated": False,
        "chunks": {},
    }
    item.common_metadata.created = created_at
    item.properties[FINGERPRINT] = _fingerprint(item)
    return item


def _created(ds: xr.Dataset) -> datetime:
    history = str(ds.attrs.get("history", ""))
    try:
        return _utc(history.split()[0])
    except (ValueError, IndexError):
        return datetime.now(UTC).replace(microsecond=0)


def _collection(item: pystac.Item) -> pystac.Collection:
    """A Collection wrapping one cube's Item, with the same datacube fields and extent."""
    from pystac.extensions.datacube import DatacubeExtension

    props = item.properties
    start = item.common_metadata.start_datetime or item.datetime
    end = item.common_metadata.end_datetime or item.datetime
    spatial = pystac.SpatialExtent([item.bbox] if item.bbox else [[-180.0, -90.0, 180.0, 90.0]])
    collection = pystac.Collection(
        id=item.id,
        description=props.get("description") or f"geotwin cube {item.id!r}",
        title=props.get("title"),
        extent=pystac.Extent(spatial, pystac.TemporalExtent([[start, end]])),
        license="other",
        extra_fields={"geotwin:cube": item.id},
    )
    src = DatacubeExtension.ext(item)
    DatacubeExtension.ext(collection, add_if_missing=True).apply(src.dimensions, src.variables)
    collection.add_item(item)
    return collection


# ------------------------------------------------------------------------------------------------ catalog


def _previous_items(catalog_json: Path) -> dict[str, dict[str, Any]]:
    """Item dicts of an existing geotwin catalog, by cube name ({} when there is none)."""
    if not catalog_json.exists():
        return {}
    try:
        old = pystac.Catalog.from_file(str(catalog_json))
    except Exception as err:  # pystac raises several types for bad files
        raise CatalogError(
            f"{catalog_json}: not a readable STAC catalog ({err}); remove it or pick another folder"
        ) from None
    if "geotwin:store" not in old.extra_fields:
        raise CatalogError(f"{catalog_json}: is not a geotwin catalog; refusing to overwrite it")
    return {item.id: item.to_dict(transform_hrefs=False) for item in old.get_items(recursive=True)}


def write_catalog(
    store: str | os.PathLike[str],
    catalog_dir: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Write or update the STAC catalog of a store's cubes; returns the path of ``catalog.json``.

    Each completed cube (:func:`pipelines.list_cubes`) gets a Collection holding one Item
    (:func:`cube_item`). Items of cubes whose description did not change keep their ``created`` and
    ``updated`` times (their files are rewritten byte-identically); items of changed cubes get a new
    ``updated`` time; collections of cubes no longer in the store are removed.

    Parameters
    ----------
    store
        Path of the Icechunk cube store.
    catalog_dir
        Folder of the catalog (default ``<store>/stac``). The catalog is self-contained: links and the
        asset hrefs are relative, so store and catalog can be moved together.
    title
        Catalog title (default ``"geotwin cubes in <store name>"``).

    Raises
    ------
    pipelines.store.StoreError
        If ``store`` is not a cube store.
    CatalogError
        If ``catalog_dir`` holds a catalog that geotwin did not write.
    """
    from .store import list_cubes, open_cube, open_repository

    store_path = Path(store).absolute()
    repo = open_repository(store_path)
    head = next(iter(repo.ancestry(branch="main"))).id
    out = Path(catalog_dir).absolute() if catalog_dir is not None else store_path / "stac"
    catalog_json = out / "catalog.json"
    previous = _previous_items(catalog_json)
    names = list_cubes(store_path)
    catalog = pystac.Catalog(
        id=f"geotwin-{store_path.name}",
        description=f"Cubes of the geotwin store {store_path.name} (Icechunk snapshot {head}).",
        title=title or f"geotwin cubes in {store_path.name}",
        extra_fields={"geotwin:store": store_path.name, "geotwin:snapshot": head},
    )
    now = datetime.now(UTC).replace(microsecond=0)
    for name in names:
        old = previous.get(name)
        old_props = old["properties"] if old else {}
        item = cube_item(open_cube(store_path, name), name, str(store_path), created=old_props.get("created"))
        if old and old_props.get(FINGERPRINT) == item.properties[FINGERPRINT]:
            item.properties["updated"] = old_props.get("updated", old_props.get("created"))
        else:
            item.common_metadata.updated = now
        catalog.add_child(_collection(item))
    catalog.normalize_hrefs(str(out))
    catalog.make_all_asset_hrefs_relative()
    out.mkdir(parents=True, exist_ok=True)
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    for child in out.iterdir():
        coll = child / "collection.json"
        if child.is_dir() and child.name not in names and coll.is_file():
            if "geotwin:cube" in json.loads(coll.read_text()):
                shutil.rmtree(child)
    return catalog_json
