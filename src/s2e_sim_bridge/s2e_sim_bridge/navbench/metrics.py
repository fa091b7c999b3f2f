"""Episode metrics of NavBench-GS, computed from what an episode recorded.

Definitions (world frame, metres, seconds):

- success: the robot came within the goal radius before the time limit (and, when the task
  terminates on collision, before any collision).
- SPL (Anderson et al. 2018): ``S * l / max(p, l)`` with ``l`` the geodesic shortest-path
  length from start to goal and ``p`` the length of the path driven.
- SoftSPL (Datta et al. 2021): ``(1 - min(d_T / d_0, 1)) * l / max(p, l)``, with ``d_T``
  the geodesic distance to the goal at the end and ``d_0`` at the start.
- route completion: ``1 - min_t d_t / d_0`` clipped to ``[0, 1]``: the largest share of the
  route the robot ever covered (the CARLA / CityWalker notion); 1 on success.
- collisions: contact events with static geometry and with pedestrians (a contact that lasts
  several steps is one event).
- personal-space time: seconds spent with any pedestrian closer than the personal-space
  radius (default 1.0 m, centre to centre).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass
class EpisodeRecord:
    """What one episode recorded, one row per control step (``T + 1`` rows incl. the start).

    Attributes:
        episode_id: identifier in the episode set.
        task: task name.
        times_s: ``(T+1,)`` simulation time.
        poses: ``(T+1, 3)`` world ``(x, y, yaw)``.
        geodesic_to_goal_m: ``(T+1,)`` geodesic distance to the goal at each pose.
        nearest_pedestrian_m: ``(T+1,)`` centre distance to the closest pedestrian (inf if
            none).
        shortest_path_m: geodesic start-goal distance ``l``.
        static_collisions: static contact events over the episode.
        pedestrian_collisions: pedestrian contact events over the episode.
        success: reached the goal radius in time (under the task's collision rule).
        termination: ``success`` | ``timeout`` | ``collision`` | ``stuck``.
    """

    episode_id: str
    task: str
    times_s: np.ndarray
    poses: np.ndarray
    geodesic_to_goal_m: np.ndarray
    nearest_pedestrian_m: np.ndarray
    shortest_path_m: float
    static_collisions: int
    pedestrian_collisions: int
    success: bool
    termination: str


@dataclass
class EpisodeMetrics:
    """Per-episode figures (one CSV row)."""

    episode_id: str
    task: str
    success: float
    spl: float
    soft_spl: float
    route_completion: float
    collisions: int
    static_collisions: int
    pedestrian_collisions: int
    personal_space_time_s: float
    path_length_m: float
    shortest_path_m: float
    time_s: float
    mean_speed_mps: float
    termination: str

    def as_row(self) -> dict:
        """Plain-Python dict (for CSV / JSON)."""
        return asdict(self)


def path_length_m(poses: np.ndarray) -> float:
    """Length (m) of the polyline through the ``(T, 2+)`` poses' xy."""
    xy = np.asarray(poses, dtype=np.float64)[:, :2]
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum()) if len(xy) > 1 else 0.0


def personal_space_time_s(times_s: np.ndarray, nearest_m: np.ndarray, radius_m: float) -> float:
    """Seconds with a pedestrian closer than ``radius_m``; a step counts when it starts inside."""
    t = np.asarray(times_s, dtype=np.float64)
    inside = np.asarray(nearest_m, dtype=np.float64)[:-1] < radius_m
    return float(np.sum(np.diff(t) * inside))


def episode_metrics(rec: EpisodeRecord, personal_space_m: float = 1.0) -> EpisodeMetrics:
    """Compute :class:`EpisodeMetrics` from an :class:`EpisodeRecord`."""
    p = path_length_m(rec.poses)
    shortest = float(rec.shortest_path_m)
    d = np.asarray(rec.geodesic_to_goal_m, dtype=np.float64)
    d0 = max(float(d[0]), 1e-9)
    efficiency = shortest / max(p, shortest) if shortest > 0 else 0.0
    success = 1.0 if rec.success else 0.0
    soft = (1.0 - min(float(d[-1]) / d0, 1.0)) * efficiency
    finite = d[np.isfinite(d)]
    completion = 1.0 if rec.success else float(
        np.clip(1.0 - (finite.min() if finite.size else d0) / d0, 0.0, 1.0))
    duration = float(rec.times_s[-1] - rec.times_s[0])
    return EpisodeMetrics(
        episode_id=rec.episode_id,
        task=rec.task,
        success=success,
        spl=success * efficiency,
        soft_spl=float(soft),
        route_completion=completion,
        collisions=int(rec.static_collisions + rec.pedestrian_collisions),
        static_collisions=int(rec.static_collisions),
        pedestrian_collisions=int(rec.pedestrian_collisions),
        personal_space_time_s=personal_space_time_s(rec.times_s, rec.nearest_pedestrian_m,
                                                    personal_space_m),
        path_length_m=p,
        shortest_path_m=shortest,
        time_s=duration,
        mean_speed_mps=p / duration if duration > 0 else 0.0,
        termination=rec.termination,
    )


# Aggregated as mean (and standard error over episodes) for these fields.
AGGREGATED_FIELDS = tuple(
    f.name for f in fields(EpisodeMetrics) if f.name not in ("episode_id", "task", "termination"))


def aggregate(metrics: list[EpisodeMetrics]) -> dict:
    """Mean and standard error of every numeric field, plus counts of terminations.

    Returns:
        ``{"episodes": n, "<field>": mean, "<field>_sem": sem, ..., "terminations": {...}}``;
        ``collisions`` is therefore collisions per episode, as the paper reports.
    """
    out: dict = {"episodes": len(metrics)}
    for name in AGGREGATED_FIELDS:
        values = np.array([getattr(m, name) for m in metrics], dtype=np.float64)
        out[name] = float(values.mean()) if values.size else float("nan")
        out[f"{name}_sem"] = (float(values.std(ddof=1) / np.sqrt(values.size))
                              if values.size > 1 else 0.0)
    terminations: dict[str, int] = {}
    for m in metrics:
        terminations[m.termination] = terminations.get(m.termination, 0) + 1
    out["terminations"] = terminations
    return out
