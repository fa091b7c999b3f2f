"""Video file + pose CSV adapter -> Trajectory (decoded with OpenCV, one frame at a time).

The pose CSV has a header row with the columns ``timestamp, x, y, yaw`` (any order, extra
columns ignored): ``timestamp`` in seconds on the video's clock (0 = the first frame's time
unless ``time_offset_s`` says otherwise), ``x``/``y`` metres and ``yaw`` radians in a world
frame. Frame ``k`` of the video is at ``time_offset_s + k / fps`` seconds (constant frame
rate; ``fps`` from the container unless given). Frames outside the pose time range are
dropped and recorded in the skip report.

Pose files from external tools may also be in the TUM trajectory format
(``t tx ty tz qx qy qz qw`` per line, whitespace-separated, ``#`` comments), as written by
ORB-SLAM3, DPVO and COLMAP converters; :func:`read_pose_file` reads either format. TUM poses
are taken as a body in a z-up world (``frame="world"``: x, y and the yaw of the quaternion)
or as an OpenCV camera in a visual-SLAM world (``frame="camera"``: the SLAM world is the
first camera's frame, x right, y down, z forward; the ground plane is x-z).
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from s2e_policy.errors import S2EError
from s2e_training.data.sample import NS_PER_S, SkipReport, Trajectory, drop_non_increasing

POSE_CSV_COLUMNS = ("timestamp", "x", "y", "yaw")
"""Required columns of the pose CSV (seconds, metres, metres, radians)."""

MIN_POSES = 2
"""Interpolation needs at least two poses."""

TUM_COLUMNS = 8
"""Values per TUM line: ``t tx ty tz qx qy qz qw``."""

TUM_FRAMES = ("world", "camera")
"""How TUM poses are read: z-up body poses, or OpenCV camera poses (see the module doc)."""

TUM_SUFFIXES = (".txt", ".tum")
"""File suffixes read as TUM by :func:`read_pose_file` (anything else is a pose CSV)."""


def read_pose_csv(
    path: Path, *, skip_bad: bool = False, report: SkipReport | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a pose CSV.

    Returns:
        ``(stamps_ns, poses)``: int64 ``(M,)`` strictly increasing and float64 ``(M, 3)``.

    Raises:
        S2EError: missing columns, non-numeric or non-finite values, non-increasing
            timestamps (names the file and data row) unless ``skip_bad``; fewer than two rows.
    """
    path = Path(path)
    report = report if report is not None else SkipReport()
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, skipinitialspace=True))
            fieldnames = [] if not rows else list(rows[0].keys())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise S2EError(f"pose CSV {path}: cannot be read: {exc}") from exc
    missing = [c for c in POSE_CSV_COLUMNS if c not in fieldnames]
    if missing:
        raise S2EError(
            f"pose CSV {path}: missing column(s) {', '.join(missing)}; expected a header row "
            f"with {', '.join(POSE_CSV_COLUMNS)} (found: {', '.join(map(str, fieldnames))})"
        )
    values: list[tuple[float, float, float, float]] = []
    rows_kept: list[int] = []
    for row_index, row in enumerate(rows):
        try:
            numbers = tuple(float(row[c]) for c in POSE_CSV_COLUMNS)
            if not all(np.isfinite(numbers)):
                raise ValueError(f"non-finite value in {numbers}")
        except (TypeError, ValueError) as exc:
            if not skip_bad:
                raise S2EError(f"pose CSV {path}: data row {row_index}: {exc}") from exc
            report.add(str(path), row_index, str(exc))
            continue
        values.append(numbers)
        rows_kept.append(row_index)
    table = np.asarray(values, dtype=np.float64).reshape(-1, 4)
    stamps = np.round(table[:, 0] * NS_PER_S).astype(np.int64)
    keep = drop_non_increasing(stamps)
    if not keep.all():
        bad = [rows_kept[i] for i in np.flatnonzero(~keep)]
        if not skip_bad:
            raise S2EError(f"pose CSV {path}: timestamp of data row {bad[0]} is not increasing")
        for row_index in bad:
            report.add(str(path), row_index, "timestamp not after the previous row")
    stamps, table = stamps[keep], table[keep]
    if len(stamps) < MIN_POSES:
        raise S2EError(f"pose CSV {path}: {len(stamps)} usable poses; expected >= {MIN_POSES}")
    return stamps, table[:, 1:].copy()


def read_tum_poses(path: Path, *, frame: str = "world") -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory file as planar poses.

    Args:
        path: text file, one ``t tx ty tz qx qy qz qw`` per line (seconds, metres, unit
            quaternion); blank lines and lines starting with ``#`` are skipped.
        frame: ``"world"`` (z-up body poses) or ``"camera"`` (OpenCV camera poses; planar
            ``x = tz``, ``y = -tx``, yaw of the optical axis in the x-z plane).

    Returns:
        ``(stamps_ns, poses)``: int64 ``(M,)`` strictly increasing and float64 ``(M, 3)``.

    Raises:
        S2EError: a line without 8 numbers, a non-finite value, a zero quaternion,
            non-increasing timestamps (names the file and line), fewer than two poses, or an
            unknown ``frame``.
    """
    path = Path(path)
    if frame not in TUM_FRAMES:
        raise S2EError(f"TUM frame {frame!r}: expected one of {', '.join(TUM_FRAMES)}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise S2EError(f"TUM file {path}: cannot be read: {exc}") from exc
    rows, line_numbers = [], []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            values = [float(v) for v in text.replace(",", " ").split()]
        except ValueError as exc:
            raise S2EError(f"TUM file {path}: line {number}: {exc}") from exc
        if len(values) != TUM_COLUMNS or not np.all(np.isfinite(values)):
            raise S2EError(
                f"TUM file {path}: line {number}: expected {TUM_COLUMNS} finite numbers "
                f"'t tx ty tz qx qy qz qw', got {text!r}"
            )
        rows.append(values)
        line_numbers.append(number)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, TUM_COLUMNS)
    if len(table) < MIN_POSES:
        raise S2EError(f"TUM file {path}: {len(table)} poses; expected >= {MIN_POSES}")
    stamps = np.round(table[:, 0] * NS_PER_S).astype(np.int64)
    bad = np.flatnonzero(np.diff(stamps) <= 0)
    if bad.size:
        raise S2EError(f"TUM file {path}: line {line_numbers[bad[0] + 1]}: time not increasing")
    quats = table[:, [7, 4, 5, 6]]  # (w, x, y, z)
    norms = np.linalg.norm(quats, axis=1)
    if np.any(norms == 0):
        zero = line_numbers[int(np.flatnonzero(norms == 0)[0])]
        raise S2EError(f"TUM file {path}: line {zero}: zero quaternion")
    w, x, y, z = (quats / norms[:, None]).T
    if frame == "world":
        yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
        poses = np.column_stack([table[:, 1], table[:, 2], yaw])
    else:
        # Optical axis (third column of the camera-to-world rotation) in the SLAM world.
        axis_x = 2.0 * (x * z + w * y)
        axis_z = 1.0 - 2.0 * (x * x + y * y)
        poses = np.column_stack([table[:, 3], -table[:, 1], np.arctan2(-axis_x, axis_z)])
    return stamps, poses


def read_pose_file(path: Path, *, tum_frame: str = "world") -> tuple[np.ndarray, np.ndarray]:
    """Read a pose CSV or a TUM file (chosen by suffix: ``.txt``/``.tum`` is TUM).

    Returns:
        ``(stamps_ns, poses)`` as :func:`read_pose_csv` / :func:`read_tum_poses`.
    """
    path = Path(path)
    if path.suffix.lower() in TUM_SUFFIXES:
        return read_tum_poses(path, frame=tum_frame)
    return read_pose_csv(path)


@contextlib.contextmanager
def open_video(path: Path) -> Iterator[cv2.VideoCapture]:
    """An opened OpenCV capture of ``path``, released on exit.

    Raises:
        S2EError: the file is missing or OpenCV cannot open it (names the file).
    """
    if not Path(path).is_file():
        raise S2EError(f"video {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise S2EError(f"video {path}: OpenCV cannot open it (unsupported or corrupt file)")
        yield capture
    finally:
        capture.release()


def iter_video_frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(frame_number, rgb)`` from a video file; ``rgb`` is uint8 ``(H, W, 3)``.

    Raises:
        S2EError: the file cannot be opened, or decoding stops before the container's frame
            count (corrupt/truncated file; names the file and frame number).
    """
    path = Path(path)
    with open_video(path) as capture:
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        number = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            yield number, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            number += 1
        if number == 0 or (declared > 0 and number < declared):
            raise S2EError(
                f"video {path}: decoding stopped at frame {number} of {declared} declared "
                f"(corrupt or truncated file)"
            )


def video_fps(path: Path) -> float:
    """Frame rate the container declares, Hz (S2EError when missing)."""
    capture = cv2.VideoCapture(str(path))
    try:
        rate = float(capture.get(cv2.CAP_PROP_FPS)) if capture.isOpened() else 0.0
    finally:
        capture.release()
    if not np.isfinite(rate) or rate <= 0:
        raise S2EError(f"video {path}: no frame rate in the container; pass fps explicitly")
    return rate


def read_video_trajectory(
    video: Path,
    poses_csv: Path,
    *,
    fps: float | None = None,
    time_offset_s: float = 0.0,
    skip_bad: bool = False,
    report: SkipReport | None = None,
) -> Trajectory:
    """Read a video and its pose CSV into a :class:`Trajectory` (frames held in memory).

    Args:
        video: any file OpenCV decodes (MP4, AVI, ...).
        poses_csv: pose CSV (see the module docstring).
        fps: frame rate, Hz; default the container's.
        time_offset_s: CSV time of the first video frame, seconds.
        skip_bad: skip (and record) bad CSV rows and a truncated video tail instead of
            raising.
        report: collects what was skipped.
    """
    video, poses_csv = Path(video), Path(poses_csv)
    report = report if report is not None else SkipReport()
    pose_stamps, poses = read_pose_csv(poses_csv, skip_bad=skip_bad, report=report)
    rate = float(fps) if fps is not None else video_fps(video)
    if not np.isfinite(rate) or rate <= 0:
        raise S2EError(f"video fps: expected a positive frame rate, got {fps}")
    offset_ns = round(time_offset_s * NS_PER_S)
    ids, stamps, frames = [], [], []
    try:
        for number, rgb in iter_video_frames(video):
            stamp = offset_ns + round(number * NS_PER_S / rate)
            if not pose_stamps[0] <= stamp <= pose_stamps[-1]:
                report.add(str(video), number, "outside the pose time range")
                continue
            ids.append(number)
            stamps.append(stamp)
            frames.append(rgb)
    except S2EError as exc:
        if not skip_bad or not ids:
            raise
        report.add(str(video), len(ids), str(exc))
    return Trajectory(
        source="video",
        trajectory_id=str(video),
        frame_stamps_ns=np.asarray(stamps, dtype=np.int64),
        frames=frames,
        pose_stamps_ns=pose_stamps,
        poses=poses,
        frame_ids=np.asarray(ids, dtype=np.int64),
    )
