"""The logged motion of a bag: the ground truth replay compares predictions with.

:class:`LoggedMotion` holds one odometry topic sorted by header stamp (messages whose stamp is
not after the previous one are dropped and counted) and answers, for a decision instant ``t``:

* the robot pose at ``t`` (linear interpolation, :func:`s2e_policy.geometry.interpolate_poses`);
* the logged future: the poses at ``t + (w + 1) * dt`` (``w = 0 .. W-1``, the policy's
  waypoint times) expressed in the robot frame at ``t`` (REP-103: x forward, y left);
* the logged velocity over the first waypoint interval: the time average of the odometry
  twist ``(vx, wz)`` over ``[t, t + dt]`` (what a command sent at ``t`` should produce);
* whether an odometry gap longer than allowed lies inside a window (interpolating across it
  would invent a trajectory).

Times are integer nanoseconds; poses are ``(x m, y m, yaw rad)`` in the odometry frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2e_policy.bags import OdometryTrack
from s2e_policy.errors import S2EError
from s2e_policy.geometry import interpolate_poses, poses_world_to_robot
from s2e_policy.runtime.frames import NS_PER_S

MIN_ODOMETRY_MESSAGES = 2
"""Fewest usable odometry messages a replay needs (interpolation needs two)."""


class ReplayInputError(S2EError):
    """The bag cannot be replayed as asked (too little odometry, nothing to evaluate...)."""


@dataclass(frozen=True)
class LoggedMotion:
    """Odometry of a bag, sorted by stamp, with the queries replay needs.

    Attributes:
        stamps_ns: int64 ``(N,)`` strictly increasing header stamps (nanoseconds).
        poses: float64 ``(N, 3)`` ``(x, y, yaw)`` in the odometry frame.
        velocities: float64 ``(N, 2)`` ``(vx m/s, wz rad/s)`` in the robot frame.
        dropped_out_of_order: messages dropped because their stamp was not after the
            newest earlier one (bags whose odometry stamps are not in order).
    """

    stamps_ns: np.ndarray
    poses: np.ndarray
    velocities: np.ndarray
    dropped_out_of_order: int = 0

    @classmethod
    def from_track(cls, track: OdometryTrack, source: str) -> LoggedMotion:
        """Keep the messages whose stamp is after every earlier one, in bag order.

        Args:
            track: odometry as read by :func:`s2e_policy.bags.read_odometry`.
            source: bag and topic, for error messages.

        Raises:
            ReplayInputError: fewer than :data:`MIN_ODOMETRY_MESSAGES` usable messages.
        """
        stamps = np.asarray(track.stamps_ns, dtype=np.int64)
        if stamps.size:
            running_max = np.maximum.accumulate(stamps)
            keep = np.ones(stamps.size, dtype=bool)
            keep[1:] = stamps[1:] > running_max[:-1]
        else:
            keep = np.zeros(0, dtype=bool)
        if int(keep.sum()) < MIN_ODOMETRY_MESSAGES:
            raise ReplayInputError(
                f"{source}: {int(keep.sum())} usable odometry messages; expected at least "
                f"{MIN_ODOMETRY_MESSAGES} with increasing header stamps"
            )
        return cls(stamps[keep], np.asarray(track.poses)[keep],
                   np.asarray(track.velocities)[keep], int((~keep).sum()))

    @property
    def start_ns(self) -> int:
        """Stamp of the first odometry message."""
        return int(self.stamps_ns[0])

    @property
    def end_ns(self) -> int:
        """Stamp of the last odometry message."""
        return int(self.stamps_ns[-1])

    def covers(self, t0_ns: int, t1_ns: int) -> bool:
        """Whether ``[t0, t1]`` lies inside the logged time span."""
        return self.start_ns <= t0_ns and t1_ns <= self.end_ns

    def largest_gap_s(self, t0_ns: int, t1_ns: int) -> float:
        """Longest time between consecutive messages whose interval meets ``[t0, t1]`` (s)."""
        lo = max(int(np.searchsorted(self.stamps_ns, t0_ns, side="right")) - 1, 0)
        hi = min(int(np.searchsorted(self.stamps_ns, t1_ns, side="left")), len(self.stamps_ns) - 1)
        if hi <= lo:
            return 0.0
        return float(np.max(np.diff(self.stamps_ns[lo:hi + 1]))) / NS_PER_S

    def pose_at(self, t_ns: int | np.ndarray) -> np.ndarray:
        """Pose(s) at ``t_ns``, clamped to the logged span: ``(3,)`` or ``(M, 3)`` float64."""
        query = np.clip(np.atleast_1d(np.asarray(t_ns, dtype=np.int64)), self.start_ns,
                        self.end_ns)
        poses = interpolate_poses(self.stamps_ns, self.poses, query)
        return poses[0] if np.ndim(t_ns) == 0 else poses

    def future_in_robot(self, t_ns: int, waypoints: int, dt_s: float) -> np.ndarray:
        """Logged poses at ``t + (w + 1) * dt`` in the robot frame at ``t``.

        Args:
            t_ns: decision instant (inside the logged span with its future).
            waypoints: ``W``.
            dt_s: time between waypoints (s).

        Returns:
            float64 ``(W, 3)`` ``(x m, y m, heading rad)`` in base_link at ``t``.
        """
        offsets = np.round(np.arange(1, waypoints + 1) * dt_s * NS_PER_S).astype(np.int64)
        future = self.pose_at(int(t_ns) + offsets)
        return poses_world_to_robot(future, self.pose_at(int(t_ns)))

    def mean_velocity(self, t0_ns: int, t1_ns: int) -> np.ndarray:
        """Time average of the logged twist ``(vx m/s, wz rad/s)`` over ``[t0, t1]``.

        The twist is linearly interpolated between messages and integrated with the
        trapezoid rule; ``t0 == t1`` gives the interpolated twist at ``t0``.
        """
        inside = self.stamps_ns[(self.stamps_ns > t0_ns) & (self.stamps_ns < t1_ns)]
        knots = np.concatenate([[t0_ns], inside, [t1_ns]]).astype(np.int64)
        rel = (knots - self.start_ns).astype(np.float64)
        src = (self.stamps_ns - self.start_ns).astype(np.float64)
        values = np.stack([np.interp(rel, src, self.velocities[:, i]) for i in range(2)], -1)
        span = float(rel[-1] - rel[0])
        if span <= 0:
            return values[0]
        widths = np.diff(rel)[:, None]
        return np.sum(0.5 * (values[1:] + values[:-1]) * widths, axis=0) / span
