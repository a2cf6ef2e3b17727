"""Matplotlib plots of the ice twin's cubes: trajectories, presence probability maps, hazard curves.

Axes are in the forcing CRS (km); the zone polygon (shapely, same CRS) is outlined when given.
Cartopy is not required.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr


def _axes(ax: Any) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), layout="constrained")
    return fig, fig.add_subplot()


def _zone(ax: Any, zone: Any) -> None:
    if zone is None:
        return
    polys = getattr(zone, "geoms", [zone])
    for i, poly in enumerate(polys):
        x, y = poly.exterior.xy
        ax.plot(
            np.asarray(x) / 1e3, np.asarray(y) / 1e3, color="crimson", lw=2, label="zone" if i == 0 else None
        )


def _background(ax: Any, forcing: xr.Dataset | None, time: Any = None) -> None:
    if forcing is None or "sea_ice_concentration" not in forcing:
        return
    conc = forcing["sea_ice_concentration"]
    if "time" in conc.dims:
        conc = conc.sel(time=time, method="nearest") if time is not None else conc.isel(time=0)
    ax.set_facecolor("0.55")  # land / missing
    mesh = ax.pcolormesh(
        forcing["x"] / 1e3, forcing["y"] / 1e3, conc.values, cmap="Blues_r", vmin=0, vmax=1, shading="nearest"
    )
    ax.figure.colorbar(mesh, ax=ax, label="sea-ice concentration at start", shrink=0.8)


def plot_trajectories(
    traj: xr.Dataset,
    *,
    forcing: xr.Dataset | None = None,
    zone: Any = None,
    member: int = 0,
    max_lines: int = 400,
    ax: Any = None,
) -> Any:
    """Trajectories of one member over the initial sea-ice concentration; returns the figure."""
    fig, ax = _axes(ax)
    _background(ax, forcing, traj["time"].values[0])
    sel = traj.isel(member=member) if "member" in traj.dims else traj
    n = sel.sizes["trajectory"]
    pick = np.linspace(0, n - 1, min(n, max_lines)).astype(int)
    x = sel["x"].values[pick] / 1e3
    y = sel["y"].values[pick] / 1e3
    ax.plot(x.T, y.T, color="k", lw=0.6, alpha=0.6)
    ax.plot(x[:, -1], y[:, -1], ".", color="orange", ms=3, label="end")
    stranded = sel["status"].values[pick, -1] == 1
    if stranded.any():
        ax.plot(x[stranded, -1], y[stranded, -1], "x", color="saddlebrown", ms=4, label="stranded")
    _zone(ax, zone)
    hours = (traj["time"].values[-1] - traj["time"].values[0]) / np.timedelta64(1, "h")
    ax.set(
        xlabel="x (km)",
        ylabel="y (km)",
        aspect="equal",
        title=f"{traj.attrs.get('model', '')} drift, member {member}, {hours:g} h",
    )
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_probability(prob: xr.Dataset, *, time_index: int = -1, zone: Any = None, ax: Any = None) -> Any:
    """Map of the probability of ice presence at one output time; returns the figure."""
    fig, ax = _axes(ax)
    p = prob["ice_presence_probability"].isel(time=time_index)
    masked = np.ma.masked_less_equal(p.values, 0)
    mesh = ax.pcolormesh(
        prob["x"] / 1e3, prob["y"] / 1e3, masked, cmap="magma_r", vmin=0, vmax=1, shading="nearest"
    )
    fig.colorbar(mesh, ax=ax, label="probability of ice presence", shrink=0.8)
    _zone(ax, zone)
    ax.set(
        xlabel="x (km)",
        ylabel="y (km)",
        aspect="equal",
        title=f"ice presence probability at {str(p['time'].values)[:16]}",
    )
    return fig


def plot_hazard(hazard: xr.Dataset, *, ax: Any = None) -> Any:
    """Probability that ice has reached / is in the zone against lead time; returns the figure."""
    fig, ax = _axes(ax)
    lead_h = hazard["lead_time"].values / np.timedelta64(1, "h")
    ax.plot(lead_h, hazard["p_reach"].values[0], label="reached by lead time", lw=2)
    ax.plot(lead_h, hazard["p_present"].values[0], label="present at lead time", lw=1.5, ls="--")
    ax.set(
        xlabel="lead time (h)",
        ylabel="probability",
        ylim=(-0.02, 1.02),
        title=f"ice hazard for {hazard.attrs.get('zone_name', 'zone')}",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
