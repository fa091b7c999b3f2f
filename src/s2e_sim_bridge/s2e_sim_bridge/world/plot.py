"""Top-down figure of an occupancy map with trajectories, starts and goals (matplotlib Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from s2e_sim_bridge.world.occupancy import OccupancyMap

FIGURE_DPI = 120
FIGURE_WIDTH_IN = 8.0
# Clearance shading saturates at this distance (metres).
CLEARANCE_SHADE_MAX_M = 2.0


def plot_map(
    occupancy: OccupancyMap,
    out_png: str | Path,
    trajectories: Sequence[np.ndarray] = (),
    starts: np.ndarray | None = None,
    goals: np.ndarray | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG of the map: occupied cells black, free space shaded by clearance.

    Args:
        occupancy: the map to draw (world x right, y up, metres).
        out_png: output path; parent folders are created.
        trajectories: ``(M_i, 2)`` world xy polylines (metres), drawn in order.
        starts: ``(S, 2)`` world xy start markers (circles), or None.
        goals: ``(G, 2)`` world xy goal markers (stars), or None.
        title: figure title.

    Returns:
        The written path.
    """
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    (x0, y0), (x1, y1) = occupancy.bounds_m
    aspect = (y1 - y0) / (x1 - x0)
    fig = Figure(figsize=(FIGURE_WIDTH_IN, max(2.0, FIGURE_WIDTH_IN * aspect)), dpi=FIGURE_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shade = np.clip(occupancy.distance_m / CLEARANCE_SHADE_MAX_M, 0.0, 1.0)
    image = np.where(occupancy.grid, 0.0, 0.55 + 0.45 * shade)
    ax.imshow(
        image,
        origin="lower",
        extent=(x0, x1, y0, y1),
        cmap="gray",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    for k, traj in enumerate(trajectories):
        xy = np.asarray(traj, dtype=np.float64).reshape(-1, 2)
        ax.plot(xy[:, 0], xy[:, 1], lw=1.5, label=f"trajectory {k}" if k < 10 else None)
    if starts is not None:
        s = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
        ax.scatter(s[:, 0], s[:, 1], marker="o", c="tab:green", s=40, label="start", zorder=3)
    if goals is not None:
        g = np.asarray(goals, dtype=np.float64).reshape(-1, 2)
        ax.scatter(g[:, 0], g[:, 1], marker="*", c="tab:red", s=90, label="goal", zorder=3)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_title(
        title
        or f"occupancy ({occupancy.resolution_m:g} m cells, "
        f"{100 * occupancy.grid.mean():.1f}% occupied)"
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(out)
    return out
