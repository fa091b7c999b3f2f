"""Quality checks of labelled frames and the split of a video into kept segments.

Each labelled frame after the first gets one *step status*: the tracker's
(:mod:`~s2e_training.data.labelling.odometry`), overridden by ``motion blur`` when the frame's
sharpness (variance of the Laplacian) falls below ``blur_ratio`` of the running median, and by
``scene cut`` when tracking is lost and the grey-level histogram jumps. A segment is a maximal
run of frames joined by ``ok`` steps; a run shorter than ``min_segment_frames`` is dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from s2e_training.data.labelling.config import LabelConfig
from s2e_training.data.labelling.odometry import STEP_LOST, STEP_OK, StepMotion

STEP_BLUR = "motion blur"
STEP_CUT = "scene cut"
STEP_OUTSIDE_POSES = "outside the pose/scale file's time range"
DROP_TOO_SHORT = "segment too short"
"""Reasons added by the quality checks."""

FRAME_REASONS = (STEP_BLUR, STEP_OUTSIDE_POSES)
"""Statuses that condemn the frame itself (dropped alone), not only the step into it."""

HISTOGRAM_BINS = 32
"""Grey-level histogram bins for the scene-cut test."""


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian of a uint8 ``(H, W)`` image (low = blurred)."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def grey_histogram(grey: np.ndarray) -> np.ndarray:
    """float32 ``(HISTOGRAM_BINS, 1)`` normalised grey-level histogram."""
    hist = cv2.calcHist([grey], [0], None, [HISTOGRAM_BINS], [0, 256])
    return hist / max(float(hist.sum()), 1.0)


class FrameChecks:
    """Per-frame blur and scene-cut state over a stream of greyscale frames."""

    def __init__(self, config: LabelConfig) -> None:
        self.config = config
        self._sharpness: deque[float] = deque(maxlen=config.blur_window_frames)
        self._histogram: np.ndarray | None = None

    def check(self, grey: np.ndarray, step_status: str | None) -> str | None:
        """Status override for the step ending at ``grey`` (``None``: keep ``step_status``).

        ``step_status`` is the tracker's status of that step (``None`` for the first frame).
        """
        value = sharpness(grey)
        blurred = bool(self._sharpness) and value < self.config.blur_ratio * float(
            np.median(self._sharpness)
        )
        self._sharpness.append(value)  # blurred ones too: a lasting change is the new normal
        histogram = grey_histogram(grey)
        previous, self._histogram = self._histogram, histogram
        if step_status is None:
            return None
        if step_status == STEP_LOST and previous is not None:
            distance = cv2.compareHist(previous, histogram, cv2.HISTCMP_BHATTACHARYYA)
            if distance > self.config.cut_histogram_distance:
                return STEP_CUT
        return STEP_BLUR if blurred else None


@dataclass(frozen=True)
class Segment:
    """A run of labelled frames ``[start, stop)`` (indices into the labelled frames)."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def split_segments(
    statuses: Sequence[str], min_frames: int
) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    """Split labelled frames at every non-ok step.

    A frame whose status is one of :data:`FRAME_REASONS` is dropped on its own; any other
    non-ok status only cuts the link to the previous frame (the frame starts the next run).

    Args:
        statuses: status of the step *into* each labelled frame; ``statuses[0]`` belongs to
            the first frame and is ignored (there is no step into it).
        min_frames: shorter runs are dropped.

    Returns:
        ``(kept, dropped)``: kept segments, and dropped runs with the reason (the status that
        ended the run before them counts as why they start; a short run is ``DROP_TOO_SHORT``).
    """
    kept: list[Segment] = []
    dropped: list[tuple[Segment, str]] = []
    start = 0
    for i in range(len(statuses) + 1):
        bad_frame = i < len(statuses) and statuses[i] in FRAME_REASONS
        if i < len(statuses) and (i == 0 or statuses[i] == STEP_OK) and not bad_frame:
            continue
        run = Segment(start, i)
        if len(run) >= min_frames:
            kept.append(run)
        elif len(run):
            dropped.append((run, DROP_TOO_SHORT))
        start = i
        if bad_frame:
            dropped.append((Segment(i, i + 1), statuses[i]))
            start = i + 1
    return kept, dropped


def segment_confidence(steps: Sequence[StepMotion], config: LabelConfig) -> float:
    """Confidence in ``[0, 1]`` of a kept segment's trajectory.

    The median RANSAC inlier fraction times the median parallax relative to
    ``good_parallax_px`` (capped at 1): many consistent tracks with clear parallax give 1.
    """
    if not steps:
        return 0.0
    inliers = float(np.median([s.inlier_fraction for s in steps]))
    parallax = float(np.median([s.parallax_px for s in steps]))
    return inliers * min(1.0, parallax / config.good_parallax_px)
