"""Dataset inspection: statistics, a contact sheet with future trajectories, a top-down plot.

Used by ``s2e data inspect``. The contact sheet shows evenly spaced frames; on each one the
next ``num_waypoints`` waypoints (robot frame, REP-103) are drawn as a bird's-eye overlay
anchored at the bottom centre of the frame: forward (+x) is up, left (+y) is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from s2e_policy.errors import S2EError
from s2e_training.data.sample import (
    NS_PER_S,
    SampleConfig,
    Trajectory,
    future_waypoints,
    sample_indices,
)

GAP_FACTOR = 1.5
"""A frame interval longer than this many median intervals counts as a gap."""

SHEET_COLUMNS = 4
"""Tiles per contact-sheet row."""

OVERLAY_HEIGHT_FRACTION = 0.45
"""The longest forward extent of the drawn waypoints spans this fraction of the frame."""

OVERLAY_MIN_EXTENT_M = 1.0
"""Smallest extent the overlay scale assumes, metres (so standing still is not magnified)."""

FIGURE_DPI = 100


@dataclass(frozen=True)
class TrajectoryStats:
    """Summary of one trajectory (seconds, Hz, metres)."""

    trajectory_id: str
    source: str
    frames: int
    poses: int
    duration_s: float
    frame_rate_hz: float
    pose_rate_hz: float
    gaps: int
    max_gap_s: float
    path_length_m: float
    samples: int

    def lines(self) -> list[str]:
        """Human-readable lines for the terminal."""
        return [
            f"{self.trajectory_id} ({self.source})",
            f"  frames {self.frames}, poses {self.poses}, duration {self.duration_s:.2f} s",
            f"  frame rate {self.frame_rate_hz:.2f} Hz, pose rate {self.pose_rate_hz:.2f} Hz",
            f"  gaps > {GAP_FACTOR}x median interval: {self.gaps} (longest interval "
            f"{self.max_gap_s:.3f} s)",
            f"  path length {self.path_length_m:.2f} m, training samples {self.samples}",
        ]


def _median_rate_hz(stamps_ns: np.ndarray) -> float:
    if len(stamps_ns) < 2:
        return 0.0
    return float(NS_PER_S / np.median(np.diff(stamps_ns)))


def trajectory_stats(trajectory: Trajectory, config: SampleConfig) -> TrajectoryStats:
    """Counts, duration, rates, gaps and path length of one trajectory."""
    intervals_s = np.diff(trajectory.frame_stamps_ns) / NS_PER_S
    median_s = float(np.median(intervals_s)) if len(intervals_s) else 0.0
    gaps = int(np.sum(intervals_s > GAP_FACTOR * median_s)) if len(intervals_s) else 0
    steps = np.diff(trajectory.poses[:, :2], axis=0)
    return TrajectoryStats(
        trajectory_id=trajectory.trajectory_id,
        source=trajectory.source,
        frames=len(trajectory),
        poses=len(trajectory.pose_stamps_ns),
        duration_s=trajectory.duration_s,
        frame_rate_hz=_median_rate_hz(trajectory.frame_stamps_ns),
        pose_rate_hz=_median_rate_hz(trajectory.pose_stamps_ns),
        gaps=gaps,
        max_gap_s=float(intervals_s.max()) if len(intervals_s) else 0.0,
        path_length_m=float(np.sum(np.linalg.norm(steps, axis=1))),
        samples=len(sample_indices(trajectory, config)),
    )


def _waypoint_pixels(waypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """Robot-frame ``(W, 2)`` metres -> ``(W + 1, 2)`` pixel (u, v), starting at the robot."""
    path = np.concatenate([np.zeros((1, 2)), waypoints[:, :2]])
    extent = max(float(np.abs(path).max()), OVERLAY_MIN_EXTENT_M)
    px_per_m = OVERLAY_HEIGHT_FRACTION * height / extent
    u = width / 2.0 - path[:, 1] * px_per_m
    v = (height - 1.0) - path[:, 0] * px_per_m
    return np.stack([u, v], axis=1)


def write_contact_sheet(
    trajectories: Sequence[Trajectory], config: SampleConfig, out: Path, *, tiles: int = 12
) -> int:
    """Write a PNG grid of evenly spaced frames with their future waypoints drawn on.

    Returns:
        Number of tiles drawn.

    Raises:
        S2EError: no trajectory has a frame with a full waypoint horizon.
    """
    frames_with_future = []
    for trajectory in trajectories:
        end = trajectory.pose_stamps_ns[-1] if len(trajectory.pose_stamps_ns) else 0
        horizon_ns = round(config.waypoint_horizon_s * NS_PER_S)
        usable = np.flatnonzero(trajectory.frame_stamps_ns + horizon_ns <= end)
        frames_with_future.extend((trajectory, int(i)) for i in usable)
    if not frames_with_future:
        raise S2EError(
            f"contact sheet: no frame has {config.waypoint_horizon_s} s of future poses"
        )
    picks = np.unique(np.linspace(0, len(frames_with_future) - 1, tiles).round().astype(int))
    rows = int(np.ceil(len(picks) / SHEET_COLUMNS))
    fig, axes = plt.subplots(
        rows, SHEET_COLUMNS, figsize=(4 * SHEET_COLUMNS, 3 * rows), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, pick in zip(axes.ravel(), picks, strict=False):
        trajectory, index = frames_with_future[pick]
        image = trajectory.frames[index]
        waypoints = future_waypoints(trajectory, index, config)
        pixels = _waypoint_pixels(waypoints, image.shape[0], image.shape[1])
        ax.imshow(image)
        ax.plot(pixels[:, 0], pixels[:, 1], "-o", color="orange", markersize=3, linewidth=2)
        t_s = (trajectory.frame_stamps_ns[index] - trajectory.frame_stamps_ns[0]) / NS_PER_S
        ax.set_title(f"#{int(trajectory.frame_ids[index])}  t={t_s:.2f} s", fontsize=9)
    fig.suptitle(
        f"next {config.num_waypoints} waypoints every {config.waypoint_dt_s} s "
        f"(bird's-eye, forward = up)"
    )
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=FIGURE_DPI)
    plt.close(fig)
    return len(picks)


def write_trajectory_plot(trajectories: Sequence[Trajectory], out: Path) -> None:
    """Write a top-down PNG of every pose track (world frame, metres, equal axes)."""
    fig, ax = plt.subplots(figsize=(6, 6))
    for trajectory in trajectories:
        xy = trajectory.poses[:, :2]
        frame_xy = trajectory.frame_poses[:, :2] if len(trajectory) else np.zeros((0, 2))
        label = Path(trajectory.trajectory_id).name
        (line,) = ax.plot(xy[:, 0], xy[:, 1], linewidth=1.5, label=label)
        ax.plot(frame_xy[:, 0], frame_xy[:, 1], ".", color=line.get_color(), markersize=3)
        ax.plot(*xy[0], "o", color="green")
        ax.plot(*xy[-1], "s", color="red")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.set_title("top-down trajectory (o start, s end, dots = frames)")
    if len(trajectories) <= 10:
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=FIGURE_DPI)
    plt.close(fig)
