"""Static collision geometry: occupied grid cells merged into few axis-aligned boxes."""

from __future__ import annotations

import numpy as np

from s2e_sim_bridge.world.occupancy import OccupancyMap


def merge_occupied_cells(grid: np.ndarray) -> np.ndarray:
    """Cover the occupied cells of a grid exactly with non-overlapping rectangles.

    Runs of occupied cells along each row are found first; a run then grows upwards while
    the next row has a run with exactly the same columns (greedy, row-major), so walls and
    blocks become one box each instead of one box per cell.

    Args:
        grid: ``(rows, cols)`` bool occupancy.

    Returns:
        ``(M, 4)`` int64 rectangles ``(row0, row1, col0, col1)``, half-open
        (``grid[row0:row1, col0:col1]`` is all True), pairwise disjoint, union == grid.
    """
    grid = np.asarray(grid, dtype=bool)
    rows = grid.shape[0]
    open_runs: dict[tuple[int, int], int] = {}  # (col0, col1) -> row0 of a growing box
    boxes: list[tuple[int, int, int, int]] = []
    for r in range(rows + 1):
        runs: set[tuple[int, int]] = set()
        if r < rows:
            edges = np.diff(np.concatenate(([0], grid[r].astype(np.int8), [0])))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            runs = set(zip(starts.tolist(), ends.tolist(), strict=True))
        for run in list(open_runs):
            if run not in runs:
                boxes.append((open_runs.pop(run), r, run[0], run[1]))
        for run in runs:
            open_runs.setdefault(run, r)
    return np.array(boxes, dtype=np.int64).reshape(-1, 4)


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
