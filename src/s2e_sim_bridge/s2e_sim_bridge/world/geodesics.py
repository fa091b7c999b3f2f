"""Geodesic distance to a goal on an occupancy map, and the expert planner's path.

The field is an 8-connected Dijkstra over the cells a disc of the robot's radius can occupy;
diagonal moves cost ``sqrt(2)`` cells and may not cut the corner of a blocked cell. The
search runs on the grid itself (a numba kernel with a bucket queue: no edge list, no sparse
matrix); :func:`grid_distances_reference` is the same search through
``scipy.sparse.csgraph`` over an explicit edge list, and the two agree bit for bit (a
Dijkstra's distances do not depend on its queue or tie-breaking: each is the smallest
``d[u] + w`` over its neighbours, added in the same float order). Paths descend the field
cell by cell and are then shortened by line-of-sight shortcuts checked against the clearance
field, so they are close to the any-angle shortest path (what SPL wants) and smooth enough for
an expert to follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
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
# Step costs in cells: orthogonal and diagonal moves.
_ORTHOGONAL_COST = 1.0
_DIAGONAL_COST = math.sqrt(2.0)
# Bucket width (cells of distance) of the Dijkstra kernel's queue; below the smallest step
# cost, which makes the bucket order exact (see _grid_dijkstra_kernel).
_BUCKET_WIDTH_CELLS = 0.5
# Queue nodes first allotted per grid cell; a street's search queues about 1.1 per cell.
_FIRST_NODES_PER_CELL = 2
# The kernel's queue nodes and padded cell indices are int32, hence the grid size limit.
_MAX_NODES = 2**31 - 1


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
        cost.append(np.full(int(ok.sum()), _DIAGONAL_COST if dr and dc else _ORTHOGONAL_COST))
    return np.concatenate(src), np.concatenate(dst), np.concatenate(cost)


def grid_distances_reference(free: np.ndarray, source_rc: tuple[int, int]) -> np.ndarray:
    """Plain scipy reference of :func:`grid_distances` (edge list, CSR matrix, Dijkstra).

    Args:
        free: ``(rows, cols)`` bool, cells the robot may occupy.
        source_rc: ``(row, col)`` of the source cell.

    Returns:
        ``(rows, cols)`` float64 path length in cells from the source, ``inf`` where
        unreachable.
    """
    free = np.asarray(free, dtype=bool)
    n = free.size
    src, dst, cost = _grid_edges(free)
    graph = coo_matrix((cost, (src, dst)), shape=(n, n)).tocsr()
    row, col = source_rc
    cells = dijkstra(graph, directed=False, indices=int(row * free.shape[1] + col))
    return cells.reshape(free.shape)


@numba.njit(cache=True, nogil=True)
def _relax(v, step, du, dist, settled, head, node_cell, node_next, nodes, ring,
           width):  # pragma: no cover - compiled
    """Offer ``du + step`` to cell ``v``; queue it (a new node) if that improves it.

    Returns the node count after. Not inlined at numba's level on purpose: LLVM inlines it,
    while ``inline="always"`` made the kernel about 15x slower.
    """
    if settled[v]:
        return nodes
    candidate = du + step
    if candidate < dist[v]:
        dist[v] = candidate
        slot = int(candidate / width) % ring
        node_cell[nodes] = v
        node_next[nodes] = head[slot]
        head[slot] = nodes
        nodes += 1
    return nodes


@numba.njit(cache=True, nogil=True)
def _grid_dijkstra_kernel(free, source, limit, orthogonal, diagonal, width,
                          capacity):  # pragma: no cover - compiled
    """Dijkstra on the 8-connected grid of ``free`` from flat cell ``source``.

    A bucket queue (Dial's algorithm): cells wait in buckets of ``width`` cells of distance,
    kept in a ring of ``diagonal / width + 2`` buckets (a step reaches at most that far
    ahead). Because ``width`` is below the smallest step cost, no cell of the nearest
    non-empty bucket can improve another one, so every cell taken from it is final,
    whatever the order inside the bucket: the result equals a heap Dijkstra's, bit for bit.
    Each bucket is a singly linked list of nodes from one pool; a cell whose distance
    improves gets a new node and its old one is skipped when popped (lazy deletion: no
    unlinking). The grid is padded with a blocked border so neighbours need no bounds
    checks. Cells farther than ``limit`` (cells) come back ``inf``.

    Args:
        free: ``(rows, cols)`` bool, C-contiguous: cells the robot may occupy.
        source: flat index ``row * cols + col`` of the source cell.
        limit: largest distance searched (cells; ``inf``: all).
        orthogonal: cost of an orthogonal step (cells).
        diagonal: cost of a diagonal step (cells).
        width: bucket width (cells), below ``orthogonal``.
        capacity: nodes in the pool; a cell is queued at most once per neighbour that
            improves it, so ``8 * cells + 1`` always suffices.

    Returns:
        ``(rows * cols,)`` float64 distances in cells and whether the pool sufficed (when
        not, the distances are incomplete: call again with a larger ``capacity``).
    """
    rows, cols = free.shape
    stride = cols + 2
    size = (rows + 2) * stride
    passable = np.zeros(size, np.bool_)
    for r in range(rows):
        base = (r + 1) * stride + 1
        for c in range(cols):
            passable[base + c] = free[r, c]
    dist = np.full(size, np.inf)
    settled = np.zeros(size, np.bool_)
    ring = int(diagonal / width) + 2
    head = np.full(ring, -1, np.int32)
    node_cell = np.empty(capacity, np.int32)
    node_next = np.empty(capacity, np.int32)
    start = (source // cols + 1) * stride + source % cols + 1
    dist[start] = 0.0
    node_cell[0] = start
    node_next[0] = -1
    head[0] = 0
    nodes = 1
    popped = 0
    current = 0  # absolute bucket index: distances in [current, current + 1) * width
    enough = True
    while popped < nodes:
        slot = current % ring
        node = head[slot]
        if node < 0:
            current += 1
            if current * width > limit:
                break
            continue
        head[slot] = node_next[node]
        popped += 1
        u = node_cell[node]
        if settled[u]:
            continue  # a stale node: u was queued again with a smaller distance
        du = dist[u]
        if du > limit:
            continue
        settled[u] = True
        if not passable[u]:
            continue  # a blocked source has no edges
        if nodes + 8 > capacity:
            enough = False
            break
        w_ok, e_ok = passable[u - 1], passable[u + 1]
        for v in (u - stride, u + stride):  # the cells above and below, then their sides
            if passable[v]:
                nodes = _relax(v, orthogonal, du, dist, settled, head, node_cell, node_next,
                               nodes, ring, width)
                # a diagonal move needs both orthogonal neighbours free (no corner cutting)
                if w_ok and passable[v - 1]:
                    nodes = _relax(v - 1, diagonal, du, dist, settled, head, node_cell,
                                   node_next, nodes, ring, width)
                if e_ok and passable[v + 1]:
                    nodes = _relax(v + 1, diagonal, du, dist, settled, head, node_cell,
                                   node_next, nodes, ring, width)
        if w_ok:
            nodes = _relax(u - 1, orthogonal, du, dist, settled, head, node_cell, node_next,
                           nodes, ring, width)
        if e_ok:
            nodes = _relax(u + 1, orthogonal, du, dist, settled, head, node_cell, node_next,
                           nodes, ring, width)
    out = np.empty(rows * cols)
    for r in range(rows):  # cells beyond the limit (queued or never reached) are inf
        base = (r + 1) * stride + 1
        for c in range(cols):
            cell = base + c
            out[r * cols + c] = dist[cell] if settled[cell] else np.inf
    return out, enough


@numba.njit(cache=True, nogil=True)
def _segment_clear_kernel(clearance, origin, res, ax, ay, bx, by, n,
                          radius):  # pragma: no cover - compiled
    """Whether all ``n`` samples of a -> b have clearance > ``radius`` (0 off the grid).

    The sample fractions are ``np.linspace(0, 1, n)``'s (``i * (1 / (n - 1))``, the last
    exactly 1) and the cell lookup is :meth:`OccupancyMap.world_to_cell`'s, so the answer is
    the same as ``occupancy.is_free(points, radius).all()``.
    """
    rows, cols = clearance.shape
    step = 1.0 / (n - 1)
    dx, dy = bx - ax, by - ay
    for i in range(n):
        t = 1.0 if i == n - 1 else i * step
        col = int(np.floor((ax + t * dx - origin[0]) / res))
        row = int(np.floor((ay + t * dy - origin[1]) / res))
        inside = 0 <= row < rows and 0 <= col < cols
        value = float(clearance[row, col]) if inside else 0.0  # off the map: clearance 0
        if not value > radius:
            return False
    return True


def grid_distances(free: np.ndarray, source_rc: tuple[int, int],
                   limit_cells: float = math.inf) -> np.ndarray:
    """8-connected shortest-path lengths (cells) from one cell over the free cells.

    Orthogonal steps cost 1, diagonal steps ``sqrt(2)`` and need both orthogonal
    neighbours free (no corner cutting). Bit-identical to :func:`grid_distances_reference`
    up to ``limit_cells``.

    Args:
        free: ``(rows, cols)`` bool, cells the robot may occupy.
        source_rc: ``(row, col)`` of the source cell (inside the grid).
        limit_cells: stop the search beyond this distance (cells); farther cells are
            ``inf`` (default: no limit).

    Returns:
        ``(rows, cols)`` float64 path length in cells, ``inf`` where unreachable.
    """
    free = np.ascontiguousarray(free, dtype=np.bool_)
    if free.ndim != 2 or 8 * (free.shape[0] + 2) * (free.shape[1] + 2) >= _MAX_NODES:
        raise OccupancyError(f"free must be a 2D grid of fewer than {_MAX_NODES // 8} cells "
                             f"(with a border), got shape {free.shape}")
    row, col = (int(v) for v in source_rc)
    if not (0 <= row < free.shape[0] and 0 <= col < free.shape[1]):
        raise OccupancyError(f"source cell {(row, col)} is outside the grid {free.shape}")
    args = (free, row * free.shape[1] + col, float(limit_cells), _ORTHOGONAL_COST,
            _DIAGONAL_COST, _BUCKET_WIDTH_CELLS)
    flat, enough = _grid_dijkstra_kernel(*args, _FIRST_NODES_PER_CELL * free.size + 16)
    if not enough:  # never seen; 8 per cell always suffice
        flat, enough = _grid_dijkstra_kernel(*args, 8 * free.size + 16)
    return flat.reshape(free.shape)


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
        return self.occupancy.field_at(self.distance_m, xy, np.inf)

    def segment_is_clear(self, a_xy: np.ndarray, b_xy: np.ndarray) -> bool:
        """Whether the robot disc can sweep the straight segment a -> b (world metres).

        Samples the segment every half cell (``np.linspace(0, 1, n)`` fractions, endpoints
        included) and checks each sample's clearance as :meth:`OccupancyMap.is_free` does,
        in a numba loop that stops at the first blocked sample.
        """
        res = self.occupancy.resolution_m
        length = float(np.linalg.norm(b_xy - a_xy))
        n = max(2, int(np.ceil(length / res * _LOS_SAMPLES_PER_CELL)) + 1)
        a = np.asarray(a_xy, dtype=np.float64)
        b = np.asarray(b_xy, dtype=np.float64)
        occ = self.occupancy
        return bool(_segment_clear_kernel(occ.distance_m, occ.origin_xy_m, float(res),
                                          float(a[0]), float(a[1]), float(b[0]), float(b[1]),
                                          n, float(self.radius_m)))

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


def geodesic_field(occupancy: OccupancyMap, goal_xy: np.ndarray, radius_m: float,
                   max_distance_m: float = math.inf) -> GeodesicField:
    """Geodesic distance field to ``goal_xy`` for a disc robot of ``radius_m``.

    Args:
        occupancy: the collision world.
        goal_xy: ``(2,)`` world goal (metres).
        radius_m: robot footprint radius (metres).
        max_distance_m: cells farther than this from the goal are left ``inf`` (the search
            stops there: cheaper when only nearby distances matter). Default: all cells.

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
    res = occupancy.resolution_m
    cells = grid_distances(occupancy.traversable(radius_m), occupancy.world_to_cell(goal),
                           limit_cells=max_distance_m / res)
    return GeodesicField(
        occupancy=occupancy, goal_xy_m=goal, radius_m=float(radius_m), distance_m=cells * res
    )
