"""Rigid + uniform-scale transforms of Gaussian scenes, and merging scenes.

:func:`transform_scene` is the one primitive behind scene alignment (scene YAML) and object
placement. Quaternions are ``w x y z`` and act body -> world, as in
:class:`~s2e_sim_bridge.scene.gaussians.GaussianScene`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from s2e_sim_bridge.scene.gaussians import GaussianScene, SceneFormatError
from s2e_sim_bridge.scene.sh import pad_sh, rotate_sh

# A rotation matrix given by a user must satisfy R^T R = I and det R = 1 to this tolerance.
ROTATION_TOLERANCE = 1e-4


def quat_multiply(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Hamilton product ``q1 * q2`` of ``(..., 4)`` w x y z quaternions (broadcasting)."""
    w1, x1, y1, z1 = np.moveaxis(np.asarray(q1, dtype=np.float64), -1, 0)
    w2, x2, y2, z2 = np.moveaxis(np.asarray(q2, dtype=np.float64), -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def quats_to_rotmats(quats: np.ndarray) -> np.ndarray:
    """``(..., 4)`` w x y z quaternions (normalised here) -> ``(..., 3, 3)`` float64 matrices."""
    q = np.asarray(quats, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def rotmats_to_quats(mats: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 4)`` float64 unit w x y z quaternions, w >= 0.

    Uses the largest of the four candidate denominators per matrix (Shepperd's method), so it
    is stable for every rotation including half turns.
    """
    m = np.asarray(mats, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 * (w^2, x^2, y^2, z^2): pick the largest component to divide by.
    cand = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
        axis=-1,
    )
    best = np.argmax(cand, axis=-1)
    s = 2.0 * np.sqrt(np.maximum(np.take_along_axis(cand, best[..., None], -1)[..., 0], 1e-300))
    d21, s21 = m[..., 2, 1] - m[..., 1, 2], m[..., 2, 1] + m[..., 1, 2]
    d02, s02 = m[..., 0, 2] - m[..., 2, 0], m[..., 0, 2] + m[..., 2, 0]
    d10, s10 = m[..., 1, 0] - m[..., 0, 1], m[..., 1, 0] + m[..., 0, 1]
    options = np.stack(
        [
            np.stack([s / 4, d21 / s, d02 / s, d10 / s], -1),
            np.stack([d21 / s, s / 4, s10 / s, s02 / s], -1),
            np.stack([d02 / s, s10 / s, s / 4, s21 / s], -1),
            np.stack([d10 / s, s02 / s, s21 / s, s / 4], -1),
        ],
        axis=-2,
    )
    q = np.take_along_axis(options, best[..., None, None], -2)[..., 0, :]
    q = np.where(q[..., :1] < 0, -q, q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def yaw_rotation(yaw_rad: float) -> np.ndarray:
    """``(3, 3)`` float64 rotation by ``yaw_rad`` about world +z (counter-clockwise from above)."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def check_rotation(rotation: np.ndarray, what: str) -> np.ndarray:
    """Validate a ``(3, 3)`` proper rotation matrix; returns it as float64.

    Raises:
        SceneFormatError: naming ``what`` when the shape is wrong, a value is not finite, or
            ``R^T R != I`` / ``det R != 1`` beyond :data:`ROTATION_TOLERANCE`.
    """
    R = np.asarray(rotation, dtype=np.float64)
    if R.shape != (3, 3):
        raise SceneFormatError(f"{what}: rotation has shape {R.shape}, expected (3, 3)")
    if not np.all(np.isfinite(R)):
        raise SceneFormatError(f"{what}: rotation has non-finite entries")
    orth_err = float(np.max(np.abs(R.T @ R - np.eye(3))))
    if orth_err > ROTATION_TOLERANCE or abs(np.linalg.det(R) - 1.0) > ROTATION_TOLERANCE:
        raise SceneFormatError(
            f"{what}: rotation is not a proper rotation (max |R^T R - I| = {orth_err:.2e}, "
            f"det = {np.linalg.det(R):.4f}; expected orthonormal with det +1)"
        )
    return R


def transform_scene(
    scene: GaussianScene,
    rotation: np.ndarray | None = None,
    translation: np.ndarray | None = None,
    scale: float = 1.0,
) -> GaussianScene:
    """Apply ``p' = scale * R @ p + t`` to every Gaussian, returning a new scene.

    Means are mapped; orientations composed (``q' = q_R * q``); scales multiplied by
    ``scale``; SH bands 1-3 rotated with ``R`` so view-dependent colour follows the scene;
    opacities and the DC colour are unchanged. ``meta`` is copied, ``info`` and the PLY
    encoding are dropped (the caller knows what the new frame means).

    Args:
        scene: the input scene (not modified).
        rotation: ``(3, 3)`` proper rotation matrix (new <- old); identity if None.
        translation: ``(3,)`` offset in the new frame, metres; zero if None.
        scale: uniform scale factor, > 0.

    Returns:
        A new :class:`GaussianScene` with float32 arrays.
    """
    R = np.eye(3) if rotation is None else check_rotation(rotation, "transform_scene")
    t = np.zeros(3) if translation is None else np.asarray(translation, dtype=np.float64)
    if t.shape != (3,) or not np.all(np.isfinite(t)):
        raise SceneFormatError(f"transform_scene: translation must be 3 finite numbers, got {t}")
    if not (np.isfinite(scale) and scale > 0):
        raise SceneFormatError(f"transform_scene: scale must be a finite number > 0, got {scale}")
    means = scale * (scene.means.astype(np.float64) @ R.T) + t
    identity_rotation = np.array_equal(R, np.eye(3))
    if identity_rotation:
        quats, sh = scene.quats.copy(), scene.sh.copy()
    else:
        quats = quat_multiply(rotmats_to_quats(R), scene.quats)
        quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
        sh = rotate_sh(scene.sh, R)
    return GaussianScene(
        means=means,
        quats=quats,
        scales=scene.scales.astype(np.float64) * scale,
        opacities=scene.opacities.copy(),
        sh=sh,
        meta=dict(scene.meta),
    )


def merge_scenes(scenes: list[GaussianScene]) -> GaussianScene:
    """Concatenate scenes that share one world frame.

    SH coefficients are zero-padded to the highest degree among them. The result keeps the
    first scene's ``meta`` and ``info`` (with ``sh_degree`` updated); the PLY encoding is
    dropped.

    Args:
        scenes: one or more scenes.

    Returns:
        A new :class:`GaussianScene` holding ``sum(len(s))`` Gaussians in input order.
    """
    if not scenes:
        raise SceneFormatError("merge_scenes: expected at least one scene")
    degree = max(s.sh_degree for s in scenes)
    first = scenes[0]
    info = first.info
    if info is not None and info.sh_degree != degree:
        info = dataclasses.replace(info, sh_degree=degree)
    return GaussianScene(
        means=np.concatenate([s.means for s in scenes]),
        quats=np.concatenate([s.quats for s in scenes]),
        scales=np.concatenate([s.scales for s in scenes]),
        opacities=np.concatenate([s.opacities for s in scenes]),
        sh=np.concatenate([pad_sh(s.sh, degree) for s in scenes]),
        meta=dict(first.meta),
        info=info,
    )
