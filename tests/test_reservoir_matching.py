"""History matching on synthetic observations from a hidden permeability field (zones of the quarter five-spot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opm")
jax = pytest.importorskip("jax")

pytestmark = pytest.mark.usefixtures("reservoir_x64")


import jax.numpy as jnp  # noqa: E402

from pipelines.sources.reservoir import read_deck_full  # noqa: E402
from twins.reservoir import matching  # noqa: E402
from twins.reservoir.adapter import build  # noqa: E402

CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "reservoir"
TRUTH = np.log(np.array([2.0, 0.7, 0.7, 0.4]))  # hidden log multipliers of the four 10x10 quadrants
HISTORY = np.arange(0, 10)  # report steps observed (300 days); the rest is the forecast
FORECAST = np.arange(10, 20)


def _runner(case, fixed: bool):
    """The simulator used for truth, forecasts (and the match): adaptive, or fixed-step (2 sub-steps, 6 Newton)."""
    if not fixed:
        return lambda mult: case.run(perm_mult=mult)
    return lambda mult: case.sim.run_fixed(
        case.model, case.x0, case.controls, case.dts, case.params(mult), substeps=2, iterations=6
    )


def _setup(fixed: bool = False, vectors=matching.VECTORS):
    case = build(read_deck_full(CATALOG / "QFS_WATERFLOOD.DATA"))
    iy, ix = np.nonzero(case.cell_index[0] >= 0)
    zones = (iy >= 10).astype(int) * 2 + (ix >= 10).astype(int)
    truth = _runner(case, fixed)(jnp.exp(jnp.asarray(TRUTH)[zones]))
    obs_clean = np.asarray(matching.observe(truth, HISTORY, vectors))
    sigma = matching.default_sigma(obs_clean, case.sim.nw, HISTORY.size, vectors=vectors)
    rng = np.random.default_rng(1)
    obs = obs_clean + sigma * rng.standard_normal(obs_clean.shape) * 0.5
    forecast_truth = _forecast(case, truth)
    return case, zones, obs, sigma, forecast_truth


def _forecast(case, rep) -> tuple[np.ndarray, np.ndarray]:
    """Forecast-period injector BHP above the producer's 150 bar limit (Pa) and producer oil rate (m3/s)."""
    i, k = case.well_names.index("INJ"), case.well_names.index("PROD")
    return np.asarray(rep.bhp)[FORECAST, i] - 150e5, np.asarray(rep.qh)[FORECAST, k]


def _forecast_error(case, zones, theta, truth_forecast, fixed: bool = False) -> float:
    """Mean relative RMS error of the forecast injector over-pressure and producer oil rate."""
    sim = _forecast(case, _runner(case, fixed)(jnp.exp(jnp.asarray(theta)[zones])))
    return float(
        np.mean(
            [np.sqrt(np.mean((s - t) ** 2) / np.mean(t**2)) for s, t in zip(sim, truth_forecast, strict=True)]
        )
    )


def test_es_mda_improves_forecast() -> None:
    case, zones, obs, sigma, fc_truth = _setup()
    mean, ens = matching.es_mda(case, zones, obs, sigma, HISTORY, members=16, assimilations=3)
    err_prior = _forecast_error(case, zones, np.zeros(4), fc_truth)
    err_post = _forecast_error(case, zones, mean, fc_truth)
    assert err_post < 0.5 * err_prior
    # the injector and producer quadrants (0 and 3) are the best constrained: the right direction
    assert mean[0] > 0 and mean[3] < 0


@pytest.mark.slow
def test_gradient_match_improves_forecast() -> None:
    """Perfect-model twin experiment with the fixed-step (reverse-differentiable) simulator."""
    case, zones, obs, sigma, fc_truth = _setup(fixed=True, vectors=("bhp",))
    theta, history = matching.match_gradient(
        case, zones, obs, sigma, HISTORY, n_iter=15, learning_rate=0.1, vectors=("bhp",)
    )
    print("gradient match loss history", np.round(history, 3).tolist(), "theta", np.round(theta, 3).tolist())
    assert history[-1] < 0.3 * history[0]
    err_prior = _forecast_error(case, zones, np.zeros(4), fc_truth, fixed=True)
    err_post = _forecast_error(case, zones, theta, fc_truth, fixed=True)
    assert err_post < 0.5 * err_prior
