"""Open any supported recording by path: the one entry point of the CLI and the trainers.

* a folder with ``metadata.yaml`` (or a ``.mcap``/``.db3`` file inside one): rosbag2, needs
  ``image_topic`` and ``odom_topic``;
* a folder with ``traj_data.pkl``, or a folder of such folders: GNM, needs ``rate_hz``;
* any other file: a video, needs ``poses_csv``.
"""

from __future__ import annotations

from pathlib import Path

from s2e_policy.errors import S2EError
from s2e_training.data.gnm import TRAJ_DATA_FILE, read_gnm_dataset
from s2e_training.data.rosbag import read_bag_trajectory
from s2e_training.data.sample import SkipReport, Trajectory
from s2e_training.data.video import read_video_trajectory

BAG_METADATA_FILE = "metadata.yaml"
"""Marks a rosbag2 folder."""


def source_kind(path: Path) -> str:
    """``"rosbag2"``, ``"gnm"`` or ``"video"`` for ``path`` (S2EError when none fits)."""
    path = Path(path)
    if not path.exists():
        raise S2EError(f"{path}: no such file or directory")
    bag_dir = path if path.is_dir() else path.parent
    if (bag_dir / BAG_METADATA_FILE).is_file():
        return "rosbag2"
    if path.is_dir():
        if (path / TRAJ_DATA_FILE).is_file() or any(
            (child / TRAJ_DATA_FILE).is_file() for child in path.iterdir()
        ):
            return "gnm"
        raise S2EError(
            f"{path}: not a rosbag2 folder ({BAG_METADATA_FILE}) nor a GNM folder "
            f"({TRAJ_DATA_FILE}, or sub-folders with one)"
        )
    return "video"


def load_trajectories(
    path: Path,
    *,
    image_topic: str | None = None,
    odom_topic: str | None = None,
    rate_hz: float | None = None,
    poses_csv: Path | None = None,
    skip_bad: bool = False,
    report: SkipReport | None = None,
) -> list[Trajectory]:
    """Read the recording at ``path`` with the adapter :func:`source_kind` picks.

    Raises:
        S2EError: the option the source needs is missing (names it), or the adapter's errors.
    """
    kind = source_kind(path)
    if kind == "rosbag2":
        if not image_topic or not odom_topic:
            raise S2EError(f"{path} is a rosbag2 recording: give --image-topic and --odom-topic")
        return [
            read_bag_trajectory(
                path, image_topic, odom_topic, skip_bad=skip_bad, report=report
            )
        ]
    if kind == "gnm":
        if rate_hz is None:
            raise S2EError(f"{path} is a GNM folder (no timestamps): give --rate-hz")
        return read_gnm_dataset(path, rate_hz, skip_bad=skip_bad, report=report)
    if poses_csv is None:
        raise S2EError(f"{path} is treated as a video: give --poses CSV (timestamp, x, y, yaw)")
    return [read_video_trajectory(path, poses_csv, skip_bad=skip_bad, report=report)]
