"""The rasterisation conventions every backend and the test reference share (gsplat classic).

These are the constants of gsplat 1.5's ``rasterize_mode="classic"`` pipeline, named once so
that the numba backend, the gsplat backend wrapper and the numpy test reference cannot drift.

Pipeline, for a world-to-camera ``viewmat`` (OpenCV: x right, y down, z forward) and pinhole
intrinsics ``K`` in pixels:

1. ``cov3d = R S S^T R^T`` (``R`` from the wxyz quaternion, ``S = diag(scales)``).
2. Camera-space mean ``t``; cull ``t_z <= near`` or ``t_z >= far`` (gsplat uses strict
   inequalities; the two differ only for a centre exactly on a clipping plane).
3. EWA: ``cov2d = J W cov3d W^T J^T + EPS2D_PX2 * I`` with the Jacobian ``J`` of the pinhole
   map evaluated at ``t`` whose ``x/z``, ``y/z`` are clamped to the image's half-FOV tangent
   plus ``FOV_CLAMP_MARGIN`` of it (1.3x the half FOV). Cull ``det(cov2d) <= 0``;
   ``conic = cov2d^-1``.
4. Screen footprint: the opacity-aware box of gsplat 1.5, half-sizes
   ``ceil(extend * sqrt(cov2d_xx))`` / ``ceil(extend * sqrt(cov2d_yy))`` with
   ``extend = min(BBOX_SIGMA_MAX, sqrt(2 ln(opacity / ALPHA_MIN)))``. For opacities in
   ``[0, 1]`` this box contains every pixel where the Gaussian's alpha can reach
   ``ALPHA_MIN``, so it only decides which pixels (and gsplat's 16x16 tiles) are visited
   and never changes an image. Cull ``opacity < ALPHA_MIN`` and boxes entirely off-screen.
5. Per pixel (centre ``(x + 0.5, y + 0.5)``), front to back by float32 camera ``z`` (ties:
   lower Gaussian index first): ``sigma = 0.5 d^T conic d``,
   ``alpha = min(ALPHA_MAX, opacity * exp(-sigma))``; skip ``sigma < 0`` or
   ``alpha < ALPHA_MIN``; ``next_T = T (1 - alpha)``; if ``next_T <= TRANSMITTANCE_MIN``
   stop *before* adding this Gaussian; else add ``w = alpha T`` and set ``T = next_T``.
6. ``rgb = sum w c + T_final * background`` with ``c = max(SH(dir) + SH_COLOUR_OFFSET, 0)``
   and ``dir = mean - camera_centre`` (normalised); ``alpha = 1 - T_final``; expected depth
   ``depth = sum(w z) / alpha`` where ``alpha > 0`` and 0 elsewhere (gsplat ``"ED"``).
"""

from __future__ import annotations

EPS2D_PX2 = 0.3
"""Isotropic blur (pixels^2) added to every projected covariance's diagonal."""

FOV_CLAMP_MARGIN = 0.3
"""Extra fraction of the half-FOV tangent allowed before ``x/z``, ``y/z`` are clamped in J."""

ALPHA_MAX = 0.999
"""Upper bound on one Gaussian's alpha at one pixel."""

ALPHA_MIN = 1.0 / 255.0
"""Contributions with alpha below this are skipped (and Gaussians with lower opacity culled)."""

TRANSMITTANCE_MIN = 1e-4
"""A pixel stops when adding the next Gaussian would bring its transmittance to this or below."""

BBOX_SIGMA_MAX = 3.33
"""Cap of the footprint half-size in standard deviations (gsplat 1.5's ``extend``)."""

SH_COLOUR_OFFSET = 0.5
"""Added to the SH-evaluated colour before clamping at 0 (3DGS/gsplat convention)."""

TILE_SIZE_PX = 16
"""Side of the square screen tiles of the ``cuda`` backend (gsplat's ``tile_size``, pixels)."""

DEFAULT_NEAR_M = 0.01
"""Default near plane (camera-space z, metres)."""

DEFAULT_FAR_M = 1e3
"""Default far plane (camera-space z, metres)."""
