"""Camera helpers: view matrices for a robot camera in the z-up world, and intrinsics.

Conventions (the renderer's): a view matrix is world-to-camera, ``(4, 4)`` float64, OpenCV
camera axes (x right, y down, z forward). The world is the robot world: z up, metres, and a
robot at yaw 0 faces world +x.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from s2e_sim_bridge.render.validation import RenderError, check_image_size

MIN_AXIS_NORM = 1e-9
"""Shortest forward / right vector (metres) that still defines a camera orientation."""

MAX_HFOV_DEG = 179.0
"""Widest horizontal field of view a pinhole camera can represent here (degrees)."""


def _viewmat_from_axes(
    right: Sequence[float], down: Sequence[float], forward: Sequence[float],
    eye: Sequence[float],
) -> np.ndarray:
    """World-to-camera matrix from the camera's axes expressed in the world frame.

    The axes (``(3,)`` sequences of floats) become the rows of the rotation block and the
    translation is ``-R eye``, summed in the order ``x, y, z`` in plain float64 arithmetic
    (no BLAS call, so the bits do not depend on the machine's BLAS kernels).
    """
    r0, r1, r2 = (float(v) for v in right)
    d0, d1, d2 = (float(v) for v in down)
    f0, f1, f2 = (float(v) for v in forward)
    x, y, z = (float(v) for v in eye)
    return np.array([
        [r0, r1, r2, -r0 * x - r1 * y - r2 * z],
        [d0, d1, d2, -d0 * x - d1 * y - d2 * z],
        [f0, f1, f2, -f0 * x - f1 * y - f2 * z],
        [0.0, 0.0, 0.0, 1.0],
    ])


def camera_from_pose(
    x: float, y: float, z: float, yaw: float, pitch: float, roll: float = 0.0
) -> np.ndarray:
    """View matrix of a camera at world ``(x, y, z)`` looking along ``yaw`` and ``pitch``.

    Computed in scalar float64 arithmetic (it runs once per rendered frame): the axes are
    ``forward = (cos p cos y, cos p sin y, -sin p)``, ``right = (sin y, -cos y, 0)``,
    ``down = forward x right``, then both rolled about ``forward``.

    Args:
        x: world x of the optical centre (metres).
        y: world y of the optical centre (metres).
        z: world z (height) of the optical centre (metres).
        yaw: heading about world +z (radians); 0 looks along world +x, pi/2 along +y.
        pitch: elevation (radians); positive looks down, 0 is level.
        roll: rotation about the viewing direction (radians), right-handed about the robot's
            forward axis as in REP-103: positive lifts the camera's left side (a legged
            base's gait sway); 0 keeps camera x horizontal.

    Returns:
        ``(4, 4)`` float64 world-to-camera matrix (OpenCV axes).
    """
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    f0, f1, f2 = cp * cy, cp * sy, -sp
    r0, r1, r2 = sy, -cy, 0.0
    # down = forward x right (the component order of np.cross)
    d0, d1, d2 = f1 * r2 - f2 * r1, f2 * r0 - f0 * r2, f0 * r1 - f1 * r0
    cr, sr = math.cos(roll), math.sin(roll)
    right = (cr * r0 + sr * d0, cr * r1 + sr * d1, cr * r2 + sr * d2)
    down = (-sr * r0 + cr * d0, -sr * r1 + cr * d1, -sr * r2 + cr * d2)
    return _viewmat_from_axes(right, down, (f0, f1, f2), (x, y, z))


def look_at(
    eye: Sequence[float] | np.ndarray,
    target: Sequence[float] | np.ndarray,
    up: Sequence[float] | np.ndarray = (0.0, 0.0, 1.0),
) -> np.ndarray:
    """View matrix of a camera at ``eye`` looking at ``target`` with ``up`` pointing up.

    Args:
        eye: ``(3,)`` world position of the optical centre (metres).
        target: ``(3,)`` world point that lands on the principal point.
        up: ``(3,)`` world direction that appears upward in the image (default world +z).

    Returns:
        ``(4, 4)`` float64 world-to-camera matrix (OpenCV axes).

    Raises:
        RenderError: if ``eye == target`` or the view direction is parallel to ``up``.
    """
    eye_v = np.asarray(eye, dtype=np.float64).reshape(3)
    forward = np.asarray(target, dtype=np.float64).reshape(3) - eye_v
    norm = np.linalg.norm(forward)
    if not norm > MIN_AXIS_NORM:
        raise RenderError(f"look_at: target {target!r} coincides with eye {eye!r}")
    forward /= norm
    right = np.cross(forward, np.asarray(up, dtype=np.float64).reshape(3))
    right_norm = np.linalg.norm(right)
    if not right_norm > MIN_AXIS_NORM:
        raise RenderError(f"look_at: view direction {forward.tolist()} is parallel to up {up!r}")
    right /= right_norm
    down = np.cross(forward, right)
    return _viewmat_from_axes(right, down, forward, eye_v)


def intrinsics_from_fov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole matrix with square pixels for an image of ``width x height`` pixels.

    The principal point is the image centre ``(width / 2, height / 2)`` (pixel centres are at
    ``+0.5``), ``fx = fy = (width / 2) / tan(hfov / 2)``.

    Args:
        width: image width in pixels (> 0).
        height: image height in pixels (> 0).
        hfov_deg: horizontal field of view in degrees, in ``(0, MAX_HFOV_DEG]``.

    Returns:
        ``(3, 3)`` float64 intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
    """
    width, height = check_image_size(width, height)
    if not (math.isfinite(hfov_deg) and 0.0 < hfov_deg <= MAX_HFOV_DEG):
        raise RenderError(
            f"intrinsics_from_fov: hfov_deg must be in (0, {MAX_HFOV_DEG}], got {hfov_deg}"
        )
    focal = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def camera_centre(viewmat: np.ndarray) -> np.ndarray:
    """World position ``(3,)`` float64 of the optical centre of a world-to-camera matrix."""
    mat = np.asarray(viewmat, dtype=np.float64)
    return -mat[:3, :3].T @ mat[:3, 3]
