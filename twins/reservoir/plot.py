"""Plots of reservoir-twin results (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def plot_summary(
    summary: pd.DataFrame | str | Path, reference: pd.DataFrame | None = None, out: str | Path | None = None
) -> Any:
    """Field rates, average pressure and BHPs against time; ``reference`` (e.g. OPM) dashed."""
    import matplotlib.pyplot as plt

    table = pd.read_csv(summary) if not isinstance(summary, pd.DataFrame) else summary
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key in ("FOPR", "FWPR", "FGPR", "FWIR"):
        if table[key].abs().max() > 0:
            axes[0].plot(table["TIME"], table[key], label=key)
            if reference is not None and key in reference:
                axes[0].plot(reference["TIME"], reference[key], "k--", lw=0.8)
    axes[0].set(xlabel="days", ylabel="rate (deck units)", title="field rates")
    axes[1].plot(table["TIME"], table["FPR"], label="FPR")
    if reference is not None and "FPR" in reference:
        axes[1].plot(reference["TIME"], reference["FPR"], "k--", lw=0.8, label="reference")
    axes[1].set(xlabel="days", ylabel="pressure", title="average pressure")
    for key in [c for c in table.columns if c.startswith("WBHP:")]:
        axes[2].plot(table["TIME"], table[key], label=key)
    axes[2].set(xlabel="days", ylabel="pressure", title="bottom-hole pressures")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=110)
    return fig


def plot_saturation(state: Any, time_index: int = -1, layer: int = 0, out: str | Path | None = None) -> Any:
    """Map of water saturation of one layer at one report step from a ``state`` cube."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    state["swat"].isel(time=time_index, layer=layer).plot(ax=ax, cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"water saturation, layer {layer}, {str(state.time.values[time_index])[:10]}")
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=110)
    return fig
