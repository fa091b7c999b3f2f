"""2D occupancy grid of a Gaussian scene in the robot's height band, with a distance field.

Frames and conventions: the robot world (x, y horizontal, z up, metres). A grid is indexed
``grid[row, col]`` with ``row`` along +y and ``col`` along +x; ``origin_xy_m`` is the world
position of the lower-left corner of cell ``(0, 0)``, so the centre of cell ``(row, col)`` is
``origin_xy_m + ((col, row) + 0.5) * resolution_m``. The navigable bounds are the limits of
the world: everything outside the grid counts as an obstacle.

A Gaussian is an obstacle when its opacity reaches ``opacity_threshold`` and its vertical
extent ``mean_z +- z_extent_sigmas * sigma_z`` (``sigma_z`` from the full 3D covariance
``R diag(scales^2) R^T``) overlaps the robot's height band above the floor; a flat Gaussian
lying horizontally (floor, kerb top, table top) is a surface at its centre height, its splat
thickness does not count. Its footprint is
rasterised, not just its centre: every cell whose centre lies inside the
``footprint_sigmas`` ellipse of the Gaussian's xy marginal covariance is occupied, plus the
cell containing the mean.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numba
import numpy as np
from scipy import ndimage

from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.transform import quats_to_rotmats

# Variance floor (m^2) that keeps the xy covariance of flat or needle Gaussians invertible.
MIN_VARIANCE_M2 = 1e-8


class OccupancyError(S2EError):
    """Bad occupancy input: invalid config, bounds, or a query point outside the map."""


@dataclass(frozen=True)
class OccupancyConfig:
    """How Gaussians become occupied cells.

    Attributes:
        resolution_m: cell edge length (metres).
        height_band_m: ``(low, high)`` heights above the floor that the robot body occupies
            (metres); Gaussians entirely below (ground, kerb tops) or above (canopies) pass.
        opacity_threshold: minimum opacity in ``[0, 1]`` for a Gaussian to be solid.
        z_extent_sigmas: vertical half-extent of a Gaussian in standard deviations.
        footprint_sigmas: xy footprint radius of a Gaussian in standard deviations
            (Mahalanobis distance of covered cell centres).
        surface_flatness_ratio: a Gaussian whose smallest scale is at most this fraction
            of its largest is flat; flat and horizontal, it is a surface at its centre
            height (0 disables the rule).
        surface_max_tilt_deg: largest angle between a flat Gaussian's normal (thin axis)
            and world z for it to count as a horizontal surface (degrees).
    """

    resolution_m: float = 0.05
    # From 10 cm: kerbs and sidewalk edges (the generated street's are 4.5 cm) are drivable.
    height_band_m: tuple[float, float] = (0.10, 1.5)
    opacity_threshold: float = 0.5
    z_extent_sigmas: float = 2.0
    footprint_sigmas: float = 2.0
    surface_flatness_ratio: float = 0.25
    surface_max_tilt_deg: float = 30.0

    def __post_init__(self) -> None:
        if not self.resolution_m > 0:
            raise OccupancyError(
                f"OccupancyConfig.resolution_m must be > 0, got {self.resolution_m}"
            )
        low, high = self.height_band_m
        if not high > low:
            raise OccupancyError(
                f"OccupancyConfig.height_band_m must be (low, high) with high > low, got "
                f"{self.height_band_m}"
            )
        if not 0.0 <= self.opacity_threshold <= 1.0:
            raise OccupancyError(
                f"OccupancyConfig.opacity_threshold must be in [0, 1], got {self.opacity_threshold}"
            )
        if not (self.z_extent_sigmas > 0 and self.footprint_sigmas > 0):
            raise OccupancyError("OccupancyConfig.z_extent_sigmas and footprint_sigmas must be > 0")
        if not 0.0 <= self.surface_flatness_ratio < 1.0:
            raise OccupancyError(
                "OccupancyConfig.surface_flatness_ratio must be in [0, 1), got "
                f"{self.surface_flatness_ratio}"
            )
        if not 0.0 <= self.surface_max_tilt_deg <= 90.0:
            raise OccupancyError(
                "OccupancyConfig.surface_max_tilt_deg must be in [0, 90], got "
                f"{self.surface_max_tilt_deg}"
            )


@dataclass
class OccupancyMap:
    """A 2D occupancy grid over the navigable bounds, with its obstacle distance field.

    Attributes:
        grid: ``(rows, cols)`` bool, True where occupied; ``rows`` along +y, ``cols`` along +x.
        origin_xy_m: ``(2,)`` float64 world xy of the lower-left corner of cell ``(0, 0)``.
        resolution_m: cell edge length (metres).
        distance_m: ``(rows, cols)`` float32 distance (metres) from each cell centre to the
            nearest occupied cell's edge or the map boundary, 0 on occupied cells (derived).
    """

    grid: np.ndarray
    origin_xy_m: np.ndarray
    resolution_m: float
    distance_m: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.grid = np.ascontiguousarray(self.grid, dtype=bool)
        self.origin_xy_m = np.asarray(self.origin_xy_m, dtype=np.float64).reshape(2)
        if self.grid.ndim != 2 or min(self.grid.shape) < 1:
            raise OccupancyError(
                f"OccupancyMap.grid must be a non-empty 2D array, got {self.grid.shape}"
            )
        if not self.resolution_m > 0:
            raise OccupancyError(f"OccupancyMap.resolution_m must be > 0, got {self.resolution_m}")
        # The world ends at the bounds: pad with an occupied ring before the transform.
        padded = np.pad(self.grid, 1, constant_values=True)
        cells = ndimage.distance_transform_edt(~padded)[1:-1, 1:-1]
        self.distance_m = self._clearance_m(cells)

    def _clearance_m(self, cells: np.ndarray) -> np.ndarray:
        """Centre-to-centre distances (cells) -> float32 distances (metres) to the edge.

        Monotonic, so the clearance of the nearer of two obstacle sets is the smaller one.
        """
        return np.clip((cells - 0.5) * self.resolution_m, 0.0, None).astype(np.float32)

    def with_occupied(self, added: np.ndarray) -> OccupancyMap:
        """A new map: this one with the cells of ``added`` occupied too (this one is kept).

        Bit-identical to ``OccupancyMap(grid | added, ...)``, but the distance transform
        runs only on a window around the added cells: a cell farther from every added cell
        than the largest clearance of this map keeps its clearance, so the window reaches
        that far beyond their bounding box, and inside it the new clearance is the smaller
        of the old one and the clearance to the added cells (the transform's distances are
        exact). For the obstacle episodes of the default street the window is 14-25% of the
        grid. When no cell of ``added`` is new, this map itself is returned.

        Args:
            added: ``(rows, cols)`` bool, the cells to occupy.

        Raises:
            OccupancyError: if ``added`` does not have the grid's shape.
        """
        added = np.asarray(added, dtype=bool)
        if added.shape != self.grid.shape:
            raise OccupancyError(f"added cells have shape {added.shape}, the grid "
                                 f"{self.grid.shape}")
        new = added & ~self.grid
        if not new.any():
            return self
        rows, cols = np.nonzero(new)
        reach = int(np.ceil(float(self.distance_m.max()) / self.resolution_m + 0.5)) + 2
        r0, r1 = max(0, rows.min() - reach), min(new.shape[0], rows.max() + reach + 1)
        c0, c1 = max(0, cols.min() - reach), min(new.shape[1], cols.max() + reach + 1)
        near = self._clearance_m(ndimage.distance_transform_edt(~new[r0:r1, c0:c1]))
        distance = self.distance_m.copy()
        np.minimum(distance[r0:r1, c0:c1], near, out=distance[r0:r1, c0:c1])
        out = copy.copy(self)
        out.grid, out.distance_m = self.grid | new, distance
        return out

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid."""
        return self.grid.shape

    @property
    def bounds_m(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((x_min, y_min), (x_max, y_max))`` of the grid in world metres."""
        rows, cols = self.grid.shape
        x0, y0 = self.origin_xy_m
        return (
            (float(x0), float(y0)),
            (float(x0 + cols * self.resolution_m), float(y0 + rows * self.resolution_m)),
        )

    def world_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """Cells containing world points: ``(..., 2)`` xy metres -> ``(..., 2)`` int64 (row, col).

        Points outside the grid map to out-of-range indices; see :meth:`contains`.
        """
        ij = np.floor((np.asarray(xy, dtype=np.float64) - self.origin_xy_m) / self.resolution_m)
        return ij[..., ::-1].astype(np.int64)

    def cell_to_world(self, cells: np.ndarray) -> np.ndarray:
        """Cell centres: ``(..., 2)`` int (row, col) -> ``(..., 2)`` float64 world xy metres."""
        rc = np.asarray(cells, dtype=np.float64)
        return self.origin_xy_m + (rc[..., ::-1] + 0.5) * self.resolution_m

    def _inside(self, rc: np.ndarray) -> np.ndarray:
        """``(...)`` bool: whether each ``(..., 2)`` (row, col) is a cell of the grid."""
        rows, cols = self.grid.shape
        return (rc[..., 0] >= 0) & (rc[..., 0] < rows) & (rc[..., 1] >= 0) & (rc[..., 1] < cols)

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """``(...)`` bool: whether each ``(..., 2)`` world point lies inside the grid."""
        return self._inside(self.world_to_cell(xy))

    def field_at(self, field: np.ndarray, xy: np.ndarray, outside: float) -> np.ndarray:
        """Values of a ``(rows, cols)`` per-cell ``field`` at ``(..., 2)`` world points.

        The containing cell's value, ``outside`` for points off the grid; ``(...)``, in the
        field's dtype. One point (a ``(2,)`` array, as the simulator asks every step) is looked
        up with Python floats, the same arithmetic as :meth:`world_to_cell`.
        """
        if isinstance(xy, np.ndarray) and xy.shape == (2,):
            x, y = float(xy[0]), float(xy[1])
            if math.isfinite(x) and math.isfinite(y):
                col = math.floor((x - float(self.origin_xy_m[0])) / self.resolution_m)
                row = math.floor((y - float(self.origin_xy_m[1])) / self.resolution_m)
                rows, cols = self.grid.shape
                if 0 <= row < rows and 0 <= col < cols:
                    return field[row, col]
            return field.dtype.type(outside)
        rc = self.world_to_cell(xy)
        inside = self._inside(rc)
        rows = np.where(inside, rc[..., 0], 0)
        cols = np.where(inside, rc[..., 1], 0)
        return np.where(inside, field[rows, cols], outside)

    def distance_to_obstacle(self, xy: np.ndarray) -> np.ndarray:
        """Clearance (metres) at ``(..., 2)`` world points -> ``(...)`` float64.

        The value of the containing cell's distance field; 0 outside the grid.
        """
        return self.field_at(self.distance_m, xy, 0.0).astype(np.float64)

    def is_free(self, xy: np.ndarray, radius_m: float) -> np.ndarray:
        """``(...)`` bool: a disc of ``radius_m`` at each ``(..., 2)`` point touches nothing."""
        return self.distance_to_obstacle(xy) > radius_m

    def traversable(self, radius_m: float) -> np.ndarray:
        """``(rows, cols)`` bool: cells where a disc of ``radius_m`` centred there is free."""
        return self.distance_m > radius_m

    def reachable_from(self, start_xy: np.ndarray, radius_m: float) -> np.ndarray:
        """Free space connected (8-neighbourhood) to ``start_xy`` for a disc of ``radius_m``.

        Returns:
            ``(rows, cols)`` bool mask of the connected component containing the start.

        Raises:
            OccupancyError: if the start is outside the map or not free for this radius.
        """
        start = np.asarray(start_xy, dtype=np.float64).reshape(2)
        if not (self.contains(start) and self.is_free(start, radius_m)):
            raise OccupancyError(
                f"start {start.tolist()} is not free for a robot of radius {radius_m} m "
                f"(clearance {float(self.distance_to_obstacle(start)):.3f} m, map bounds "
                f"{self.bounds_m})"
            )
        labels, _ = ndimage.label(self.traversable(radius_m), structure=np.ones((3, 3), bool))
        row, col = self.world_to_cell(start)
        return labels == labels[row, col]


def gaussian_covariances(rotmats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """World covariances ``R diag(s^2) R^T``.

    Args:
        rotmats: ``(N, 3, 3)`` body->world rotations (``quats_to_rotmats`` of the w x y z quats).
        scales: ``(N, 3)`` standard deviations along the body axes (metres).

    Returns:
        ``(N, 3, 3)`` float64 covariances (m^2).
    """
    scaled = (
        np.asarray(rotmats, dtype=np.float64) * np.asarray(scales, dtype=np.float64)[:, None, :]
    )
    return scaled @ scaled.transpose(0, 2, 1)


def horizontal_surfaces(
    rotmats: np.ndarray, scales: np.ndarray, config: OccupancyConfig
) -> np.ndarray:
    """``(N,)`` bool: flat Gaussians whose thin axis is within the tilt limit of world z.

    Args:
        rotmats: ``(N, 3, 3)`` body->world rotations.
        scales: ``(N, 3)`` standard deviations along the body axes (metres).
        config: ``surface_flatness_ratio`` and ``surface_max_tilt_deg``.
    """
    scales = np.asarray(scales, dtype=np.float64)
    thin_axis = np.argmin(scales, axis=1)
    normal_z = np.abs(np.take_along_axis(rotmats[:, 2, :], thin_axis[:, None], axis=1)[:, 0])
    flatness = scales.min(axis=1) / np.maximum(scales.max(axis=1), np.finfo(np.float64).tiny)
    return (flatness <= config.surface_flatness_ratio) & (
        normal_z >= np.cos(np.radians(config.surface_max_tilt_deg))
    )


def select_obstacle_gaussians(
    scene: GaussianScene, floor_z_m: float, config: OccupancyConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussians that are solid and overlap the height band.

    A flat Gaussian lying horizontally (a piece of floor, kerb top or table top) is a surface
    at its centre height: its vertical reach is 0, not ``z_extent_sigmas * sigma_z``, so the
    splat thickness of a sidewalk just below the band does not turn it into an obstacle.

    Returns:
        ``means_xy`` ``(M, 2)`` float64 and ``cov_xy`` ``(M, 2, 2)`` float64 (world frame).
    """
    rot = quats_to_rotmats(scene.quats)
    cov = gaussian_covariances(rot, scene.scales)
    sigma_z = np.sqrt(cov[:, 2, 2])
    z = scene.means[:, 2].astype(np.float64) - floor_z_m
    surface = horizontal_surfaces(rot, scene.scales, config)
    reach = np.where(surface, 0.0, config.z_extent_sigmas * sigma_z)
    low, high = config.height_band_m
    keep = (scene.opacities >= config.opacity_threshold) & (z + reach >= low) & (z - reach <= high)
    return scene.means[keep, :2].astype(np.float64), cov[keep, :2, :2]


def _footprint_terms(cov_xy: np.ndarray, sigmas: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse xy covariances and ellipse bounding half extents.

    Returns:
        ``(M, 3)`` entries ``(a, b, c)`` of the inverse ``[[a, b], [b, c]]`` and ``(M, 2)``
        half extents (metres) of the ``sigmas`` ellipse along x and y.
    """
    cov = cov_xy + MIN_VARIANCE_M2 * np.eye(2)
    sxx, sxy, syy = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    det = sxx * syy - sxy * sxy
    inv = np.stack([syy / det, -sxy / det, sxx / det], axis=1)
    half = sigmas * np.sqrt(np.stack([sxx, syy], axis=1))
    return inv, half


@numba.njit(cache=True, nogil=True)
def _rasterise_kernel(
    means_xy: np.ndarray,
    inv_cov: np.ndarray,
    half_extent: np.ndarray,
    origin: np.ndarray,
    resolution: float,
    sigmas: float,
    grid: np.ndarray,
) -> None:  # pragma: no cover - compiled
    rows, cols = grid.shape
    limit = sigmas * sigmas
    for g in range(means_xy.shape[0]):
        mx, my = means_xy[g, 0], means_xy[g, 1]
        c0 = int(np.floor((mx - half_extent[g, 0] - origin[0]) / resolution))
        c1 = int(np.floor((mx + half_extent[g, 0] - origin[0]) / resolution))
        r0 = int(np.floor((my - half_extent[g, 1] - origin[1]) / resolution))
        r1 = int(np.floor((my + half_extent[g, 1] - origin[1]) / resolution))
        if c1 < 0 or r1 < 0 or c0 >= cols or r0 >= rows:
            continue
        a, b, c = inv_cov[g, 0], inv_cov[g, 1], inv_cov[g, 2]
        for r in range(max(r0, 0), min(r1, rows - 1) + 1):
            dy = origin[1] + (r + 0.5) * resolution - my
            for col in range(max(c0, 0), min(c1, cols - 1) + 1):
                dx = origin[0] + (col + 0.5) * resolution - mx
                if a * dx * dx + 2.0 * b * dx * dy + c * dy * dy <= limit:
                    grid[r, col] = True
        rm = int(np.floor((my - origin[1]) / resolution))
        cm = int(np.floor((mx - origin[0]) / resolution))
        if 0 <= rm < rows and 0 <= cm < cols:
            grid[rm, cm] = True


def rasterise_footprints(
    means_xy: np.ndarray,
    cov_xy: np.ndarray,
    origin_xy_m: np.ndarray,
    resolution_m: float,
    shape: tuple[int, int],
    footprint_sigmas: float,
) -> np.ndarray:
    """Occupied cells of Gaussian footprints (numba kernel).

    Args:
        means_xy: ``(M, 2)`` world xy centres (metres).
        cov_xy: ``(M, 2, 2)`` xy marginal covariances (m^2).
        origin_xy_m: ``(2,)`` lower-left corner of cell (0, 0).
        resolution_m: cell size (metres).
        shape: ``(rows, cols)``.
        footprint_sigmas: Mahalanobis radius of the covered ellipse.

    Returns:
        ``(rows, cols)`` bool grid.
    """
    grid = np.zeros(shape, dtype=np.bool_)
    if len(means_xy):
        inv, half = _footprint_terms(cov_xy, footprint_sigmas)
        _rasterise_kernel(
            np.ascontiguousarray(means_xy, np.float64),
            inv,
            half,
            np.asarray(origin_xy_m, np.float64),
            float(resolution_m),
            float(footprint_sigmas),
            grid,
        )
    return grid


def rasterise_footprints_reference(
    means_xy: np.ndarray,
    cov_xy: np.ndarray,
    origin_xy_m: np.ndarray,
    resolution_m: float,
    shape: tuple[int, int],
    footprint_sigmas: float,
) -> np.ndarray:
    """Plain-numpy reference of :func:`rasterise_footprints` (every cell vs every Gaussian)."""
    rows, cols = shape
    centres_x = origin_xy_m[0] + (np.arange(cols) + 0.5) * resolution_m
    centres_y = origin_xy_m[1] + (np.arange(rows) + 0.5) * resolution_m
    grid = np.zeros(shape, dtype=bool)
    if not len(means_xy):
        return grid
    inv, _ = _footprint_terms(cov_xy, footprint_sigmas)
    for (mx, my), (a, b, c) in zip(means_xy, inv, strict=True):
        dx = centres_x[None, :] - mx
        dy = centres_y[:, None] - my
        grid |= a * dx * dx + 2 * b * dx * dy + c * dy * dy <= footprint_sigmas**2
        rm, cm = np.floor((np.array([my, mx]) - origin_xy_m[::-1]) / resolution_m).astype(int)
        if 0 <= rm < rows and 0 <= cm < cols:
            grid[rm, cm] = True
    return grid


def build_occupancy(
    scene: GaussianScene,
    bounds_m: tuple[tuple[float, float], tuple[float, float]] | None = None,
    floor_z_m: float | None = None,
    config: OccupancyConfig | None = None,
) -> OccupancyMap:
    """Rasterise a scene's obstacles into an :class:`OccupancyMap` over the navigable bounds.

    Args:
        scene: Gaussians in the robot world (z up, metres).
        bounds_m: navigable region ``((x_min, y_min), (x_max, y_max))`` in world metres;
            whole cells cover it (far edges round up). None: ``scene.info.navigable_bounds_m``.
        floor_z_m: floor height the height band is measured from. None:
            ``scene.info.floor_height_m``.
        config: thresholds and resolution (defaults: :class:`OccupancyConfig`).

    Raises:
        OccupancyError: if the bounds are empty or not finite, or are None (or the floor is)
            for a scene without ``info``.
    """
    config = config or OccupancyConfig()
    if bounds_m is None or floor_z_m is None:
        if scene.info is None:
            raise OccupancyError(
                "scene has no info (floor height, navigable bounds): pass bounds_m and floor_z_m"
            )
        bounds_m = scene.info.navigable_bounds_m if bounds_m is None else bounds_m
        floor_z_m = scene.info.floor_height_m if floor_z_m is None else floor_z_m
    try:
        (x0, y0), (x1, y1) = ((float(a), float(b)) for a, b in bounds_m)
    except (TypeError, ValueError) as exc:
        raise OccupancyError(
            f"navigable bounds must be ((x_min, y_min), (x_max, y_max)), got {bounds_m!r}"
        ) from exc
    if not (np.isfinite([x0, y0, x1, y1]).all() and x1 > x0 and y1 > y0):
        raise OccupancyError(
            f"navigable bounds must be finite ((x_min, y_min), (x_max, y_max)) with max > min, "
            f"got {bounds_m!r}"
        )
    res = config.resolution_m
    shape = (int(np.ceil((y1 - y0) / res - 1e-9)), int(np.ceil((x1 - x0) / res - 1e-9)))
    origin = np.array([x0, y0])
    means_xy, cov_xy = select_obstacle_gaussians(scene, floor_z_m, config)
    grid = rasterise_footprints(means_xy, cov_xy, origin, res, shape, config.footprint_sigmas)
    return OccupancyMap(grid=grid, origin_xy_m=origin, resolution_m=res)
