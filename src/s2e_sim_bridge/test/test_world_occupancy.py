"""Occupancy grid from Gaussians: selection, footprint rasterisation, distance field."""

from __future__ import annotations

import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.transform import quats_to_rotmats
from s2e_sim_bridge.world.occupancy import (
    OccupancyConfig,
    OccupancyMap,
    build_occupancy,
    gaussian_covariances,
    rasterise_footprints,
    rasterise_footprints_reference,
    select_obstacle_gaussians,
)

RES = 0.05
BOUNDS = ((0.0, 0.0), (6.0, 4.0))


def make_scene(means, scales, quats=None, opacities=None) -> GaussianScene:
    means = np.asarray(means, dtype=np.float32).reshape(-1, 3)
    n = len(means)
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)) if quats is None else quats
    opacities = np.ones(n) if opacities is None else opacities
    return GaussianScene(
        means=means,
        quats=quats,
        scales=np.asarray(scales).reshape(n, 3),
        opacities=opacities,
        sh=np.zeros((n, 1, 3)),
    )


def quat_about(axis: str, angle: float) -> list[float]:
    q = [np.cos(angle / 2), 0.0, 0.0, 0.0]
    q["xyz".index(axis) + 1] = np.sin(angle / 2)
    return q


def wall_scene() -> GaussianScene:
    """A floor (flat Gaussians at z=0), a wall x in [3.0, 3.1] from y=1 to 4, a canopy, a ghost."""
    floor = [(x, y, 0.0) for x in np.arange(0.1, 6, 0.2) for y in np.arange(0.1, 4, 0.2)]
    wall = [(3.05, y, z) for y in np.arange(1.0, 4.0, 0.02) for z in (0.3, 0.8)]
    canopy = [(1.0, 1.0, 2.5)]
    ghost = [(5.0, 1.0, 0.5)]
    means = floor + wall + canopy + ghost
    scales = (
        [(0.1, 0.1, 0.01)] * len(floor)
        + [(0.02, 0.02, 0.2)] * len(wall)
        + [(0.3, 0.3, 0.1)]
        + [(0.2, 0.2, 0.2)]
    )
    opacities = np.ones(len(means))
    opacities[-1] = 0.1
    return make_scene(means, scales, opacities=opacities)


def test_covariance_matches_rotation():
    quat = np.array([quat_about("z", np.pi / 2)])
    cov = gaussian_covariances(quats_to_rotmats(quat), np.array([[1.0, 0.1, 0.2]]))[0]
    np.testing.assert_allclose(np.diag(cov), [0.01, 1.0, 0.04], atol=1e-12)


def test_selection_uses_height_band_and_opacity():
    occ = build_occupancy(wall_scene(), BOUNDS, 0.0)
    cols = np.flatnonzero(occ.grid.any(axis=0))
    # only the wall survives: x in [3.0, 3.1] (+ 2 sigma = 0.04 m either side)
    x = occ.cell_to_world(np.stack([np.zeros_like(cols), cols], 1))[:, 0]
    assert x.min() >= 2.95 and x.max() <= 3.15
    rows = np.flatnonzero(occ.grid.any(axis=1))
    assert occ.cell_to_world([[rows.min(), 0]])[0, 1] == pytest.approx(0.975, abs=RES)
    loose = build_occupancy(
        wall_scene(), BOUNDS, 0.0, config=OccupancyConfig(opacity_threshold=0.05)
    )
    assert loose.is_free(np.array([5.0, 1.0]), 0.0) == np.False_
    assert occ.is_free(np.array([5.0, 1.0]), 0.0)
    assert occ.is_free(np.array([1.0, 1.0]), 0.0)  # canopy at 2.5 m is above the band


def test_floor_offset_and_tilted_gaussian_reach_band():
    flat = make_scene([(2.0, 2.0, 1.0)], [(0.5, 0.01, 0.01)])
    tilted = make_scene(
        [(2.0, 2.0, 1.0)], [(0.5, 0.01, 0.01)], quats=np.array([quat_about("y", np.pi / 4)])
    )
    with pytest.raises(S2EError, match="scene has no info"):
        build_occupancy(flat)
    assert not build_occupancy(flat, BOUNDS, floor_z_m=1.0).grid.any()
    assert build_occupancy(tilted, BOUNDS, floor_z_m=1.0).grid.any()
    assert build_occupancy(flat, BOUNDS, floor_z_m=0.5).grid.any()


def test_footprint_covers_two_sigma_ellipse_not_just_centre():
    sigma = 0.3
    occ = build_occupancy(make_scene([(2.0, 2.0, 0.5)], [(sigma, sigma, sigma)]), BOUNDS, 0.0)
    area = occ.grid.sum() * RES**2
    assert area == pytest.approx(np.pi * (2 * sigma) ** 2, rel=0.05)
    elongated = make_scene(
        [(2.025, 2.025, 0.5)], [(0.8, 0.05, 0.2)], quats=np.array([quat_about("z", np.pi / 2)])
    )
    grid = build_occupancy(elongated, BOUNDS, 0.0).grid
    rows, cols = np.nonzero(grid)
    assert np.ptp(rows) * RES == pytest.approx(3.2, abs=2 * RES)  # long axis now along y
    assert np.ptp(cols) * RES <= 0.25


def test_numba_kernel_matches_numpy_reference():
    rng = np.random.default_rng(0)
    n = 300
    means = rng.uniform([-1, -1, 0], [7, 5, 1], (n, 3))
    scales = rng.uniform(0.005, 0.4, (n, 3))
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scene = make_scene(means, scales, quats=quats)
    config = OccupancyConfig()
    means_xy, cov_xy = select_obstacle_gaussians(scene, 0.0, config)
    args = (means_xy, cov_xy, np.array([0.0, 0.0]), RES, (80, 120), config.footprint_sigmas)
    fast = rasterise_footprints(*args)
    assert fast.any()
    np.testing.assert_array_equal(fast, rasterise_footprints_reference(*args))


def test_cell_world_round_trip_and_contains():
    occ = OccupancyMap(np.zeros((80, 120), bool), np.array([-1.0, 2.0]), RES)
    cells = np.array([[0, 0], [79, 119], [10, 33]])
    np.testing.assert_array_equal(occ.world_to_cell(occ.cell_to_world(cells)), cells)
    np.testing.assert_allclose(occ.cell_to_world([0, 0]), [-0.975, 2.025])
    assert occ.bounds_m == ((-1.0, 2.0), (5.0, 6.0))
    assert occ.contains(np.array([[-0.99, 2.01], [5.01, 3.0], [0.0, 1.99]])).tolist() == [
        True,
        False,
        False,
    ]


def test_distance_field_to_wall_and_bounds():
    grid = np.zeros((80, 120), bool)
    grid[:, 60:62] = True  # wall covering x in [3.0, 3.1]
    occ = OccupancyMap(grid, np.zeros(2), RES)
    points = np.array([[2.0, 2.0], [2.5, 2.0], [3.6, 2.0], [2.5, 0.2]])
    expected = [1.0, 0.5, 0.5, 0.2]  # the last one is 0.2 m from the map's lower boundary
    np.testing.assert_allclose(occ.distance_to_obstacle(points), expected, atol=RES)
    assert occ.distance_to_obstacle(np.array([3.05, 2.0])) == 0.0
    assert occ.distance_to_obstacle(np.array([-1.0, 2.0])) == 0.0
    assert occ.is_free(points, 0.3).tolist() == [True, True, True, False]


def test_one_point_lookups_equal_the_vectorised_ones():
    """A single ``(2,)`` point takes the Python-float path and agrees with the array path.

    Everywhere: inside, on cell edges (exact multiples of the resolution), off the grid on
    every side, and at non-finite points (the field's 'outside' value).
    """
    grid = np.zeros((80, 120), bool)
    grid[:, 60:62] = True
    occ = OccupancyMap(grid, np.array([-1.0, 2.0]), RES)
    field = np.arange(grid.size, dtype=np.float64).reshape(grid.shape)
    rng = np.random.default_rng(0)
    inside_and_around = rng.uniform([-2.0, 1.0], [6.0, 7.0], (3000, 2))
    edges = occ.origin_xy_m + rng.integers(-2, 125, (1000, 2)) * RES
    odd = np.array([[np.nan, 3.0], [0.0, np.inf], [-np.inf, 3.0], [-1.0, 2.0], [5.0, 6.0]])
    points = np.concatenate([inside_and_around, edges, odd])
    for values, outside in ((occ.distance_m, 0.0), (field, np.inf)):
        with np.errstate(invalid="ignore"):
            batch = occ.field_at(values, points, outside)
        one = np.array([occ.field_at(values, p, outside) for p in points])
        np.testing.assert_array_equal(one, batch)
        assert one.dtype == values.dtype
    assert np.isinf(one[-5:-2]).all() and one[-2] == field[0, 0]


@pytest.mark.parametrize("seed", range(6))
def test_adding_cells_updates_the_distance_field_exactly(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 90)), int(rng.integers(20, 140)))
    base = OccupancyMap(rng.random(shape) < rng.choice([0.0, 0.002, 0.02]), np.zeros(2), RES)
    added = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 4))):  # a few boxes, some at the map's edges
        r, c = int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))
        added[r : r + int(rng.integers(1, 8)), c : c + int(rng.integers(1, 8))] = True
    base_grid, base_distance = base.grid.copy(), base.distance_m.copy()
    fast = base.with_occupied(added)
    full = OccupancyMap(base.grid | added, base.origin_xy_m, RES)
    np.testing.assert_array_equal(fast.grid, full.grid)
    np.testing.assert_array_equal(fast.distance_m, full.distance_m)  # bit for bit
    assert fast.distance_m.dtype == np.float32
    np.testing.assert_array_equal(base.grid, base_grid)  # the base map is left as it was
    np.testing.assert_array_equal(base.distance_m, base_distance)
    assert base.with_occupied(base.grid) is base  # nothing new: the same map


def test_adding_cells_far_from_a_narrow_corridor_window():
    # an open 20 m x 2 m corridor: the window is the added box +- the largest clearance
    # (about 1 m), far smaller than the grid, and cells beyond it must keep their clearance
    base = OccupancyMap(np.zeros((40, 400), bool), np.zeros(2), RES)
    added = np.zeros(base.shape, bool)
    added[18:22, 195:205] = True
    fast = base.with_occupied(added)
    full = OccupancyMap(added, np.zeros(2), RES)
    np.testing.assert_array_equal(fast.distance_m, full.distance_m)
    assert np.array_equal(fast.distance_m[:, :100], base.distance_m[:, :100])
    with pytest.raises(S2EError, match=r"added cells have shape \(3, 3\)"):
        base.with_occupied(np.zeros((3, 3), bool))


def test_reachable_free_space_respects_robot_radius():
    grid = np.zeros((80, 120), bool)
    grid[:, 60:62] = True
    grid[30:42, 60:62] = False  # a 0.6 m door
    occ = OccupancyMap(grid, np.zeros(2), RES)
    left, right = np.array([1.0, 2.0]), np.array([5.0, 2.0])
    narrow = occ.reachable_from(left, radius_m=0.2)
    wide = occ.reachable_from(left, radius_m=0.35)
    assert narrow[tuple(occ.world_to_cell(right))]
    assert not wide[tuple(occ.world_to_cell(right))]
    with pytest.raises(S2EError, match=r"start \[3.05, 2.5\] is not free"):
        occ.reachable_from(np.array([3.05, 2.5]), 0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution_m": 0.0}, "resolution_m must be > 0"),
        ({"height_band_m": (1.0, 0.5)}, "height_band_m must be"),
        ({"opacity_threshold": 1.5}, r"opacity_threshold must be in \[0, 1\]"),
        ({"footprint_sigmas": -1.0}, "must be > 0"),
        ({"surface_flatness_ratio": 1.0}, r"surface_flatness_ratio must be in \[0, 1\)"),
        ({"surface_max_tilt_deg": 120.0}, r"surface_max_tilt_deg must be in \[0, 90\]"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(S2EError, match=message):
        OccupancyConfig(**kwargs)


def test_bad_bounds():
    with pytest.raises(S2EError, match="navigable bounds must be finite"):
        build_occupancy(wall_scene(), ((0, 0), (0, 4)), 0.0)
    with pytest.raises(S2EError, match="navigable bounds must be"):
        build_occupancy(wall_scene(), (0, 0, 4, 4), 0.0)


def test_flat_horizontal_gaussians_are_surfaces_at_their_centre_height():
    kerb_top = make_scene([(2.0, 2.0, 0.045)], [(0.2, 0.2, 0.01)])  # reaches 6.5 cm at 2 sigma
    tilted = make_scene(
        [(2.0, 2.0, 0.045)], [(0.2, 0.2, 0.01)], quats=np.array([quat_about("x", np.radians(60.0))])
    )
    table = make_scene([(2.0, 2.0, 0.7)], [(0.3, 0.3, 0.01)])
    low_band = OccupancyConfig(height_band_m=(0.05, 1.5))  # the kerb top's 2 sigma reaches in
    assert not build_occupancy(kerb_top, BOUNDS, 0.0, config=low_band).grid.any()
    no_rule = OccupancyConfig(height_band_m=(0.05, 1.5), surface_flatness_ratio=0.0)
    assert build_occupancy(kerb_top, BOUNDS, 0.0, config=no_rule).grid.any()
    assert build_occupancy(tilted, BOUNDS, 0.0).grid.any()  # a slope, not a floor
    assert build_occupancy(table, BOUNDS, 0.0).grid.any()  # a surface inside the band
