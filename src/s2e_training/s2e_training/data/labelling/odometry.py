"""Monocular visual odometry between consecutive labelled frames, and its ground-plane track.

Per step (previous labelled frame -> current one), :class:`FrameTracker`:

1. detects Shi-Tomasi corners in the previous frame and tracks them into the current one with
   pyramidal Lucas-Kanade, keeping tracks whose forward-backward error is small;
2. fits the rotation alone to the tracked bearings (Kabsch, with outlier trimming) and
   measures the *parallax*: a high percentile (near points move most) of the distance, in
   pixels, between the tracked points and the previous points rotated into the current
   view. Without parallax the translation is unobservable (pure rotation, or standing
   still);
3. otherwise fits the essential matrix with RANSAC and recovers ``(R, t)``.

Camera frames are OpenCV's (x right, y down, z forward). ``R`` maps previous-camera
coordinates to current-camera coordinates (``x_cur = R x_prev + t``); a step's
``direction`` is the unit displacement of the camera centre in the *previous* camera frame.

:func:`estimate_pitch` finds the camera pitch from the motion of a segment (the camera is
assumed upright: no roll): translation directions lie in the ground plane, and yaw rotation
axes are the ground normal. :func:`ground_track` levels every step with that pitch and
integrates planar poses ``(x, y, yaw)`` (REP-103: x forward, y left, yaw counter-clockwise),
given a step length per step from the scale source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from s2e_training.data.labelling.camera import CameraModel
from s2e_training.data.labelling.config import LabelConfig

STEP_OK = "ok"
STEP_PURE_ROTATION = "pure rotation"
STEP_TINY_PARALLAX = "tiny parallax"
STEP_FEW_INLIERS = "too few inliers"
STEP_LOST = "tracking lost"
"""Step statuses the tracker returns (quality checks add blur and scene cuts)."""

TRIM_ITERATIONS = 2
"""Rounds of outlier trimming in the rotation-only fit."""

TRIM_MEDIAN_FACTOR = 3.0
"""Rotation-fit residuals above this many medians are trimmed."""

MIN_PITCH_STEPS = 3
"""Steps needed before a pitch estimate is trusted (else the camera is taken as level)."""

MIN_AXIS_ROTATION_DEG = 1.0
"""Rotations smaller than this give no usable axis for the pitch estimate."""


@dataclass(frozen=True)
class StepMotion:
    """Relative motion between two labelled frames.

    Attributes:
        status: one of the ``STEP_*`` names.
        rotation: float64 ``(3, 3)`` previous-to-current camera rotation (identity when lost).
        direction: float64 ``(3,)`` unit camera displacement in the previous camera frame
            (zeros unless ``status == STEP_OK``).
        tracked: corners tracked into the current frame.
        tracked_fraction: ``tracked`` over the corners detected in the previous frame.
        inliers: essential-matrix RANSAC inliers (0 when not fitted).
        parallax_px: rotation-compensated flow (``parallax_percentile``), pixels at the
            working resolution.
    """

    status: str
    rotation: np.ndarray
    direction: np.ndarray
    tracked: int
    tracked_fraction: float
    inliers: int
    parallax_px: float

    @property
    def rotation_deg(self) -> float:
        """Rotation angle of the step, degrees."""
        cos_angle = np.clip((np.trace(self.rotation) - 1.0) / 2.0, -1.0, 1.0)
        return float(np.degrees(np.arccos(cos_angle)))

    @property
    def inlier_fraction(self) -> float:
        """RANSAC inliers over tracked corners (0 when nothing was tracked)."""
        return self.inliers / self.tracked if self.tracked else 0.0


def _bearings(normalised: np.ndarray) -> np.ndarray:
    rays = np.column_stack([normalised, np.ones(len(normalised))])
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def fit_rotation(b0: np.ndarray, b1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``R`` minimising ``sum |b1 - R b0|^2`` over unit bearings ``(N, 3)``.

    Trims residuals above ``TRIM_MEDIAN_FACTOR`` medians ``TRIM_ITERATIONS`` times.

    Returns:
        ``(R, keep)``: float64 ``(3, 3)`` rotation and bool ``(N,)`` kept bearings.
    """
    keep = np.ones(len(b0), dtype=bool)
    rotation = np.eye(3)
    for _ in range(TRIM_ITERATIONS + 1):
        u, _s, vt = np.linalg.svd(b1[keep].T @ b0[keep])
        sign = np.sign(np.linalg.det(u @ vt)) or 1.0
        rotation = u @ np.diag([1.0, 1.0, sign]) @ vt
        residual = np.linalg.norm(b1 - b0 @ rotation.T, axis=1)
        keep = residual <= TRIM_MEDIAN_FACTOR * max(float(np.median(residual[keep])), 1e-12)
    return rotation, keep


class FrameTracker:
    """Feature tracking and relative pose between consecutive greyscale frames.

    Args:
        camera: the camera at the working resolution (the frames passed to :meth:`step`).
        config: thresholds (:class:`LabelConfig`).
    """

    def __init__(self, camera: CameraModel, config: LabelConfig) -> None:
        self.camera = camera
        self.config = config
        self.focal_px = float(np.mean(np.diag(camera.K)[:2]))
        window = (config.flow_window_px, config.flow_window_px)
        self._flow = {"winSize": window, "maxLevel": config.flow_pyramid_levels}
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (the next :meth:`step` starts a new track)."""
        self._previous = None

    def _detect(self, grey: np.ndarray) -> np.ndarray:
        corners = cv2.goodFeaturesToTrack(
            grey, self.config.max_features, self.config.feature_quality,
            self.config.min_feature_distance_px,
        )
        return np.zeros((0, 2), np.float32) if corners is None else corners.reshape(-1, 2)

    def _track(self, prev: np.ndarray, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        p0 = self._detect(prev)
        if len(p0) == 0:
            return p0, p0, 0
        p1, ok1, _ = cv2.calcOpticalFlowPyrLK(prev, grey, p0, None, **self._flow)
        back, ok2, _ = cv2.calcOpticalFlowPyrLK(grey, prev, p1, None, **self._flow)
        error = np.linalg.norm(back - p0, axis=1)
        good = (ok1.ravel() == 1) & (ok2.ravel() == 1)
        good &= error < self.config.max_forward_backward_px
        return p0[good], p1[good], len(p0)

    def step(self, grey: np.ndarray) -> StepMotion | None:
        """Motion from the previous frame to ``grey`` (uint8 ``(H, W)``); ``None`` at the start."""
        prev, self._previous = self._previous, grey
        if prev is None:
            return None
        cfg = self.config
        p0, p1, detected = self._track(prev, grey)
        fraction = len(p0) / detected if detected else 0.0
        lost = StepMotion(STEP_LOST, np.eye(3), np.zeros(3), len(p0), fraction, 0, 0.0)
        if len(p0) < cfg.min_inliers or fraction < cfg.min_tracked_fraction:
            return lost
        n0, n1 = self.camera.undistort(p0), self.camera.undistort(p1)
        b0, b1 = _bearings(n0), _bearings(n1)
        rotation, _keep = fit_rotation(b0, b1)
        rotated = b0 @ rotation.T
        flow = rotated[:, :2] / rotated[:, 2:3] - n1
        magnitude = np.linalg.norm(flow, axis=1) * self.focal_px
        parallax = float(np.percentile(magnitude, cfg.parallax_percentile))
        if parallax < cfg.min_parallax_px:
            angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
            status = STEP_PURE_ROTATION if angle > cfg.pure_rotation_min_deg else STEP_TINY_PARALLAX
            return StepMotion(status, rotation, np.zeros(3), len(p0), fraction, 0, parallax)
        essential, mask = cv2.findEssentialMat(
            n0, n1, focal=1.0, pp=(0.0, 0.0), method=cv2.RANSAC,
            prob=cfg.ransac_confidence, threshold=cfg.ransac_threshold_px / self.focal_px,
        )
        if essential is None or essential.shape != (3, 3):
            return StepMotion(STEP_FEW_INLIERS, rotation, np.zeros(3), len(p0), fraction, 0,
                              parallax)
        inlier = mask.ravel() > 0
        inliers, r, t, _mask = cv2.recoverPose(essential, n0[inlier], n1[inlier])
        if inliers < cfg.min_inliers:
            return StepMotion(STEP_FEW_INLIERS, rotation, np.zeros(3), len(p0), fraction,
                              int(inliers), parallax)
        direction = -r.T @ t.ravel()
        direction /= np.linalg.norm(direction)
        return StepMotion(STEP_OK, r, direction, len(p0), fraction, int(inliers), parallax)


def _rotation_axis(rotation: np.ndarray) -> np.ndarray:
    axis = np.array([
        rotation[2, 1] - rotation[1, 2],
        rotation[0, 2] - rotation[2, 0],
        rotation[1, 0] - rotation[0, 1],
    ])
    norm = np.linalg.norm(axis)
    return axis / norm if norm > 0 else axis


def estimate_pitch(steps: Sequence[StepMotion]) -> tuple[float, str]:
    """Camera pitch (radians, positive looking down) from the motion of upright-camera steps.

    Moving along the ground, the camera centre moves along ``(0, -sin p, cos p)`` in camera
    coordinates; turning, the rotation axis is the ground normal ``(0, -cos p, -sin p)``. The
    median over translation steps is used when there are enough, else the angle-weighted
    median over rotation axes, else 0 (level).

    Returns:
        ``(pitch_rad, source)`` with ``source`` in ``{"translation", "rotation", "assumed
        level"}``.
    """
    moving = [s.direction for s in steps if s.status == STEP_OK]
    if len(moving) >= MIN_PITCH_STEPS:
        d = np.asarray(moving)
        sign = np.where(d[:, 2] >= 0, 1.0, -1.0)
        return float(np.median(np.arctan2(-d[:, 1] * sign, d[:, 2] * sign))), "translation"
    turning = [s for s in steps if s.rotation_deg > MIN_AXIS_ROTATION_DEG]
    if len(turning) >= MIN_PITCH_STEPS:
        axes = np.asarray([_rotation_axis(s.rotation) for s in turning])
        sign = np.where(axes[:, 1] <= 0, 1.0, -1.0)
        pitches = np.arctan2(-axes[:, 2] * sign, -axes[:, 1] * sign)
        weights = np.asarray([s.rotation_deg for s in turning])
        order = np.argsort(pitches)
        cumulative = np.cumsum(weights[order])
        return float(pitches[order][np.searchsorted(cumulative, cumulative[-1] / 2)]), "rotation"
    return 0.0, "assumed level"


def levelling(pitch_rad: float) -> np.ndarray:
    """float64 ``(3, 3)`` rotation from the pitched camera frame to the level camera frame."""
    c, s = np.cos(-pitch_rad), np.sin(-pitch_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def planar_step(step: StepMotion, level: np.ndarray) -> tuple[np.ndarray, float]:
    """Ground-plane motion of one step in the previous robot frame.

    Returns:
        ``(unit_xy, dyaw)``: float64 ``(2,)`` unit direction (x forward, y left; zeros when
        the step has no translation) and the yaw change, radians (counter-clockwise).
    """
    d = level @ step.direction
    xy = np.array([d[2], -d[0]])
    norm = np.linalg.norm(xy)
    unit = xy / norm if norm > 0 else np.zeros(2)
    right = level @ step.rotation.T @ np.array([1.0, 0.0, 0.0])
    return unit, float(np.arctan2(right[2], right[0]))


def ground_track(
    steps: Sequence[StepMotion], step_lengths_m: np.ndarray, pitch_rad: float
) -> np.ndarray:
    """Integrate planar poses over a segment.

    Args:
        steps: the segment's ``K`` steps (frame ``k`` -> ``k + 1``).
        step_lengths_m: float ``(K,)`` ground distance of each step, metres.
        pitch_rad: camera pitch (see :func:`estimate_pitch`).

    Returns:
        float64 ``(K + 1, 3)`` poses ``(x, y, yaw)``, starting at the origin facing +x.
    """
    level = levelling(pitch_rad)
    poses = np.zeros((len(steps) + 1, 3))
    for k, (step, length) in enumerate(zip(steps, step_lengths_m, strict=True)):
        unit, dyaw = planar_step(step, level)
        x, y, yaw = poses[k]
        c, s = np.cos(yaw), np.sin(yaw)
        dx, dy = unit * float(length)
        poses[k + 1] = (x + c * dx - s * dy, y + s * dx + c * dy, yaw + dyaw)
    return poses
