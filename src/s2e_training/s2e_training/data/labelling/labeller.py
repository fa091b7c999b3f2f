"""Label videos: visual odometry (or external poses) -> GNM trajectory folders per segment.

:func:`label_video` runs in two streaming passes over the labelled frames (memory holds one
frame plus a few numbers per labelled frame, whatever the video's length):

1. track each labelled frame against the previous one (:class:`FrameTracker`), run the
   quality checks and record a step status per frame;
2. split at every non-ok step, estimate each kept segment's camera pitch, integrate its
   ground-plane track with the step lengths of the scale source, and stream the segment's
   frames and poses into :func:`s2e_training.data.gnm.write_gnm`.

Scale: each step's length is ``speed_prior_mps * dt`` by default (S2E trains in a
speed-normalised space), or the distance travelled in a GPS/odometry pose file
(``scale_file``: CSV ``timestamp, x, y, yaw`` or TUM, times on the video clock, 0 = first
frame). With ``poses_file`` the visual odometry is skipped and the external poses label the
frames (only the blur check applies).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from s2e_policy.errors import S2EError
from s2e_policy.geometry import interpolate_poses, wrap_angle
from s2e_training.data.gnm import write_gnm
from s2e_training.data.labelling.camera import CameraModel, camera_for_video
from s2e_training.data.labelling.config import LabelConfig
from s2e_training.data.labelling.odometry import (
    STEP_OK,
    FrameTracker,
    StepMotion,
    estimate_pitch,
    ground_track,
)
from s2e_training.data.labelling.quality import (
    STEP_OUTSIDE_POSES,
    FrameChecks,
    Segment,
    segment_confidence,
    split_segments,
)
from s2e_training.data.labelling.stream import VideoInfo, iter_selected, probe_video, select_frames
from s2e_training.data.sample import NS_PER_S
from s2e_training.data.video import read_pose_file

POSE_SOURCE_VO = "visual odometry"
POSE_SOURCE_FILE = "external pose file"


@dataclass(frozen=True)
class SegmentLabel:
    """One kept segment, written as a GNM folder.

    Attributes:
        folder: the GNM trajectory folder.
        first_frame: video frame number of its first frame.
        start_s: video time of its first frame, seconds.
        poses: float64 ``(F, 3)`` ``(x, y, yaw)`` per frame, segment frame (origin = first
            pose, metres at the chosen scale, radians).
        confidence: in ``[0, 1]`` (1 for external poses), see
            :func:`~s2e_training.data.labelling.quality.segment_confidence`.
        pitch_deg: estimated camera pitch, degrees (positive looking down; NaN for external
            poses).
        pitch_source: what the pitch came from.
    """

    folder: Path
    first_frame: int
    start_s: float
    poses: np.ndarray
    confidence: float
    pitch_deg: float
    pitch_source: str

    @property
    def frames(self) -> int:
        """Number of frames."""
        return len(self.poses)

    @property
    def path_length_m(self) -> float:
        """Length of the ground-plane path, metres."""
        return float(np.sum(np.linalg.norm(np.diff(self.poses[:, :2], axis=0), axis=1)))

    @property
    def net_turn_deg(self) -> float:
        """Heading change from the first to the last frame, degrees (counter-clockwise)."""
        return float(np.degrees(np.sum(wrap_angle(np.diff(self.poses[:, 2])))))


@dataclass
class VideoLabels:
    """Everything :func:`label_video` learnt about one video (the report's input).

    Attributes:
        video: the video file.
        name: prefix of its GNM folder names (unique within a batch).
        info: probe result (``None`` when the video could not be opened).
        rate_hz: labelled frame rate of the GNM folders, Hz.
        camera: camera model at the video's resolution (``None`` before it was chosen).
        pose_source: :data:`POSE_SOURCE_VO` or :data:`POSE_SOURCE_FILE`.
        scale_source: ``"speed prior X m/s"`` or the scale file.
        frame_numbers: int64 ``(M,)`` video frame numbers of the labelled frames.
        statuses: per labelled frame, the status of the step into it (first: ``"ok"``).
        motions: per labelled frame, the tracker's :class:`StepMotion` (``None`` for the
            first frame and in external-pose mode).
        segments: kept segments.
        dropped: ``(start_s, frames, reason)`` of each dropped run.
        warnings: non-fatal problems.
        error: why the video failed as a whole (``None`` when it was labelled).
    """

    video: Path
    name: str = ""
    info: VideoInfo | None = None
    rate_hz: float = 0.0
    camera: CameraModel | None = None
    pose_source: str = POSE_SOURCE_VO
    scale_source: str = ""
    frame_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    statuses: list[str] = field(default_factory=list)
    motions: list[StepMotion | None] = field(default_factory=list)
    segments: list[SegmentLabel] = field(default_factory=list)
    dropped: list[tuple[float, int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def status_counts(self) -> dict[str, int]:
        """Number of labelled frames per step status."""
        out: dict[str, int] = {}
        for status in self.statuses:
            out[status] = out.get(status, 0) + 1
        return out


def _working_grey(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if (grey.shape[1], grey.shape[0]) != size:
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def _pose_track(
    path: Path, times_s: np.ndarray, what: str, tum_frame: str
) -> tuple[np.ndarray, np.ndarray]:
    """Planar poses of ``path`` at ``times_s``: ``(inside (M,) bool, poses (M, 3))``."""
    stamps, poses = read_pose_file(path, tum_frame=tum_frame)
    query = np.round(np.asarray(times_s) * NS_PER_S).astype(np.int64)
    inside = (query >= stamps[0]) & (query <= stamps[-1])
    if not inside.any():
        raise S2EError(
            f"{what} {path}: covers {stamps[0] / NS_PER_S:.2f}-{stamps[-1] / NS_PER_S:.2f} s, "
            f"the video {times_s[0]:.2f}-{times_s[-1]:.2f} s; expected overlapping times "
            f"(seconds on the video clock, 0 = first frame)"
        )
    out = np.full((len(query), 3), np.nan)
    out[inside] = interpolate_poses(stamps, poses, query[inside])
    return inside, out


def _segment_frames(stream: Iterator[tuple[int, np.ndarray]], count: int) -> Iterator[np.ndarray]:
    for _number, rgb in itertools.islice(stream, count):
        yield rgb


def label_video(
    video: Path,
    out: Path,
    config: LabelConfig,
    *,
    calibration: Path | None = None,
    scale_file: Path | None = None,
    poses_file: Path | None = None,
    tum_frame: str = "world",
    progress: bool = True,
    name: str | None = None,
) -> VideoLabels:
    """Label one video into GNM folders ``out/<name>_<k>/`` (one per kept segment).

    Args:
        video: any file OpenCV decodes.
        out: output root (created).
        config: thresholds and rates.
        calibration: ROS camera_calibration YAML; default: ``config.default_hfov_deg``.
        scale_file: GPS/odometry poses giving the step lengths (CSV or TUM).
        poses_file: external poses (CSV or TUM) used instead of the visual odometry.
        tum_frame: how TUM files are read (``"world"`` or ``"camera"``).
        progress: show progress bars.
        name: folder prefix (default: the video's file stem).

    Returns:
        :class:`VideoLabels` (``error`` stays ``None``: failures raise).

    Raises:
        S2EError: unreadable or empty video, bad calibration, a pose/scale file that does not
            overlap the video in time, or an ``--fps`` above the video's rate.
    """
    video, out = Path(video), Path(out)
    labels = VideoLabels(video=video, name=name or video.stem)
    info = labels.info = probe_video(video)
    if info.variable_rate:
        labels.warnings.append(
            "variable frame rate: frames are picked by their container timestamps"
        )
    numbers = labels.frame_numbers = select_frames(info.frame_times_s, config.label_fps)
    times = info.frame_times_s[numbers]
    labels.rate_hz = config.label_fps
    camera = labels.camera = camera_for_video(
        info.width, info.height, calibration, config.default_hfov_deg
    )
    if calibration is None:
        labels.warnings.append(
            f"no calibration: assuming a {config.default_hfov_deg:g} deg horizontal field of view"
        )
    shrink = min(1.0, config.working_width_px / info.width)
    size = (round(info.width * shrink), round(info.height * shrink))
    tracker = FrameTracker(camera.scaled(*size), config)
    checks = FrameChecks(config)
    external = None
    if poses_file is not None:
        labels.pose_source = POSE_SOURCE_FILE
        labels.scale_source = str(poses_file)
        external = _pose_track(Path(poses_file), times, "pose file", tum_frame)
    frames = iter_selected(video, numbers)
    bar = tqdm(frames, total=len(numbers), desc=f"track {video.name}", disable=not progress,
               unit="frame")
    for k, (_number, rgb) in enumerate(bar):
        grey = _working_grey(rgb, size)
        motion = None if external is not None else tracker.step(grey)
        status = None if k == 0 else (STEP_OK if motion is None else motion.status)
        override = checks.check(grey, status)
        labels.statuses.append(override or status or STEP_OK)
        labels.motions.append(motion)
    bar.close()
    if len(labels.statuses) != len(numbers):
        raise S2EError(f"video {video}: decoded {len(labels.statuses)} of {len(numbers)} frames")

    if external is not None:
        inside, track = external
    elif scale_file is not None:
        labels.scale_source = str(scale_file)
        inside, track = _pose_track(Path(scale_file), times, "scale file", tum_frame)
    else:
        labels.scale_source = f"speed prior {config.speed_prior_mps:g} m/s"
        inside, track = np.ones(len(times), dtype=bool), None
    for k in np.flatnonzero(~inside):
        labels.statuses[k] = STEP_OUTSIDE_POSES
    if not inside.all():
        labels.warnings.append(
            f"{int((~inside).sum())} labelled frames outside the pose/scale file's time range"
        )
    if track is not None and external is None:
        lengths = np.linalg.norm(np.diff(track[:, :2], axis=0), axis=1)
    else:
        lengths = np.diff(times) * config.speed_prior_mps

    kept, dropped = split_segments(labels.statuses, config.min_segment_frames)
    labels.dropped = [(float(times[s.start]), len(s), reason) for s, reason in dropped]
    labels.segments = [
        _label_segment(labels, seg, k, out, lengths, track, config)
        for k, seg in enumerate(kept)
    ]
    _write_segments(labels, kept, progress)
    return labels


def _label_segment(
    labels: VideoLabels,
    segment: Segment,
    index: int,
    out: Path,
    lengths: np.ndarray,
    track: np.ndarray | None,
    config: LabelConfig,
) -> SegmentLabel:
    times = labels.info.frame_times_s[labels.frame_numbers]
    folder = out / f"{labels.name}_{index:03d}"
    first = int(labels.frame_numbers[segment.start])
    if labels.pose_source == POSE_SOURCE_FILE:
        poses = track[segment.start:segment.stop].copy()
        poses[:, :2] -= poses[0, :2]
        return SegmentLabel(folder, first, float(times[segment.start]), poses, 1.0,
                            float("nan"), "external poses")
    steps: Sequence[StepMotion] = labels.motions[segment.start + 1:segment.stop]
    pitch, source = estimate_pitch(steps)
    poses = ground_track(steps, lengths[segment.start:segment.stop - 1], pitch)
    poses[:, 2] = wrap_angle(poses[:, 2])
    return SegmentLabel(folder, first, float(times[segment.start]), poses,
                        segment_confidence(steps, config), float(np.degrees(pitch)), source)


def _write_segments(labels: VideoLabels, kept: Sequence[Segment], progress: bool) -> None:
    if not kept:
        return
    wanted = np.concatenate([labels.frame_numbers[s.start:s.stop] for s in kept])
    stream = iter_selected(labels.video, wanted)
    total = int(sum(len(s) for s in kept))
    with tqdm(total=total, desc=f"write {labels.video.name}", disable=not progress,
              unit="frame") as bar:
        for segment_label in labels.segments:
            written = write_gnm(
                segment_label.folder,
                _segment_frames(stream, segment_label.frames),
                list(segment_label.poses),
            )
            bar.update(written)


def label_videos(
    videos: Sequence[Path], out: Path, config: LabelConfig, **options: object
) -> list[VideoLabels]:
    """Label each video with :func:`label_video`; one failing video does not stop the others.

    ``scale_files`` / ``poses_files`` / ``speeds_mps`` in ``options`` are per-video lists
    (same length as ``videos``) or ``None``; a per-video speed replaces
    ``config.speed_prior_mps`` for that video. The remaining options go to
    :func:`label_video` unchanged.

    Returns:
        One :class:`VideoLabels` per video, in order; a failed video has ``error`` set.
    """
    scale_files = options.pop("scale_files", None) or [None] * len(videos)
    poses_files = options.pop("poses_files", None) or [None] * len(videos)
    speeds = options.pop("speeds_mps", None) or [config.speed_prior_mps] * len(videos)
    per_video = (("scale files", scale_files), ("pose files", poses_files), ("speeds", speeds))
    for name, values in per_video:
        if len(values) != len(videos):
            raise S2EError(f"{name}: {len(values)} given for {len(videos)} videos; expected one "
                           f"per video, in the same order")
    names: list[str] = []
    for video in videos:
        stem = Path(video).stem
        names.append(stem if stem not in names else f"{stem}_{len(names)}")
    results = []
    for video, name, scale_file, poses_file, speed in zip(
        videos, names, scale_files, poses_files, speeds, strict=True
    ):
        try:
            video_config = dataclasses.replace(config, speed_prior_mps=float(speed))
            results.append(label_video(video, out, video_config, scale_file=scale_file,
                                       poses_file=poses_file, name=name, **options))
        except S2EError as exc:
            results.append(VideoLabels(video=Path(video), error=str(exc)))
    return results
