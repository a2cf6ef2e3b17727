"""Carbon twin runner: config → inventory → footprints → inversion → cubes + summary table.

The CLI ``geotwin run carbon CONFIG [--store PATH]`` and ``geotwin demo`` call :func:`run_config`.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.config import ConfigError, load_yaml

from . import adapter, inventory, osse
from .inversion import Posterior, Prior, aggregate_prior_cov, exponential_cholesky, solve, solve_gradient
from .plume import solar_elevation, stability_class
from .transport import area_footprint, concentration_map, point_footprint

FLUX_SCALE = 1e-6  # state unit of area fluxes: 1e-6 kg m-2 s-1 (mg m-2 s-1)
TONNE_YEAR_PER_KG_S = inventory.SECONDS_PER_YEAR / 1000.0
SUMMARY_COLUMNS = ["sector", "prior", "posterior", "uncertainty", "reduction"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Period(_Model):
    start: datetime
    end: datetime


class Wind(_Model):
    speed_m_s: float | list[float] = 3.0
    from_deg: float | list[float] = 270.0


class Osse(_Model):
    sector_scale: dict[str, float] = Field(default_factory=dict)
    facility_scale: float = 1.0
    perturbation: float = 0.0
    noise_ppm: float = 0.5
    seed: int = 0


class CarbonConfig(_Model):
    """A city run: city cube, sectors and totals, facilities, sensors (+ observations or an OSSE), period."""

    name: str
    cube: str
    store: str | None = None
    timezone: str = "UTC"
    setting: Literal["urban", "rural"] = "urban"
    period: Period
    sectors: list[str]
    sector_totals_t_per_year: dict[str, float]
    proxies: dict[str, str]
    facilities: str | None = None
    flares: str | None = None
    flares_reservoir_summary: str | None = None  # the reservoir twin's summary.csv: rates from WGPR:<well>
    flares_deck_units: Literal["METRIC", "FIELD"] = "METRIC"
    prior_uncertainty: dict[str, float] = Field(default_factory=dict)
    correlation_length_m: float = Field(1000.0, gt=0)
    release_height_m: float = Field(10.0, ge=0)
    receptor_height_m: float = Field(3.0, ge=0)
    cloud_fraction: float = Field(0.5, ge=0, le=1)
    air_temperature_k: float = Field(288.15, gt=0)
    wind: Wind | None = None
    sensors: str
    observations: str | None = None
    background_ppm: float | None = None
    obs_error_ppm: float = Field(1.0, gt=0)
    osse: Osse | None = None
    solver: Literal["auto", "closed_form", "gradient"] = "auto"
    max_dense: int = Field(15000, gt=0)


def load_config(config: str | Path | dict[str, Any] | CarbonConfig) -> tuple[CarbonConfig, Path]:
    """Validate a config (YAML path, mapping or model); relative paths resolve against the YAML's folder."""
    if isinstance(config, CarbonConfig):
        return config, Path.cwd()
    base = Path.cwd()
    raw = config
    if isinstance(config, str | Path):
        base = Path(config).resolve().parent
        raw = load_yaml(config)
    try:
        cfg = CarbonConfig.model_validate(raw)
    except ValidationError as err:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ConfigError(
            f"{config if isinstance(config, str | Path) else 'carbon config'}:\n" + "\n".join(lines)
        ) from None
    inventory.check_sectors(cfg.sectors, cfg.sector_totals_t_per_year)
    if set(cfg.proxies) != set(cfg.sectors):
        raise inventory.InventoryError(
            f"proxies {sorted(cfg.proxies)} must name exactly the sectors {sorted(cfg.sectors)}"
        )
    if cfg.observations is None and cfg.osse is None:
        raise ConfigError("carbon config: give 'observations' (a CSV) or an 'osse' block")
    return cfg, base


def _path(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def _facilities(cfg: CarbonConfig, base: Path, g: dict[str, Any]):
    from pipelines.sources.facilities import read_facilities, read_flares

    tables = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if cfg.facilities is not None:
            tables.append(read_facilities(_path(base, cfg.facilities)))
        if cfg.flares is not None:
            summary = (
                None if cfg.flares_reservoir_summary is None else _path(base, cfg.flares_reservoir_summary)
            )
            flares = read_flares(_path(base, cfg.flares), summary, cfg.flares_deck_units)
            co2, _ = inventory.flaring_emissions(flares["gas_rate_sm3_per_day"], flares["flare_efficiency"])
            flares["co2_t_per_year"] = co2
            tables.append(
                flares.drop(columns=["gas_rate_sm3_per_day", "flare_efficiency"]).to_crs(
                    tables[0].crs if tables else flares.crs
                )
            )
    if not tables:
        return None, np.zeros(0), np.zeros((0, 6))
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    xy = adapter.to_grid_xy(table, g["crs"])
    keep = adapter.inside(xy, g)
    if not keep.all():
        warnings.warn(
            f"{cfg.facilities}: {int((~keep).sum())} facilities outside the city grid are ignored",
            stacklevel=2,
        )
    table, xy = table[keep].reset_index(drop=True), xy[keep]
    undeclared = sorted(set(table["sector"]) - set(cfg.sectors))
    if undeclared:
        raise inventory.InventoryError(
            f"{cfg.facilities}: facilities in sectors {undeclared} that are not declared"
        )
    q = inventory.facility_emissions(table)
    keep = q > 0
    table, xy, q = table[keep].reset_index(drop=True), xy[keep], q[keep]
    stack = inventory.stack_parameters(table)
    stacks = np.column_stack(
        [
            xy,
            stack["stack_height_m"],
            stack["stack_diameter_m"],
            stack["exit_velocity_m_s"],
            stack["exit_temperature_k"],
        ]
    )
    return table, q, stacks


def build(cfg: CarbonConfig, base: Path, cube: Any) -> dict[str, Any]:
    """Assemble the inversion problem (arrays only) from a validated config and the city cube."""
    from pipelines.sources.sensors import observation_matrix, read_observations, read_sites

    g = adapter.grid_arrays(cube, name=cfg.cube)
    times = pd.date_range(cfg.period.start, cfg.period.end, freq="h")
    if len(times) < 2:
        raise ConfigError("carbon config: period must span at least two hours")
    table, q_t, stacks = _facilities(cfg, base, g)
    sectors = list(cfg.sectors)
    point_sector = [] if table is None else list(table["sector"])
    point_totals = {s: float(q_t[[ps == s for ps in point_sector]].sum()) for s in sectors}
    flux = inventory.downscale(
        cfg.sector_totals_t_per_year, adapter.proxy_arrays(cube, cfg.proxies), g["cell_area"], point_totals
    )
    area = np.stack([flux[s] for s in sectors])  # (K, ny, nx) kg m-2 s-1
    prof_area = np.stack(
        [inventory.time_factors(inventory.SECTOR_PROFILE[s], times, cfg.timezone) for s in sectors]
    )
    prof_pt = np.stack(
        [
            inventory.time_factors(
                "A_PublicPower" if s == "stationary_energy" else inventory.SECTOR_PROFILE[s],
                times,
                cfg.timezone,
            )
            for s in point_sector
        ]
    ).reshape(len(point_sector), len(times))
    sites = read_sites(_path(base, cfg.sensors))
    xyz = adapter.sensor_array(sites, g)
    u, v, wind_source = adapter.hourly_winds(
        cube, times, None if cfg.wind is None else cfg.wind.model_dump(), cfg.timezone
    )
    import geopandas as gpd

    ctr = gpd.GeoSeries(gpd.points_from_xy([g["x"].mean()], [g["y"].mean()]), crs=g["crs"]).to_crs(
        "EPSG:4326"
    )
    el = solar_elevation(
        float(ctr.y.iloc[0]),
        float(ctr.x.iloc[0]),
        times.day_of_year.to_numpy(),
        (times.hour + times.minute / 60).to_numpy(),
    )
    stab = np.asarray(stability_class(np.hypot(u, v), el, cfg.cloud_fraction))
    f_area = np.asarray(
        area_footprint(xyz, g["cells"], g["cell_size"], u, v, stab, cfg.release_height_m, cfg.setting)
    )
    f_pt = (
        np.asarray(point_footprint(xyz, stacks, u, v, stab, cfg.air_temperature_k, cfg.setting))
        if len(q_t)
        else None
    )
    n_s, n_t, n_c = f_area.shape
    blocks = [
        (f_area * prof_area[k][None, :, None]).reshape(n_s * n_t, n_c) * FLUX_SCALE
        for k in range(len(sectors))
    ]
    if f_pt is not None:
        blocks.append((f_pt * prof_pt.T[None]).reshape(n_s * n_t, -1))
    H = np.concatenate(blocks, axis=1).astype(np.float32)
    q_kg_s = q_t / TONNE_YEAR_PER_KG_S
    rel = cfg.prior_uncertainty
    sd_area = np.stack([area[k] / FLUX_SCALE * rel.get(s, 0.5) for k, s in enumerate(sectors)])
    prior = Prior(
        x=jnp.asarray(np.concatenate([(area / FLUX_SCALE).ravel(), q_kg_s]), dtype=jnp.float32),
        sd_area=jnp.asarray(sd_area, dtype=jnp.float32),
        ly=exponential_cholesky(jnp.asarray(g["y"], dtype=jnp.float32), cfg.correlation_length_m),
        lx=exponential_cholesky(jnp.asarray(g["x"], dtype=jnp.float32), cfg.correlation_length_m),
        sd_point=jnp.asarray(q_kg_s * rel.get("facilities", 0.1), dtype=jnp.float32),
    )
    n_area = area.size
    agg = np.zeros((H.shape[1], len(sectors)))
    for k in range(len(sectors)):
        agg[k * n_c : (k + 1) * n_c, k] = FLUX_SCALE * g["cell_area"] * TONNE_YEAR_PER_KG_S
    for p, s in enumerate(point_sector):
        agg[n_area + p, sectors.index(s)] = TONNE_YEAR_PER_KG_S
    obs = None
    if cfg.observations is not None:
        raw = observation_matrix(
            read_observations(_path(base, cfg.observations)), list(sites["site_id"]), times
        )
        background = (
            cfg.background_ppm if cfg.background_ppm is not None else np.nanmin(raw, axis=0, keepdims=True)
        )
        obs = raw - background
    return {
        "g": g, "times": times, "sectors": sectors, "area": area, "prof_area": prof_area, "table": table,
        "q_t": q_t, "prof_pt": prof_pt, "stacks": stacks, "sites": sites, "xyz": xyz, "u": u, "v": v,
        "stability": stab, "wind_source": wind_source, "H": H, "prior": prior, "agg": jnp.asarray(agg, dtype=jnp.float32),
        "obs": obs, "point_sector": point_sector,
    }  # fmt: skip


def invert(p: dict[str, Any], cfg: CarbonConfig) -> tuple[Posterior, np.ndarray, np.ndarray | None]:
    """Observations (real or OSSE) → posterior; returns ``(posterior, y (S, T), x_true or None)``."""
    H, prior = p["H"], p["prior"]
    n_s, n_t = len(p["sites"]), len(p["times"])
    x_true = None
    if p["obs"] is None:
        o = cfg.osse
        scale = [o.sector_scale.get(s, 1.0) for s in p["sectors"]]
        x_true = osse.make_truth(prior, scale, o.facility_scale, o.perturbation, o.seed)
        y = osse.simulate(jnp.asarray(H), x_true, o.noise_ppm, o.seed + 1).reshape(n_s, n_t)
    else:
        y = p["obs"]
    valid = np.isfinite(y.ravel())
    if not valid.any():
        raise adapter.CarbonInputError("no observations fall in the period at the listed sensors")
    Hv = jnp.asarray(H[valid])
    r = jnp.full(int(valid.sum()), cfg.obs_error_ppm**2, dtype=jnp.float32)
    yv = jnp.asarray(y.ravel()[valid], dtype=jnp.float32)
    if cfg.solver == "gradient" or (cfg.solver == "auto" and min(Hv.shape) > cfg.max_dense):
        # too large for a dense m x m or n x n factorisation: posterior mean by L-BFGS, no uncertainties
        x, _ = solve_gradient(Hv, yv, r, prior)
        nan = jnp.full((len(p["sectors"]),) * 2, jnp.nan)
        post = Posterior(x, None, aggregate_prior_cov(prior, p["agg"]), nan)
    else:
        post = solve(Hv, yv, r, prior, p["agg"])
    return post, y, None if x_true is None else np.asarray(x_true)


def summary_table(p: dict[str, Any], post: Posterior, x_true: np.ndarray | None) -> pd.DataFrame:
    """Sector rows + a ``total`` row: prior, posterior, posterior uncertainty (1σ) in t CO2/yr, and the
    uncertainty reduction ``1 − σ_post/σ_prior``."""
    agg = np.asarray(p["agg"], dtype=float)
    prior_tot = agg.T @ np.asarray(p["prior"].x, dtype=float)
    post_tot = agg.T @ np.asarray(post.x, dtype=float)
    cp, cq = np.asarray(post.agg_cov_prior, dtype=float), np.asarray(post.agg_cov, dtype=float)
    sd_prior = np.sqrt(np.append(np.diag(cp), cp.sum()))
    sd_post = np.sqrt(np.maximum(np.append(np.diag(cq), cq.sum()), 0.0))
    table = pd.DataFrame(
        {
            "sector": p["sectors"] + ["total"],
            "prior": np.append(prior_tot, prior_tot.sum()),
            "posterior": np.append(post_tot, post_tot.sum()),
            "uncertainty": sd_post,
            "reduction": 1.0 - sd_post / np.where(sd_prior > 0, sd_prior, np.nan),
        }
    )
    table["prior_uncertainty"] = sd_prior
    if x_true is not None:
        true_tot = agg.T @ x_true
        table["truth"] = np.append(true_tot, true_tot.sum())
    table.attrs["units"] = "t CO2 year-1"
    return table


def _fields(p: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """State → hourly flux ``(T, K, ny, nx)`` with facilities added to their cells, and the area total."""
    g, k = p["g"], len(p["sectors"])
    ny, nx = g["shape"]
    area = x[: k * ny * nx].reshape(k, ny, nx) * FLUX_SCALE
    hourly = area[None] * p["prof_area"].T[:, :, None, None]
    points = x[k * ny * nx :]
    if len(points):
        iy = np.clip(np.rint((p["stacks"][:, 1] - g["y"][0]) / g["dy"]).astype(int), 0, ny - 1)
        ix = np.clip(np.rint((p["stacks"][:, 0] - g["x"][0]) / g["dx"]).astype(int), 0, nx - 1)
        for j, s in enumerate(p["point_sector"]):
            hourly[:, p["sectors"].index(s), iy[j], ix[j]] += points[j] * p["prof_pt"][j] / g["cell_area"]
    return hourly, (area[None] * p["prof_area"].T[:, :, None, None]).sum(axis=1)


def run_config(
    config: str | Path | dict[str, Any] | CarbonConfig,
    store: str | Path | None = None,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """Run the carbon twin for one city config.

    Parameters
    ----------
    config
        YAML path, mapping or :class:`CarbonConfig`.
    store
        Icechunk store holding the city cube (unless the config names one) and receiving the result
        cubes ``{name}_flux_prior``, ``{name}_flux_posterior``, ``{name}_concentration``,
        ``{name}_sensors``.
    out
        Optional folder for ``{name}_summary.csv`` and the figures.

    Returns
    -------
    pandas.DataFrame
        The summary table (:data:`SUMMARY_COLUMNS` + ``prior_uncertainty`` and, for an OSSE, ``truth``).
    """
    from pipelines import open_cube
    from pipelines.store import write_cube

    cfg, base = load_config(config)
    source_store = _path(base, cfg.store) if cfg.store else store
    if source_store is None:
        raise ConfigError(f"carbon config {cfg.name!r}: no store to read the city cube {cfg.cube!r} from")
    cube = open_cube(source_store, cfg.cube).load()
    p = build(cfg, base, cube)
    post, y, x_true = invert(p, cfg)
    table = summary_table(p, post, x_true)
    if store is None and out is None:
        return table
    cubes = result_cubes(cfg, p, post, y)
    if store is not None:
        for suffix, ds in cubes.items():
            write_cube(store, f"{cfg.name}_{suffix}", ds, message=f"carbon twin {cfg.name}: {suffix}")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        from pipelines.outputs import write_table

        write_table(out / f"{cfg.name}_summary.csv", table)
        from .plot import plot_run

        plot_run(cubes, table, out / f"{cfg.name}_carbon.png")
    return table


def result_cubes(cfg: CarbonConfig, p: dict[str, Any], post: Posterior, y: np.ndarray) -> dict[str, Any]:
    """The flux (prior, posterior), concentration-map and sensor cubes of a run."""
    g, times, sectors = p["g"], p["times"], p["sectors"]
    conf = cfg.model_dump(mode="json")
    k, (ny, nx) = len(sectors), g["shape"]
    xb, xa = np.asarray(p["prior"].x, dtype=float), np.asarray(post.x, dtype=float)
    agg = np.asarray(p["agg"], dtype=float)
    sd_prior = np.asarray(p["prior"].sd_area, dtype=float) * FLUX_SCALE
    sd_all = np.full(xa.shape, np.nan) if post.sd is None else np.asarray(post.sd, dtype=float)
    sd_post = sd_all[: k * ny * nx].reshape(k, ny, nx) * FLUX_SCALE
    cp, cq = np.asarray(post.agg_cov_prior, dtype=float), np.asarray(post.agg_cov, dtype=float)
    prior_flux, prior_area = _fields(p, xb)
    post_flux, post_area = _fields(p, xa)
    src = [] if p["table"] is None else [{"path": str(cfg.facilities), "rows": len(p["table"])}]
    cubes = {
        "flux_prior": adapter.flux_cube(g, times, sectors, prior_flux, sd_prior, agg.T @ xb, np.sqrt(np.diag(cp)), which="prior", config=conf, sources=src),
        "flux_posterior": adapter.flux_cube(g, times, sectors, post_flux, sd_post, agg.T @ xa, np.sqrt(np.maximum(np.diag(cq), 0)), which="posterior", config=conf, sources=src),
    }  # fmt: skip
    args = (
        g["dx"],
        g["dy"],
        p["u"],
        p["v"],
        p["stability"],
        cfg.receptor_height_m,
        cfg.release_height_m,
        cfg.setting,
    )
    maps = [np.array(concentration_map(f, *args)) for f in (prior_area, post_area)]
    n_area = k * ny * nx
    if len(p["q_t"]):  # stacks: plume of each at every cell centre (receptor height), scaled by its emission
        receptors = np.column_stack([g["cells"], np.full(len(g["cells"]), cfg.receptor_height_m)])
        f_pt = np.asarray(
            point_footprint(
                receptors, p["stacks"], p["u"], p["v"], p["stability"], cfg.air_temperature_k, cfg.setting
            )
        )  # (cells, T, P) ppm per kg/s
        for m, x in zip(maps, (xb, xa), strict=True):
            m += np.einsum("ctp,pt,p->tc", f_pt, p["prof_pt"], x[n_area:]).reshape(m.shape)
    cubes["concentration"] = adapter.concentration_cube(
        g, times, maps[0], maps[1], cfg.receptor_height_m, conf
    )
    n_s, n_t = len(p["sites"]), len(times)
    series = {
        "co2_observed": y,
        "co2_prior": (p["H"] @ xb).reshape(n_s, n_t),
        "co2_posterior": (p["H"] @ xa).reshape(n_s, n_t),
    }
    cubes["sensors"] = adapter.sensor_cube(p["sites"], p["xyz"], times, series, conf)
    for ds in cubes.values():
        ds.attrs["geotwin_wind"] = p["wind_source"]
    return cubes
