"""Checks on renderer inputs and the error they raise.

Every check raises :class:`RenderError` (an :class:`~s2e_policy.errors.S2EError`) whose message
names the argument and what was expected, so the ``s2e`` command line prints one clear line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from s2e_policy.errors import S2EError

ORTHONORMAL_TOL = 1e-3
"""Largest ``|R R^T - I|`` entry accepted for the rotation block of a view matrix."""

CLOSE_RTOL = 1e-5
"""Relative tolerance of the fixed rows of camera matrices (``numpy.allclose``'s default)."""

CLOSE_ATOL = 1e-8
"""Absolute tolerance of the fixed rows of camera matrices (``numpy.allclose``'s default)."""

# What _viewmat_problem / _intrinsics_problem found (0: nothing).
_OK, _NOT_FINITE, _BAD_LAST_ROW, _NOT_ROTATION, _BAD_FOCAL = range(5)


class RenderError(S2EError):
    """Bad renderer input (camera, image size, backend) or an unavailable backend."""


def check_image_size(width: int, height: int) -> tuple[int, int]:
    """Return ``(width, height)`` as ints after checking they are positive integers."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise RenderError(f"render: {name} must be a positive integer (pixels), got {value!r}")
    return int(width), int(height)


def _close(value: float, expected: float) -> bool:
    """``numpy.isclose(value, expected)`` with its default tolerances, for finite scalars."""
    return abs(value - expected) <= CLOSE_ATOL + CLOSE_RTOL * abs(expected)


def _viewmat_problem(mat: np.ndarray) -> int:
    """First problem of a ``(4, 4)`` float64 view matrix (``_OK`` when there is none).

    Scalar Python on the 16 entries (it runs every frame; numpy calls on 4x4 arrays cost
    more than the arithmetic): finiteness, the last row ``[0, 0, 0, 1]`` within the
    ``numpy.allclose`` tolerances, ``max |R R^T - I| <= ORTHONORMAL_TOL`` and ``det R >= 0``.
    """
    a, b, c, _, d, e, f, _, g, h, k, _, w0, w1, w2, w3 = flat = mat.ravel().tolist()
    if not all(map(math.isfinite, flat)):
        return _NOT_FINITE
    if not (_close(w0, 0.0) and _close(w1, 0.0) and _close(w2, 0.0) and _close(w3, 1.0)):
        return _BAD_LAST_ROW
    gram = (a * a + b * b + c * c - 1.0, d * d + e * e + f * f - 1.0,
            g * g + h * h + k * k - 1.0, a * d + b * e + c * f, a * g + b * h + c * k,
            d * g + e * h + f * k)  # R R^T - I (upper triangle)
    if max(map(abs, gram)) > ORTHONORMAL_TOL:
        return _NOT_ROTATION
    det = a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g)
    return _NOT_ROTATION if det < 0.0 else _OK


def check_viewmat(viewmat: np.ndarray, name: str = "viewmat") -> np.ndarray:
    """Validate one world-to-camera matrix; return it as ``(4, 4)`` float64.

    Expected: finite, last row ``[0, 0, 0, 1]``, orthonormal rotation block with det +1.
    """
    mat = np.asarray(viewmat, dtype=np.float64)
    if mat.shape != (4, 4):
        raise RenderError(f"render: {name} must be a 4x4 world-to-camera matrix, got {mat.shape}")
    problem = _viewmat_problem(mat)
    if problem == _NOT_FINITE:
        raise RenderError(f"render: {name} contains NaN or infinite values")
    if problem == _BAD_LAST_ROW:
        raise RenderError(f"render: {name} last row must be [0, 0, 0, 1], got {mat[3].tolist()}")
    if problem == _NOT_ROTATION:
        raise RenderError(f"render: {name} rotation block is not a proper rotation (R R^T != I)")
    return mat


def _intrinsics_problem(mat: np.ndarray) -> int:
    """First problem of a ``(3, 3)`` float64 pinhole matrix (``_OK`` when there is none)."""
    fx, skew, _, skew_y, fy, _, w0, w1, w2 = flat = mat.ravel().tolist()
    if not all(map(math.isfinite, flat)):
        return _NOT_FINITE
    if fx <= 0.0 or fy <= 0.0:
        return _BAD_FOCAL
    if skew != 0.0 or skew_y != 0.0 or not (
            _close(w0, 0.0) and _close(w1, 0.0) and _close(w2, 1.0)):
        return _BAD_LAST_ROW
    return _OK


def check_intrinsics(K: np.ndarray, name: str = "K") -> np.ndarray:
    """Validate one pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (pixels).

    Returns it as ``(3, 3)`` float64. Skew must be zero (gsplat ignores it).
    """
    mat = np.asarray(K, dtype=np.float64)
    if mat.shape != (3, 3):
        raise RenderError(f"render: {name} must be a 3x3 intrinsics matrix, got {mat.shape}")
    problem = _intrinsics_problem(mat)
    if problem == _NOT_FINITE:
        raise RenderError(f"render: {name} contains NaN or infinite values")
    if problem == _BAD_FOCAL:
        raise RenderError(
            f"render: {name} focal lengths fx, fy must be > 0, got {mat[0, 0]}, {mat[1, 1]}"
        )
    if problem == _BAD_LAST_ROW:
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
