"""Level of detail for the ``cpu`` backend: far Gaussians merged into moment-matched proxies.

A Gaussian far from the camera covers a fraction of a pixel; a street seen from 0.6 m above
the road has 10-20 of them behind every pixel of a 64x64 image. Per culling-grid cell
(:func:`s2e_sim_bridge.render.cpu.culling_grid`) this module builds coarser *levels*: the
cell's cube (the bounding cube of its members' centres, edge ``E``) is cut into ``2^m`` voxels
per side (``m = 0`` the whole cell, ``m = 1`` its octants, ...) and the members of each voxel
are merged into one proxy Gaussian. At render time the backend draws, per cell, the coarsest
level whose *detail size* projects to at most ``lod_px`` pixels (or the original Gaussians
when none does), so far cells cost a handful of rows instead of hundreds. A level's detail
size is its voxel edge, or the extent of the cell's largest member when that is wider
(:data:`MEMBER_SIZE_SIGMAS`); a level that merges nothing in a cell is never drawn.

Merging (:func:`merge_gaussians`), for members ``i`` of one voxel with centre ``mu_i``,
covariance ``S_i``, opacity ``o_i`` and colour ``c_i``:

- weight ``w_i = o_i * A_i``, where ``A_i`` (:func:`mean_projected_area`) is the view-averaged
  screen area of the Gaussian, so ``w_i`` is (up to the unknown view) the integral of its
  alpha over the image: what a far pixel sees of it;
- centre ``mu = sum w_i mu_i / W`` and covariance ``S = sum w_i (S_i + d_i d_i^T) / W`` with
  ``d_i = mu_i - mu`` and ``W = sum w_i`` (moment matching: the proxy has the mean and the
  second moment of the members' weighted mixture);
- colour ``c = sum w_i c_i / W``. For view-independent scenes ``c_i`` is the displayed colour
  ``max(SH + 0.5, 0)``; for scenes with SH degree > 0 every SH coefficient is averaged (SH
  evaluation is linear, so the proxy shows the weighted mean of its members' colours before
  the clamp, evaluated along the proxy's own view direction; no band is dropped);
- opacity ``o = min(ALPHA_MAX, 1 - prod_i (1 - o_i f_i))`` with ``f_i = min(1, A_i / A)``:
  the expected coverage of the proxy's footprint when member ``i`` covers the fraction ``f_i``
  of it with opacity ``o_i`` and members fall at independent places (alpha compositing
  multiplies transmittances). One member gives back its own opacity; sparse, faint members
  give about the sum ``sum o_i A_i / A`` (the integral of alpha is preserved); an opaque
  surface of overlapping members stays opaque instead of needing a clamp of an over-counted
  sum. (On the generated street the sum-and-clamp rule scores within 0.1 dB of this one: its
  surfaces are opaque either way.)

Members with opacity below ``ALPHA_MIN`` (never drawn) or with no extent in two dimensions
(``A_i = 0``) carry no weight and are left out. A proxy's ``BBOX_SIGMA_MAX``-sigma ellipsoid
is not guaranteed to stay inside its cell's culling sphere, so a proxy just outside the view
may be culled with its cell: LOD is an approximation and is off by default.

Levels are kept from ``m = 0`` down to the finest one that still merges at least
:data:`LOD_MIN_MERGE_FACTOR` members per proxy on average (finer levels would save little).
Scenes with fewer than :data:`LOD_MIN_GAUSSIANS` Gaussians get no levels: small extra scenes
(pedestrian bodies, rebuilt every frame) cost less to draw in full than to merge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from s2e_sim_bridge.render.conventions import ALPHA_MAX, ALPHA_MIN

LOD_MIN_GAUSSIANS = 4096
"""Scenes with fewer Gaussians are always drawn in full (merging would cost more than it saves)."""

LOD_MIN_MERGE_FACTOR = 1.5
"""A level is built only while it holds at most ``1 / LOD_MIN_MERGE_FACTOR`` proxies per
Gaussian of the scene. On the default street (0.18 m grid, 1.8 m cells) this keeps voxels of
0.23 m (1.8 Gaussians per proxy) and coarser and stops before 0.11 m ones (1.04)."""

LOD_MAX_SUBDIVISIONS = 10
"""Finest voxel grid: ``2^LOD_MAX_SUBDIVISIONS`` voxels along each side of a cell."""

MEMBER_SIZE_SIGMAS = 2.0
"""A cell's level is drawn only when its voxel edge *and* its largest member's extent (this
many standard deviations along its widest world axis) project to at most ``lod_px``: merging
Gaussians that are themselves several pixels wide would visibly change their shapes."""

COV_UPPER = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
"""Index pairs of the 6 stored covariance entries ``xx, xy, xz, yy, yz, zz``."""


@dataclass(frozen=True)
class LodLevels:
    """Proxy Gaussians of every cell and level of one scene, for the ``cpu`` backend.

    Levels are numbered ``1 .. L`` from fine to coarse; level ``l`` of cell ``c`` cuts the
    cell's cube into ``2^(L - l)`` voxels per side, and level ``L`` is one proxy per cell.
    Level 0 (not stored) is the original Gaussians.

    Attributes:
        means: ``(P, 3)`` float32 world centres of the proxies (metres).
        covs: ``(P, 6)`` float64 world covariances, upper triangle ``xx xy xz yy yz zz`` (m^2).
        opacities: ``(P,)`` float32 in ``[0, ALPHA_MAX]``.
        base_colour: ``(P, 3)`` float64 view-independent RGB (SH degree 0 scenes), or
            ``(0, 3)`` when colours depend on the view.
        sh: ``(P, K, 3)`` float32 averaged SH coefficients (view-dependent scenes), or
            ``(0, 1, 3)`` for view-independent scenes.
        starts: ``(C * L + 1,)`` int64; the proxies of cell ``c`` at level ``l`` are rows
            ``starts[c * L + l - 1] : starts[c * L + l]``.
        edges_m: ``(C, L)`` float64 detail size of each cell's levels (metres): the voxel
            edge, or the cell's largest member extent when wider; ``inf`` for a level with
            as many proxies as the cell has Gaussians (never drawn: the originals cost the
            same and are exact).
        sigma_cuts: ``(P,)`` float64 :func:`sigma_cuts` of the proxies' opacities.
    """

    means: np.ndarray
    covs: np.ndarray
    opacities: np.ndarray
    base_colour: np.ndarray
    sh: np.ndarray
    starts: np.ndarray
    edges_m: np.ndarray
    sigma_cuts: np.ndarray

    @property
    def num_levels(self) -> int:
        """``L``, the number of coarse levels per cell."""
        return int(self.edges_m.shape[1])

    def __len__(self) -> int:
        return int(self.means.shape[0])


@njit(cache=True)
def sigma_cuts(opacities: np.ndarray) -> np.ndarray:
    """``ln(opacity / ALPHA_MIN)`` of each Gaussian, its largest passing ``sigma``.

    The largest Mahalanobis term ``sigma`` at which the Gaussian's alpha still reaches
    ``ALPHA_MIN`` (conventions step 5). Computed once per scene (a libm ``log`` per
    Gaussian, which the projection of every frame would otherwise repeat), with numba's
    ``log`` so every path gets the same bits (numpy's own ``log`` differs in a few).

    Args:
        opacities: ``(N,)`` float32 in ``[0, 1]``.

    Returns:
        ``(N,)`` float64 (negative, and never used, for opacities below ``ALPHA_MIN``;
        ``-inf`` at 0).
    """
    out = np.empty(opacities.shape[0])
    for i in range(opacities.shape[0]):
        out[i] = np.log(np.float64(opacities[i]) / ALPHA_MIN)
    return out


def mean_projected_area(covs: np.ndarray) -> np.ndarray:
    """View-averaged area of each Gaussian's 1-sigma ellipse on a plane (metres^2).

    ``pi * sqrt(e2 / 3)`` with ``e2 = l1 l2 + l1 l3 + l2 l3`` the sum of the covariance's
    principal 2x2 minors: the root mean square of the ellipse areas seen along three
    orthogonal axes. It is rotation-invariant, needs no eigen-decomposition, is exact for a
    sphere, and lies within +16% of the exact mean projected area (Cauchy's surface area / 4;
    the worst case is a flat disk), which is what the ratios of :func:`merge_gaussians` need.

    Args:
        covs: ``(N, 6)`` float64 covariances, upper triangle ``xx xy xz yy yz zz`` (m^2).

    Returns:
        ``(N,)`` float64 areas (metres^2).
    """
    xx, xy, xz, yy, yz, zz = (covs[:, k] for k in range(6))
    e2 = (xx * yy - xy * xy) + (xx * zz - xz * xz) + (yy * zz - yz * yz)
    return math.pi * np.sqrt(np.maximum(e2, 0.0) / 3.0)


@dataclass(frozen=True)
class MergedGaussians:
    """Output of :func:`merge_gaussians`: one proxy per non-empty group.

    Attributes:
        groups: ``(G,)`` int64 label of the group each proxy merges.
        means: ``(G, 3)`` float64 centres.
        covs: ``(G, 6)`` float64 covariances (upper triangle).
        opacities: ``(G,)`` float64 in ``[0, ALPHA_MAX]``.
        colours: ``(G, D)`` float64 weighted mean colours (or SH coefficients).
    """

    groups: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    opacities: np.ndarray
    colours: np.ndarray


def merge_gaussians(
    means: np.ndarray,
    covs: np.ndarray,
    opacities: np.ndarray,
    colours: np.ndarray,
    groups: np.ndarray,
) -> MergedGaussians:
    """Merge the Gaussians of each group into one moment-matched proxy (rules in the module doc).

    Args:
        means: ``(N, 3)`` world centres (metres).
        covs: ``(N, 6)`` float64 world covariances, upper triangle (m^2).
        opacities: ``(N,)`` in ``[0, 1]``.
        colours: ``(N, D)`` colour features averaged linearly (RGB, or flattened SH).
        groups: ``(N,)`` int64 group labels, non-decreasing (members of a group contiguous).

    Returns:
        The proxies of the groups that hold at least one member with weight, in label order.
    """
    area = mean_projected_area(covs)
    opac = np.minimum(np.asarray(opacities, dtype=np.float64), ALPHA_MAX)
    weight = opac * area
    keep = (opac >= ALPHA_MIN) & (weight > 0.0)
    if not keep.all():
        means, covs, colours, groups = means[keep], covs[keep], colours[keep], groups[keep]
        area, opac, weight = area[keep], opac[keep], weight[keep]
    if groups.shape[0] == 0:
        return MergedGaussians(
            groups=np.zeros(0, dtype=np.int64), means=np.zeros((0, 3)), covs=np.zeros((0, 6)),
            opacities=np.zeros(0), colours=np.zeros((0, colours.shape[1])),
        )  # fmt: skip
    first = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    counts = np.diff(np.r_[first, groups.shape[0]])
    total = np.add.reduceat(weight, first)
    pos = np.asarray(means, dtype=np.float64)
    centre = np.add.reduceat(weight[:, None] * pos, first) / total[:, None]
    d = pos - np.repeat(centre, counts, axis=0)
    second = covs + np.stack([d[:, a] * d[:, b] for a, b in COV_UPPER], axis=1)
    cov = np.add.reduceat(weight[:, None] * second, first) / total[:, None]
    colour = np.add.reduceat(weight[:, None] * colours, first) / total[:, None]
    merged_area = np.repeat(mean_projected_area(cov), counts)
    fraction = np.minimum(1.0, area / np.maximum(merged_area, np.finfo(np.float64).tiny))
    transmittance = np.exp(np.add.reduceat(np.log1p(-opac * fraction), first))
    opacity = np.minimum(ALPHA_MAX, 1.0 - transmittance)
    return MergedGaussians(groups=groups[first], means=centre, covs=cov, opacities=opacity,
                           colours=colour)


def _voxel_labels(cell_of: np.ndarray, local: np.ndarray, subdivisions: int) -> np.ndarray:
    """Group label ``cell * 8^m + voxel`` of each member (``local``: ``(N, 3)`` in ``[0, 1]``)."""
    side = 1 << subdivisions
    ijk = np.minimum((local * side).astype(np.int64), side - 1)
    return (cell_of * side + ijk[:, 0]) * side * side + ijk[:, 1] * side + ijk[:, 2]


def build_lod(
    means: np.ndarray,
    covs: np.ndarray,
    opacities: np.ndarray,
    colours: np.ndarray,
    cell_starts: np.ndarray,
    cell_members: np.ndarray,
) -> LodLevels | None:
    """Build the proxy levels of one scene over its culling-grid cells.

    Args:
        means: ``(N, 3)`` float32 world centres (metres).
        covs: ``(N, 6)`` float64 world covariances, upper triangle (m^2).
        opacities: ``(N,)`` float32 in ``[0, 1]``.
        colours: ``(N, 3)`` float64 view-independent RGB, or ``(N, K, 3)`` SH coefficients
            (view-dependent scenes; the proxies then carry SH and no base colour).
        cell_starts: ``(C + 1,)`` int64 offsets of each cell's Gaussians in ``cell_members``.
        cell_members: ``(N,)`` int64 Gaussian indices grouped by cell.

    Returns:
        The levels, or None when the scene is smaller than :data:`LOD_MIN_GAUSSIANS` or no
        level would merge at least :data:`LOD_MIN_MERGE_FACTOR` Gaussians per proxy.
    """
    n = means.shape[0]
    if n < LOD_MIN_GAUSSIANS:
        return None
    n_cells = cell_starts.shape[0] - 1
    view_dependent = colours.ndim == 3
    pos = means[cell_members].astype(np.float64)
    feats = colours[cell_members].reshape(n, -1).astype(np.float64)
    cov = covs[cell_members]
    opac = opacities[cell_members]
    cell_of = np.repeat(np.arange(n_cells, dtype=np.int64), np.diff(cell_starts))
    first = cell_starts[:-1]
    lo = np.minimum.reduceat(pos, first, axis=0)
    edge = (np.maximum.reduceat(pos, first, axis=0) - lo).max(axis=1)  # (C,) cube edge
    safe_edge = np.where(edge > 0.0, edge, 1.0)
    local = (pos - lo[cell_of]) / safe_edge[cell_of, None]
    levels: list[MergedGaussians] = []  # coarse (m = 0) to fine
    for m in range(LOD_MAX_SUBDIVISIONS + 1):
        labels = _voxel_labels(cell_of, local, m)
        order = np.argsort(labels, kind="stable")
        merged = merge_gaussians(pos[order], cov[order], opac[order], feats[order],
                                 labels[order])
        if levels and merged.means.shape[0] * LOD_MIN_MERGE_FACTOR > n:
            break
        levels.append(merged)
    if levels[0].means.shape[0] * LOD_MIN_MERGE_FACTOR > n:
        return None
    levels.reverse()  # level 1 (finest) first
    num_levels = len(levels)
    # concatenate cell-major, then level: sort by (cell, level) keeping voxel order
    cell_ids = np.concatenate([lv.groups >> (3 * (num_levels - 1 - k)) for k, lv in
                               enumerate(levels)])
    level_ids = np.concatenate([np.full(lv.groups.shape[0], k, dtype=np.int64)
                                for k, lv in enumerate(levels)])
    order = np.lexsort((level_ids, cell_ids))
    counts = np.bincount(cell_ids * num_levels + level_ids, minlength=n_cells * num_levels)
    starts = np.r_[0, np.cumsum(counts)].astype(np.int64)
    all_means = np.concatenate([lv.means for lv in levels])[order]
    all_covs = np.concatenate([lv.covs for lv in levels])[order]
    all_opac = np.concatenate([lv.opacities for lv in levels])[order]
    all_cols = np.concatenate([lv.colours for lv in levels])[order]
    p = all_means.shape[0]
    if view_dependent:
        base = np.zeros((0, 3), dtype=np.float64)
        sh = all_cols.reshape(p, *colours.shape[1:]).astype(np.float32)
    else:
        base = all_cols
        sh = np.zeros((0, 1, 3), dtype=np.float32)
    subdivisions = np.arange(num_levels - 1, -1, -1)
    # a level is as detailed as its voxels or its largest member, whichever is coarser
    widest = MEMBER_SIZE_SIGMAS * np.sqrt(np.maximum.reduceat(
        np.max(cov[:, [0, 3, 5]], axis=1), first))
    edges = np.maximum(edge[:, None] / (2.0 ** subdivisions)[None, :], widest[:, None])
    # a level that merges nothing in a cell is never drawn: the originals cost the same
    # and are exact (so a cell near the camera is drawn exactly whatever the threshold)
    merges = counts.reshape(n_cells, num_levels) < np.diff(cell_starts)[:, None]
    edges = np.where(merges, edges, np.inf)
    opacities_32 = all_opac.astype(np.float32)
    return LodLevels(means=all_means.astype(np.float32), covs=all_covs,
                     opacities=opacities_32, base_colour=base, sh=sh, starts=starts,
                     edges_m=edges, sigma_cuts=sigma_cuts(opacities_32))
