"""rosbag2 adapter (sqlite3 or MCAP): an image topic plus an odometry topic -> Trajectory.

Frames come from a ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` topic, poses from
a ``nav_msgs/Odometry`` topic; both are read with :mod:`s2e_policy.bags`. The pose track is
the odometry itself (so waypoints are interpolated from the full-rate odometry); frames
outside the odometry's time range are dropped and listed in the skip report.

The frames are decoded once, in bag order, and held in memory as uint8 RGB; for recordings
larger than memory, convert them to a GNM folder first: :func:`iter_bag_frames` streams the
frames and :func:`s2e_training.data.gnm.write_gnm` writes them one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from s2e_policy.bags import OdometryTrack, iter_images, read_odometry
from s2e_policy.errors import S2EError
from s2e_training.data.sample import SkipReport, Trajectory, drop_non_increasing

MIN_ODOMETRY_MESSAGES = 2
"""Interpolation needs at least two odometry poses."""


def read_bag_odometry(
    path: Path, odom_topic: str, *, skip_bad: bool = False, report: SkipReport | None = None
) -> OdometryTrack:
    """Odometry of ``odom_topic`` with strictly increasing stamps and finite values.

    Raises:
        S2EError: NaN/inf fields or non-increasing stamps (names topic and message index)
            unless ``skip_bad``; fewer than two usable messages.
    """
    report = report if report is not None else SkipReport()
    where = f"{path}:{odom_topic}"

    def skip(index: int, error: S2EError) -> None:
        report.add(where, index, str(error))

    track = read_odometry(path, odom_topic, on_error=skip if skip_bad else None)
    keep = drop_non_increasing(track.stamps_ns)
    if not keep.all():
        bad = np.flatnonzero(~keep)
        if not skip_bad:
            raise S2EError(
                f"rosbag2 {path}: topic {odom_topic!r} stamps are not increasing at message "
                f"{int(track.indices[bad[0]])}"
            )
        for i in bad:
            report.add(where, int(track.indices[i]), "stamp not after the previous message")
        track = OdometryTrack(
            stamps_ns=track.stamps_ns[keep],
            poses=track.poses[keep],
            velocities=track.velocities[keep],
            indices=track.indices[keep],
        )
    if len(track.stamps_ns) < MIN_ODOMETRY_MESSAGES:
        raise S2EError(
            f"rosbag2 {path}: topic {odom_topic!r} has {len(track.stamps_ns)} usable "
            f"odometry messages; expected at least {MIN_ODOMETRY_MESSAGES}"
        )
    return track


def iter_bag_frames(
    path: Path,
    image_topic: str,
    odometry: OdometryTrack,
    *,
    skip_bad: bool = False,
    report: SkipReport | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Stream ``(message_index, stamp_ns, rgb)`` for frames inside the odometry time range.

    ``rgb`` is uint8 ``(H, W, 3)``; the pose at ``stamp_ns`` is
    ``interpolate_poses(odometry.stamps_ns, odometry.poses, stamps)`` (batch it).
    Undecodable frames and non-increasing stamps raise :class:`S2EError` (naming topic and
    index) unless ``skip_bad``; frames outside the odometry time range are always dropped and
    recorded in ``report``.
    """
    report = report if report is not None else SkipReport()
    where = f"{path}:{image_topic}"

    def skip(index: int, error: S2EError) -> None:
        report.add(where, index, str(error))

    first, last = int(odometry.stamps_ns[0]), int(odometry.stamps_ns[-1])
    previous: int | None = None
    for frame in iter_images(path, image_topic, on_error=skip if skip_bad else None):
        if previous is not None and frame.stamp_ns <= previous:
            if not skip_bad:
                raise S2EError(
                    f"rosbag2 {path}: topic {image_topic!r} stamp of message {frame.index} "
                    f"({frame.stamp_ns} ns) is not after the previous one ({previous} ns)"
                )
            report.add(where, frame.index, "stamp not after the previous message")
            continue
        previous = frame.stamp_ns
        if not first <= frame.stamp_ns <= last:
            report.add(where, frame.index, "outside the odometry time range")
            continue
        yield frame.index, frame.stamp_ns, frame.rgb


def read_bag_trajectory(
    path: Path,
    image_topic: str,
    odom_topic: str,
    *,
    skip_bad: bool = False,
    report: SkipReport | None = None,
) -> Trajectory:
    """Read a rosbag2 recording (sqlite3 or MCAP) into a :class:`Trajectory`.

    Args:
        path: bag folder (or its storage file).
        image_topic: ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` topic.
        odom_topic: ``nav_msgs/Odometry`` topic.
        skip_bad: skip (and record) bad messages instead of raising.
        report: collects what was skipped.

    Raises:
        S2EError: missing topics (lists the bag's topics), corrupt bag, bad messages.
    """
    path = Path(path)
    report = report if report is not None else SkipReport()
    odometry = read_bag_odometry(path, odom_topic, skip_bad=skip_bad, report=report)
    ids, stamps, frames = [], [], []
    for index, stamp, rgb in iter_bag_frames(
        path, image_topic, odometry, skip_bad=skip_bad, report=report
    ):
        ids.append(index)
        stamps.append(stamp)
        frames.append(rgb)
    return Trajectory(
        source="rosbag2",
        trajectory_id=f"{path}:{image_topic}",
        frame_stamps_ns=np.asarray(stamps, dtype=np.int64),
        frames=frames,
        pose_stamps_ns=odometry.stamps_ns,
        poses=odometry.poses,
        frame_ids=np.asarray(ids, dtype=np.int64),
    )
