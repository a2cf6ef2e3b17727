"""geotwin pipelines: read sources, align them on a region grid and store Zarr v3 cubes.

The two stable entry points used by twins and other tools are :func:`list_cubes` and
:func:`open_cube`; :func:`verify_cube` enforces the cube convention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "list_cubes",
    "open_cube",
    "verify_cube",
    "write_cube",
    "append_cube",
    "build_region",
    "load_region",
]

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr


def list_cubes(store: Any) -> list[str]:
    """Names of the completed cubes in ``store`` (see :func:`pipelines.store.list_cubes`)."""
    from .store import list_cubes as _list

    return _list(store)


def open_cube(store: Any, name: str) -> xr.Dataset:
    """Open cube ``name`` lazily at its last commit (see :func:`pipelines.store.open_cube`)."""
    from .store import open_cube as _open

    return _open(store, name)


def __getattr__(attr: str) -> Any:
    if attr in ("verify_cube",):
        from . import cube

        return getattr(cube, attr)
    if attr in ("write_cube", "append_cube"):
        from . import store

        return getattr(store, attr)
    if attr == "load_region":
        from .config import load_region

        return load_region
    if attr == "build_region":
        from .build import build_region

        return build_region
    raise AttributeError(f"module 'pipelines' has no attribute {attr!r}")


from . import accessor as _accessor  # noqa: E402,F401  (registers ds.geotwin / da.geotwin)
