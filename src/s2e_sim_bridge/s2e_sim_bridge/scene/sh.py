"""Real spherical harmonics as used by INRIA 3DGS and gsplat, and their rotation.

One definition shared by the renderer, the loaders and the tests. The basis is the real SH
basis of the INRIA ``sh_utils.py`` / gsplat ``spherical_harmonics`` (same constants, same
signs and order), up to degree 3. A view-dependent colour is
``rgb = max(eval_sh(sh, dirs) + 0.5, 0)`` where ``dirs`` point from the camera to the
Gaussian; the ``+ 0.5`` and the clamp belong to the renderer.
"""

from __future__ import annotations

import numpy as np

from s2e_sim_bridge.scene.gaussians import SceneFormatError, sh_degree_from_coeffs

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
MAX_SH_DEGREE = 3
# Directions at which the rotation of one SH band is fitted: a Fibonacci sphere with many more
# points than the 2l+1 <= 7 coefficients of a band, so the least-squares fit is exact (the
# rotated function lies in the same band) and well conditioned.
_FIT_DIRECTIONS = 64


def sh_basis(dirs: np.ndarray, degree: int = MAX_SH_DEGREE) -> np.ndarray:
    """Values of the real SH basis functions at unit directions.

    Args:
        dirs: ``(..., 3)`` unit directions (x, y, z) in the frame the coefficients live in.
        degree: highest degree to evaluate (0-3).

    Returns:
        ``(..., (degree+1)^2)`` basis values in INRIA / gsplat coefficient order, float32 for
        float32 directions and float64 otherwise.
    """
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree {degree} not in 0..{MAX_SH_DEGREE}")
    d = np.asarray(dirs)
    d = d if d.dtype in (np.float32, np.float64) else d.astype(np.float64)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    out = [np.full(x.shape, SH_C0, dtype=d.dtype)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return np.stack(out, axis=-1)


def eval_sh(sh: np.ndarray, dirs: np.ndarray, degree: int | None = None) -> np.ndarray:
    """Evaluate per-Gaussian SH colours along viewing directions (numpy reference).

    Args:
        sh: ``(N, K, 3)`` coefficients, ``K = (deg+1)^2``, RGB channels last.
        dirs: ``(N, 3)`` viewing directions (camera -> Gaussian) in the same frame as the
            coefficients; normalised here (a zero vector evaluates the DC term only).
        degree: evaluate only bands ``0..degree`` (default: all stored bands).

    Returns:
        ``(N, 3)`` float32 SH sums, without the renderer's ``+ 0.5`` offset and clamp.
    """
    sh = np.asarray(sh)
    stored = sh_degree_from_coeffs(sh.shape[1])
    degree = stored if degree is None else degree
    if not 0 <= degree <= stored:
        raise ValueError(f"cannot evaluate SH degree {degree} from degree-{stored} coefficients")
    d = np.asarray(dirs, dtype=np.float32)
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    d = np.divide(d, norm, out=np.zeros_like(d), where=norm > 0)
    basis = sh_basis(d, degree)
    num = (degree + 1) ** 2
    return np.einsum("nk,nkc->nc", basis, sh[:, :num].astype(np.float32), optimize=True)


def _fibonacci_sphere(num: int) -> np.ndarray:
    """``(num, 3)`` float64 near-uniform unit directions (deterministic)."""
    i = np.arange(num, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * i / num
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)


def sh_rotation_matrices(rotation: np.ndarray, degree: int = MAX_SH_DEGREE) -> list[np.ndarray]:
    """Per-band matrices that rotate SH coefficients with a 3D rotation.

    For band ``l`` the matrix ``M_l`` ((2l+1, 2l+1)) satisfies, for every direction ``d``,
    ``Y_l(d) @ (M_l @ c) = Y_l(R^T d) @ c``: the function described by the rotated
    coefficients, seen along ``d``, equals the original seen along the un-rotated direction.
    It is fitted by least squares on a fixed direction set; since rotation maps a band onto
    itself the fit is exact up to float64 round-off.

    Args:
        rotation: ``(3, 3)`` proper rotation matrix ``R`` (new frame <- old frame).
        degree: highest band (0-3).

    Returns:
        ``degree + 1`` float64 matrices, band 0 first (band 0 is ``[[1.0]]``).
    """
    R = np.asarray(rotation, dtype=np.float64)
    dirs = _fibonacci_sphere(_FIT_DIRECTIONS)
    basis = sh_basis(dirs, degree)
    basis_rotated = sh_basis(dirs @ R, degree)  # rows are R^T d
    mats = []
    for band in range(degree + 1):
        cols = slice(band * band, (band + 1) * (band + 1))
        fit, *_ = np.linalg.lstsq(basis[:, cols], basis_rotated[:, cols], rcond=None)
        mats.append(fit)
    return mats


def rotate_sh(sh: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Rotate SH coefficients so view-dependent colour follows a rotation of the scene.

    Args:
        sh: ``(N, K, 3)`` coefficients in the old frame.
        rotation: ``(3, 3)`` proper rotation ``R`` (new frame <- old frame).

    Returns:
        ``(N, K, 3)`` float32 coefficients in the new frame: ``eval_sh(out, R @ d)`` equals
        ``eval_sh(sh, d)``. Band 0 (the base colour) is unchanged.
    """
    sh = np.asarray(sh, dtype=np.float32)
    degree = sh_degree_from_coeffs(sh.shape[1])
    num = sh.shape[1]
    block = np.zeros((num, num))  # block-diagonal: bands never mix under rotation
    for band, mat in enumerate(sh_rotation_matrices(rotation, degree)):
        block[band * band : (band + 1) ** 2, band * band : (band + 1) ** 2] = mat
    return np.einsum("ij,njc->nic", block.astype(np.float32), sh, optimize=True)


def rgb_to_sh0(rgb: np.ndarray) -> np.ndarray:
    """DC coefficients whose view-independent colour is ``rgb`` (any shape, values in [0, 1])."""
    return ((np.asarray(rgb, dtype=np.float64) - 0.5) / SH_C0).astype(np.float32)


def sh0_to_rgb(sh0: np.ndarray) -> np.ndarray:
    """View-independent colour ``0.5 + C0 * sh0`` (unclamped) of DC coefficients (any shape)."""
    return (0.5 + SH_C0 * np.asarray(sh0, dtype=np.float64)).astype(np.float32)


def pad_sh(sh: np.ndarray, degree: int) -> np.ndarray:
    """Zero-pad ``(N, K, 3)`` coefficients to ``degree`` (>= their own); returns float32."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise SceneFormatError(f"SH degree {degree} not in 0..{MAX_SH_DEGREE}")
    sh = np.asarray(sh, dtype=np.float32)
    num = (degree + 1) ** 2
    if sh.shape[1] > num:
        raise SceneFormatError(f"cannot pad {sh.shape[1]} SH coefficients down to degree {degree}")
    out = np.zeros((sh.shape[0], num, 3), dtype=np.float32)
    out[:, : sh.shape[1]] = sh
    return out
