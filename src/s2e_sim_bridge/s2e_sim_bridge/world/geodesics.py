"""Geodesic distance to a goal on an occupancy map, and the expert planner's path.

The field is an 8-connected Dijkstra (``scipy.sparse.csgraph``) over the cells a disc of
the robot's radius can occupy; diagonal moves cost ``sqrt(2)`` cells and may not cut the
corner of a blocked cell. Paths descend the field cell by cell and are then shortened by
line-of-sight shortcuts checked against the clearance field, so they are close to the
any-angle shortest path (what SPL wants) and smooth enough for an expert to follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from s2e_sim_bridge.world.occupancy import OccupancyError, OccupancyMap

# (d_row, d_col) neighbour offsets; each undirected edge is built once from these four.
_HALF_NEIGHBOURHOOD = ((0, 1), (1, 0), (1, 1), (1, -1))
_ALL_NEIGHBOURS = np.array(
    [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)], dtype=np.int64
)
# Line-of-sight checks sample a segment every this many cells.
_LOS_SAMPLES_PER_CELL = 2.0


def polyline_length_m(path_xy: np.ndarray) -> float:
    """Length (metres) of a ``(M, 2)`` polyline."""
    path = np.asarray(path_xy, dtype=np.float64)
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()) if len(path) > 1 else 0.0


def _grid_edges(free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected 8-connected edges between free cells: (src, dst, cost in cells)."""
    rows, cols = free.shape
    index = np.arange(rows * cols).reshape(rows, cols)
    src, dst, cost = [], [], []
    for dr, dc in _HALF_NEIGHBOURHOOD:
        r0, r1 = 0, rows - dr
        c0, c1 = max(0, -dc), cols - max(0, dc)
        a = (slice(r0, r1), slice(c0, c1))
        b = (slice(r0 + dr, r1 + dr), slice(c0 + dc, c1 + dc))
        ok = free[a] & free[b]
        if dr and dc:  # no corner cutting: both orthogonal neighbours must be free too
            ok &= free[(slice(r0, r1), slice(c0 + dc, c1 + dc))]
            ok &= free[(slice(r0 + dr, r1 + dr), slice(c0, c1))]
        src.append(index[a][ok])
        dst.append(index[b][ok])
        cost.append(np.full(int(ok.sum()), np.hypot(dr, dc)))
    return np.concatenate(src), np.concatenate(dst), np.concatenate(cost)


@dataclass
class GeodesicField:
    """Shortest-path distance (metres) from every cell to a goal for a robot of one radius.

    Attributes:
        occupancy: the map the field was computed on.
        goal_xy_m: ``(2,)`` float64 world goal.
        radius_m: robot footprint radius used to inflate obstacles (metres).
        distance_m: ``(rows, cols)`` float64 path length from each cell centre to the goal
            cell, ``inf`` where unreachable.
    """

    occupancy: OccupancyMap
    goal_xy_m: np.ndarray
    radius_m: float
    distance_m: np.ndarray

    def distance_at(self, xy: np.ndarray) -> np.ndarray:
        """Geodesic distance (metres) at ``(..., 2)`` world points -> ``(...)``; inf off-map."""
        rc = self.occupancy.world_to_cell(xy)
        inside = self.occupancy.contains(xy)
        rows = np.where(inside, rc[..., 0], 0)
        cols = np.where(inside, rc[..., 1], 0)
        return np.where(inside, self.distance_m[rows, cols], np.inf)

    def segment_is_clear(self, a_xy: np.ndarray, b_xy: np.ndarray) -> bool:
        """Whether the robot disc can sweep the straight segment a -> b (world metres)."""
        res = self.occupancy.resolution_m
        length = float(np.linalg.norm(b_xy - a_xy))
        n = max(2, int(np.ceil(length / res * _LOS_SAMPLES_PER_CELL)) + 1)
        points = a_xy + np.linspace(0.0, 1.0, n)[:, None] * (b_xy - a_xy)
        return bool(self.occupancy.is_free(points, self.radius_m).all())

    def cell_path_from(self, start_xy: np.ndarray) -> np.ndarray:
        """Steepest descent of the field from the start's cell: ``(M, 2)`` int64 (row, col).

        Raises:
            OccupancyError: if the goal is unreachable from the start.
        """
        start = np.asarray(start_xy, dtype=np.float64).reshape(2)
        if not np.isfinite(self.distance_at(start)):
            raise OccupancyError(
                f"goal {self.goal_xy_m.tolist()} is not reachable from start {start.tolist()} "
                f"for a robot of radius {self.radius_m} m"
            )
        rows, cols = self.distance_m.shape
        cell = self.occupancy.world_to_cell(start)
        path = [cell]
        while self.distance_m[cell[0], cell[1]] > 0.0:
            nbrs = cell + _ALL_NEIGHBOURS
            ok = (nbrs[:, 0] >= 0) & (nbrs[:, 0] < rows) & (nbrs[:, 1] >= 0) & (nbrs[:, 1] < cols)
            nbrs = nbrs[ok]
            values = self.distance_m[nbrs[:, 0], nbrs[:, 1]]
            cell = nbrs[int(np.argmin(values))]
            path.append(cell)
        return np.array(path, dtype=np.int64)

    def path_from(self, start_xy: np.ndarray, smooth: bool = True) -> np.ndarray:
        """Expert path to the goal: ``(M, 2)`` float64 world xy, from the start to the goal.

        Args:
            start_xy: ``(2,)`` world start (metres).
            smooth: shorten the cell path with line-of-sight shortcuts.
        """
        start = np.asarray(start_xy, dtype=np.float64).reshape(2)
        centres = self.occupancy.cell_to_world(self.cell_path_from(start))
        points = (
            np.vstack([start, centres[1:-1], self.goal_xy_m])
            if len(centres) > 1
            else np.vstack([start, self.goal_xy_m])
        )
        if not smooth:
            return points
        kept = [0]
        i = 0
        while i < len(points) - 1:
            j = i + 1
            while j + 1 < len(points) and self.segment_is_clear(points[i], points[j + 1]):
                j += 1
            kept.append(j)
            i = j
        return points[kept]

    def shortest_path_length_m(self, start_xy: np.ndarray) -> float:
        """Length (metres) of the smoothed path from ``start_xy``: the SPL reference length.

        Shorter and closer to the true geodesic than the raw 8-connected field value.
        """
        return polyline_length_m(self.path_from(start_xy, smooth=True))


def geodesic_field(occupancy: OccupancyMap, goal_xy: np.ndarray, radius_m: float) -> GeodesicField:
    """Geodesic distance field to ``goal_xy`` for a disc robot of ``radius_m``.

    Raises:
        OccupancyError: if the goal is outside the map or not free for this radius.
    """
    goal = np.asarray(goal_xy, dtype=np.float64).reshape(2)
    if not (occupancy.contains(goal) and occupancy.is_free(goal, radius_m)):
        raise OccupancyError(
            f"goal {goal.tolist()} is not free for a robot of radius {radius_m} m "
            f"(clearance {float(occupancy.distance_to_obstacle(goal)):.3f} m, map bounds "
            f"{occupancy.bounds_m})"
        )
    free = occupancy.traversable(radius_m)
    n = free.size
    src, dst, cost = _grid_edges(free)
    graph = coo_matrix((cost, (src, dst)), shape=(n, n)).tocsr()
    row, col = occupancy.world_to_cell(goal)
    cells = dijkstra(graph, directed=False, indices=int(row * free.shape[1] + col))
    distance = cells.reshape(free.shape) * occupancy.resolution_m
    return GeodesicField(
        occupancy=occupancy, goal_xy_m=goal, radius_m=float(radius_m), distance_m=distance
    )
