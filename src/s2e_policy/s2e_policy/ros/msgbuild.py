"""Build outgoing ROS 2 messages by attribute names, for rclpy and the DDS adapter alike.

The counterpart of :mod:`s2e_policy.msgconv` (messages in -> numpy): numpy and plain values
in -> messages out. Every builder takes a :class:`MessageFactory`, which knows how one
transport spells message classes and ``byte`` fields, so the policy node, the sim bridge and
both of their adapters (rclpy and Cyclone DDS) build the same messages with one code path:

* rclpy: ``MessageFactory(lookup=<import pkg.msg.Name>, byte=lambda v: bytes([v]))``;
* DDS: :data:`s2e_policy.ros.dds.factory.DDS_MESSAGES` (``idl_class``, ``int``).

Conventions: times are integer nanoseconds; planar poses are ``(x m, y m, yaw rad)``;
velocities ``(vx m/s, vy m/s, wz rad/s)`` in the child (body) frame; quaternions are
``(w, x, y, z)`` as in transforms3d (ROS messages store ``x, y, z, w`` by name).
Nothing here imports ROS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2e_policy.geometry import quaternion_from_yaw
from s2e_policy.msgconv import NS_PER_S

DIAGNOSTIC_LEVELS: dict[str, int] = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}
"""``diagnostic_msgs/DiagnosticStatus`` level constants by name."""

RGB8 = "rgb8"
"""Encoding of colour camera images (uint8, 3 channels)."""

DEPTH_32FC1 = "32FC1"
"""Encoding of depth images: float32 metres along the optical axis (REP-118)."""

FLOAT32_BYTES = 4
"""Bytes per float32 pixel of a depth image."""


@dataclass(frozen=True)
class MessageFactory:
    """How one transport makes message instances.

    Attributes:
        lookup: ROS 2 type name (``geometry_msgs/msg/Twist``) -> message class, whose
            constructor takes fields as keyword arguments (rclpy and DDS IDL classes do).
        byte: value of a ROS ``byte`` field from an int (rclpy: a 1-byte ``bytes``; IDL: int).
    """

    lookup: Callable[[str], type]
    byte: Callable[[int], Any]

    def new(self, msgtype: str, **fields: Any) -> Any:
        """An instance of ``msgtype`` with ``fields`` set (others at their defaults)."""
        return self.lookup(msgtype)(**fields)


def time_msg(f: MessageFactory, stamp_ns: int) -> Any:
    """``builtin_interfaces/Time`` of ``stamp_ns`` (non-negative nanoseconds)."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return f.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def header(f: MessageFactory, stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/Header``."""
    return f.new("std_msgs/msg/Header", stamp=time_msg(f, stamp_ns), frame_id=frame_id)


def quaternion(f: MessageFactory, wxyz: Sequence[float]) -> Any:
    """``geometry_msgs/Quaternion`` from ``(w, x, y, z)``."""
    w, x, y, z = (float(v) for v in wxyz)
    return f.new("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w)


def vector3(f: MessageFactory, xyz: Sequence[float]) -> Any:
    """``geometry_msgs/Vector3``."""
    x, y, z = (float(v) for v in xyz)
    return f.new("geometry_msgs/msg/Vector3", x=x, y=y, z=z)


def planar_pose(f: MessageFactory, pose: Sequence[float], z_m: float = 0.0) -> Any:
    """``geometry_msgs/Pose`` of a planar pose ``(x, y, yaw)`` at height ``z_m``."""
    x, y, yaw = (float(v) for v in pose)
    return f.new("geometry_msgs/msg/Pose",
                 position=f.new("geometry_msgs/msg/Point", x=x, y=y, z=float(z_m)),
                 orientation=quaternion(f, quaternion_from_yaw(yaw)))


def pose_stamped(f: MessageFactory, stamp_ns: int, frame_id: str, pose: Sequence[float]) -> Any:
    """``geometry_msgs/PoseStamped`` of a planar pose ``(x, y, yaw)``."""
    return f.new("geometry_msgs/msg/PoseStamped", header=header(f, stamp_ns, frame_id),
                 pose=planar_pose(f, pose))


def twist(f: MessageFactory, command: Sequence[float]) -> Any:
    """``geometry_msgs/Twist`` of a body command ``(vx, vy, wz)``."""
    vx, vy, wz = (float(v) for v in command)
    return f.new("geometry_msgs/msg/Twist", linear=vector3(f, (vx, vy, 0.0)),
                 angular=vector3(f, (0.0, 0.0, wz)))


def twist_stamped(f: MessageFactory, stamp_ns: int, frame_id: str,
                  command: Sequence[float]) -> Any:
    """``geometry_msgs/TwistStamped`` of a body command ``(vx, vy, wz)`` in ``frame_id``."""
    return f.new("geometry_msgs/msg/TwistStamped", header=header(f, stamp_ns, frame_id),
                 twist=twist(f, command))


def path(f: MessageFactory, stamp_ns: int, frame_id: str, poses: np.ndarray) -> Any:
    """``nav_msgs/Path`` of planar poses ``(N, 3)`` in ``frame_id``, all stamped ``stamp_ns``."""
    return f.new("nav_msgs/msg/Path", header=header(f, stamp_ns, frame_id),
                 poses=[pose_stamped(f, stamp_ns, frame_id, p) for p in np.asarray(poses)])


def diagnostic_array(f: MessageFactory, stamp_ns: int, level: str, name: str, message: str,
                     hardware_id: str, values: Mapping[str, str]) -> Any:
    """``diagnostic_msgs/DiagnosticArray`` with one status.

    Args:
        f: the transport's factory.
        stamp_ns: header stamp.
        level: a key of :data:`DIAGNOSTIC_LEVELS`.
        name: status name (``policy_node: runtime``).
        message: one-line summary.
        hardware_id: the device (e.g. the execution provider).
        values: key/value pairs (strings).
    """
    status = f.new("diagnostic_msgs/msg/DiagnosticStatus",
                   level=f.byte(DIAGNOSTIC_LEVELS[level]), name=name, message=message,
                   hardware_id=hardware_id,
                   values=[f.new("diagnostic_msgs/msg/KeyValue", key=k, value=str(v))
                           for k, v in values.items()])
    return f.new("diagnostic_msgs/msg/DiagnosticArray", header=header(f, stamp_ns, ""),
                 status=[status])


def odometry(f: MessageFactory, stamp_ns: int, frame_id: str, child_frame_id: str,
             pose: Sequence[float], velocity: Sequence[float], z_m: float = 0.0) -> Any:
    """``nav_msgs/Odometry``: planar ``pose`` in ``frame_id``, body ``velocity`` in the child."""
    vx, vy, wz = (float(v) for v in velocity)
    return f.new(
        "nav_msgs/msg/Odometry", header=header(f, stamp_ns, frame_id),
        child_frame_id=child_frame_id,
        pose=f.new("geometry_msgs/msg/PoseWithCovariance", pose=planar_pose(f, pose, z_m)),
        twist=f.new("geometry_msgs/msg/TwistWithCovariance", twist=twist(f, (vx, vy, wz))))


def transform_stamped(f: MessageFactory, stamp_ns: int, parent: str, child: str,
                      translation: Sequence[float], rotation_wxyz: Sequence[float]) -> Any:
    """``geometry_msgs/TransformStamped`` of ``child`` in ``parent``."""
    transform = f.new("geometry_msgs/msg/Transform", translation=vector3(f, translation),
                      rotation=quaternion(f, rotation_wxyz))
    return f.new("geometry_msgs/msg/TransformStamped", header=header(f, stamp_ns, parent),
                 child_frame_id=child, transform=transform)


def tf_message(f: MessageFactory, transforms: Sequence[Any]) -> Any:
    """``tf2_msgs/TFMessage`` of ``TransformStamped`` messages."""
    return f.new("tf2_msgs/msg/TFMessage", transforms=list(transforms))


def rgb_image(f: MessageFactory, stamp_ns: int, frame_id: str, rgb: np.ndarray) -> Any:
    """``sensor_msgs/Image`` (``rgb8``) of a uint8 ``(H, W, 3)`` frame."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, channels = rgb.shape
    return f.new("sensor_msgs/msg/Image", header=header(f, stamp_ns, frame_id), height=height,
                 width=width, encoding=RGB8, is_bigendian=0, step=width * channels,
                 data=rgb.tobytes())


def depth_image(f: MessageFactory, stamp_ns: int, frame_id: str, depth_m: np.ndarray) -> Any:
    """``sensor_msgs/Image`` (``32FC1``, little-endian metres) of a ``(H, W)`` depth map."""
    depth = np.ascontiguousarray(depth_m, dtype="<f4")
    height, width = depth.shape
    return f.new("sensor_msgs/msg/Image", header=header(f, stamp_ns, frame_id), height=height,
                 width=width, encoding=DEPTH_32FC1, is_bigendian=0,
                 step=width * FLOAT32_BYTES, data=depth.tobytes())


def camera_info(f: MessageFactory, stamp_ns: int, frame_id: str, width: int, height: int,
                intrinsics: np.ndarray) -> Any:
    """``sensor_msgs/CameraInfo`` of an undistorted pinhole camera.

    Args:
        f: the transport's factory.
        stamp_ns: header stamp.
        frame_id: the optical frame (OpenCV axes: x right, y down, z forward).
        width: image width (pixels).
        height: image height (pixels).
        intrinsics: ``(3, 3)`` ``K`` (pixels).
    """
    k = np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)
    projection = np.hstack([k, np.zeros((3, 1))])
    return f.new("sensor_msgs/msg/CameraInfo", header=header(f, stamp_ns, frame_id),
                 height=int(height), width=int(width), distortion_model="plumb_bob",
                 d=[0.0] * 5, k=k.reshape(-1).tolist(), r=np.eye(3).reshape(-1).tolist(),
                 p=projection.reshape(-1).tolist())


def clock(f: MessageFactory, stamp_ns: int) -> Any:
    """``rosgraph_msgs/Clock``."""
    return f.new("rosgraph_msgs/msg/Clock", clock=time_msg(f, stamp_ns))


def model_states(f: MessageFactory, names: Sequence[str], poses: np.ndarray,
                 velocities: np.ndarray, z_m: float = 0.0) -> Any:
    """``gazebo_msgs/ModelStates`` of planar models.

    Args:
        f: the transport's factory.
        names: model names ``(M,)``.
        poses: ``(M, 3)`` world ``(x, y, yaw)``.
        velocities: ``(M, 3)`` world-frame ``(vx, vy, wz)`` (Gazebo reports world twists).
        z_m: height of every model's origin.
    """
    return f.new("gazebo_msgs/msg/ModelStates", name=list(names),
                 pose=[planar_pose(f, p, z_m) for p in np.asarray(poses).reshape(-1, 3)],
                 twist=[twist(f, v) for v in np.asarray(velocities).reshape(-1, 3)])


def bool_msg(f: MessageFactory, value: bool) -> Any:
    """``std_msgs/Bool``."""
    return f.new("std_msgs/msg/Bool", data=bool(value))
