"""The grid Dijkstra kernel of the geodesic field against the scipy reference, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from s2e_sim_bridge.scene.loading import read_gaussians
from s2e_sim_bridge.scene.transform import transform_scene
from s2e_sim_bridge.world import OccupancyMap, build_occupancy, geodesic_field, geodesics
from s2e_sim_bridge.world.geodesics import grid_distances, grid_distances_reference
from s2e_sim_bridge.world.occupancy import OccupancyConfig, OccupancyError

RES = 0.05
RADIUS = 0.3
# Random maps: obstacle densities and seeds (dense maps have many diagonal-only gaps).
DENSITIES = (0.05, 0.25, 0.4)
SOURCES_PER_MAP = 3
# The donut capture (0.21 m) scaled to a ring of about 4 m, standing 0-2 m above the floor.
DONUT_SCALE = 20.0
DONUT_CENTRE = np.array([3.0, 3.0, 1.0])


def random_map(density: float, seed: int, shape: tuple[int, int] = (60, 90)) -> OccupancyMap:
    rng = np.random.default_rng(seed)
    return OccupancyMap(rng.random(shape) < density, np.zeros(2), RES)


@pytest.mark.parametrize("density", DENSITIES)
def test_kernel_matches_reference_on_random_grids(density):
    occ = random_map(density, seed=int(density * 100))
    free = occ.traversable(0.0)
    rng = np.random.default_rng(1)
    cells = np.argwhere(free)
    for row, col in cells[rng.choice(len(cells), SOURCES_PER_MAP, replace=False)]:
        fast = grid_distances(free, (row, col))
        np.testing.assert_array_equal(fast, grid_distances_reference(free, (row, col)))
        assert fast[row, col] == 0.0
        assert np.isinf(fast[~free]).all()


def test_kernel_matches_reference_on_real_capture(fixtures_dir):
    donut = read_gaussians(fixtures_dir / "scenes" / "donut.ply")
    scene = transform_scene(donut, np.eye(3),
                            DONUT_CENTRE - DONUT_SCALE * donut.means.mean(axis=0), DONUT_SCALE)
    occ = build_occupancy(scene, bounds_m=((0.0, 0.0), (6.0, 6.0)), floor_z_m=0.0,
                          config=OccupancyConfig(resolution_m=RES))
    assert 0.05 < occ.grid.mean() < 0.5  # a real ring of obstacles, not an empty map
    free = occ.traversable(RADIUS)
    cells = np.argwhere(free)
    gap = np.linalg.norm(occ.cell_to_world(cells) - DONUT_CENTRE[:2], axis=1)
    for source in (cells[np.argmax(gap)], cells[np.argmin(gap)]):  # around and in the hole
        fast = grid_distances(free, source)
        np.testing.assert_array_equal(fast, grid_distances_reference(free, source))
        assert np.isfinite(fast).sum() > 1
    assert np.isinf(fast[tuple(cells[np.argmax(gap)])])  # the ring closes the hole off


def test_a_full_node_pool_reruns_with_room_for_every_relaxation(monkeypatch):
    free = random_map(0.1, seed=7).traversable(0.0)
    source = tuple(np.argwhere(free)[len(free) // 2])
    expected = grid_distances_reference(free, source)
    calls = []
    kernel = geodesics._grid_dijkstra_kernel

    def spy(*args):
        calls.append(args[-1])
        return kernel(*args)

    monkeypatch.setattr(geodesics, "_grid_dijkstra_kernel", spy)
    monkeypatch.setattr(geodesics, "_FIRST_NODES_PER_CELL", 0)  # 16 nodes: runs out at once
    np.testing.assert_array_equal(grid_distances(free, source), expected)
    assert calls == [16, 8 * free.size + 16]


def test_free_cells_on_the_grid_edges_and_corners():
    # the kernel pads the grid with a blocked border: edge cells must keep every move inside
    free = np.ones((7, 9), bool)
    free[3, 1:8] = False
    for source in ((0, 0), (6, 8), (0, 8), (6, 0), (2, 4)):
        np.testing.assert_array_equal(grid_distances(free, source),
                                      grid_distances_reference(free, source))
    single_row = np.ones((1, 12), bool)
    np.testing.assert_array_equal(grid_distances(single_row, (0, 11)), np.arange(12.0)[::-1][None])


def test_limit_keeps_near_cells_exactly():
    occ = random_map(0.2, seed=5, shape=(80, 80))
    free = occ.traversable(0.0)
    source = tuple(np.argwhere(free)[0])
    full = grid_distances(free, source)
    limit = float(np.nanmedian(np.where(np.isfinite(full), full, np.nan)))
    near = grid_distances(free, source, limit_cells=limit)
    np.testing.assert_array_equal(near, np.where(full <= limit, full, np.inf))
    assert np.isfinite(near).sum() < np.isfinite(full).sum()

    goal = occ.cell_to_world(np.array(source))
    field = geodesic_field(occ, goal, 0.0, max_distance_m=limit * RES)
    np.testing.assert_array_equal(field.distance_m, near * RES)


def test_blocked_source_has_no_edges_and_outside_source_is_refused():
    free = np.ones((10, 10), bool)
    free[4, 4] = False
    fast = grid_distances(free, (4, 4))
    np.testing.assert_array_equal(fast, grid_distances_reference(free, (4, 4)))
    assert fast[4, 4] == 0.0 and np.isinf(fast).sum() == free.size - 1
    with pytest.raises(OccupancyError, match=r"source cell \(10, 0\) is outside the grid"):
        grid_distances(free, (10, 0))
    with pytest.raises(OccupancyError, match="free must be a 2D grid"):
        grid_distances(np.ones(10, bool), (0, 0))


def segment_is_clear_reference(occ: OccupancyMap, radius: float, a: np.ndarray,
                               b: np.ndarray) -> bool:
    """The line-of-sight test in numpy: half-cell samples, all free for the disc."""
    n = max(2, int(np.ceil(float(np.linalg.norm(b - a)) / occ.resolution_m * 2.0)) + 1)
    return bool(occ.is_free(a + np.linspace(0.0, 1.0, n)[:, None] * (b - a), radius).all())


def test_segment_check_matches_numpy_sampling():
    rng = np.random.default_rng(3)
    occ = OccupancyMap(rng.random((60, 80)) < 0.01, np.array([-1.0, 2.0]), RES)
    field = geodesic_field(occ, np.array([1.0, 3.5]), 0.1)
    starts = rng.uniform([-1.2, 1.8], [3.2, 5.2], (400, 2))  # some off the 4 x 3 m map
    ends = np.concatenate([starts[:300] + rng.normal(0.0, 0.2, (300, 2)), starts[300:][::-1]])
    fast = [field.segment_is_clear(a, b) for a, b in zip(starts, ends, strict=True)]
    slow = [segment_is_clear_reference(occ, 0.1, a, b) for a, b in zip(starts, ends, strict=True)]
    assert fast == slow
    assert 20 < sum(fast) < len(fast) - 20  # both answers are well represented
