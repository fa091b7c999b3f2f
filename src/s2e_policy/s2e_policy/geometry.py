"""Planar (SE(2)) geometry shared by training, the simulator bridge and the onboard runtime.

Conventions (REP-103/105):

* World/odometry frame ``odom``: x, y in metres, yaw in radians, counter-clockwise positive.
* Robot frame ``base_link``: x forward, y left, heading counter-clockwise from x.
* A planar pose is a float64 array ``(..., 3)`` holding ``(x, y, yaw)``.
* Quaternions are ``(w, x, y, z)`` (the ``transforms3d`` order); ROS messages carry
  ``(x, y, z, w)`` fields, which callers map by name.

All frame maths of the stack lives here so that every package computes goals, waypoints and
headings the same way (``tf_transformations`` in ROS wraps the same ``transforms3d`` calls).
"""

from __future__ import annotations

import numpy as np
import transforms3d.euler

from s2e_policy.errors import S2EError

GOAL_MIN_DISTANCE_M = 0.1
"""Lower clip of the goal distance in the goal encoding (paper: 0.1 m)."""

GOAL_MAX_DISTANCE_M = 200.0
"""Upper clip of the goal distance, also its normaliser (paper: 200 m)."""

GOAL_ENCODING_SIZE = 3
"""Length of :func:`encode_goal`'s output: ``[d_norm, cos(theta), sin(theta)]``."""


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles (radians) to ``[-pi, pi)``; works on scalars and arrays of any shape."""
    wrapped = (np.asarray(angle, dtype=np.float64) + np.pi) % (2.0 * np.pi) - np.pi
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def yaw_from_quaternion(w: float, x: float, y: float, z: float) -> float:
    """Yaw (rotation about +z, radians in ``[-pi, pi]``) of a unit quaternion ``(w, x, y, z)``.

    Uses the ROS convention ``R = Rz(yaw) Ry(pitch) Rx(roll)`` (``transforms3d`` axes
    ``"sxyz"``, as ``tf_transformations.euler_from_quaternion``), so a tilted robot still
    reports the heading of its x axis projected on the plane.
    A quaternion that is not normalised is normalised first; a zero or non-finite one raises
    :class:`S2EError`.
    """
    quat = np.array([w, x, y, z], dtype=np.float64)
    norm = float(np.linalg.norm(quat))
    if not np.isfinite(norm) or norm == 0.0:
        raise S2EError(f"quaternion (w, x, y, z) = {tuple(quat)}: expected a finite non-zero value")
    _roll, _pitch, yaw = transforms3d.euler.quat2euler(quat / norm, axes="sxyz")
    return float(yaw)


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    """Unit quaternion ``(w, x, y, z)`` of a rotation by ``yaw`` radians about +z."""
    w, x, y, z = transforms3d.euler.euler2quat(0.0, 0.0, yaw, axes="sxyz")
    return float(w), float(x), float(y), float(z)


def world_to_robot(points_xy: np.ndarray, robot_pose: np.ndarray) -> np.ndarray:
    """Express world points in the robot frame of ``robot_pose``.

    Args:
        points_xy: ``(..., 2)`` points in the world frame, metres.
        robot_pose: ``(3,)`` robot pose ``(x, y, yaw)`` in the same world frame.

    Returns:
        float64 ``(..., 2)`` points in the robot frame (x forward, y left), metres.
    """
    points = np.asarray(points_xy, dtype=np.float64)
    pose = np.asarray(robot_pose, dtype=np.float64)
    if points.shape[-1:] != (2,) or pose.shape != (3,):
        raise S2EError(
            f"world_to_robot: expected points (..., 2) and pose (3,), "
            f"got {points.shape} and {pose.shape}"
        )
    cos_yaw, sin_yaw = np.cos(pose[2]), np.sin(pose[2])
    dx = points[..., 0] - pose[0]
    dy = points[..., 1] - pose[1]
    return np.stack([cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy], axis=-1)


def poses_world_to_robot(poses: np.ndarray, robot_pose: np.ndarray) -> np.ndarray:
    """Express world poses ``(..., 3)`` in the robot frame of ``robot_pose`` ``(3,)``.

    Returns float64 ``(..., 3)``: ``(x, y)`` via :func:`world_to_robot` and the heading
    relative to the robot's, wrapped to ``[-pi, pi)``.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape[-1:] != (3,):
        raise S2EError(f"poses_world_to_robot: expected poses (..., 3), got {poses.shape}")
    xy = world_to_robot(poses[..., :2], robot_pose)
    heading = wrap_angle(poses[..., 2] - float(np.asarray(robot_pose)[2]))
    return np.concatenate([xy, np.asarray(heading)[..., None]], axis=-1)


def robot_to_world(points_xy: np.ndarray, robot_pose: np.ndarray) -> np.ndarray:
    """Inverse of :func:`world_to_robot`: robot-frame ``(..., 2)`` points to world ``(..., 2)``."""
    points = np.asarray(points_xy, dtype=np.float64)
    pose = np.asarray(robot_pose, dtype=np.float64)
    cos_yaw, sin_yaw = np.cos(pose[2]), np.sin(pose[2])
    x = pose[0] + cos_yaw * points[..., 0] - sin_yaw * points[..., 1]
    y = pose[1] + sin_yaw * points[..., 0] + cos_yaw * points[..., 1]
    return np.stack([x, y], axis=-1)


def interpolate_poses(
    stamps_ns: np.ndarray, poses: np.ndarray, query_ns: np.ndarray
) -> np.ndarray:
    """Linearly interpolate planar poses at query times.

    Args:
        stamps_ns: ``(N,)`` int64 strictly increasing timestamps, nanoseconds, ``N >= 1``.
        poses: ``(N, 3)`` poses ``(x, y, yaw)`` at ``stamps_ns``.
        query_ns: ``(M,)`` int64 query timestamps inside ``[stamps_ns[0], stamps_ns[-1]]``.

    Returns:
        float64 ``(M, 3)``; yaw is interpolated on the unwrapped angle (shortest way) and
        wrapped back to ``[-pi, pi)``.
    """
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    poses = np.asarray(poses, dtype=np.float64)
    query = np.asarray(query_ns, dtype=np.int64)
    if stamps.ndim != 1 or poses.shape != (stamps.shape[0], 3) or stamps.size == 0:
        raise S2EError(
            f"interpolate_poses: expected stamps (N,) and poses (N, 3) with N >= 1, "
            f"got {stamps.shape} and {poses.shape}"
        )
    if np.any(np.diff(stamps) <= 0):
        raise S2EError("interpolate_poses: pose timestamps must be strictly increasing")
    if query.size and (query.min() < stamps[0] or query.max() > stamps[-1]):
        raise S2EError(
            f"interpolate_poses: query times [{query.min()}, {query.max()}] ns fall outside "
            f"the pose times [{stamps[0]}, {stamps[-1]}] ns"
        )
    # Interpolate relative to the first stamp so float64 keeps nanosecond resolution.
    t_src = (stamps - stamps[0]).astype(np.float64)
    t_query = (query - stamps[0]).astype(np.float64)
    yaw_unwrapped = np.unwrap(poses[:, 2])
    out = np.empty((query.shape[0], 3), dtype=np.float64)
    out[:, 0] = np.interp(t_query, t_src, poses[:, 0])
    out[:, 1] = np.interp(t_query, t_src, poses[:, 1])
    out[:, 2] = wrap_angle(np.interp(t_query, t_src, yaw_unwrapped))
    return out


def encode_goal(goal_xy_robot: np.ndarray) -> np.ndarray:
    """Goal encoding of the policy input.

    Args:
        goal_xy_robot: ``(2,)`` goal position in the robot frame (x forward, y left), metres.

    Returns:
        float32 ``(3,)``: ``[clip(d, 0.1, 200) / 200, cos(theta), sin(theta)]`` where ``d`` is
        the distance and ``theta = atan2(y, x)`` the bearing of the goal.
    """
    goal = np.asarray(goal_xy_robot, dtype=np.float64)
    if goal.shape != (2,) or not np.all(np.isfinite(goal)):
        raise S2EError(f"goal_xy_robot: expected 2 finite metres (x, y), got {goal!r}")
    distance = float(np.hypot(goal[0], goal[1]))
    bearing = float(np.arctan2(goal[1], goal[0]))
    clipped = min(max(distance, GOAL_MIN_DISTANCE_M), GOAL_MAX_DISTANCE_M)
    return np.array(
        [clipped / GOAL_MAX_DISTANCE_M, np.cos(bearing), np.sin(bearing)], dtype=np.float32
    )
