"""The ``geotwin`` command line (thin: parse, validate, call the Python API).

Every command exits with status 2 and a one-line ``error: ...`` message on bad input.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="geotwin",
    help="Earth digital twins on Zarr cubes: build region cubes, inspect/verify/catalog stores, run twins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Run a twin (ice, reservoir, carbon) on cubes.", no_args_is_help=True)
app.add_typer(run_app, name="run")

StoreOpt = Annotated[
    Path, typer.Option("--store", "-s", help="Cube store directory (an Icechunk repository).")
]


def _user_errors() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .cube import CubeError
    from .grid import GridError
    from .sources import SourceError
    from .store import StoreError

    return (
        ConfigError,
        CubeError,
        GridError,
        SourceError,
        StoreError,
        FileNotFoundError,
        ValueError,
        KeyError,
    )


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known user errors into ``error: <message>`` on stderr and exit code 2 (``GEOTWIN_DEBUG=1``: traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _user_errors() as err:
            if os.environ.get("GEOTWIN_DEBUG"):
                raise
            message = str(err).strip().splitlines() or [type(err).__name__]
            typer.secho(f"error: {' | '.join(message)}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None

    return wrapper


def dask_progress(label: str) -> Any:
    """A dask progress bar preceded by a label (used around each build step)."""
    from dask.diagnostics import ProgressBar

    typer.echo(label, err=True)
    return ProgressBar(out=sys.stderr, dt=0.5)


@app.command()
@friendly
def build(
    config: Annotated[Path, typer.Argument(help="Region YAML (see catalogs/demo/*.yaml).")],
    store: StoreOpt = Path("geotwin_store"),
    name: Annotated[str | None, typer.Option(help="Cube name (default: the region name).")] = None,
    catalog: Annotated[bool, typer.Option(help="Update the store's STAC catalog afterwards.")] = True,
    cluster: Annotated[
        Path | None,
        typer.Option(help="Dask cluster YAML (cluster/*.yaml); default: threads in this process."),
    ] = None,
) -> None:
    """Build (or resume) the cube of a region config into the store."""
    from .build import build_region

    with _cluster(cluster):
        cube = build_region(config, store, name=name, progress=dask_progress)
    typer.echo(f"built cube {cube!r} in {store}")
    if catalog:
        _write_catalog(store)


@app.command()
@friendly
def info(
    store: Annotated[Path, typer.Argument(help="Cube store directory.")],
    cube: Annotated[str | None, typer.Argument(help="Cube to describe (default: list all).")] = None,
) -> None:
    """List the cubes of a store, or describe one cube."""
    from .store import history, list_cubes, open_cube

    if cube is None:
        names = list_cubes(store)
        typer.echo(f"{store}: {len(names)} cube(s)")
        for name in names:
            ds = open_cube(store, name)
            dims = ", ".join(f"{k}={v}" for k, v in ds.sizes.items())
            typer.echo(f"  {name}: {len(ds.data_vars)} variables ({dims})")
        last = history(store, limit=1)
        if last:
            typer.echo(f"last commit: {last[0]['id']} {last[0]['message']}")
        return
    typer.echo(repr(open_cube(store, cube)))


@app.command()
@friendly
def verify(
    store: Annotated[Path, typer.Argument(help="Cube store directory.")],
    cube: Annotated[str | None, typer.Argument(help="Cube to verify (default: all).")] = None,
) -> None:
    """Check every cube (or one) against the cube convention; exit 1 if any fails."""
    from .cube import CubeError, verify_cube
    from .store import list_cubes, open_cube

    names = [cube] if cube else list_cubes(store)
    failures = 0
    for name in names:
        try:
            verify_cube(open_cube(store, name), name=name)
            typer.echo(f"ok      {name}")
        except CubeError as err:
            failures += 1
            typer.secho(f"FAILED  {err}", fg=typer.colors.RED)
    if failures:
        raise typer.Exit(1)


def _cluster(path: Path | None) -> Any:
    """A dask client from a cluster YAML for the duration of a command, or nothing."""
    if path is None:
        import contextlib

        return contextlib.nullcontext()
    from .cluster import cluster_client

    return cluster_client(path)


def _write_catalog(store: Path, out: Path | None = None) -> Path | None:
    try:
        from .catalog import write_catalog
    except ImportError:  # catalog module not available in a partial install
        return None
    path = write_catalog(store, out)
    typer.echo(f"STAC catalog: {path}")
    return path


@app.command()
@friendly
def catalog(
    store: Annotated[Path, typer.Argument(help="Cube store directory.")],
    out: Annotated[Path | None, typer.Option(help="Catalog directory (default: STORE/stac).")] = None,
) -> None:
    """Write or update the STAC catalog (datacube extension) of every cube in the store."""
    if _write_catalog(store, out) is None:
        raise typer.Exit(1)


@app.command()
@friendly
def demo(
    store: StoreOpt = Path("demo_store"),
    twins: Annotated[bool, typer.Option(help="Also run the twins on the demo cubes.")] = True,
) -> None:
    """Build the demo cubes from the small real files shipped in catalogs/demo, then run the twins."""
    from .demo import run_demo

    summary = run_demo(store, twins=twins, progress=dask_progress, echo=typer.echo)
    typer.echo(json.dumps(summary, indent=2, default=str))


@run_app.command("ice")
@friendly
def run_ice(
    config: Annotated[Path, typer.Argument(help="Ice hazard/drift YAML (see catalogs/ice/).")],
    store: Annotated[Path | None, typer.Option("--store", "-s", help="Store with the forcing cube.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the JSON summary and plots.")] = None,
) -> None:
    """Run the ice drift twin / ice-hazard forecast."""
    from twins.ice.run import run_config

    typer.echo(json.dumps(run_config(config, store=store, out=out), indent=2, default=str))


@run_app.command("reservoir")
@friendly
def run_reservoir(
    path: Annotated[Path, typer.Argument(help="Eclipse deck (.DATA) or reservoir YAML config.")],
    out: Annotated[Path, typer.Option(help="Output folder (summary.csv, plots).")] = Path("reservoir_out"),
    store: Annotated[Path | None, typer.Option("--store", "-s", help="Store for the result cubes.")] = None,
) -> None:
    """Simulate an Eclipse deck as it stands, or run a reservoir config (with economics)."""
    from twins.reservoir.run import run_config, run_deck

    if path.suffix.upper() == ".DATA":
        result = run_deck(path, out, store=store)
    else:
        result = run_config(path, store=store, out=out)
    typer.echo(json.dumps(result, indent=2, default=str))


@run_app.command("carbon")
@friendly
def run_carbon(
    config: Annotated[Path, typer.Argument(help="City carbon YAML (see catalogs/carbon/).")],
    store: Annotated[Path | None, typer.Option("--store", "-s", help="Store with the city cube.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the summary table and plots.")] = None,
) -> None:
    """Run the city carbon-footprint twin (prior, transport, inversion)."""
    from twins.carbon.run import run_config

    from .demo import to_jsonable

    typer.echo(json.dumps(to_jsonable(run_config(config, store=store, out=out)), indent=2, default=str))


if __name__ == "__main__":  # pragma: no cover
    app()
