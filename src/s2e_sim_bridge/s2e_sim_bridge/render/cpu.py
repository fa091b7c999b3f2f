"""The ``cpu`` backend: a Gaussian rasteriser compiled with numba.

Per scene, once (:func:`prepare_scene`, cached per scene object): :func:`scene_rows_kernel`
computes the world covariances and, for SH degree 0, the colours; :func:`culling_grid` groups
the Gaussians into culling cells. Both are serial compiled loops, because pedestrians are
posed as a new small scene every frame (about 600 Gaussians for 12 walkers): preparing such
a scene costs tens of microseconds, well under the frame's rasterisation.

Per camera:

0. :func:`cull_cells_kernel` tests the cells of each scene's coarse spatial grid (built once
   per scene: Gaussians grouped by the cell of their centre, each cell bounded by a sphere
   that holds every member's ``BBOX_SIGMA_MAX``-sigma ellipsoid) against the camera's near
   and far planes and its four side planes, widened to the EWA clamp margin plus the
   footprint's blur and rounding (:data:`CULL_PAD_PX`). A cell is dropped only when none of
   its Gaussians could reach the image, so culling never changes a pixel. Driving along the
   default 100k-Gaussian street with a 90-degree camera keeps 44% of the Gaussians on average.
1. :func:`project_kernel` (parallel over Gaussians; :func:`project_kernel_serial` when numba
   has one thread, as in a vector-env worker) projects the Gaussians of the kept cells
   of every scene drawn (the static scene and each extra, read from its own arrays) into one
   per-frame *table*: one row of
   ``TABLE_COLUMNS`` float64 per Gaussian (centre, conic, opacity, colour, depth, footprint),
   so later stages read one contiguous row per Gaussian. View-independent colours (SH degree
   0) are cached per scene; other colours are evaluated for the visible rows only.
2. :func:`sort_rows_kernel` sorts the visible rows once by float32 camera depth (stable LSD
   radix sort: ties keep the lower row first, like gsplat's sort) into a packed copy. The
   drawn rows come in ascending order from one pass over the drawn flags
   (:func:`_gather_drawn`).
3. :func:`composite_kernel` splits the image into as many interleaved row sets as numba has
   threads (rows ``p, p + n, ...``) and composites them in parallel: each walks the sorted
   rows once, blends each Gaussian over its footprint box (cut to the ellipse where it can
   pass a pixel, :data:`EXTENT_MARGIN_PX`; row by row for boxes wider than
   :data:`SPAN_MIN_PX`) in its rows only, front to back,
   with per-pixel early termination, and stops once all its pixels have. Each box row is
   blended :data:`LANES` pixels at a time by a branch-free loop (:func:`_blend_row`, with
   :func:`_exp_neg`, a table and a polynomial, for ``exp``) that LLVM vectorises. The
   images do not depend on the number of row sets.

Level of detail (``lod_px > 0``; off by default, and then the steps above are exact): each
scene of at least :data:`.lod.LOD_MIN_GAUSSIANS` Gaussians also gets, once, coarser levels of
moment-matched proxy Gaussians per grid cell (:func:`prepare_lod`, :mod:`.lod`). Step 0 then
uses :func:`cull_cells_lod_kernel`, which draws each kept cell at the coarsest level whose
detail projects to at most ``lod_px`` pixels; the proxies take table rows after their scene's
Gaussians and go through steps 1-3 unchanged. With ``lod_px = 1`` a drive down the default
street draws 3.5x fewer rows at 64x64 (2.1x the frame rate, 29 dB PSNR against the exact
images) and 1.6x fewer at 128x128 (1.25x, 37 dB); see ``benchmarks/render.py``.

Kernels are compiled with ``cache=True``; conventions are those of
:mod:`s2e_sim_bridge.render.conventions`. Arithmetic is float64; outputs are float32.
The per-frame buffers are reused between calls of the same thread (not shared across threads).
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass

import numpy as np
from numba import get_num_threads, njit, prange

from s2e_sim_bridge.render import lod as lod_levels
from s2e_sim_bridge.render.camera import camera_centre
from s2e_sim_bridge.render.conventions import (
    ALPHA_MAX,
    ALPHA_MIN,
    BBOX_SIGMA_MAX,
    DEFAULT_FAR_M,
    DEFAULT_NEAR_M,
    EPS2D_PX2,
    FOV_CLAMP_MARGIN,
    SH_COLOUR_OFFSET,
    TRANSMITTANCE_MIN,
)
from s2e_sim_bridge.render.lod import LodLevels, build_lod
from s2e_sim_bridge.render.scene_cache import SceneCache
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.sh import SH_C0, eval_sh

# Columns of the per-frame table (one row per Gaussian; valid for drawn rows).
# centre (px), conic (px^-2), opacity, ln(opacity / ALPHA_MIN), RGB, camera z (m),
# half-sizes of the box of pixels the compositor visits (px): the footprint box of
# conventions step 4 tightened to the ellipse ``sigma <= ln(opacity / ALPHA_MIN)`` outside
# which no pixel can pass (plus EXTENT_MARGIN_PX).
_PX, _PY, _CA, _CB, _CC, _OPAC, _SIGMA_CUT, _R, _G, _B, _Z, _RX, _RY = range(13)
TABLE_COLUMNS = 13
_RADIX_BITS = 11
_RADIX_PASSES = 3  # 3 x 11 bits cover the 32 bits of a float32 depth
CULL_GRID_CELLS = 32
"""Cells of the culling grid along a scene's longest side (the others get the same cell size)."""
CULL_SPHERE_MARGIN = 1e-9
"""Relative (and absolute, metres) widening of each culling cell's bounding sphere, which keeps
the bound conservative through float rounding."""
LANES = 4
"""Pixels the compositor blends per step of a box row (:func:`_blend_row`); box rows are
rounded up to a multiple of it (the extra pixels are masked out). 4 (one AVX2 vector of
float64) was faster than 8 or 16 on street frames at 64x64 and 128x128."""
EXTENT_MARGIN_PX = 1e-3
"""Widening (pixels) of the half-extents of the ellipse where a Gaussian can pass a pixel
(``sigma <= ln(opacity / ALPHA_MIN)``), which bound the pixels the compositor visits. The
footprint box of the conventions is that ellipse's bounding box with its half-sizes rounded
up to whole pixels, so on a 64x64 street frame it holds 16% more box rows than the ellipse
(19% more pixel lanes), all of which fail the per-pixel test. Pixels within the margin still
go through that test, so the margin only has to exceed the float rounding of the extents
(about 1e-13 pixels), and the images are unchanged."""
SPAN_MIN_PX = 12
"""Boxes wider than this many pixels are visited row by row over each row's own span of the
ellipse (:func:`_ellipse_spans`, a square root per row) instead of over the whole box
width. Street frames: composite 1.48 -> 1.39 ms at 64x64 and 4.80 -> 4.48 ms at 128x128;
spans for every box (each row's square root for boxes of a few pixels) were slower."""
EXP_NEG_MAX = 8.0
"""Largest argument of :func:`_exp_neg`; sigma never exceeds ``ln(1 / ALPHA_MIN) = 5.54``
where a pixel can pass, so larger values (masked-out pixels) are clamped to it."""
_EXP_COEFFS = tuple(math.exp(-0.03125) * (-1.0) ** k / math.factorial(k) for k in range(8))
# exp(-(1/32 + v)) = sum_k _EXP_COEFFS[k] v^k, the Taylor series to degree 7 (|v| <= 1/32)
_EXP_TABLE = np.array([math.exp(-j / 16.0) for j in range(int(EXP_NEG_MAX * 16) + 1)])
# exp(-j / 16) for j = 0 .. 16 EXP_NEG_MAX
_FLAGS_PER_WORD = 8  # uint8 drawn flags read as one uint64 by _gather_drawn
CULL_PAD_PX = BBOX_SIGMA_MAX * math.sqrt(EPS2D_PX2) + 1.0
"""Widest a footprint box can reach beyond the EWA spread of its Gaussian (pixels): the
``EPS2D_PX2`` blur at ``BBOX_SIGMA_MAX`` sigma plus one pixel of ``ceil`` rounding."""


@njit(cache=True)
def scene_rows_kernel(
    quats: np.ndarray, scales: np.ndarray, sh: np.ndarray, covs: np.ndarray,
    base_colour: np.ndarray,
) -> None:
    """World-frame 3D covariances ``R S S^T R^T`` and, for SH degree 0, the colours.

    Serial: a scene is prepared once (static scenes) or is small (pedestrians posed every
    frame), where waking the thread pool would cost more than the work.

    Args:
        quats: ``(N, 4)`` float32 quaternions ``w x y z`` (normalised here).
        scales: ``(N, 3)`` float32 linear standard deviations (metres).
        sh: ``(N, K, 3)`` float32 SH coefficients (only the DC term is read).
        covs: ``(N, 6)`` float64 output upper triangle ``xx, xy, xz, yy, yz, zz`` (metres^2).
        base_colour: ``(N, 3)`` float64 output view-independent RGB ``max(C0 * sh0 + 0.5, 0)``
            with the product ``C0 * sh0`` rounded to float32 like :func:`.sh.eval_sh`, so it is
            bit for bit ``max(eval_sh(sh, dirs) + 0.5, 0)`` of a degree-0 scene; ``(0, 3)`` to
            skip (view-dependent scenes).
    """
    dc = np.float32(SH_C0)
    for i in range(quats.shape[0]):
        w = np.float64(quats[i, 0])
        x = np.float64(quats[i, 1])
        y = np.float64(quats[i, 2])
        z = np.float64(quats[i, 3])
        inv = 1.0 / np.sqrt(w * w + x * x + y * y + z * z)
        w *= inv
        x *= inv
        y *= inv
        z *= inv
        sx = np.float64(scales[i, 0])
        sy = np.float64(scales[i, 1])
        sz = np.float64(scales[i, 2])
        # M = R diag(s); cov = M M^T
        m00 = (1.0 - 2.0 * (y * y + z * z)) * sx
        m01 = 2.0 * (x * y - w * z) * sy
        m02 = 2.0 * (x * z + w * y) * sz
        m10 = 2.0 * (x * y + w * z) * sx
        m11 = (1.0 - 2.0 * (x * x + z * z)) * sy
        m12 = 2.0 * (y * z - w * x) * sz
        m20 = 2.0 * (x * z - w * y) * sx
        m21 = 2.0 * (y * z + w * x) * sy
        m22 = (1.0 - 2.0 * (x * x + y * y)) * sz
        covs[i, 0] = m00 * m00 + m01 * m01 + m02 * m02
        covs[i, 1] = m00 * m10 + m01 * m11 + m02 * m12
        covs[i, 2] = m00 * m20 + m01 * m21 + m02 * m22
        covs[i, 3] = m10 * m10 + m11 * m11 + m12 * m12
        covs[i, 4] = m10 * m20 + m11 * m21 + m12 * m22
        covs[i, 5] = m20 * m20 + m21 * m21 + m22 * m22
    for i in range(base_colour.shape[0]):
        for ch in range(3):
            base_colour[i, ch] = max(np.float64(dc * sh[i, 0, ch]) + SH_COLOUR_OFFSET, 0.0)


@njit(cache=True)
def _camera_constants(
    viewmat: np.ndarray, K: np.ndarray, width: int, height: int,
) -> tuple[float, ...]:
    """What :func:`_project_row` reads of one camera, as a tuple of 20 floats.

    ``viewmat[:3, :4]`` row by row, ``fx, fy, cx, cy``, then the EWA clamp limits of
    ``x / z`` (right, left) and ``y / z`` (down, up): the image's half-FOV tangents plus
    ``FOV_CLAMP_MARGIN`` of them. A tuple of scalars, computed once per call of the
    projection loops, rather than per row.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    return (viewmat[0, 0], viewmat[0, 1], viewmat[0, 2], viewmat[0, 3],
            viewmat[1, 0], viewmat[1, 1], viewmat[1, 2], viewmat[1, 3],
            viewmat[2, 0], viewmat[2, 1], viewmat[2, 2], viewmat[2, 3],
            fx, fy, cx, cy,
            (width - cx) / fx + FOV_CLAMP_MARGIN * tan_fovx,
            cx / fx + FOV_CLAMP_MARGIN * tan_fovx,
            (height - cy) / fy + FOV_CLAMP_MARGIN * tan_fovy,
            cy / fy + FOV_CLAMP_MARGIN * tan_fovy)


@njit(inline="always")
def _project_row(
    i: int, j: int, means: np.ndarray, covs: np.ndarray, opacities: np.ndarray,
    cuts: np.ndarray, base_colour: np.ndarray, cam: tuple[float, ...], width: int,
    height: int, near: float, far: float, table: np.ndarray, drawn: np.ndarray,
) -> None:
    """EWA-project Gaussian ``i`` of a scene into table row ``j`` (see :func:`project_kernel`).

    ``cam``: :func:`_camera_constants`. Inlined into both loops that call it by numba (as a
    plain compiled function, LLVM would call it per row, 50% slower).
    """
    r00, r01, r02, t0 = cam[0], cam[1], cam[2], cam[3]
    r10, r11, r12, t1 = cam[4], cam[5], cam[6], cam[7]
    r20, r21, r22, t2 = cam[8], cam[9], cam[10], cam[11]
    fx, fy, cx, cy = cam[12], cam[13], cam[14], cam[15]
    mx = np.float64(means[i, 0])
    my = np.float64(means[i, 1])
    mz = np.float64(means[i, 2])
    tz = r20 * mx + r21 * my + r22 * mz + t2
    if tz <= near or tz >= far:
        return
    opacity = np.float64(opacities[i])
    if opacity < ALPHA_MIN:
        return
    tx = r00 * mx + r01 * my + r02 * mz + t0
    ty = r10 * mx + r11 * my + r12 * mz + t1
    # camera covariance W C W^T (C symmetric, from its upper triangle)
    c00, c01, c02 = covs[i, 0], covs[i, 1], covs[i, 2]
    c11, c12, c22 = covs[i, 3], covs[i, 4], covs[i, 5]
    a00 = r00 * c00 + r01 * c01 + r02 * c02
    a01 = r00 * c01 + r01 * c11 + r02 * c12
    a02 = r00 * c02 + r01 * c12 + r02 * c22
    a10 = r10 * c00 + r11 * c01 + r12 * c02
    a11 = r10 * c01 + r11 * c11 + r12 * c12
    a12 = r10 * c02 + r11 * c12 + r12 * c22
    a20 = r20 * c00 + r21 * c01 + r22 * c02
    a21 = r20 * c01 + r21 * c11 + r22 * c12
    a22 = r20 * c02 + r21 * c12 + r22 * c22
    v00 = a00 * r00 + a01 * r01 + a02 * r02
    v01 = a00 * r10 + a01 * r11 + a02 * r12
    v02 = a00 * r20 + a01 * r21 + a02 * r22
    v11 = a10 * r10 + a11 * r11 + a12 * r12
    v12 = a10 * r20 + a11 * r21 + a12 * r22
    v22 = a20 * r20 + a21 * r21 + a22 * r22
    # EWA Jacobian at the FOV-clamped point
    rz = 1.0 / tz
    ux = min(cam[16], max(-cam[17], tx * rz))
    uy = min(cam[18], max(-cam[19], ty * rz))
    j00 = fx * rz
    j02 = -fx * ux * rz
    j11 = fy * rz
    j12 = -fy * uy * rz
    cov_a = j00 * j00 * v00 + 2.0 * j00 * j02 * v02 + j02 * j02 * v22 + EPS2D_PX2
    cov_b = j00 * j11 * v01 + j00 * j12 * v02 + j02 * j11 * v12 + j02 * j12 * v22
    cov_c = j11 * j11 * v11 + 2.0 * j11 * j12 * v12 + j12 * j12 * v22 + EPS2D_PX2
    det = cov_a * cov_c - cov_b * cov_b
    if det <= 0.0:
        return
    sigma_cut = cuts[i]
    extend = min(BBOX_SIGMA_MAX, np.sqrt(2.0 * sigma_cut))
    rad_x = np.ceil(extend * np.sqrt(cov_a))
    rad_y = np.ceil(extend * np.sqrt(cov_c))
    if rad_x <= 0.0 and rad_y <= 0.0:
        return
    px = fx * tx * rz + cx
    py = fy * ty * rz + cy
    if px + rad_x <= 0.0 or px - rad_x >= width or py + rad_y <= 0.0 or py - rad_y >= height:
        return
    drawn[j] = 1
    table[j, _PX] = px
    table[j, _PY] = py
    table[j, _CA] = cov_c / det
    table[j, _CB] = -cov_b / det
    table[j, _CC] = cov_a / det
    table[j, _OPAC] = opacity
    table[j, _SIGMA_CUT] = sigma_cut
    table[j, _Z] = tz
    # the box the compositor visits: the footprint box cut to the ellipse where a
    # pixel can pass, and to the image (keeps later integer maths bounded)
    table[j, _RX] = min(rad_x, np.sqrt(2.0 * sigma_cut * cov_a) + EXTENT_MARGIN_PX,
                        abs(px) + width)
    table[j, _RY] = min(rad_y, np.sqrt(2.0 * sigma_cut * cov_c) + EXTENT_MARGIN_PX,
                        abs(py) + height)
    if base_colour.shape[0] > 0:
        table[j, _R] = base_colour[i, 0]
        table[j, _G] = base_colour[i, 1]
        table[j, _B] = base_colour[i, 2]


@njit(parallel=True, cache=True)
def project_kernel(
    means: np.ndarray,
    covs: np.ndarray,
    opacities: np.ndarray,
    cuts: np.ndarray,
    base_colour: np.ndarray,
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    near: float,
    far: float,
    rows: np.ndarray,
    offset: int,
    table: np.ndarray,
    drawn: np.ndarray,
) -> None:
    """EWA-project the Gaussians ``rows`` of one scene into one camera (table rows ``offset + i``).

    Parallel over ``rows``; :func:`project_kernel_serial` is the same loop on one thread
    (on one thread the parallel loop is 12% slower: waking numba's thread pool costs tens of
    microseconds a call, and its loop compiles less tightly).

    Args:
        means: ``(N, 3)`` float32 world centres (metres).
        covs: ``(N, 6)`` float64 world covariances from :func:`scene_rows_kernel`.
        opacities: ``(N,)`` float32 in ``[0, 1]``.
        cuts: ``(N,)`` float64 ``ln(opacity / ALPHA_MIN)`` (:func:`.lod.sigma_cuts`).
        base_colour: ``(N, 3)`` float64 view-independent RGB copied into the table for
            visible Gaussians, or ``(0, 3)`` when colours depend on the view (filled later).
        viewmat: ``(4, 4)`` float64 world-to-camera (OpenCV axes).
        K: ``(3, 3)`` float64 pinhole intrinsics (pixels).
        width: image width (pixels).
        height: image height (pixels).
        near: near plane (camera z, metres); Gaussians with ``z <= near`` are culled.
        far: far plane (camera z, metres); Gaussians with ``z >= far`` are culled.
        rows: ``(R,)`` int64 indices into this scene of the Gaussians to project (the
            members of the cells kept by :func:`cull_cells_kernel`).
        offset: table row of the scene's Gaussian 0.
        table: ``(M, TABLE_COLUMNS)`` float64 per-frame table, written for drawn rows.
        drawn: ``(M,)`` uint8, set to 1 for a projected Gaussian that survived culling (the
            caller zeroes it first; rows not projected stay 0).
    """
    cam = _camera_constants(viewmat, K, width, height)
    for k in prange(rows.shape[0]):
        _project_row(rows[k], offset + rows[k], means, covs, opacities, cuts, base_colour,
                     cam, width, height, near, far, table, drawn)


@njit(cache=True)
def project_kernel_serial(
    means: np.ndarray, covs: np.ndarray, opacities: np.ndarray, cuts: np.ndarray,
    base_colour: np.ndarray, viewmat: np.ndarray, K: np.ndarray, width: int, height: int,
    near: float, far: float, rows: np.ndarray, offset: int, table: np.ndarray,
    drawn: np.ndarray,
) -> None:
    """:func:`project_kernel` on this thread (same arguments and results)."""
    cam = _camera_constants(viewmat, K, width, height)
    for k in range(rows.shape[0]):
        _project_row(rows[k], offset + rows[k], means, covs, opacities, cuts, base_colour,
                     cam, width, height, near, far, table, drawn)


@njit(cache=True)
def _side_planes(K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Slopes ``L`` of the widened side planes ``x = L z`` / ``y = L z`` and ``sqrt(1 + L^2)``.

    Order: right (+x), left (-x), down (+y), up (-y); see :func:`cull_cells_kernel`.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    pad_x = (FOV_CLAMP_MARGIN * 0.5 * width + CULL_PAD_PX) / fx
    pad_y = (FOV_CLAMP_MARGIN * 0.5 * height + CULL_PAD_PX) / fy
    slopes = np.array([(width - cx) / fx + pad_x, cx / fx + pad_x,
                       (height - cy) / fy + pad_y, cy / fy + pad_y])
    return slopes, np.sqrt(1.0 + slopes * slopes)


@njit(cache=True)
def _cell_in_view(
    spheres: np.ndarray,
    c: int,
    viewmat: np.ndarray,
    slopes: np.ndarray,
    norms: np.ndarray,
    near: float,
    far: float,
) -> bool:
    """False when cell ``c``'s sphere is behind ``near``, beyond ``far`` or outside a side plane."""
    wx, wy, wz, radius = spheres[c, 0], spheres[c, 1], spheres[c, 2], spheres[c, 3]
    tx = viewmat[0, 0] * wx + viewmat[0, 1] * wy + viewmat[0, 2] * wz + viewmat[0, 3]
    ty = viewmat[1, 0] * wx + viewmat[1, 1] * wy + viewmat[1, 2] * wz + viewmat[1, 3]
    tz = viewmat[2, 0] * wx + viewmat[2, 1] * wy + viewmat[2, 2] * wz + viewmat[2, 3]
    if tz + radius <= near or tz - radius >= far:
        return False
    return not (tx - slopes[0] * tz > radius * norms[0] or -tx - slopes[1] * tz > radius * norms[1]
                or ty - slopes[2] * tz > radius * norms[2]
                or -ty - slopes[3] * tz > radius * norms[3])


@njit(cache=True)
def cull_cells_kernel(
    spheres: np.ndarray,
    starts: np.ndarray,
    members: np.ndarray,
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    near: float,
    far: float,
    out_rows: np.ndarray,
) -> int:
    """Gather the Gaussians of every grid cell that may reach the image of one camera.

    A cell is dropped when its bounding sphere lies entirely behind ``near``, beyond ``far``,
    or outside one of the side planes ``x = L z`` / ``y = L z`` (camera frame), where ``L`` is
    the EWA clamp limit of :func:`project_kernel` widened by ``CULL_PAD_PX``. Outside such a
    plane a Gaussian's footprint box (its EWA spread, at most ``sigma_max * sqrt(1 + L^2) / z``
    in tangent units, plus the blur and rounding) ends before the image border, so
    :func:`project_kernel` would cull it too.

    Args:
        spheres: ``(C, 4)`` float64 world ``(x, y, z, radius)`` of each cell (metres).
        starts: ``(C + 1,)`` int64 offsets of each cell's Gaussians in ``members``.
        members: ``(N,)`` int64 Gaussian indices grouped by cell.
        viewmat: ``(4, 4)`` float64 world-to-camera (OpenCV axes, rigid).
        K: ``(3, 3)`` float64 pinhole intrinsics (pixels).
        width: image width (pixels).
        height: image height (pixels).
        near: near plane (camera z, metres).
        far: far plane (camera z, metres).
        out_rows: ``(N,)`` int64 buffer; its first ``R`` entries receive the kept Gaussians.

    Returns:
        ``R``, the number of Gaussians kept.
    """
    slopes, norms = _side_planes(K, width, height)
    count = 0
    for c in range(spheres.shape[0]):
        if not _cell_in_view(spheres, c, viewmat, slopes, norms, near, far):
            continue
        for k in range(starts[c], starts[c + 1]):
            out_rows[count] = members[k]
            count += 1
    return count


@njit(cache=True)
def cull_cells_lod_kernel(
    spheres: np.ndarray,
    starts: np.ndarray,
    members: np.ndarray,
    lod_starts: np.ndarray,
    lod_edges: np.ndarray,
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    near: float,
    far: float,
    centre: np.ndarray,
    lod_px: float,
    out_rows: np.ndarray,
    out_proxies: np.ndarray,
) -> tuple[int, int]:
    """:func:`cull_cells_kernel` that draws far cells with their proxies (:mod:`.lod`).

    Per kept cell, ``dist`` is the distance from the camera centre to the nearest point of the
    cell's sphere; a level's detail size ``e`` (voxel edge or widest member, see :mod:`.lod`)
    there spans about ``e * max(fx, fy) / dist`` pixels (exact on the optical axis, up to
    ``1 / cos^2`` of the off-axis angle more toward the image border). The cell is drawn at
    the coarsest level whose size spans at most ``lod_px`` pixels, or with its original
    Gaussians when none does (or the camera is inside the sphere).

    Args:
        spheres: ``(C, 4)`` float64 world ``(x, y, z, radius)`` of each cell (metres).
        starts: ``(C + 1,)`` int64 offsets of each cell's Gaussians in ``members``.
        members: ``(N,)`` int64 Gaussian indices grouped by cell.
        lod_starts: ``(C * L + 1,)`` int64 proxy ranges (:attr:`.lod.LodLevels.starts`).
        lod_edges: ``(C, L)`` float64 detail size per cell and level (metres; ``inf``: never).
        viewmat: ``(4, 4)`` float64 world-to-camera (OpenCV axes, rigid).
        K: ``(3, 3)`` float64 pinhole intrinsics (pixels).
        width: image width (pixels).
        height: image height (pixels).
        near: near plane (camera z, metres).
        far: far plane (camera z, metres).
        centre: ``(3,)`` float64 camera centre in the world (metres).
        lod_px: largest projected detail size drawn as proxies (pixels).
        out_rows: ``(N,)`` int64 buffer receiving the kept original Gaussians.
        out_proxies: ``(P,)`` int64 buffer receiving the kept proxies.

    Returns:
        ``(R, Q)``: the numbers of original Gaussians and of proxies kept.
    """
    slopes, norms = _side_planes(K, width, height)
    px_per_m = max(K[0, 0], K[1, 1])
    n_levels = lod_edges.shape[1]
    count = 0
    n_proxies = 0
    for c in range(spheres.shape[0]):
        if not _cell_in_view(spheres, c, viewmat, slopes, norms, near, far):
            continue
        dx = spheres[c, 0] - centre[0]
        dy = spheres[c, 1] - centre[1]
        dz = spheres[c, 2] - centre[2]
        dist = np.sqrt(dx * dx + dy * dy + dz * dz) - spheres[c, 3]
        level = 0
        if dist > 0.0:
            max_edge_m = lod_px * dist / px_per_m
            for lv in range(n_levels, 0, -1):
                if lod_edges[c, lv - 1] <= max_edge_m:
                    level = lv
                    break
        if level == 0:
            for k in range(starts[c], starts[c + 1]):
                out_rows[count] = members[k]
                count += 1
        else:
            slot = c * n_levels + level - 1
            for p in range(lod_starts[slot], lod_starts[slot + 1]):
                out_proxies[n_proxies] = p
                n_proxies += 1
    return count, n_proxies


@njit(cache=True)
def _argsort_depth(z: np.ndarray) -> np.ndarray:
    """Stable ascending order ``(V,)`` int64 of positive depths compared as float32.

    LSD radix sort on the float32 bit patterns (monotonic for positive floats).
    """
    n = z.shape[0]
    if n == 0:
        return np.arange(0)
    keys = z.astype(np.float32).view(np.uint32)
    order = np.arange(n)
    scratch = np.empty(n, dtype=np.int64)
    buckets = 1 << _RADIX_BITS
    mask = np.uint32(buckets - 1)
    for p in range(_RADIX_PASSES):
        shift = np.uint32(p * _RADIX_BITS)
        counts = np.zeros(buckets + 1, dtype=np.int64)
        for i in range(n):
            counts[((keys[i] >> shift) & mask) + 1] += 1
        if counts[1 + ((keys[0] >> shift) & mask)] == n:
            continue  # every key has the same digit: the pass would not move anything
        for b in range(buckets):
            counts[b + 1] += counts[b]
        for i in range(n):
            src = order[i]
            digit = (keys[src] >> shift) & mask
            scratch[counts[digit]] = src
            counts[digit] += 1
        order, scratch = scratch, order
    return order


@njit(parallel=True, cache=True)
def sort_rows_kernel(table: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Copy the visible rows of one camera's table in depth order.

    Args:
        table: ``(M, TABLE_COLUMNS)`` float64 per-frame table from :func:`project_kernel`.
        visible: ``(V,)`` int64 drawn rows, ascending.

    Returns:
        ``packed (V, TABLE_COLUMNS)`` float64: the rows sorted by float32 camera depth
        (stable, so ties keep the lower row first).
    """
    n_vis = visible.shape[0]
    depth = np.empty(n_vis, dtype=np.float64)
    for v in prange(n_vis):
        depth[v] = table[visible[v], _Z]
    order = _argsort_depth(depth)
    packed = np.empty((n_vis, TABLE_COLUMNS), dtype=np.float64)
    for r in prange(n_vis):
        g = visible[order[r]]
        for col in range(TABLE_COLUMNS):
            packed[r, col] = table[g, col]
    return packed


@njit(inline="always", fastmath=True, boundscheck=False)
def _exp_neg(s: float) -> float:
    """``exp(-s)`` for ``0 <= s <= EXP_NEG_MAX`` without a libm call, so pixel loops vectorise.

    ``exp(-s) = exp(-j / 16) * exp(-(s - j / 16))`` with ``j = floor(16 s)``: the first factor
    from :data:`_EXP_TABLE`, the second the degree-7 Taylor polynomial about ``1 / 32``
    (coefficients :data:`_EXP_COEFFS`) evaluated by Estrin's scheme. Within 1e-15 of numpy's
    ``exp`` on the whole range (``test_exp_neg_matches_numpy``), far under the float32
    outputs' 6e-8.
    """
    j = np.uint64(s * 16.0)
    v = s - np.float64(j) * 0.0625 - 0.03125
    c = _EXP_COEFFS
    v2 = v * v
    v4 = v2 * v2
    q0 = (c[0] + c[1] * v) + (c[2] + c[3] * v) * v2
    q1 = (c[4] + c[5] * v) + (c[6] + c[7] * v) * v2
    return _EXP_TABLE[j] * (q0 + q1 * v4)


@njit(inline="always", fastmath=True, boundscheck=False)
def _blend_row(
    trans: np.ndarray, acc_r: np.ndarray, acc_g: np.ndarray, acc_b: np.ndarray,
    acc_z: np.ndarray, xa: int, lanes: int, xb: float, dy: float, packed: np.ndarray, g: int,
) -> float:
    """Composite row ``g`` of ``packed`` over pixels ``xa .. xa + lanes - 1`` of one image row.

    Branch-free over the pixels, so LLVM vectorises the loop: every pixel computes its alpha
    and the blend is applied through 0/1 masks, which leave a skipped pixel's values exactly
    as they were (``T * (1 - alpha * 0) = T``, ``acc + 0 = acc``). A pixel takes part when it
    is live (``trans > 0``: a stopped pixel holds ``-T_final``), lies in the footprint box
    (``x <= xb``, which also keeps out the padding past the image) and passes the per-pixel rule of
    :mod:`.conventions` step 5 (``0 <= sigma``, ``alpha >= ALPHA_MIN``; ``sigma <= cut``
    is the same test as ``alpha >= ALPHA_MIN`` before the ``ALPHA_MAX`` cap, and keeps
    :func:`_exp_neg` on its range).

    Args:
        trans: ``(W + LANES,)`` float64 transmittance of the image row (negated once stopped;
            the ``LANES`` columns past ``W`` are padding, never in a box).
        acc_r: ``(W + LANES,)`` float64 accumulated red (likewise ``acc_g``, ``acc_b``).
        acc_g: accumulated green.
        acc_b: accumulated blue.
        acc_z: ``(W + LANES,)`` float64 accumulated ``w z`` (expected depth numerator).
        xa: first pixel column of the footprint box (``>= 0``).
        lanes: pixels visited, a multiple of :data:`LANES` covering the box
            (``xa + lanes <= W + LANES``).
        xb: last column of the box, as float64.
        dy: ``py - (y + 0.5)`` for the image row ``y`` (pixels).
        packed: ``(V, TABLE_COLUMNS)`` float64 rows in depth order.
        g: the row of ``packed`` to composite.

    Returns:
        How many pixels stopped (float64, an integer value).
    """
    px = packed[g, _PX]
    ca = packed[g, _CA]
    cb = packed[g, _CB]
    cy = packed[g, _CC] * dy * dy
    opac = packed[g, _OPAC]
    cut = packed[g, _SIGMA_CUT]
    col_r = packed[g, _R]
    col_g = packed[g, _G]
    col_b = packed[g, _B]
    depth_z = packed[g, _Z]
    stopped = 0.0
    for k in range(lanes):
        i = np.uint64(xa + k)  # unsigned: no negative-index wraparound in the loop
        x = np.float64(xa + k)
        dx = px - (x + 0.5)
        sigma = 0.5 * (ca * dx * dx + cy) + cb * dx * dy
        alpha = min(ALPHA_MAX, opac * _exp_neg(min(max(sigma, 0.0), EXP_NEG_MAX)))
        t_pix = trans[i]
        take = (np.float64(t_pix > 0.0) * np.float64(x <= xb) * np.float64(sigma >= 0.0)
                * np.float64(sigma <= cut) * np.float64(alpha >= ALPHA_MIN))
        stop = take * np.float64(t_pix * (1.0 - alpha) <= TRANSMITTANCE_MIN)
        blend = take - stop  # stop before adding; trans keeps T_final (negated)
        weight = alpha * t_pix * blend
        acc_r[i] += weight * col_r
        acc_g[i] += weight * col_g
        acc_b[i] += weight * col_b
        acc_z[i] += weight * depth_z
        trans[i] = t_pix * (1.0 - alpha * blend) * (1.0 - 2.0 * stop)
        stopped += stop
    return stopped


@njit(inline="always")
def _row_stopped(done: np.ndarray, ly: int, xa: int, xb: int) -> bool:
    """True when every pixel ``xa..xb`` of local row ``ly`` has stopped.

    ``done[ly, w]`` holds the stopped flags of pixels ``64 w .. 64 w + 63`` of the row, one
    bit each.
    """
    for w in range(xa >> 6, (xb >> 6) + 1):
        lo = max(xa, w << 6) & 63
        n = (min(xb, (w << 6) + 63) & 63) - lo + 1
        segment = np.int64(-1) if n == 64 else ((np.int64(1) << n) - 1) << lo
        if done[ly, w] & segment != segment:
            return False
    return True


@njit(inline="always")
def _mark_stopped(done: np.ndarray, trans: np.ndarray, ly: int, xa: int, xb: int) -> None:
    """Set the flags of the pixels ``xa..xb`` of local row ``ly`` that have stopped.

    A stopped pixel holds ``trans < 0``. Called only after a blend stopped some, so rarely.
    """
    for x in range(xa, xb + 1):
        if trans[ly, x] < 0.0:
            done[ly, x >> 6] |= np.int64(1) << (x & 63)


@njit(inline="always", fastmath=True)
def _ellipse_spans(
    packed: np.ndarray, g: int, p: int, parts: int, first: int, last: int, box_a: int,
    box_b: int, width: int, span_a: np.ndarray, span_b: np.ndarray,
) -> None:
    """Columns ``span_a[ly] .. span_b[ly]`` where row ``g`` can pass a pixel of local row ``ly``.

    For the local rows ``first .. last`` of row set ``p`` (of ``parts``): the pixels whose
    centres lie within :data:`EXTENT_MARGIN_PX` of the ellipse ``sigma <= cut``, i.e.
    ``ca u^2 + 2 cb u dy + cc dy^2 <= 2 cut`` with ``u = px - x - 0.5``, cut to the box
    ``box_a .. box_b``; an empty span (``span_b < span_a``) where the row misses it. The
    pixels outside a span fail the per-pixel test, so skipping them changes nothing.
    """
    ca = packed[g, _CA]
    cb_ca = packed[g, _CB] / ca
    disc_0 = 2.0 * packed[g, _SIGMA_CUT] / ca
    disc_y = (packed[g, _CC] - packed[g, _CB] * cb_ca) / ca
    centre_0 = packed[g, _PX] - 0.5
    py = packed[g, _PY]
    for ly in range(first, last + 1):
        dy = py - (p + ly * parts + 0.5)
        disc = disc_0 - disc_y * dy * dy
        half = np.sqrt(max(disc, 0.0)) + EXTENT_MARGIN_PX
        centre = centre_0 + cb_ca * dy
        span_a[ly] = max(box_a, int(np.ceil(centre - half))) if disc >= 0.0 else width
        span_b[ly] = min(box_b, int(np.floor(centre + half)))


@njit(parallel=True, cache=True, fastmath=True)
def composite_kernel(
    packed: np.ndarray,
    parts: int,
    background: np.ndarray,
    out_rgb: np.ndarray,
    out_depth: np.ndarray,
    out_alpha: np.ndarray,
) -> None:
    """Alpha-composite the frame front to back in ``parts`` interleaved row sets, in parallel.

    Part ``p`` holds image rows ``p, p + parts, p + 2 parts, ...`` at full width, so the
    parts share the work evenly however the scene fills the image (ground below, sky
    above). Each part walks the depth-sorted rows once and blends every Gaussian over the
    rows of its footprint box in the part, :data:`LANES` pixels at a time from the box's
    first column (:func:`_blend_row`), stopping once all its pixels have. A pixel's result
    depends only on the Gaussians over it and their boxes, never on ``parts``, so the images
    are identical bit for bit for any number of parts. With one part (a vector-env worker's
    single thread) the rows of ``packed`` are read once, in order. ``fastmath`` lets LLVM
    reorder float arithmetic (inputs are finite).

    Args:
        packed: ``(V, TABLE_COLUMNS)`` float64 visible rows in depth order
            (:func:`sort_rows_kernel`).
        parts: row sets composited in parallel (``>= 1``; the numba thread count).
        background: ``(3,)`` float64 RGB added with the final transmittance.
        out_rgb: ``(H, W, 3)`` float32 output colour.
        out_depth: ``(H, W)`` float32 output expected depth (0 where alpha is 0).
        out_alpha: ``(H, W)`` float32 output ``1 - T_final``.
    """
    height, width = out_alpha.shape
    parts = max(1, min(parts, height))
    padded = width + LANES  # a box's last lanes may run past the image into the padding
    for p in prange(parts):
        rows = (height - p + parts - 1) // parts
        trans = np.ones((rows, padded))
        acc_r = np.zeros((rows, padded))
        acc_g = np.zeros((rows, padded))
        acc_b = np.zeros((rows, padded))
        acc_z = np.zeros((rows, padded))
        done = np.zeros((rows, (width + 63) >> 6), dtype=np.int64)
        span_a = np.empty(rows, dtype=np.int64)  # per-row spans of the Gaussian in hand
        span_b = np.empty(rows, dtype=np.int64)
        active = rows * width
        for g in range(packed.shape[0]):
            # pixels whose centres (x + 0.5, y + 0.5) lie in the footprint box
            ya = max(0, int(np.ceil(packed[g, _PY] - packed[g, _RY] - 0.5)))
            yb = min(height - 1, int(np.floor(packed[g, _PY] + packed[g, _RY] - 0.5)))
            if parts == 1:  # no integer divisions (5% of a 64x64 frame's compositing)
                first, last = ya, yb
            else:  # local rows in the box
                first = (ya - p + parts - 1) // parts if ya > p else 0
                last = (yb - p) // parts if yb >= p else -1
            if last < first:
                continue
            box_a = max(0, int(np.ceil(packed[g, _PX] - packed[g, _RX] - 0.5)))
            box_b = min(width - 1, int(np.floor(packed[g, _PX] + packed[g, _RX] - 0.5)))
            if box_b < box_a:
                continue
            wide = box_b - box_a >= SPAN_MIN_PX
            if wide:  # each row's own span of the ellipse, in one branch-free loop
                _ellipse_spans(packed, g, p, parts, first, last, box_a, box_b, width, span_a,
                               span_b)
            xa, xb = box_a, box_b
            lanes = (xb - xa + LANES) // LANES * LANES
            stopped = 0.0
            for ly in range(first, last + 1):
                if wide:
                    xa, xb = span_a[ly], span_b[ly]
                    if xb < xa:
                        continue  # the row misses the ellipse
                    lanes = (xb - xa + LANES) // LANES * LANES
                if _row_stopped(done, ly, xa, xb):
                    continue  # occluded here: skip the row's lanes at once
                dy = packed[g, _PY] - (p + ly * parts + 0.5)  # exact: the row is an integer
                row_stopped = _blend_row(trans[ly], acc_r[ly], acc_g[ly], acc_b[ly], acc_z[ly],
                                         xa, lanes, np.float64(xb), dy, packed, g)
                if row_stopped > 0.0:
                    _mark_stopped(done, trans, ly, xa, xb)
                    stopped += row_stopped
            active -= int(stopped)
            if active == 0:
                break
        for ly in range(rows):
            y = p + ly * parts
            for x in range(width):
                t_final = abs(trans[ly, x])
                coverage = 1.0 - t_final
                out_rgb[y, x, 0] = acc_r[ly, x] + t_final * background[0]
                out_rgb[y, x, 1] = acc_g[ly, x] + t_final * background[1]
                out_rgb[y, x, 2] = acc_b[ly, x] + t_final * background[2]
                out_alpha[y, x] = coverage
                out_depth[y, x] = acc_z[ly, x] / coverage if coverage > 0.0 else 0.0


@dataclass(frozen=True)
class CpuScene:
    """Per-scene data the CPU backend reuses across cameras and frames.

    Attributes:
        covs: ``(N, 6)`` float64 world covariances (upper triangle, metres^2).
        base_colour: ``(N, 3)`` float64 view-independent colour ``max(SH + 0.5, 0)`` of a
            degree-0 scene; ``(0, 3)`` when colour depends on the view direction.
        cell_spheres: ``(C, 4)`` float64 world ``(x, y, z, radius)`` bounding sphere of each
            culling-grid cell's ``BBOX_SIGMA_MAX``-sigma ellipsoids (metres).
        cell_starts: ``(C + 1,)`` int64 offsets of each cell's Gaussians in ``cell_members``.
        cell_members: ``(N,)`` int64 Gaussian indices grouped by cell.
        sigma_cuts: ``(N,)`` float64 ``ln(opacity / ALPHA_MIN)`` (:func:`.lod.sigma_cuts`).
    """

    covs: np.ndarray
    base_colour: np.ndarray
    cell_spheres: np.ndarray
    cell_starts: np.ndarray
    cell_members: np.ndarray
    sigma_cuts: np.ndarray

    @property
    def view_dependent(self) -> bool:
        """True when colours must be evaluated per camera (SH degree > 0)."""
        return self.base_colour.shape[0] == 0 and self.covs.shape[0] > 0


@njit(cache=True)
def _culling_grid_kernel(
    means: np.ndarray, scales: np.ndarray, cells: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`culling_grid` of ``N >= 1`` Gaussians (same arguments and results)."""
    n = means.shape[0]
    lo = np.empty(3)
    hi = np.empty(3)
    for a in range(3):
        lo[a] = np.float64(means[0, a])
        hi[a] = lo[a]
    for i in range(1, n):
        for a in range(3):
            v = np.float64(means[i, a])
            lo[a] = min(lo[a], v)
            hi[a] = max(hi[a], v)
    size = max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / cells
    key = np.zeros(n, dtype=np.int64)
    if size > 0.0:
        for i in range(n):
            k = 0
            for a in range(3):
                k = k * cells + min(np.int64((np.float64(means[i, a]) - lo[a]) / size), cells - 1)
            key[i] = k
    # a stable argsort of the keys: sort unique (key, index) pairs packed into one int64
    # (keys < cells^3, so no overflow for any N that fits in memory)
    members = np.sort(key * n + np.arange(n)) % n
    n_cells = 1
    for r in range(1, n):
        if key[members[r]] != key[members[r - 1]]:
            n_cells += 1
    starts = np.empty(n_cells + 1, dtype=np.int64)
    spheres = np.empty((n_cells, 4))
    c = 0
    starts[0] = 0
    for r in range(1, n):
        if key[members[r]] != key[members[r - 1]]:
            c += 1
            starts[c] = r
    starts[n_cells] = n
    for c in range(n_cells):
        for a in range(3):
            lo[a] = np.inf
            hi[a] = -np.inf
        for r in range(starts[c], starts[c + 1]):
            for a in range(3):
                v = np.float64(means[members[r], a])
                lo[a] = min(lo[a], v)
                hi[a] = max(hi[a], v)
        for a in range(3):
            spheres[c, a] = 0.5 * (lo[a] + hi[a])
        radius = -np.inf
        for r in range(starts[c], starts[c + 1]):
            g = members[r]
            dx = np.float64(means[g, 0]) - spheres[c, 0]
            dy = np.float64(means[g, 1]) - spheres[c, 1]
            dz = np.float64(means[g, 2]) - spheres[c, 2]
            widest = max(np.float64(scales[g, 0]), np.float64(scales[g, 1]),
                         np.float64(scales[g, 2]))
            radius = max(radius, np.sqrt(dx * dx + dy * dy + dz * dz) + BBOX_SIGMA_MAX * widest)
        spheres[c, 3] = radius * (1.0 + CULL_SPHERE_MARGIN) + CULL_SPHERE_MARGIN
    return spheres, starts, members


def culling_grid(
    means: np.ndarray, scales: np.ndarray, cells: int = CULL_GRID_CELLS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group Gaussians by the cubic grid cell of their centre and bound each cell by a sphere.

    Args:
        means: ``(N, 3)`` float32 world centres (metres).
        scales: ``(N, 3)`` float32 linear standard deviations (metres).
        cells: cells along the longest side of the centres' bounding box.

    Returns:
        ``spheres (C, 4)`` float64 ``(x, y, z, radius)`` (metres) of the non-empty cells, in
        ascending order of their ``(i, j, k)`` grid index; ``starts (C + 1,)`` int64 offsets
        into ``members``; ``members (N,)`` int64 Gaussian indices, grouped by cell and
        ascending within one. Each sphere, centred on its members' bounding box, contains
        every member's ellipsoid of ``BBOX_SIGMA_MAX`` standard deviations.
    """
    if means.shape[0] == 0:
        return np.zeros((0, 4)), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return _culling_grid_kernel(means, scales, int(cells))


def _prepare(scene: GaussianScene) -> CpuScene:
    n = len(scene)
    covs = np.empty((n, 6), dtype=np.float64)
    base = np.empty((n if scene.sh_degree == 0 else 0, 3), dtype=np.float64)
    scene_rows_kernel(scene.quats, scene.scales, scene.sh, covs, base)
    spheres, starts, members = culling_grid(scene.means, scene.scales)
    return CpuScene(covs=covs, base_colour=base, cell_spheres=spheres, cell_starts=starts,
                    cell_members=members, sigma_cuts=lod_levels.sigma_cuts(scene.opacities))


_CACHE: SceneCache[CpuScene] = SceneCache(_prepare)


def prepare_scene(scene: GaussianScene) -> CpuScene:
    """Cached per-scene data (covariances, base colours) of ``scene`` for this backend."""
    return _CACHE.get(scene)


def _prepare_lod(scene: GaussianScene) -> LodLevels | None:
    prep = prepare_scene(scene)
    colours = scene.sh if prep.view_dependent else prep.base_colour
    return build_lod(scene.means, prep.covs, scene.opacities, colours, prep.cell_starts,
                     prep.cell_members)


_LOD_CACHE: SceneCache[LodLevels | None] = SceneCache(_prepare_lod)


def prepare_lod(scene: GaussianScene) -> LodLevels | None:
    """Cached proxy levels of ``scene`` (built on first use; None: drawn in full).

    Scenes below :data:`.lod.LOD_MIN_GAUSSIANS` get None without a cache entry (they never
    have levels; pedestrians are posed as a new small scene every frame).
    """
    if len(scene) < lod_levels.LOD_MIN_GAUSSIANS:
        return None
    return _LOD_CACHE.get(scene)


@njit(cache=True)
def _gather_drawn(drawn: np.ndarray, out: np.ndarray) -> int:
    """Write the indices of the nonzero ``drawn`` flags to ``out`` (ascending); the count.

    Reads eight flags at a time as one uint64 and skips blocks with no drawn row.

    Args:
        drawn: ``(M,)`` uint8 flags, ``M`` a multiple of ``_FLAGS_PER_WORD`` (8).
        out: ``(M,)`` int64 buffer; its first ``V`` entries receive the drawn rows.

    Returns:
        ``V``, the number of drawn rows.
    """
    words = drawn.view(np.uint64)
    count = 0
    for w in range(words.shape[0]):
        if words[w] == 0:
            continue
        for j in range(_FLAGS_PER_WORD * w, _FLAGS_PER_WORD * (w + 1)):
            out[count] = j
            count += drawn[j] != 0
    return count


class _FrameBuffers(threading.local):
    """Per-thread table, drawn-flag and row-index buffers, grown on demand and reused."""

    def __init__(self) -> None:
        self.table = np.empty((0, TABLE_COLUMNS), dtype=np.float64)
        self.drawn = np.empty(0, dtype=np.uint8)
        self.kept = np.empty(0, dtype=np.int64)
        self.visible = np.empty(0, dtype=np.int64)

    def get(self, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Table ``(rows, TABLE_COLUMNS)``, drawn flags, kept-row and visible-row buffers.

        The flags and the visible-row buffer have ``rows`` rounded up to a multiple of
        ``_FLAGS_PER_WORD`` entries (:func:`_gather_drawn` reads the flags eight at a time);
        the others ``rows``.
        """
        padded = -(-rows // _FLAGS_PER_WORD) * _FLAGS_PER_WORD
        if self.drawn.shape[0] < padded:
            self.table = np.empty((padded, TABLE_COLUMNS), dtype=np.float64)
            self.drawn = np.empty(padded, dtype=np.uint8)
            self.kept = np.empty(padded, dtype=np.int64)
            self.visible = np.empty(padded, dtype=np.int64)
        return self.table[:rows], self.drawn[:padded], self.kept[:rows], self.visible[:padded]


_BUFFERS = _FrameBuffers()


@dataclass(frozen=True)
class _FrameLayout:
    """Where each scene's rows sit in the per-frame table.

    Scene ``i`` owns rows ``offsets[i] : offsets[i + 1]``: its Gaussians, then its proxies
    (``lods[i]``, when drawn with level of detail). ``sh_blocks`` lists the row blocks whose
    colour is evaluated per camera as ``(first row, count, means, SH)``.
    """

    scenes: list[GaussianScene]
    prepared: list[CpuScene]
    lods: list[LodLevels | None]
    offsets: list[int]
    sh_blocks: list[tuple[int, int, np.ndarray, np.ndarray]]


def _layout(scenes: list[GaussianScene], lod_px: float) -> _FrameLayout:
    prepared = [prepare_scene(scene) for scene in scenes]
    lods = [prepare_lod(scene) if lod_px > 0.0 else None for scene in scenes]
    sizes = [len(scene) + (0 if lod is None else len(lod)) for scene, lod in
             zip(scenes, lods, strict=True)]
    offsets = list(itertools.accumulate(sizes, initial=0))
    sh_blocks = []
    for scene, prep, lod, offset in zip(scenes, prepared, lods, offsets, strict=False):
        if prep.view_dependent:
            sh_blocks.append((offset, len(scene), scene.means, scene.sh))
            if lod is not None:
                sh_blocks.append((offset + len(scene), len(lod), lod.means, lod.sh))
    return _FrameLayout(scenes, prepared, lods, offsets, sh_blocks)


def _project_frame(
    layout: _FrameLayout,
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    near: float,
    far: float,
    lod_px: float,
    table: np.ndarray,
    drawn: np.ndarray,
    kept: np.ndarray,
    visible: np.ndarray,
    threads: int,
) -> np.ndarray:
    """Cull, pick levels and project every scene of ``layout``; the drawn rows, ascending.

    ``threads``: numba's thread count (one: the serial projection loop).

    ``drawn`` may be longer than the table (padding, never drawn); the drawn rows are
    gathered into ``visible`` (as long as ``drawn``) and returned as a view of it.
    """
    drawn[:] = 0
    project = project_kernel if threads > 1 else project_kernel_serial
    for scene, prep, lod, offset in zip(layout.scenes, layout.prepared, layout.lods,
                                        layout.offsets, strict=False):
        n = len(scene)
        if not n:
            continue
        rows = kept[offset : offset + n]
        if lod is None:
            count = cull_cells_kernel(
                prep.cell_spheres, prep.cell_starts, prep.cell_members, viewmat, K,
                width, height, near, far, rows,
            )  # fmt: skip
        else:
            proxies = kept[offset + n : offset + n + len(lod)]
            count, n_proxies = cull_cells_lod_kernel(
                prep.cell_spheres, prep.cell_starts, prep.cell_members, lod.starts,
                lod.edges_m, viewmat, K, width, height, near, far, camera_centre(viewmat),
                float(lod_px), rows, proxies,
            )  # fmt: skip
            project(
                lod.means, lod.covs, lod.opacities, lod.sigma_cuts, lod.base_colour, viewmat, K,
                width, height, near, far, proxies[:n_proxies], offset + n, table, drawn,
            )  # fmt: skip
        project(
            scene.means, prep.covs, scene.opacities, prep.sigma_cuts, prep.base_colour, viewmat, K,
            width, height, near, far, rows[:count], offset, table, drawn,
        )  # fmt: skip
    return visible[:_gather_drawn(drawn, visible)]


def drawn_rows(
    scenes: list[GaussianScene],
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    near: float = DEFAULT_NEAR_M,
    far: float = DEFAULT_FAR_M,
    lod_px: float = 0.0,
) -> int:
    """How many rows (Gaussians plus proxies) :func:`render_cpu` would sort and composite.

    Args:
        scenes: scenes drawn together.
        viewmat: ``(4, 4)`` float64 world-to-camera matrix (OpenCV axes).
        K: ``(3, 3)`` float64 intrinsics (pixels).
        width: image width (pixels).
        height: image height (pixels).
        near: near plane (metres).
        far: far plane (metres).
        lod_px: level-of-detail threshold (pixels; 0 = off).

    Returns:
        The number of rows that survive culling and projection for this camera.
    """
    layout = _layout(scenes, lod_px)
    table, drawn, kept, visible = _BUFFERS.get(layout.offsets[-1])
    viewmat = np.ascontiguousarray(viewmat, dtype=np.float64)
    K = np.ascontiguousarray(K, dtype=np.float64)
    return int(_project_frame(layout, viewmat, K, width, height, near, far, lod_px, table,
                              drawn, kept, visible, get_num_threads()).shape[0])


def render_cpu(
    scenes: list[GaussianScene],
    viewmats: np.ndarray,
    Ks: np.ndarray,
    width: int,
    height: int,
    background: np.ndarray,
    near: float,
    far: float,
    lod_px: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the union of ``scenes`` from ``C`` cameras (inputs already validated).

    With ``lod_px > 0`` every scene that has proxy levels (:func:`prepare_lod`) draws each
    culling cell at the coarsest level whose voxel edge projects to at most ``lod_px`` pixels
    (:func:`cull_cells_lod_kernel`); the proxies take table rows after their scene's
    Gaussians and go through the same projection, sorting and compositing. With
    ``lod_px == 0`` no level is built or used and the result is exact.

    Args:
        scenes: scenes drawn together; each keeps its own arrays (nothing is concatenated).
        viewmats: ``(C, 4, 4)`` float64 world-to-camera matrices.
        Ks: ``(C, 3, 3)`` float64 intrinsics.
        width: image width (pixels).
        height: image height (pixels).
        background: ``(3,)`` float64 RGB.
        near: near plane (metres).
        far: far plane (metres).
        lod_px: level-of-detail threshold (pixels, ``>= 0``; 0 draws every Gaussian).

    Returns:
        ``rgb (C, H, W, 3)``, ``depth (C, H, W)``, ``alpha (C, H, W)``, all float32.
    """
    n_cams = viewmats.shape[0]
    layout = _layout(scenes, lod_px)
    table, drawn, kept, visible_buffer = _BUFFERS.get(layout.offsets[-1])
    rgb = np.empty((n_cams, height, width, 3), dtype=np.float32)
    depth = np.empty((n_cams, height, width), dtype=np.float32)
    alpha = np.empty((n_cams, height, width), dtype=np.float32)
    threads = get_num_threads()
    for cam in range(n_cams):
        viewmat = np.ascontiguousarray(viewmats[cam])
        K = np.ascontiguousarray(Ks[cam])
        visible = _project_frame(layout, viewmat, K, width, height, near, far, lod_px, table,
                                 drawn, kept, visible_buffer, threads)
        if layout.sh_blocks:
            centre = camera_centre(viewmat)
            for start, n, means, sh in layout.sh_blocks:
                lo, hi = np.searchsorted(visible, (start, start + n))
                rows = visible[lo:hi]
                local = rows - start
                dirs = means[local].astype(np.float64) - centre
                sh_rgb = eval_sh(sh[local], dirs).astype(np.float64)
                table[rows, _R : _B + 1] = np.maximum(sh_rgb + SH_COLOUR_OFFSET, 0.0)
        packed = sort_rows_kernel(table, visible)
        composite_kernel(packed, threads, background, rgb[cam], depth[cam],
                         alpha[cam])
    return rgb, depth, alpha
