"""Replay figures (matplotlib, an optional dependency of the runtime package).

:func:`write_plots` writes into a run's folder:

* ``timeline.png``: over the run's time, the lateral offset ``y`` of the last waypoint
  (chosen mode vs logged), ADE/FDE/minADE, and commanded vs logged ``vx`` and ``wz``;
* ``error_histograms.png``: histograms of ADE, FDE, minADE and heading error;
* ``topdown.png``: the logged path in the odometry frame with the chosen trajectory of
  decisions spread along the run and the goals;
* ``worst_instants.png``: contact sheet of the decisions with the largest ADE: the newest
  camera frame and, beside it, every mode (grey, opacity = probability), the chosen mode
  (green) and the logged future (blue) in the robot frame.

matplotlib is imported only here; without it :func:`write_plots` raises an
:class:`~s2e_policy.errors.S2EError` naming the package to install.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from s2e_policy.errors import S2EError
from s2e_policy.geometry import robot_to_world
from s2e_policy.replay.loop import ReplayRun
from s2e_policy.runtime.frames import NS_PER_S

MATPLOTLIB_REQUIREMENT = "matplotlib==3.10.7"
DPI = 110
HISTOGRAM_BINS = 30
TOPDOWN_MAX_TRAJECTORIES = 40
"""At most this many predicted trajectories are drawn on the top-down view."""
SHEET_COLUMNS = 3
TILE_SIZE_IN = (6.0, 2.6)
"""Width and height of one contact-sheet tile (inches)."""
MIN_MODE_ALPHA = 0.05
CHOSEN_COLOUR = "tab:green"
LOGGED_COLOUR = "tab:blue"
MODE_COLOUR = "0.5"
GOAL_COLOUR = "tab:orange"

FILES = ("timeline.png", "error_histograms.png", "topdown.png", "worst_instants.png")


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or a clear error."""
    try:
        import matplotlib
    except ImportError as exc:
        raise S2EError(f"replay plots need matplotlib: pip install {MATPLOTLIB_REQUIREMENT} "
                       "(or pass --no-plots)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(run: ReplayRun, folder: Path) -> list[Path]:
    """Write the four figures of ``run`` into ``folder`` and return their paths."""
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in zip(FILES, (_timeline, _histograms, _topdown, _worst), strict=True):
        fig = draw(plt, run)
        path = folder / name
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        paths.append(path)
    return paths


def _time_s(run: ReplayRun, stamps: list[int]) -> np.ndarray:
    return (np.asarray(stamps, dtype=np.int64) - run.motion.start_ns) / NS_PER_S


def _timeline(plt: Any, run: ReplayRun) -> Any:
    done = [r for r in run.evaluated if r.metrics is not None]
    t = _time_s(run, [r.stamp_ns for r in done])
    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    fig.suptitle(f"{run.label}: replay of {Path(run.bag).name}")
    ax = axes[0]
    ax.plot(t, [r.truth[-1, 1] for r in done], color=LOGGED_COLOUR, label="logged")
    ax.plot(t, [r.modes[r.mode, -1, 1] for r in done], color=CHOSEN_COLOUR, label="chosen mode")
    ax.set_ylabel("last waypoint y (m)")
    ax.legend(loc="best")
    ax = axes[1]
    for name, label in (("ade_m", "ADE"), ("fde_m", "FDE"), ("min_ade_m", "minADE")):
        ax.plot(t, [getattr(r.metrics, name) for r in done], label=label)
    ax.set_ylabel("error (m)")
    ax.legend(loc="best")
    for ax, column, unit, name in ((axes[2], 0, "m/s", "vx"), (axes[3], 1, "rad/s", "wz")):
        command_index = 0 if column == 0 else 2
        ax.plot(t, [r.logged_velocity[column] for r in done], color=LOGGED_COLOUR,
                label=f"logged {name}")
        ax.plot(t, [r.command[command_index] for r in done], color=CHOSEN_COLOUR,
                label=f"command {name}")
        ax.set_ylabel(f"{name} ({unit})")
        ax.legend(loc="best")
    axes[-1].set_xlabel("time since the first odometry message (s)")
    fig.tight_layout()
    return fig


def _histograms(plt: Any, run: ReplayRun) -> Any:
    done = [r.metrics for r in run.evaluated if r.metrics is not None]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6))
    panels = (("ade_m", "ADE (m)", 1.0), ("fde_m", "FDE (m)", 1.0),
              ("min_ade_m", "minADE (m)", 1.0),
              ("heading_error_rad", "heading error (deg)", math.degrees(1.0)))
    for ax, (name, label, scale) in zip(axes.ravel(), panels, strict=True):
        values = np.array([getattr(m, name) for m in done]) * scale
        ax.hist(values, bins=HISTOGRAM_BINS)
        ax.set_xlabel(label)
        ax.set_ylabel("decisions")
    fig.suptitle(f"{run.label}: {len(done)} evaluated decisions")
    fig.tight_layout()
    return fig


def _topdown(plt: Any, run: ReplayRun) -> Any:
    fig, ax = plt.subplots(figsize=(7, 7))
    path = run.motion.poses
    ax.plot(path[:, 0], path[:, 1], color=LOGGED_COLOUR, label="logged path")
    decided = [r for r in run.records if r.modes is not None]
    step = max(1, math.ceil(len(decided) / TOPDOWN_MAX_TRAJECTORIES))
    for i, r in enumerate(decided[::step]):
        xy = robot_to_world(np.vstack([np.zeros(2), r.modes[r.mode, :, :2]]), r.pose)
        ax.plot(xy[:, 0], xy[:, 1], color=CHOSEN_COLOUR, alpha=0.7,
                label="chosen mode" if i == 0 else None)
    goals = np.array([r.goal for r in decided]).reshape(-1, 2)
    ax.scatter(goals[:, 0], goals[:, 1], s=8, color=GOAL_COLOUR, label="goals")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m, odometry frame)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="best")
    ax.set_title(f"{run.label}: whole run, every {step} decision(s)")
    fig.tight_layout()
    return fig


def _robot_view(ax: Any, waypoints: np.ndarray, **style: Any) -> None:
    """Draw ``(W, 2+)`` base_link waypoints from the robot, x up and y (left) to the left."""
    xy = np.vstack([np.zeros(2), np.asarray(waypoints)[:, :2]])
    ax.plot(-xy[:, 1], xy[:, 0], **style)


def _worst(plt: Any, run: ReplayRun) -> Any:
    worst = run.worst
    rows = max(1, math.ceil(len(worst) / SHEET_COLUMNS))
    fig = plt.figure(figsize=(TILE_SIZE_IN[0] * SHEET_COLUMNS, TILE_SIZE_IN[1] * rows))
    if not worst:
        fig.text(0.5, 0.5, "no evaluated decisions", ha="center", va="center")
    for i, item in enumerate(worst):
        r = item.record
        image_ax = fig.add_subplot(rows, 2 * SHEET_COLUMNS, 2 * i + 1)
        image_ax.imshow(item.rgb)
        image_ax.set_axis_off()
        t = (r.stamp_ns - run.motion.start_ns) / NS_PER_S
        image_ax.set_title(f"t={t:.2f} s  ADE {r.metrics.ade_m:.3f} m", fontsize=8)
        ax = fig.add_subplot(rows, 2 * SHEET_COLUMNS, 2 * i + 2)
        top = float(np.max(r.probabilities))
        for mode, p in zip(r.modes, r.probabilities, strict=True):
            _robot_view(ax, mode, color=MODE_COLOUR, alpha=max(MIN_MODE_ALPHA, float(p) / top))
        _robot_view(ax, r.modes[r.mode], color=CHOSEN_COLOUR, lw=2)
        _robot_view(ax, r.truth, color=LOGGED_COLOUR, lw=2)
        ax.plot([0], [0], "k^")
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig
