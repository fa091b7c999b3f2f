"""Pinhole camera of a video: a ROS ``camera_calibration`` YAML, or a default from the FOV.

The calibration file is the YAML that ROS ``camera_calibration`` writes (and
``camera_info_manager`` reads)::

    image_width: 752
    image_height: 480
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}

A calibration made at another resolution with the same aspect ratio is scaled to the video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from s2e_policy.errors import S2EError
from s2e_policy.yaml_files import read_yaml
from s2e_sim_bridge.render.camera import intrinsics_from_fov
from s2e_sim_bridge.render.validation import RenderError

ASPECT_TOLERANCE = 0.01
"""Largest relative aspect-ratio difference between calibration and video that is scaled."""

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "none")
"""Distortion models understood (OpenCV's polynomial model; ``none`` = no distortion)."""


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics with optional OpenCV polynomial distortion.

    Attributes:
        K: float64 ``(3, 3)`` ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels.
        distortion: float64 ``(D,)`` OpenCV coefficients ``k1, k2, p1, p2[, k3...]``
            (``D = 0``: none).
        width: image width, pixels.
        height: image height, pixels.
        source: where it came from (the calibration path or ``"default hfov ..."``).
    """

    K: np.ndarray
    distortion: np.ndarray
    width: int
    height: int
    source: str

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width x height`` pixels."""
        sx, sy = width / self.width, height / self.height
        k = self.K.copy()
        k[0] *= sx
        k[1] *= sy
        return CameraModel(k, self.distortion, width, height, self.source)

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels ``(N, 2)`` -> float64 normalised image coordinates ``(N, 2)`` (z = 1)."""
        pts = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        if pts.shape[0] == 0:
            return np.zeros((0, 2))
        dist = self.distortion if self.distortion.size else None
        return cv2.undistortPoints(pts, self.K, dist).reshape(-1, 2)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points ``(N, 3)`` (OpenCV axes, z > 0) -> pixels ``(N, 2)``.

        Distortion is ignored (drawing only).
        """
        pts = np.asarray(points_cam, dtype=np.float64)
        uv = pts[:, :2] / pts[:, 2:3]
        return uv @ self.K[:2, :2].T + self.K[:2, 2]


def default_camera(width: int, height: int, hfov_deg: float) -> CameraModel:
    """Camera with square pixels, centred principal point and no distortion."""
    try:
        k = intrinsics_from_fov(width, height, hfov_deg)
    except RenderError as exc:
        raise S2EError(f"default camera: {exc}") from None
    return CameraModel(k, np.zeros(0), int(width), int(height), f"default hfov {hfov_deg:g} deg")


def _matrix(data: object, path: Path, key: str, size: int | None) -> np.ndarray:
    values = data.get("data") if isinstance(data, dict) else data
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        array = np.zeros(0)
    if (size is not None and array.size != size) or not np.all(np.isfinite(array)):
        expected = f"{size} finite numbers" if size else "finite numbers"
        raise S2EError(f"calibration {path}: '{key}' must hold {expected} (as 'data: [...]')")
    return array


def read_calibration(path: Path) -> CameraModel:
    """Read a ROS ``camera_calibration`` YAML (see the module docstring).

    Raises:
        S2EError: unreadable file, missing/ill-shaped keys, non-positive focal lengths or
            image size, or an unknown distortion model (names the file and key).
    """
    path = Path(path)
    data = read_yaml(path, "camera calibration")
    if not isinstance(data, dict):
        raise S2EError(f"calibration {path}: expected a mapping (ROS camera_calibration YAML)")
    missing = [k for k in ("image_width", "image_height", "camera_matrix") if k not in data]
    if missing:
        raise S2EError(
            f"calibration {path}: missing key(s) {', '.join(missing)}; expected a ROS "
            f"camera_calibration YAML (image_width, image_height, camera_matrix, ...)"
        )
    try:
        width, height = int(data["image_width"]), int(data["image_height"])
    except (TypeError, ValueError):
        width = height = 0
    if width <= 0 or height <= 0:
        raise S2EError(f"calibration {path}: image_width/image_height must be positive integers")
    k = _matrix(data["camera_matrix"], path, "camera_matrix", 9).reshape(3, 3)
    if k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1.0:
        raise S2EError(
            f"calibration {path}: camera_matrix must be [fx, 0, cx, 0, fy, cy, 0, 0, 1] with "
            f"fx, fy > 0"
        )
    model = str(data.get("distortion_model", "none"))
    if model not in DISTORTION_MODELS:
        raise S2EError(
            f"calibration {path}: distortion_model '{model}' not supported; expected one of "
            f"{', '.join(DISTORTION_MODELS)}"
        )
    distortion = np.zeros(0)
    if model != "none" and "distortion_coefficients" in data:
        distortion = _matrix(data["distortion_coefficients"], path, "distortion_coefficients",
                             None)
    return CameraModel(k, distortion, width, height, str(path))


def camera_for_video(
    width: int, height: int, calibration: Path | None, default_hfov_deg: float
) -> CameraModel:
    """The camera of a ``width x height`` video: the calibration scaled to it, or the default.

    Raises:
        S2EError: the calibration's aspect ratio differs from the video's.
    """
    if calibration is None:
        return default_camera(width, height, default_hfov_deg)
    camera = read_calibration(calibration)
    if (camera.width, camera.height) == (width, height):
        return camera
    aspect_video, aspect_cal = width / height, camera.width / camera.height
    if abs(aspect_video / aspect_cal - 1.0) > ASPECT_TOLERANCE:
        raise S2EError(
            f"calibration {calibration}: made for {camera.width}x{camera.height}, the video is "
            f"{width}x{height} (different aspect ratio); expected a calibration of this video"
        )
    return camera.scaled(width, height)
