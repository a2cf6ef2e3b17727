"""The embedded demo: build the demo regions from files shipped in ``catalogs/demo/data`` and run the twins.

Regions (one YAML each under ``catalogs/demo/``):

- ``barents``: Barents Sea, EPSG:3413, Arctic20 ocean currents and sea ice (ice drift twin, oil case);
- ``field``: an oil/gas field region in UTM 29N with Sentinel-2 red/NIR/scene classes (reservoir twin);
- ``oakland``: Oakland, CA in UTM 10N with OSM buildings/roads and WRI power plants (carbon twin).

No network and no ``../shared`` are needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CATALOGS = Path(os.environ.get("GEOTWIN_CATALOGS", REPO_ROOT / "catalogs"))
DEMO_REGIONS = ("barents", "field", "oakland")

# twin name -> (module with run_config, config path relative to catalogs/)
TWIN_DEMOS: dict[str, tuple[str, str]] = {
    "ice": ("twins.ice.run", "ice/demo.yaml"),
    "reservoir": ("twins.reservoir.run", "reservoir/demo.yaml"),
    "carbon": ("twins.carbon.run", "carbon/demo.yaml"),
}


def demo_configs() -> list[Path]:
    """The demo region configs, in build order."""
    paths = [CATALOGS / "demo" / f"{name}.yaml" for name in DEMO_REGIONS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"demo configs not found: {missing} (set GEOTWIN_CATALOGS to the catalogs/ folder)"
        )
    return paths


def to_jsonable(result: Any) -> Any:
    """Twin summaries as plain JSON-able objects (tables become lists of records)."""
    if hasattr(result, "to_dict") and hasattr(result, "columns"):
        return result.to_dict(orient="records")
    return result


def run_demo(
    store: str | os.PathLike[str],
    *,
    twins: bool = True,
    regions: tuple[str, ...] = DEMO_REGIONS,
    progress: Callable[[str], Any] | None = None,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Build the demo cubes into ``store`` (resuming if interrupted) and run the twins on them.

    Returns
    -------
    dict
        ``store``, ``cubes`` (names), ``catalog`` (STAC path), ``open_with`` (a Python snippet) and one
        summary per twin.
    """
    from .build import build_region
    from .store import list_cubes

    store = Path(store).absolute()
    for path in demo_configs():
        if path.stem in regions:
            echo(f"building {path.stem} from {path}")
            build_region(path, store, progress=progress)
    summary: dict[str, Any] = {"store": str(store)}
    if twins:
        out_root = store.parent / f"{store.name}_outputs"
        for twin, (module_name, config) in TWIN_DEMOS.items():
            echo(f"running the {twin} twin ({config})")
            module = import_module(module_name)
            result = module.run_config(CATALOGS / config, store=store, out=out_root / twin)
            summary[twin] = to_jsonable(result)
    summary["cubes"] = list_cubes(store)
    try:
        from .catalog import write_catalog

        summary["catalog"] = str(write_catalog(store))
    except ImportError:  # pragma: no cover - partial install
        pass
    first = summary["cubes"][0] if summary["cubes"] else "barents"
    summary["open_with"] = f"import pipelines; ds = pipelines.open_cube({str(store)!r}, {first!r})"
    echo(f"demo cubes in {store}: {', '.join(summary['cubes'])}")
    echo(f"open one with: {summary['open_with']}")
    return summary
