"""Static collision geometry: occupied grid cells merged into few axis-aligned boxes."""

from __future__ import annotations

import numba
import numpy as np

from s2e_sim_bridge.world.occupancy import OccupancyError, OccupancyMap


@numba.njit(cache=True)
def _merge_kernel(grid: np.ndarray, occupied: int) -> np.ndarray:  # pragma: no cover
    """:func:`merge_occupied_cells` on a C-contiguous bool grid of ``occupied`` True cells.

    Each box holds at least one of them, so there are at most ``occupied`` boxes.
    """
    rows, cols = grid.shape
    # open_start[c0]: row0 of the growing box whose run starts at column c0 (-1: none);
    # open_end[c0]: its run's end column (exclusive)
    open_start = np.full(cols + 1, -1, np.int64)
    open_end = np.zeros(cols + 1, np.int64)
    run_end = np.full(cols + 1, -1, np.int64)  # this row's runs: start column -> end
    boxes = np.empty((occupied, 4), np.int64)
    count = 0
    for r in range(rows + 1):
        run_end[:] = -1
        if r < rows:
            c = 0
            while c < cols:
                if grid[r, c]:
                    c0 = c
                    while c < cols and grid[r, c]:
                        c += 1
                    run_end[c0] = c
                else:
                    c += 1
        for c0 in range(cols):  # close the boxes whose run this row does not repeat
            if open_start[c0] >= 0 and run_end[c0] != open_end[c0]:
                boxes[count, 0] = open_start[c0]
                boxes[count, 1] = r
                boxes[count, 2] = c0
                boxes[count, 3] = open_end[c0]
                count += 1
                open_start[c0] = -1
        for c0 in range(cols):  # open a box for every new run
            if run_end[c0] >= 0 and open_start[c0] < 0:
                open_start[c0] = r
                open_end[c0] = run_end[c0]
    return boxes[:count].copy()


def merge_occupied_cells(grid: np.ndarray) -> np.ndarray:
    """Cover the occupied cells of a grid exactly with non-overlapping rectangles.

    Runs of occupied cells along each row are found first; a run then grows upwards while
    the next row has a run with exactly the same columns (greedy, row-major), so walls and
    blocks become one box each instead of one box per cell. A numba kernel: 0.5 ms on the
    default street's 380 x 1180 grid, where the Python loop took 3.4 ms of every episode
    build.

    Args:
        grid: ``(rows, cols)`` bool occupancy.

    Returns:
        ``(M, 4)`` int64 rectangles ``(row0, row1, col0, col1)``, half-open
        (``grid[row0:row1, col0:col1]`` is all True), pairwise disjoint, union == grid,
        in the order they close: by ``row1``, then by ``col0``.
    """
    grid = np.ascontiguousarray(grid, dtype=np.bool_)
    if grid.ndim != 2:
        raise OccupancyError(f"merge_occupied_cells: grid must be 2D (rows, cols), got shape "
                             f"{grid.shape}")
    return _merge_kernel(grid, int(np.count_nonzero(grid)))


def boxes_in_world(occupancy: OccupancyMap, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World centres and half sizes of cell rectangles.

    Args:
        occupancy: the map the rectangles index.
        boxes: ``(M, 4)`` int ``(row0, row1, col0, col1)`` from :func:`merge_occupied_cells`.

    Returns:
        ``centres_xy`` ``(M, 2)`` and ``half_sizes_xy`` ``(M, 2)`` float64 world metres.
    """
    res = occupancy.resolution_m
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lo = occupancy.origin_xy_m + boxes[:, [2, 0]] * res
    hi = occupancy.origin_xy_m + boxes[:, [3, 1]] * res
    return 0.5 * (lo + hi), 0.5 * (hi - lo)
