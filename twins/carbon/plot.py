"""Figures of a carbon run: prior/posterior flux maps, the concentration map, sensor series, sector totals."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def plot_run(cubes: Mapping[str, Any], table: pd.DataFrame, path: str | Path | None = None) -> Any:
    """A 2×2 overview figure; saved to ``path`` when given. Returns the matplotlib figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    prior = cubes["flux_prior"]["co2_flux"].mean("time").sum("sector")
    post = cubes["flux_posterior"]["co2_flux"].mean("time").sum("sector")
    half = float(abs(prior.x[1] - prior.x[0])) / 2
    extent = [(float(prior.x.min()) - half) / 1e3, (float(prior.x.max()) + half) / 1e3]
    extent += [(float(prior.y.min()) - half) / 1e3, (float(prior.y.max()) + half) / 1e3]
    sensors = cubes["sensors"]
    sx, sy = sensors["easting"].values / 1e3, sensors["northing"].values / 1e3
    ax = axes[0, 0]
    im = ax.imshow(
        np.log10(np.maximum(prior.values, 1e-12)), extent=extent, origin="upper", cmap="magma", vmin=-10
    )
    fig.colorbar(im, ax=ax, label="log10 prior flux (kg m-2 s-1)")
    ax.plot(sx, sy, "c^", ms=5, label="sensors")
    ax.legend(loc="lower left")
    ax.set_title("prior flux (period mean) and sensors")
    ax = axes[0, 1]
    conc = cubes["concentration"]["co2_enhancement_posterior"].mean("time")
    from matplotlib.colors import LogNorm

    vals = np.maximum(conc.values, 1e-3)
    im = ax.imshow(
        vals,
        extent=extent,
        origin="upper",
        cmap="viridis",
        norm=LogNorm(vmin=1e-2, vmax=max(vals.max(), 0.1)),
    )
    fig.colorbar(im, ax=ax, label="ppm (log scale)")
    ax.plot(sx, sy, "r^", ms=4)
    ax.set_title("posterior CO2 enhancement (period mean)")
    ax = axes[1, 0]
    diff = (post - prior).values
    lim = float(np.abs(diff).max()) or 1.0
    im = ax.imshow(diff, extent=extent, origin="upper", cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, label="kg m-2 s-1")
    ax.set_title("posterior − prior flux (period mean)")
    for a in (axes[0, 0], axes[0, 1], axes[1, 0]):
        a.set_xlabel("x (km)")
        a.set_ylabel("y (km)")
    ax = axes[1, 1]
    rows = table[table["sector"] != "total"]
    pos = np.arange(len(rows))
    ax.bar(pos - 0.2, rows["prior"] / 1e3, 0.4, yerr=rows["prior_uncertainty"] / 1e3, label="prior")
    ax.bar(pos + 0.2, rows["posterior"] / 1e3, 0.4, yerr=rows["uncertainty"] / 1e3, label="posterior")
    if "truth" in rows:
        ax.scatter(pos, rows["truth"] / 1e3, color="k", marker="x", zorder=3, label="truth (OSSE)")
    ax.set_xticks(pos, rows["sector"], rotation=20)
    ax.set_ylabel("kt CO2 / year")
    ax.legend()
    ax.set_title("sector totals (±1σ)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
        plt.close(fig)
    return fig
