"""Streaming access to a video: probe (frame times, size), pick labelled frames, decode.

Decoding goes through :func:`s2e_training.data.video.iter_video_frames` (one frame in memory
at a time). The probe is a grab-only pass that reads the container's presentation time of
every frame, so variable-frame-rate videos are labelled on their real clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from s2e_policy.errors import S2EError
from s2e_training.data.video import iter_video_frames, open_video

MS_PER_S = 1000.0
"""Milliseconds per second (OpenCV reports presentation times in ms)."""

VFR_JITTER_FRACTION = 0.25
"""Frame intervals deviating from the median by more than this fraction mean variable rate."""


@dataclass(frozen=True)
class VideoInfo:
    """What the probe learnt about a video.

    Attributes:
        path: the video file.
        width: frame width, pixels.
        height: frame height, pixels.
        frame_times_s: float64 ``(N,)`` presentation time of each frame, seconds from the
            first frame (from the container; ``number / fps`` when it has none).
        declared_fps: frame rate the container declares, Hz.
        variable_rate: the frame intervals are not constant.
    """

    path: Path
    width: int
    height: int
    frame_times_s: np.ndarray
    declared_fps: float
    variable_rate: bool

    @property
    def frames(self) -> int:
        """Number of decodable frames."""
        return len(self.frame_times_s)

    @property
    def duration_s(self) -> float:
        """Time from the first to the last frame, seconds."""
        return float(self.frame_times_s[-1]) if self.frames else 0.0


def probe_video(path: Path) -> VideoInfo:
    """Grab every frame header of ``path`` (no colour conversion) and read its timing.

    Raises:
        S2EError: missing or unreadable file, no frames, or no frame rate (names the file).
    """
    path = Path(path)
    with open_video(path) as capture:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        times_ms = []
        while capture.grab():
            times_ms.append(float(capture.get(cv2.CAP_PROP_POS_MSEC)))
    if not times_ms:
        raise S2EError(f"video {path}: zero frames (empty or unreadable video)")
    if not np.isfinite(fps) or fps <= 0:
        raise S2EError(f"video {path}: the container declares no frame rate")
    times = np.asarray(times_ms) / MS_PER_S
    times -= times[0]
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        times = np.arange(len(times)) / fps  # container without usable timestamps
    intervals = np.diff(times)
    variable = bool(
        len(intervals) > 1
        and np.max(np.abs(intervals / np.median(intervals) - 1.0)) > VFR_JITTER_FRACTION
    )
    return VideoInfo(path, width, height, times, fps, variable)


def select_frames(frame_times_s: np.ndarray, label_fps: float) -> np.ndarray:
    """int64 ``(M,)`` frame numbers nearest to the times ``0, 1/fps, 2/fps, ...``.

    Raises:
        S2EError: ``label_fps`` is above the video's frame rate (frames would repeat).
    """
    times = np.asarray(frame_times_s, dtype=np.float64)
    if len(times) > 1:
        video_fps = (len(times) - 1) / (times[-1] - times[0])
        if label_fps > video_fps * (1.0 + VFR_JITTER_FRACTION):
            raise S2EError(
                f"--fps {label_fps:g}: expected at most the video's frame rate "
                f"({video_fps:.2f} Hz)"
            )
    grid = np.arange(0.0, times[-1] + 0.5 / label_fps, 1.0 / label_fps)
    right = np.clip(np.searchsorted(times, grid), 1, max(len(times) - 1, 1))
    left = right - 1
    nearest = np.where(np.abs(times[left] - grid) <= np.abs(times[right] - grid), left, right)
    return np.unique(nearest if len(times) > 1 else np.zeros(1, dtype=np.int64))


def iter_selected(path: Path, numbers: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(frame_number, rgb)`` for the sorted frame ``numbers`` only (uint8 RGB)."""
    wanted = iter(np.asarray(numbers, dtype=np.int64).tolist())
    target = next(wanted, None)
    if target is None:
        return
    for number, rgb in iter_video_frames(path):
        if number == target:
            yield number, rgb
            target = next(wanted, None)
            if target is None:
                return
