"""Validated configuration models for ``catalogs/*.yaml``.

A region file declares one named grid (CRS, bounds, resolution, optional time axis, chunks) and the
sources that are aligned onto it. Everything is validated with pydantic; errors name the file, the
field and what was expected, e.g.::

    catalogs/demo/barents.yaml: field 'resolution': expected a positive number or [x, y] pair, got -5
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid (the message names file and field)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeAxis(_Frozen):
    """Regular time axis ``[start, end]`` (inclusive) at ``freq`` (a pandas offset alias, e.g. ``1h``)."""

    start: str
    end: str
    freq: str = "1D"

    @model_validator(mode="after")
    def _check_order(self) -> TimeAxis:
        import pandas as pd

        try:
            start, end = pd.Timestamp(self.start), pd.Timestamp(self.end)
            pd.tseries.frequencies.to_offset(self.freq)
        except (ValueError, TypeError) as err:
            raise ValueError(f"expected ISO datetimes and a pandas frequency: {err}") from err
        if end < start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class VariableSpec(_Frozen):
    """How one output variable is taken from a source.

    For gridded/raster sources: ``name`` (source variable), ``standard_name`` (CF lookup when the name
    is not known), ``band`` (1-based raster band). For vector sources: ``method`` (area_fraction,
    length_density, count, sum, distance) with ``attribute`` (for sum) and ``where`` (a pandas query).
    """

    name: str | None = None
    standard_name: str | None = None
    band: int | None = Field(default=None, ge=1)
    units: str | None = None
    long_name: str | None = None
    resampling: (
        Literal["auto", "nearest", "bilinear", "cubic", "average", "sum", "min", "max", "mode"] | None
    ) = None
    method: Literal["area_fraction", "length_density", "count", "sum", "distance"] | None = None
    attribute: str | None = None
    where: str | None = None
    scale: float | None = None


class SourceConfig(_Frozen):
    """One input source; ``path`` is relative to the config file unless absolute or a URL."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    kind: Literal["raster", "gridded", "vector", "stac", "reservoir"]
    path: str
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("variables")
    @classmethod
    def _check_names(cls, value: dict[str, VariableSpec]) -> dict[str, VariableSpec]:
        for key in value:
            if not key.isidentifier():
                raise ValueError(f"variable name {key!r} must be a short identifier (e.g. 'u10')")
        return value


class RegionConfig(_Frozen):
    """A named region grid and the sources aligned onto it."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    description: str = ""
    crs: str
    bounds: tuple[float, float, float, float]
    resolution: float | tuple[float, float]
    time: TimeAxis | None = None
    chunks: dict[str, int] = Field(default_factory=lambda: {"time": 24, "y": 512, "x": 512})
    body: str | None = None
    sources: list[SourceConfig] = Field(default_factory=list)
    attrs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("crs")
    @classmethod
    def _check_crs(cls, value: str) -> str:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(value)
        except CRSError as err:
            raise ValueError(
                f"expected a CRS pyproj understands (EPSG:xxxx, WKT, PROJ), got {value!r}"
            ) from err
        return value

    @field_validator("bounds")
    @classmethod
    def _check_bounds(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        xmin, ymin, xmax, ymax = value
        if not (xmax > xmin and ymax > ymin):
            raise ValueError(
                f"expected [xmin, ymin, xmax, ymax] with xmax > xmin and ymax > ymin, got {list(value)}"
            )
        return value

    @field_validator("resolution")
    @classmethod
    def _check_resolution(cls, value: float | tuple[float, float]) -> float | tuple[float, float]:
        values = value if isinstance(value, tuple) else (value,)
        if any(v <= 0 for v in values):
            raise ValueError(f"expected a positive number or [x, y] pair, got {value}")
        return value

    @field_validator("chunks")
    @classmethod
    def _check_chunks(cls, value: dict[str, int]) -> dict[str, int]:
        for dim, size in value.items():
            if size <= 0:
                raise ValueError(f"chunk size for {dim!r} must be positive, got {size}")
        return value

    @model_validator(mode="after")
    def _unique_sources(self) -> RegionConfig:
        seen: set[str] = set()
        for src in self.sources:
            for var in src.variables:
                if var in seen:
                    raise ValueError(f"variable {var!r} is produced by more than one source")
                seen.add(var)
        return self


def _format_validation_error(path: Path | str, err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "<root>"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        elif item["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path}: field '{loc}': {msg}")
    return "\n".join(lines)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


def load_region(path: str | Path) -> RegionConfig:
    """Load and validate a region config; relative source paths are resolved against the file.

    Parameters
    ----------
    path
        YAML file with a region (see ``catalogs/demo/*.yaml``).

    Raises
    ------
    ConfigError
        Naming the file, the field and what was expected.
    """
    path = Path(path)
    data = load_yaml(path)
    for src in data.get("sources", []) or []:
        if isinstance(src, dict) and isinstance(src.get("path"), str):
            p = src["path"]
            if "://" not in p and not Path(p).is_absolute():
                src["path"] = str((path.parent / p).resolve())
    try:
        return RegionConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(path, err)) from None


def model_from_yaml(model: type[BaseModel], path: str | Path) -> BaseModel:
    """Validate any YAML file against a pydantic model with file/field-naming errors."""
    data = load_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(path, err)) from None
