"""The one training sample (:class:`NavSample`) and how it is cut out of a trajectory.

Every source (GNM folders, rosbag2, video + pose CSV, simulator rollouts) is first turned into
a :class:`Trajectory` (timestamped frames plus a timestamped planar pose track); one function,
:func:`make_sample`, then cuts samples out of any trajectory the same way:

* context: the last ``context_frames`` frames spaced ``context_dt_s`` apart in time, ending at
  the current frame (oldest first), each through :func:`s2e_policy.preprocess.preprocess_image`;
* waypoints: the poses at ``t + k * waypoint_dt_s`` (``k = 1..num_waypoints``), interpolated
  from the pose track and expressed in the robot frame of the current frame (REP-103: x
  forward, y left, metres; heading in radians);
* goal: the pose at a time drawn uniformly in ``[t + goal_min_s, t + goal_max_s]`` (cut at the
  end of the trajectory), encoded with :func:`s2e_policy.geometry.encode_goal`;
* speed: path length through the waypoints divided by the horizon, m/s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from s2e_policy.errors import S2EError
from s2e_policy.geometry import encode_goal, interpolate_poses, poses_world_to_robot, world_to_robot
from s2e_policy.preprocess import preprocess_image

NS_PER_S = 1_000_000_000
"""Nanoseconds per second."""


@dataclass(frozen=True)
class NavSample:
    """One training example, numpy only (torch tensors are made by ``collate``).

    Attributes:
        context: float32 ``(T, 3, S, S)`` RGB in ``[0, 1]``, oldest frame first, the last one
            is the current frame (already preprocessed).
        goal: float32 ``(3,)`` ``[clip(d, 0.1, 200) / 200, cos(theta), sin(theta)]`` of the
            goal in the current robot frame.
        waypoints: float32 ``(W, 3)`` future ``(x, y, heading)`` in the current robot frame
            (x forward, y left, metres; heading radians, counter-clockwise).
        speed: mean speed over the waypoint horizon, m/s.
        source: adapter that produced it (``"gnm"``, ``"rosbag2"``, ``"video"``...).
        trajectory_id: the trajectory (a path or a bag/topic name).
        stamp_ns: timestamp of the current frame, nanoseconds.
        frame_index: index of the current frame in its trajectory.
    """

    context: np.ndarray
    goal: np.ndarray
    waypoints: np.ndarray
    speed: float
    source: str
    trajectory_id: str
    stamp_ns: int
    frame_index: int


@dataclass(frozen=True)
class SampleConfig:
    """How samples are cut from trajectories (units in the names).

    Attributes:
        image_size_px: side ``S`` of the preprocessed square frames (paper: 256).
        context_frames: number ``T`` of frames in the context, current included (paper: 11).
        context_dt_s: time between consecutive context frames, seconds.
        num_waypoints: number ``W`` of future waypoints (paper: 10).
        waypoint_dt_s: time between waypoints, seconds.
        goal_min_s: earliest goal time after the current frame, seconds (paper: 2).
        goal_max_s: latest goal time after the current frame, seconds (paper: 20).
        frame_tolerance_s: largest allowed distance between a wanted context time and the
            nearest frame; samples needing a frame across a larger gap are not produced.
        sample_stride_frames: use every n-th frame as a current frame.
    """

    image_size_px: int = 256
    context_frames: int = 11
    context_dt_s: float = 0.25
    num_waypoints: int = 10
    waypoint_dt_s: float = 0.25
    goal_min_s: float = 2.0
    goal_max_s: float = 20.0
    frame_tolerance_s: float = 0.02
    sample_stride_frames: int = 1

    def __post_init__(self) -> None:
        for name in ("image_size_px", "context_frames", "num_waypoints", "sample_stride_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise S2EError(f"SampleConfig.{name}: expected an integer >= 1, got {value!r}")
        for name in ("context_dt_s", "waypoint_dt_s", "frame_tolerance_s", "goal_max_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise S2EError(f"SampleConfig.{name}: expected a positive number, got {value!r}")
        if not 0 <= self.goal_min_s <= self.goal_max_s:
            raise S2EError(
                f"SampleConfig.goal_min_s: expected 0 <= goal_min_s <= goal_max_s, got "
                f"{self.goal_min_s} and {self.goal_max_s}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SampleConfig:
        """Build from a (YAML) mapping; unknown keys raise :class:`S2EError` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise S2EError(
                f"sample config: unknown key(s) {', '.join(unknown)}; expected some of "
                f"{', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    @property
    def context_span_s(self) -> float:
        """Time from the oldest context frame to the current one, seconds."""
        return (self.context_frames - 1) * self.context_dt_s

    @property
    def waypoint_horizon_s(self) -> float:
        """Time from the current frame to the last waypoint, seconds."""
        return self.num_waypoints * self.waypoint_dt_s


@dataclass
class SkipReport:
    """What ``skip_bad=True`` left out, and why.

    Attributes:
        entries: ``(where, index, reason)`` per skipped item; ``where`` names the file, folder
            or topic, ``index`` the frame/message index (``None`` for a whole trajectory).
    """

    entries: list[tuple[str, int | None, str]] = field(default_factory=list)

    def add(self, where: str, index: int | None, reason: str) -> None:
        """Record one skipped item."""
        self.entries.append((where, index, reason))

    def __len__(self) -> int:
        return len(self.entries)

    def counts(self) -> dict[str, int]:
        """Number of skipped items per ``where``."""
        out: dict[str, int] = {}
        for where, _index, _reason in self.entries:
            out[where] = out.get(where, 0) + 1
        return out

    def summary(self) -> str:
        """Human-readable multi-line summary (one line per skipped item)."""
        if not self.entries:
            return "nothing skipped"
        lines = [f"skipped {len(self.entries)} item(s):"]
        for where, index, reason in self.entries:
            at = "" if index is None else f"[{index}]"
            lines.append(f"  {where}{at}: {reason}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Trajectory:
    """Timestamped frames plus a timestamped planar pose track of one recording.

    Attributes:
        source: adapter name (``"gnm"``, ``"rosbag2"``, ``"video"``).
        trajectory_id: where it came from (folder, bag path + topic, video path).
        frame_stamps_ns: int64 ``(N,)`` strictly increasing frame times, nanoseconds.
        frames: length-``N`` sequence; ``frames[i]`` is uint8 ``(H, W, 3)`` RGB (may load
            lazily from disk and raise :class:`S2EError` naming the file).
        pose_stamps_ns: int64 ``(M,)`` strictly increasing pose times, nanoseconds, covering
            every frame time.
        poses: float64 ``(M, 3)`` ``(x, y, yaw)`` in the world/odometry frame.
        frame_ids: int64 ``(N,)`` index of each frame in the original recording (message
            index, file number or video frame number; differs from ``arange`` after skips).
    """

    source: str
    trajectory_id: str
    frame_stamps_ns: np.ndarray
    frames: Sequence[np.ndarray]
    pose_stamps_ns: np.ndarray
    poses: np.ndarray
    frame_ids: np.ndarray

    def __post_init__(self) -> None:
        n_frames = len(self.frame_stamps_ns)
        if len(self.frames) != n_frames or self.frame_ids.shape != (n_frames,):
            raise S2EError(
                f"{self.trajectory_id}: {len(self.frames)} frames, {n_frames} frame stamps and "
                f"{len(self.frame_ids)} frame ids; expected equal counts"
            )
        if self.poses.shape != (len(self.pose_stamps_ns), 3):
            raise S2EError(
                f"{self.trajectory_id}: poses {self.poses.shape} do not match "
                f"{len(self.pose_stamps_ns)} pose stamps; expected (M, 3)"
            )
        for name in ("frame_stamps_ns", "pose_stamps_ns"):
            stamps = getattr(self, name)
            if np.any(np.diff(stamps) <= 0):
                bad = int(np.flatnonzero(np.diff(stamps) <= 0)[0]) + 1
                raise S2EError(f"{self.trajectory_id}: {name} not increasing at index {bad}")
        if n_frames and (
            self.frame_stamps_ns[0] < self.pose_stamps_ns[0]
            or self.frame_stamps_ns[-1] > self.pose_stamps_ns[-1]
        ):
            raise S2EError(f"{self.trajectory_id}: frame times fall outside the pose track")

    def __len__(self) -> int:
        return len(self.frame_stamps_ns)

    @property
    def frame_poses(self) -> np.ndarray:
        """float64 ``(N, 3)`` world poses interpolated at the frame times."""
        return interpolate_poses(self.pose_stamps_ns, self.poses, self.frame_stamps_ns)

    @property
    def duration_s(self) -> float:
        """Time from the first to the last frame, seconds."""
        if len(self) < 2:
            return 0.0
        return float(self.frame_stamps_ns[-1] - self.frame_stamps_ns[0]) / NS_PER_S


def drop_non_increasing(stamps_ns: np.ndarray) -> np.ndarray:
    """Boolean ``(N,)`` mask keeping each stamp that is later than every stamp kept before it."""
    keep = np.zeros(len(stamps_ns), dtype=bool)
    last: int | None = None
    for i, stamp in enumerate(np.asarray(stamps_ns, dtype=np.int64)):
        if last is None or stamp > last:
            keep[i] = True
            last = int(stamp)
    return keep


def _context_indices(trajectory: Trajectory, index: int, config: SampleConfig) -> np.ndarray | None:
    """Frame indices of the context of frame ``index`` (oldest first), or ``None`` on a gap."""
    stamps = trajectory.frame_stamps_ns
    offsets = np.arange(config.context_frames - 1, -1, -1, dtype=np.float64)
    wanted = stamps[index] - np.round(offsets * config.context_dt_s * NS_PER_S).astype(np.int64)
    right = np.clip(np.searchsorted(stamps, wanted), 1, len(stamps) - 1)
    left = right - 1
    nearest = np.where(
        np.abs(stamps[left] - wanted) <= np.abs(stamps[right] - wanted), left, right
    )
    if len(stamps) == 1:
        nearest = np.zeros_like(wanted)
    error_s = np.abs(stamps[nearest] - wanted) / NS_PER_S
    if np.any(error_s > config.frame_tolerance_s) or np.any(nearest > index):
        return None
    return nearest


def sample_indices(trajectory: Trajectory, config: SampleConfig) -> np.ndarray:
    """int64 ``(K,)`` frame indices that can be current frames under ``config``.

    A frame qualifies when its full context exists (within ``frame_tolerance_s``), the pose
    track covers the waypoint horizon and at least ``goal_min_s``, and it falls on the
    ``sample_stride_frames`` grid.
    """
    if len(trajectory) == 0:
        return np.zeros(0, dtype=np.int64)
    stamps = trajectory.frame_stamps_ns
    end = trajectory.pose_stamps_ns[-1]
    lookahead_ns = round(max(config.waypoint_horizon_s, config.goal_min_s) * NS_PER_S)
    candidates = np.flatnonzero(stamps + lookahead_ns <= end)
    candidates = candidates[candidates % config.sample_stride_frames == 0]
    valid = [int(i) for i in candidates if _context_indices(trajectory, int(i), config) is not None]
    return np.asarray(valid, dtype=np.int64)


def future_waypoints(trajectory: Trajectory, index: int, config: SampleConfig) -> np.ndarray:
    """float64 ``(W, 3)`` poses at ``t + k * waypoint_dt_s`` (``k = 1..W``) in the robot frame.

    ``t`` is the time of frame ``index``; the frame is REP-103 ``base_link`` at that time.

    Raises:
        S2EError: the pose track ends before the last waypoint time.
    """
    t_now = int(trajectory.frame_stamps_ns[index])
    offsets = np.arange(config.num_waypoints + 1) * config.waypoint_dt_s * NS_PER_S
    query = t_now + np.round(offsets).astype(np.int64)
    poses = interpolate_poses(trajectory.pose_stamps_ns, trajectory.poses, query)
    return poses_world_to_robot(poses[1:], poses[0])


def make_sample(
    trajectory: Trajectory, index: int, config: SampleConfig, rng: np.random.Generator
) -> NavSample:
    """Cut the sample whose current frame is ``trajectory.frames[index]``.

    Args:
        trajectory: the source trajectory.
        index: current frame index; must be one of :func:`sample_indices`.
        config: sampling parameters.
        rng: draws the goal time (the only random choice).

    Raises:
        S2EError: ``index`` has no full context or horizon, or a frame cannot be loaded.
    """
    context_ids = _context_indices(trajectory, index, config)
    t_now = int(trajectory.frame_stamps_ns[index])
    t_end = int(trajectory.pose_stamps_ns[-1])
    horizon_ns = round(max(config.waypoint_horizon_s, config.goal_min_s) * NS_PER_S)
    if context_ids is None or t_now + horizon_ns > t_end:
        raise S2EError(
            f"{trajectory.trajectory_id}: frame {index} has no full context/horizon under "
            f"the sample config (use sample_indices)"
        )
    goal_lo = t_now + round(config.goal_min_s * NS_PER_S)
    goal_hi = min(t_now + round(config.goal_max_s * NS_PER_S), t_end)
    goal_time = int(rng.integers(goal_lo, goal_hi, endpoint=True))
    current, goal = interpolate_poses(
        trajectory.pose_stamps_ns, trajectory.poses, np.array([t_now, goal_time], dtype=np.int64)
    )
    waypoints = future_waypoints(trajectory, index, config)
    path = np.concatenate([np.zeros((1, 2)), waypoints[:, :2]])
    speed = float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1)) / config.waypoint_horizon_s)
    context = np.stack(
        [preprocess_image(trajectory.frames[int(i)], config.image_size_px) for i in context_ids]
    )
    return NavSample(
        context=context,
        goal=encode_goal(world_to_robot(goal[:2], current)),
        waypoints=waypoints.astype(np.float32),
        speed=speed,
        source=trajectory.source,
        trajectory_id=trajectory.trajectory_id,
        stamp_ns=t_now,
        frame_index=index,
    )

