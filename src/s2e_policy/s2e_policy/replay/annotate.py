"""The annotated bag: the input recording plus what the runtime did, for Foxglove Studio.

:func:`write_annotated_bag` copies every topic of the input bag into a new MCAP bag and adds,
at each decision instant of one :class:`~s2e_policy.replay.loop.ReplayRun`:

* :data:`WAYPOINTS_TOPIC` (``nav_msgs/Path``): the chosen mode's waypoints;
* :data:`CMD_VEL_TOPIC` (``geometry_msgs/TwistStamped``, frame ``base_link``): the command sent
  (zero when the pilot stopped);
* :data:`MARKERS_TOPIC` (``visualization_msgs/MarkerArray``): every mode as a line strip whose
  opacity is its probability, the chosen mode, the logged future and the goal.

Paths and markers are in the odometry topic's frame (its ``header.frame_id``): the waypoints are
moved there with the logged pose at the instant, so they display without a TF tree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2e_policy.bags import BagError, BagMessage, copy_bag, message_type, topic_frame_id
from s2e_policy.geometry import quaternion_from_yaw, robot_to_world, wrap_angle
from s2e_policy.replay.loop import IMAGE_OUT_OF_ORDER, InstantRecord, ReplayRun
from s2e_policy.runtime.frames import NS_PER_S

WAYPOINTS_TOPIC = "/s2e/waypoints"
CMD_VEL_TOPIC = "/s2e/cmd_vel"
MARKERS_TOPIC = "/s2e/markers"
ROBOT_FRAME = "base_link"
"""Frame of the commands (REP-105)."""
FALLBACK_ODOM_FRAME = "odom"
"""Frame used when the odometry messages carry no ``header.frame_id`` (REP-105)."""

LINE_WIDTH_M = 0.02
CHOSEN_LINE_WIDTH_M = 0.05
GOAL_DIAMETER_M = 0.3
MIN_MODE_ALPHA = 0.05
"""Opacity of the least likely modes (so that every mode stays visible)."""
# RGBA colours in [0, 1].
MODE_RGBA = (0.6, 0.6, 0.6, 1.0)
CHOSEN_RGBA = (0.1, 0.8, 0.2, 1.0)
LOGGED_RGBA = (0.2, 0.4, 1.0, 1.0)
GOAL_RGBA = (1.0, 0.5, 0.0, 0.9)

ANNOTATED_STORAGE = "mcap"


def _msg(msgtype: str, **kwargs: object) -> object:
    return message_type(msgtype)(**kwargs)


def _header(stamp_ns: int, frame_id: str) -> object:
    stamp = _msg("builtin_interfaces/msg/Time", sec=stamp_ns // NS_PER_S,
                 nanosec=stamp_ns % NS_PER_S)
    return _msg("std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)


def _point(x: float, y: float) -> object:
    return _msg("geometry_msgs/msg/Point", x=float(x), y=float(y), z=0.0)


def _pose(x: float, y: float, yaw: float) -> object:
    w, qx, qy, qz = quaternion_from_yaw(float(yaw))
    return _msg("geometry_msgs/msg/Pose", position=_point(x, y),
                orientation=_msg("geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=w))


def _in_world(waypoints: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """``(W, 3)`` base_link waypoints -> ``(W, 3)`` odometry-frame poses."""
    xy = robot_to_world(np.asarray(waypoints, dtype=np.float64)[:, :2], pose)
    yaw = wrap_angle(np.asarray(waypoints, dtype=np.float64)[:, 2] + pose[2])
    return np.column_stack([xy, yaw])


def _marker(header: object, ns: str, marker_id: int, kind: int, width_m: float,
            rgba: tuple[float, ...], points: np.ndarray, alpha: float | None = None) -> object:
    marker_cls = message_type("visualization_msgs/msg/Marker")
    r, g, b, a = rgba
    return marker_cls(
        header=header, ns=ns, id=marker_id, type=kind, action=marker_cls.ADD,
        pose=_pose(0.0, 0.0, 0.0),
        scale=_msg("geometry_msgs/msg/Vector3", x=width_m, y=width_m, z=width_m),
        color=_msg("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=a if alpha is None else alpha),
        lifetime=_msg("builtin_interfaces/msg/Duration", sec=0, nanosec=0),
        frame_locked=False, points=[_point(x, y) for x, y in points[:, :2]], colors=[],
        texture_resource="",
        texture=_msg("sensor_msgs/msg/CompressedImage", header=header, format="",
                     data=np.zeros(0, np.uint8)),
        uv_coordinates=[], text="", mesh_resource="",
        mesh_file=_msg("visualization_msgs/msg/MeshFile", filename="",
                       data=np.zeros(0, np.uint8)),
        mesh_use_embedded_materials=False,
    )


def instant_messages(record: InstantRecord, odom_frame: str) -> list[BagMessage]:
    """The annotation messages of one decision instant (the command only, without a decision).

    A frame dropped as out of order was never stepped: it gets no message.
    """
    if record.status == IMAGE_OUT_OF_ORDER:
        return []
    t = record.stamp_ns
    twist = _msg("geometry_msgs/msg/Twist",
                 linear=_msg("geometry_msgs/msg/Vector3", x=float(record.command[0]),
                             y=float(record.command[1]), z=0.0),
                 angular=_msg("geometry_msgs/msg/Vector3", x=0.0, y=0.0,
                              z=float(record.command[2])))
    out = [BagMessage(CMD_VEL_TOPIC, "geometry_msgs/msg/TwistStamped", t,
                      _msg("geometry_msgs/msg/TwistStamped",
                           header=_header(t, ROBOT_FRAME), twist=twist))]
    if record.modes is None or record.probabilities is None:
        return out
    header = _header(t, odom_frame)
    start = record.pose
    chosen = np.vstack([start, _in_world(record.modes[record.mode], start)])
    path = _msg("nav_msgs/msg/Path", header=header, poses=[
        _msg("geometry_msgs/msg/PoseStamped", header=header, pose=_pose(*p)) for p in chosen])
    out.append(BagMessage(WAYPOINTS_TOPIC, "nav_msgs/msg/Path", t, path))
    marker_cls = message_type("visualization_msgs/msg/Marker")
    top = float(np.max(record.probabilities))
    markers = [
        _marker(header, "modes", k, marker_cls.LINE_STRIP, LINE_WIDTH_M, MODE_RGBA,
                np.vstack([start, _in_world(mode, start)]),
                alpha=max(MIN_MODE_ALPHA, float(p) / top if top > 0 else 0.0))
        for k, (mode, p) in enumerate(zip(record.modes, record.probabilities, strict=True))
    ]
    markers.append(_marker(header, "chosen", 0, marker_cls.LINE_STRIP, CHOSEN_LINE_WIDTH_M,
                           CHOSEN_RGBA, chosen))
    if record.truth is not None:
        markers.append(_marker(header, "logged", 0, marker_cls.LINE_STRIP, CHOSEN_LINE_WIDTH_M,
                               LOGGED_RGBA, np.vstack([start, _in_world(record.truth, start)])))
    goal = _marker(header, "goal", 0, marker_cls.SPHERE, GOAL_DIAMETER_M, GOAL_RGBA,
                   np.zeros((0, 2)))
    goal.pose = _pose(record.goal[0], record.goal[1], 0.0)
    markers.append(goal)
    out.append(BagMessage(MARKERS_TOPIC, "visualization_msgs/msg/MarkerArray", t,
                          _msg("visualization_msgs/msg/MarkerArray", markers=markers)))
    return out


def default_annotated_path(bag: Path, label: str) -> Path:
    """``<bag folder>_s2e_<label>`` beside the input bag."""
    bag = Path(bag)
    folder = bag.parent if bag.is_file() else bag
    return folder.parent / f"{folder.name}_s2e_{label}"


def write_annotated_bag(run: ReplayRun, dst: Path) -> int:
    """Write the input bag plus ``run``'s annotations as a new MCAP bag at ``dst``.

    Args:
        run: a finished replay of one model.
        dst: new bag folder (must not exist).

    Returns:
        Number of messages written (copied and added).

    Raises:
        BagError: ``dst`` exists, or the bag cannot be read or written.
    """
    dst = Path(dst)
    if dst.exists():
        raise BagError(f"annotated bag {dst}: already exists; remove it or choose another "
                       "folder (--annotated-dir)")
    odom_frame = topic_frame_id(Path(run.bag), run.config.odom_topic) or FALLBACK_ODOM_FRAME
    extra = [m for record in run.records for m in instant_messages(record, odom_frame)]
    return copy_bag(Path(run.bag), dst, storage=ANNOTATED_STORAGE, extra=extra)
