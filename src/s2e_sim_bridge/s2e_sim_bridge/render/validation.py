"""Checks on renderer inputs and the error they raise.

Every check raises :class:`RenderError` (an :class:`~s2e_policy.errors.S2EError`) whose message
names the argument and what was expected, so the ``s2e`` command line prints one clear line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2e_policy.errors import S2EError

ORTHONORMAL_TOL = 1e-3
"""Largest ``|R R^T - I|`` entry accepted for the rotation block of a view matrix."""


class RenderError(S2EError):
    """Bad renderer input (camera, image size, backend) or an unavailable backend."""


def check_image_size(width: int, height: int) -> tuple[int, int]:
    """Return ``(width, height)`` as ints after checking they are positive integers."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise RenderError(f"render: {name} must be a positive integer (pixels), got {value!r}")
    return int(width), int(height)


def check_viewmat(viewmat: np.ndarray, name: str = "viewmat") -> np.ndarray:
    """Validate one world-to-camera matrix; return it as ``(4, 4)`` float64.

    Expected: finite, last row ``[0, 0, 0, 1]``, orthonormal rotation block with det +1.
    """
    mat = np.asarray(viewmat, dtype=np.float64)
    if mat.shape != (4, 4):
        raise RenderError(f"render: {name} must be a 4x4 world-to-camera matrix, got {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise RenderError(f"render: {name} contains NaN or infinite values")
    if not np.allclose(mat[3], (0.0, 0.0, 0.0, 1.0)):
        raise RenderError(f"render: {name} last row must be [0, 0, 0, 1], got {mat[3].tolist()}")
    rot = mat[:3, :3]
    if np.abs(rot @ rot.T - np.eye(3)).max() > ORTHONORMAL_TOL or np.linalg.det(rot) < 0:
        raise RenderError(f"render: {name} rotation block is not a proper rotation (R R^T != I)")
    return mat


def check_intrinsics(K: np.ndarray, name: str = "K") -> np.ndarray:
    """Validate one pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (pixels).

    Returns it as ``(3, 3)`` float64. Skew must be zero (gsplat ignores it).
    """
    mat = np.asarray(K, dtype=np.float64)
    if mat.shape != (3, 3):
        raise RenderError(f"render: {name} must be a 3x3 intrinsics matrix, got {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise RenderError(f"render: {name} contains NaN or infinite values")
    if mat[0, 0] <= 0 or mat[1, 1] <= 0:
        raise RenderError(
            f"render: {name} focal lengths fx, fy must be > 0, got {mat[0, 0]}, {mat[1, 1]}"
        )
    if mat[0, 1] != 0 or mat[1, 0] != 0 or not np.allclose(mat[2], (0.0, 0.0, 1.0)):
        raise RenderError(f"render: {name} must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
    return mat


def check_clip_planes(near: float, far: float) -> tuple[float, float]:
    """Return ``(near, far)`` after checking ``0 < near < far`` (metres, finite)."""
    near_f, far_f = float(near), float(far)
    if not (np.isfinite(near_f) and np.isfinite(far_f) and 0.0 < near_f < far_f):
        raise RenderError(
            f"render: need finite 0 < near < far (metres), got near={near}, far={far}"
        )
    return near_f, far_f


def check_background(background: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return the background colour as ``(3,)`` float64 after checking it is finite RGB."""
    bg = np.asarray(background, dtype=np.float64)
    if bg.shape != (3,) or not np.all(np.isfinite(bg)):
        raise RenderError(f"render: background must be 3 finite RGB values, got {background!r}")
    return bg
