"""The GNM (visualnav-transformer) trajectory folder format: its file names and the writer.

A GNM trajectory folder holds ``0.jpg ... {N-1}.jpg`` (RGB frames, one per pose) and
``traj_data.pkl``, a pickled dict with ``position`` float64 ``(N, 2)`` (x, y metres, world /
odometry frame) and ``yaw`` float64 ``(N,)`` (radians). The format carries no timestamps:
frames are one dataset period apart.

This is the project's one GNM *writer* (``s2e navbench collect`` records simulator rollouts
with it; converters of other recordings use it too). The reader lives with the training data
adapters (``s2e_training.data.gnm``) and takes the file names from here. The module imports
only numpy and Pillow, so the training side can use it without loading the simulator.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from s2e_policy.atomic_files import atomic_output
from s2e_policy.errors import S2EError

TRAJ_DATA_FILE = "traj_data.pkl"
"""Pose file name inside a GNM trajectory folder."""

FRAME_SUFFIX = ".jpg"
"""Frame file suffix (``{i}.jpg``)."""

DEFAULT_JPEG_QUALITY = 95
"""JPEG quality the writer uses unless told otherwise (Pillow's useful maximum)."""


def write_gnm(
    folder: Path,
    frames: Iterable[np.ndarray],
    poses: Iterable[np.ndarray],
    *,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> int:
    """Write a GNM trajectory folder, streaming frame by frame.

    ``traj_data.pkl`` is written last, so a folder that has it is complete.

    Args:
        folder: output folder (created; existing frame files are overwritten).
        frames: uint8 ``(H, W, 3)`` RGB frames, one per pose.
        poses: ``(3,)`` ``(x, y, yaw)`` world poses (metres, radians), one per frame.
        jpeg_quality: JPEG quality, 1-95.

    Returns:
        Number of frames written.

    Raises:
        S2EError: a frame is not uint8 ``(H, W, 3)``, a pose is not 3 finite numbers, the
            two iterables have different lengths, or the quality is out of range.
    """
    folder = Path(folder)
    if not 1 <= int(jpeg_quality) <= DEFAULT_JPEG_QUALITY:
        raise S2EError(f"write_gnm {folder}: jpeg_quality must be in 1..{DEFAULT_JPEG_QUALITY}, "
                       f"got {jpeg_quality}")
    folder.mkdir(parents=True, exist_ok=True)
    positions: list[tuple[float, float]] = []
    yaws: list[float] = []
    frame_iter, pose_iter = iter(frames), iter(poses)
    for i, frame in enumerate(frame_iter):
        pose = next(pose_iter, None)
        if pose is None:
            raise S2EError(f"write_gnm {folder}: more frames than poses (frame {i} has no pose)")
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (3,) or not np.all(np.isfinite(pose)):
            raise S2EError(f"write_gnm {folder}: pose {i} is {pose!r}; expected 3 finite numbers")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise S2EError(
                f"write_gnm {folder}: frame {i} is {frame.dtype} {frame.shape}; "
                f"expected uint8 (H, W, 3) RGB"
            )
        Image.fromarray(frame).save(folder / f"{i}{FRAME_SUFFIX}", quality=int(jpeg_quality))
        positions.append((float(pose[0]), float(pose[1])))
        yaws.append(float(pose[2]))
    if next(pose_iter, None) is not None:
        raise S2EError(f"write_gnm {folder}: more poses than frames ({len(yaws)} frames)")
    traj_data = {
        "position": np.asarray(positions, dtype=np.float64).reshape(-1, 2),
        "yaw": np.asarray(yaws, dtype=np.float64),
    }
    with atomic_output(folder / TRAJ_DATA_FILE) as handle:
        pickle.dump(traj_data, handle)
    return len(yaws)
