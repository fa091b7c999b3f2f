"""Waypoints to velocity commands, and the embodiment's velocity/acceleration limits.

Frames (REP-103): waypoints are in base_link at the decision instant, x forward, y left,
metres; commands are body-frame ``(vx, vy, wz)`` in m/s, m/s, rad/s.

Two controllers turn a predicted trajectory into a command:

- ``direct`` (the S2E paper): from the first waypoint ``(dx, dy)`` reached after ``dt``
  seconds, ``v = dx / dt`` and ``w = atan2(dy, dx) / dt``.
- ``pure_pursuit``: steer along the arc through the point of the trajectory at the
  lookahead distance, at the trajectory's own speed: ``w = v * 2 y_L / L^2``.

Both are clipped by :class:`VelocityLimiter`, which applies the embodiment's velocity limits
and its acceleration limits between consecutive commands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from s2e_policy.embodiment import Embodiment
from s2e_policy.errors import S2EError

CONTROLLERS = ("direct", "pure_pursuit")


def direct_command(waypoints: np.ndarray, dt_s: float) -> np.ndarray:
    """The paper's controller: ``(dx/dt, 0, atan2(dy, dx)/dt)`` from the first waypoint.

    Args:
        waypoints: ``(W, 2+)`` trajectory in base_link (m); row 0 is reached after ``dt_s``.
        dt_s: time between waypoints (s).

    Returns:
        ``(3,)`` float64 ``(vx, vy, wz)`` before limits.
    """
    dx, dy = float(waypoints[0, 0]), float(waypoints[0, 1])
    if math.hypot(dx, dy) < 1e-6:
        return np.zeros(3)
    return np.array([dx / dt_s, 0.0, math.atan2(dy, dx) / dt_s])


def pure_pursuit_command(waypoints: np.ndarray, dt_s: float, lookahead_m: float,
                         holonomic: bool = False) -> np.ndarray:
    """Pure pursuit on a trajectory at its own speed.

    Args:
        waypoints: ``(W, 2+)`` trajectory in base_link (m), one every ``dt_s`` seconds.
        dt_s: time between waypoints (s) (sets the speed: path length / duration).
        lookahead_m: distance of the pursued point along the trajectory (m).
        holonomic: a legged base also moves sideways toward the pursued point.

    Returns:
        ``(3,)`` float64 ``(vx, vy, wz)`` before limits.
    """
    pts = np.vstack([np.zeros(2), np.asarray(waypoints, dtype=np.float64)[:, :2]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    total = float(seg.sum())
    if total < 1e-6:
        return np.zeros(3)
    speed = total / (dt_s * (len(pts) - 1))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = min(lookahead_m, total)
    i = int(np.clip(np.searchsorted(cum, s) - 1, 0, len(seg) - 1))
    t = (s - cum[i]) / max(seg[i], 1e-9)
    x, y = pts[i] + t * (pts[i + 1] - pts[i])
    dist2 = x * x + y * y
    if x <= 0.0:  # target behind: turn on the spot towards it
        return np.array([0.0, 0.0, math.copysign(speed / max(lookahead_m, 1e-3), y or 1.0)])
    curvature = 2.0 * y / dist2
    if holonomic:
        heading_err = math.atan2(y, x)
        return np.array([speed * math.cos(heading_err), speed * math.sin(heading_err),
                         speed * curvature])
    return np.array([speed, 0.0, speed * curvature])


@dataclass
class VelocityLimiter:
    """Clips commands to an embodiment's velocity and acceleration limits.

    Keeps the last command so consecutive calls respect ``|dv| <= a_max * dt``. A
    differential-drive base gets ``vy = 0``. Reverse motion is clipped at ``-max_linear``.
    """

    embodiment: Embodiment
    allow_reverse: bool = False

    def __post_init__(self) -> None:
        self.last = np.zeros(3)

    def reset(self, command: np.ndarray | None = None) -> None:
        """Forget the previous command (e.g. after an e-stop the base is at rest)."""
        self.last = np.zeros(3) if command is None else np.asarray(command, float).copy()

    def __call__(self, command: np.ndarray, dt_s: float) -> np.ndarray:
        """Limit ``command (3,)`` given ``dt_s`` seconds since the previous one."""
        cmd = np.asarray(command, dtype=np.float64).reshape(3).copy()
        if not np.all(np.isfinite(cmd)):
            raise S2EError(f"velocity command must be finite, got {cmd.tolist()}")
        e = self.embodiment
        vmax = np.array([e.max_linear_mps, e.max_lateral_mps, e.max_angular_radps])
        vmin = -vmax.copy()
        if not self.allow_reverse:
            vmin[0] = 0.0
        if not e.is_holonomic:
            cmd[1] = 0.0
        cmd = np.clip(cmd, vmin, vmax)
        amax = np.array([e.max_linear_accel_mps2, e.max_linear_accel_mps2,
                         e.max_angular_accel_radps2]) * max(dt_s, 0.0)
        cmd = np.clip(cmd, self.last - amax, self.last + amax)
        self.last = cmd
        return cmd.copy()
