"""Geomapping vector reader: features from files, rasterized exactly onto the region grid.

Formats: GeoJSON, GeoPackage, Shapefile (also zipped, with the ``.shp`` at any depth in the zip),
GeoParquet, CSV point tables with longitude/latitude columns, and OSM XML/PBF (GDAL's OSM driver
through pyogrio, ``.bz2``/``.gz`` compressed files included). Features are read with pyogrio/geopandas,
filtered with a pandas query, reprojected to the grid CRS (geopandas ``to_crs``) and rasterized tile by
tile with :mod:`pipelines.rasterize` (lazy dask arrays).

Variable methods (``VariableSpec.method``) and their units:

==================  ========================================================  ==============
``area_fraction``   fraction of each cell covered by polygons (buildings)      ``1``
``length_density``  metres of line per square metre of cell (roads, rivers)    ``m m-2``
``count``           number of points per cell (facilities)                     ``1``
``sum``             sum of ``attribute`` of the points in each cell            from ``units``
``distance``        distance from cell centre to the nearest feature           ``m``
==================  ========================================================  ==============

Source options: ``layer`` (layer name; for OSM files the default follows the method: ``multipolygons``
for area_fraction, ``lines`` for length_density and distance, ``points`` for count/sum), ``lon``/``lat`` (column
names of a CSV point table; ``longitude``/``latitude``, ``lon``/``lat`` or ``x``/``y`` are found by
default), ``crs`` (the CRS of the features when the file has none or a wrong one; CSV default
EPSG:4326) and ``osm_tags`` (OSM tags to lift out of GDAL's ``other_tags`` column into columns usable
in ``where``, named with ``:`` replaced by ``_`` and numeric when every value is, e.g.
``osm_tags: ["building:levels"]`` then ``where: "building_levels >= 4"``).
"""

from __future__ import annotations

import bz2
import gzip
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from . import SourceError

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd

    from ..config import SourceConfig, VariableSpec
    from ..grid import RegionGrid

OPTIONS = {"layer", "lon", "lat", "crs", "osm_tags", "fillna"}
UNITS = {"area_fraction": "1", "length_density": "m m-2", "count": "1", "distance": "m"}
OSM_LAYERS = {
    "area_fraction": "multipolygons",
    "length_density": "lines",
    "count": "points",
    "sum": "points",
    "distance": "lines",
}
GEOM_TYPES = {
    "area_fraction": {"Polygon", "MultiPolygon"},
    "length_density": {"LineString", "MultiLineString", "LinearRing"},
    "count": {"Point", "MultiPoint"},
    "sum": {"Point", "MultiPoint"},
}
LONG_NAMES = {
    "area_fraction": "fraction of cell area covered by",
    "length_density": "length per unit cell area of",
    "count": "number per cell of",
    "sum": "sum per cell of {attribute} of",
    "distance": "distance from cell centre to the nearest of",
}
LON_NAMES = ("longitude", "lon", "lng", "long", "x")
LAT_NAMES = ("latitude", "lat", "y")


def is_osm(path: str | Path) -> bool:
    """True for OSM XML/PBF files, compressed or not."""
    name = str(path).lower()
    return name.endswith((".osm", ".osm.bz2", ".osm.gz", ".pbf"))


def _describe(path: str | Path, layer: str | None) -> str:
    return f"{path}" + (f" (layer {layer!r})" if layer else "")


def _zip_member(path: Path, layer: str | None) -> tuple[str, str | None]:
    """GDAL path of the vector file inside a zip archive, and the layer left to pass to GDAL."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith((".shp", ".gpkg", ".geojson", ".json"))]
    except zipfile.BadZipFile as err:
        raise SourceError(f"{path}: not a readable zip archive ({err})") from None
    named = [n for n in names if layer is not None and Path(n).stem == layer]
    if named:  # the layer option names the file inside the zip
        names, layer = named, None
    if not names:
        raise SourceError(f"{path}: zip archive holds no .shp/.gpkg/.geojson file")
    if len(names) > 1:
        raise SourceError(
            f"{path}: zip archive holds several vector files {names}; name one with option 'layer'"
        )
    return f"/vsizip/{path}/{names[0]}", layer


def _read_csv(path: Path, lon: str | None, lat: str | None, crs: Any) -> gpd.GeoDataFrame:
    import geopandas as gpd

    try:
        df = pd.read_csv(path, low_memory=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise SourceError(f"{path}: cannot read as a CSV table: {err}") from None
    lower = {c.lower(): c for c in df.columns}
    lon = lon or next((lower[n] for n in LON_NAMES if n in lower), None)
    lat = lat or next((lower[n] for n in LAT_NAMES if n in lower), None)
    for role, col in (("lon", lon), ("lat", lat)):
        if col is None or col not in df.columns:
            raise SourceError(
                f"{path}: no {role} column {col or ''!s} found; set option '{role}' to one of {list(df.columns)}"
            )
    xy = df[[lon, lat]].apply(pd.to_numeric, errors="coerce")
    df = df[xy.notna().all(axis=1).to_numpy()]
    xy = xy.dropna()
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(xy[lon], xy[lat]), crs=crs or "EPSG:4326")


def _read_ogr(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    import pyogrio

    target: str | Path = path
    name = path.name.lower()
    with tempfile.TemporaryDirectory(prefix="geotwin-vector-") as tmp:
        try:
            if name.endswith((".bz2", ".gz")):  # GDAL has no bzip2 reader: decompress to a temp file
                opener = bz2.open if name.endswith(".bz2") else gzip.open
                target = Path(tmp) / path.name.rsplit(".", 1)[0]
                with opener(path, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            elif name.endswith(".zip"):
                target, layer = _zip_member(path, layer)
            return pyogrio.read_dataframe(target, layer=layer)
        except (
            pyogrio.errors.DataSourceError,
            pyogrio.errors.DataLayerError,
            pyogrio.errors.FeatureError,
            pyogrio.errors.FieldError,
            pyogrio.errors.GeometryError,
            OSError,
            EOFError,
        ) as err:
            detail = str(err).replace(str(target), str(path))
            raise SourceError(f"{_describe(path, layer)}: cannot read as a vector file: {detail}") from None


def _fillna(gdf: gpd.GeoDataFrame, fill: Any, what: str) -> gpd.GeoDataFrame:
    """Fill missing attribute values (``options.fillna: {column: value}``, e.g. 1 building level)."""
    if not isinstance(fill, dict):
        raise SourceError(f"{what}: option 'fillna' must map column names to values, got {fill!r}")
    missing = [c for c in fill if c not in gdf.columns]
    if missing:
        raise SourceError(f"{what}: option 'fillna' names unknown column(s) {missing}")
    return gdf.fillna(value=fill)


def lift_osm_tags(gdf: gpd.GeoDataFrame, tags: list[str], what: str = "OSM") -> gpd.GeoDataFrame:
    """Copy OSM tags from GDAL's ``other_tags`` (hstore text) into columns (``a:b`` becomes ``a_b``)."""
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise SourceError(f"{what}: option 'osm_tags' must be a list of tag names, got {tags!r}")
    gdf = gdf.copy()
    other = (
        gdf["other_tags"] if "other_tags" in gdf.columns else pd.Series(None, index=gdf.index, dtype=object)
    )
    for tag in tags:
        column = re.sub(r"\W", "_", tag)
        if tag in gdf.columns:
            values = gdf[tag]
        else:
            pattern = r'(?:^|,)"' + re.escape(tag) + r'"=>"((?:[^"\\]|\\.)*)"'
            values = other.astype("string").str.extract(pattern, expand=False)
        numeric = pd.to_numeric(values, errors="coerce")
        gdf[column] = numeric.astype("float64") if numeric.notna().sum() == values.notna().sum() else values
    return gdf


def open_vector(
    path: str | Path,
    layer: str | None = None,
    where: str | None = None,
    *,
    lon: str | None = None,
    lat: str | None = None,
    crs: Any = None,
) -> gpd.GeoDataFrame:
    """Read vector features (with their CRS) from a file.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage, Shapefile (or ``.zip``), GeoParquet (``.parquet``), CSV point table or
        OSM XML/PBF (``.osm``, ``.osm.bz2``, ``.osm.gz``, ``.pbf``).
    layer
        Layer name (GeoPackage, OSM: ``points``/``lines``/``multipolygons``; shapefile name in a zip).
    where
        A pandas query selecting features, e.g. ``"building.notna()"`` or
        ``"highway in ['primary', 'secondary']"``.
    lon, lat
        Column names of a CSV point table (found automatically when named longitude/latitude etc.).
    crs
        CRS of the features, overriding the file's (required when the file has none).

    Raises
    ------
    SourceError
        Missing file, unreadable file or layer, no CRS, unknown column in ``where``.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: vector file not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".geoparquet"):
        import geopandas as gpd

        try:
            gdf = gpd.read_parquet(path)
        except ImportError as err:
            raise SourceError(
                f"{path}: GeoParquet needs pyarrow (pip install 'geotwin[vector]'): {err}"
            ) from None
        except (ValueError, OSError) as err:
            raise SourceError(f"{path}: cannot read as GeoParquet: {err}") from None
    elif suffix in (".csv", ".txt"):
        gdf = _read_csv(path, lon, lat, crs)
    else:
        gdf = _read_ogr(path, layer)
    if crs is not None:
        gdf = gdf.set_crs(crs, allow_override=True)
    if gdf.crs is None:
        raise SourceError(
            f"{_describe(path, layer)}: features have no CRS; set option 'crs' (e.g. EPSG:4326)"
        )
    if where:
        gdf = _query(gdf, where, _describe(path, layer))
    return gdf


def _query(gdf: gpd.GeoDataFrame, where: str, what: str) -> gpd.GeoDataFrame:
    try:
        mask = gdf.drop(columns=gdf.geometry.name).eval(where, engine="python")
    except (NameError, KeyError) as err:
        columns = [c for c in gdf.columns if c != gdf.geometry.name]
        raise SourceError(
            f"{what}: field 'where' {where!r} uses an unknown column ({err}); columns: {columns}"
        ) from None
    except Exception as err:  # pandas raises many kinds for a bad expression
        raise SourceError(f"{what}: field 'where' {where!r} is not a valid pandas query: {err}") from None
    if not (isinstance(mask, pd.Series) and pd.api.types.is_bool_dtype(mask.dtype)):
        raise SourceError(f"{what}: field 'where' {where!r} must give True/False per feature")
    return gdf[mask.fillna(False).to_numpy(dtype=bool)]


def _extent_in(grid: RegionGrid, crs: Any) -> Any | None:
    """The grid's extent as a shapely polygon in ``crs``, or None where that polygon cannot be trusted.

    It is trusted only if a lattice of points over the grid all fall inside it, and, for a geographic
    ``crs``, the grid holds neither pole (a polar cap or a grid across the antimeridian has no simple
    lon/lat outline). Features are then pre-selected with it before reprojection (a speed-up only).
    """
    from pyproj import CRS, Transformer

    try:
        with warnings.catch_warnings():  # odc-geo calls the deprecated shapely.ops.transform
            warnings.simplefilter("ignore", DeprecationWarning)
            extent = grid.geobox.extent.to_crs(crs).geom
        xmin, ymin, xmax, ymax = grid.geobox.extent.boundingbox
        to_src = Transformer.from_crs(grid.crs, crs, always_xy=True)
        if CRS.from_user_input(crs).is_geographic:
            px, py = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform(
                [0.0, 0.0], [90.0, -90.0]
            )
            if any(xmin <= x <= xmax and ymin <= y <= ymax for x, y in zip(px, py, strict=True)):
                return None
        gx, gy = np.meshgrid(np.linspace(xmin, xmax, 17), np.linspace(ymin, ymax, 17))
        sx, sy = to_src.transform(gx.ravel(), gy.ravel())
        if not (np.isfinite(sx).all() and np.isfinite(sy).all()):
            return None
        tolerance = 1e-6 * max(np.ptp(sx), np.ptp(sy), 1e-9)
        if not shapely.covers(shapely.buffer(extent, tolerance), shapely.points(sx, sy)).all():
            return None
        return extent
    except Exception:  # noqa: BLE001 - no usable outline: every feature is reprojected instead
        return None


def _to_grid(gdf: gpd.GeoDataFrame, grid: RegionGrid, method: str, what: str) -> gpd.GeoDataFrame:
    """Keep the features that meet the grid (all of them for ``distance``), reprojected to the grid CRS."""
    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
    if method != "distance" and len(gdf):
        extent = _extent_in(grid, gdf.crs)
        if extent is not None:
            gdf = gdf.iloc[np.sort(gdf.sindex.query(extent, predicate="intersects"))]
    gdf = gdf.to_crs(grid.crs)
    finite = np.isfinite(gdf.geometry.bounds.to_numpy()).all(axis=1)
    gdf = gdf[finite]
    if method != "distance":
        box = shapely.box(*grid.geobox.extent.boundingbox)
        gdf = gdf[gdf.geometry.intersects(box).to_numpy()]
    if gdf.empty:
        where = "" if method == "distance" else " inside the region"
        raise SourceError(f"{what}: no features{where} (grid bounds {tuple(grid.geobox.extent.boundingbox)})")
    return gdf


def _check_geometry(gdf: gpd.GeoDataFrame, method: str, what: str) -> None:
    allowed = GEOM_TYPES.get(method)
    if allowed is None:
        return
    found = set(gdf.geom_type.dropna().unique())
    if not found <= allowed:
        raise SourceError(
            f"{what}: method {method!r} needs {sorted(allowed)} geometries, found {sorted(found - allowed)}"
        )


def _units(name: str, spec: VariableSpec, method: str, what: str) -> str:
    canonical = UNITS.get(method)
    if spec.scale is not None or canonical is None:
        if not spec.units:
            need = (
                "'scale' is set" if spec.scale is not None else f"method {method!r} sums {spec.attribute!r}"
            )
            raise SourceError(f"{what}: variable {name!r}: field 'units' is required ({need})")
        return spec.units
    if spec.units and spec.units != canonical:
        raise SourceError(
            f"{what}: variable {name!r}: method {method!r} gives units {canonical!r}, not {spec.units!r} "
            "(set 'scale' as well to convert)"
        )
    return canonical


def _check_attribute_present(gdf: gpd.GeoDataFrame, attribute: str, name: str, what: str) -> None:
    if attribute not in gdf.columns:
        columns = [c for c in gdf.columns if c != gdf.geometry.name]
        raise SourceError(f"{what}: variable {name!r}: attribute {attribute!r} not found; columns: {columns}")


def rasterize_variable(
    gdf: gpd.GeoDataFrame,
    grid: RegionGrid,
    name: str,
    spec: VariableSpec,
    what: str = "vector features",
    label: str = "features",
) -> xr.DataArray:
    """Rasterize (already filtered) features onto ``grid`` following ``spec``.

    Parameters
    ----------
    gdf
        Features with a CRS (any; they are reprojected to the grid CRS).
    grid
        The region grid; its ``chunks`` set the rasterization tiles.
    name, spec
        Output variable name and its :class:`~pipelines.config.VariableSpec` (method, attribute, units).
    what, label
        How errors name the source, and the default ``long_name`` names the features.
    """
    from .. import rasterize
    from ..cube import grid_coords

    method = spec.method
    if method is None:
        raise SourceError(f"{what}: variable {name!r}: field 'method' is required ({sorted(LONG_NAMES)})")
    units = _units(name, spec, method, what)
    values = None
    if method in ("sum", "area_fraction") and spec.attribute:
        if method == "area_fraction":  # attribute-weighted cover, e.g. building levels -> floor-area ratio
            _check_attribute_present(gdf, spec.attribute, name, what)
            values = pd.to_numeric(gdf[spec.attribute], errors="coerce")
            if values.isna().any():
                raise SourceError(
                    f"{what}: variable {name!r}: attribute {spec.attribute!r} is missing or not numeric for "
                    f"{int(values.isna().sum())} of {len(values)} features; filter them with 'where' or set "
                    f"options.fillna: {{{spec.attribute}: VALUE}}"
                )
            gdf = gdf.assign(_geotwin_value=values.to_numpy())
    if method == "sum":
        if not spec.attribute:
            raise SourceError(f"{what}: variable {name!r}: method 'sum' needs field 'attribute'")
        if spec.attribute not in gdf.columns:
            columns = [c for c in gdf.columns if c != gdf.geometry.name]
            raise SourceError(
                f"{what}: variable {name!r}: attribute {spec.attribute!r} not found; columns: {columns}"
            )
        values = pd.to_numeric(gdf[spec.attribute], errors="coerce")
        bad = values.isna() & gdf[spec.attribute].notna()
        if bad.any():
            example = gdf[spec.attribute][bad].iloc[0]
            raise SourceError(f"{what}: attribute {spec.attribute!r} must be numeric, found {example!r}")
        gdf = gdf.assign(_geotwin_value=values.to_numpy())
    _check_geometry(gdf, method, what)
    gdf = _to_grid(gdf, grid, method, what)
    if method in ("count", "sum"):
        multi = shapely.get_num_geometries(gdf.geometry.to_numpy()) > 1
        if multi.any() and method == "sum":
            raise SourceError(
                f"{what}: method 'sum' needs single points, {int(multi.sum())} features are MultiPoint"
            )
        gdf = gdf.explode(index_parts=False)
    geoms = gdf.geometry.to_numpy()
    chunks = (grid.chunks.get("y", 512), grid.chunks.get("x", 512))
    try:
        if method == "area_fraction" and values is not None:
            data = rasterize.weighted_area(geoms, gdf["_geotwin_value"].to_numpy(), grid.geobox, chunks)
        elif method == "area_fraction":
            data = rasterize.area_fraction(geoms, grid.geobox, chunks)
        elif method == "length_density":
            data = rasterize.length_density(geoms, grid.geobox, chunks)
        elif method == "distance":
            data = rasterize.distance(geoms, grid.geobox, chunks)
        else:
            weights = None if values is None else gdf["_geotwin_value"].to_numpy()
            data = rasterize.point_sum(geoms, grid.geobox, weights, chunks)
    except rasterize.RasterizeError as err:
        raise SourceError(f"{what}: variable {name!r}: {err}") from None
    if spec.scale is not None:
        data = data * np.float32(spec.scale)
    long_name = spec.long_name or " ".join(
        [LONG_NAMES[method].format(attribute=spec.attribute), label]
        + ([f"where {spec.where}"] if spec.where else [])
    )
    attrs = {"units": units, "long_name": long_name, "grid_mapping": "spatial_ref", "geotwin_method": method}
    return xr.DataArray(data, dims=("y", "x"), coords=grid_coords(grid.geobox), name=name, attrs=attrs)


def load(source: SourceConfig, grid: RegionGrid) -> xr.Dataset:
    """Rasterize the variables of a ``kind: vector`` source onto the region grid (lazy, dask).

    Returns a Dataset with one ``(y, x)`` variable per key of ``source.variables``, each with
    ``units``, ``long_name`` and ``grid_mapping``, and ``attrs["geotwin_source_files"]``.
    """
    from ..cube import grid_coords, sha256_file

    unknown = set(source.options) - OPTIONS
    if unknown:
        raise SourceError(
            f"source {source.name!r}: unknown option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}"
        )
    if not source.variables:
        raise SourceError(f"source {source.name!r}: no 'variables' to rasterize")
    path = Path(source.path)
    if not path.exists():
        raise SourceError(f"source {source.name!r}: vector file {path} not found")
    opts = source.options
    cache: dict[str | None, gpd.GeoDataFrame] = {}
    out = {}
    for name, spec in source.variables.items():
        layer = opts.get("layer") or (OSM_LAYERS.get(spec.method or "", "points") if is_osm(path) else None)
        if layer not in cache:
            cache[layer] = open_vector(
                path, layer, lon=opts.get("lon"), lat=opts.get("lat"), crs=opts.get("crs")
            )
            if opts.get("osm_tags"):
                cache[layer] = lift_osm_tags(cache[layer], opts["osm_tags"], f"source {source.name!r}")
            if opts.get("fillna"):
                cache[layer] = _fillna(cache[layer], opts["fillna"], f"source {source.name!r}")
        what = f"source {source.name!r} ({_describe(path, layer)})"
        gdf = _query(cache[layer], spec.where, what) if spec.where else cache[layer]
        out[name] = rasterize_variable(gdf, grid, name, spec, what, label=f"{source.name} features")
    ds = xr.Dataset(out, coords=grid_coords(grid.geobox))
    ds.attrs["geotwin_source_files"] = [{"path": str(path), "sha256": sha256_file(path)}]
    return ds
