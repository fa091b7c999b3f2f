"""Geodesic field, expert paths, the map plot and the ``s2e scene map`` command."""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pytest
from PIL import Image

from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene.loading import read_gaussians, save_scene
from s2e_sim_bridge.scene.transform import transform_scene
from s2e_sim_bridge.world import OccupancyMap, geodesic_field, polyline_length_m
from s2e_sim_bridge.world.cli import add_map_command
from s2e_sim_bridge.world.occupancy import (
    OccupancyConfig,
    rasterise_footprints,
    rasterise_footprints_reference,
    select_obstacle_gaussians,
)
from s2e_sim_bridge.world.plot import plot_map

RES = 0.05
RADIUS = 0.3
# 8-connected grid distance exceeds the Euclidean one by at most 1 / cos(22.5 deg) - 1.
OCTILE_OVERESTIMATE = 0.0824


def wall_map() -> OccupancyMap:
    """10 x 6 m map with a wall at x in [5.0, 5.25] from y = 1.5 m to the top."""
    grid = np.zeros((120, 200), bool)
    grid[30:, 100:105] = True
    return OccupancyMap(grid, np.zeros(2), RES)


def test_open_field_is_close_to_euclidean():
    occ = OccupancyMap(np.zeros((120, 200), bool), np.zeros(2), RES)
    goal = np.array([5.025, 3.025])
    field = geodesic_field(occ, goal, RADIUS)
    assert field.distance_at(goal) == 0.0
    free = occ.traversable(RADIUS)
    centres = occ.cell_to_world(np.argwhere(free))
    euclid = np.linalg.norm(centres - goal, axis=1)
    geo = field.distance_at(centres)
    assert np.all(geo >= euclid - 1e-9)
    assert np.all(geo <= euclid * (1 + OCTILE_OVERESTIMATE) + 1e-9)
    assert np.isinf(field.distance_at(np.array([0.1, 0.1])))  # within RADIUS of the boundary
    start = np.array([1.0, 1.0])
    assert field.shortest_path_length_m(start) == pytest.approx(np.linalg.norm(goal - start))


def test_path_goes_around_wall_and_stays_clear():
    occ = wall_map()
    start, goal = np.array([2.0, 4.0]), np.array([8.0, 4.0])
    field = geodesic_field(occ, goal, RADIUS)
    raw = field.path_from(start, smooth=False)
    path = field.path_from(start)
    np.testing.assert_allclose(path[0], start)
    np.testing.assert_allclose(path[-1], goal)
    assert path[:, 1].min() < 1.5 - RADIUS + RES  # passes below the wall's end
    dense = np.concatenate([np.linspace(a, b, 50) for a, b in itertools.pairwise(path)])
    assert occ.is_free(dense, RADIUS).all()
    # the shortest route touches the inflated corner: (2,4) -> (5,1.2) -> (5.25,1.2) -> (8,4)
    corner = np.hypot(3.0, 2.8) + 0.25 + np.hypot(2.75, 2.8)
    length = polyline_length_m(path)
    assert corner <= length <= corner * 1.03
    assert length < polyline_length_m(raw) <= field.distance_at(start) + 2 * RES
    assert len(path) < len(raw)
    cells = field.cell_path_from(start)
    values = field.distance_m[cells[:, 0], cells[:, 1]]
    assert np.all(np.diff(values) < 0) and values[-1] == 0.0


def test_no_corner_cutting_through_diagonal_gap():
    grid = np.zeros((20, 20), bool)
    grid[10, :10] = True
    grid[9, 10:] = True  # two walls touching only diagonally
    occ = OccupancyMap(grid, np.zeros(2), RES)
    field = geodesic_field(occ, np.array([0.2, 0.8]), 0.0)
    assert np.isinf(field.distance_at(np.array([0.2, 0.2])))


def test_unreachable_and_blocked_goal_errors():
    grid = np.zeros((120, 200), bool)
    grid[:, 100:105] = True  # full-height wall
    occ = OccupancyMap(grid, np.zeros(2), RES)
    field = geodesic_field(occ, np.array([8.0, 3.0]), RADIUS)
    with pytest.raises(S2EError, match=r"goal \[8.0, 3.0\] is not reachable from start"):
        field.path_from(np.array([2.0, 3.0]))
    with pytest.raises(S2EError, match=r"goal \[5.1, 3.0\] is not free for a robot of radius 0.3"):
        geodesic_field(occ, np.array([5.1, 3.0]), RADIUS)
    with pytest.raises(S2EError, match="is not free"):
        geodesic_field(occ, np.array([50.0, 3.0]), RADIUS)


def test_numba_kernel_matches_reference_on_real_capture(fixtures_dir):
    donut = read_gaussians(fixtures_dir / "scenes" / "donut.ply")
    # the 0.21 m donut scaled to a 4 m ring standing 0-2 m above the floor
    scene = transform_scene(
        donut,
        np.eye(3),
        np.array([3.0, 3.0, 0.0]) - 20.0 * donut.means.mean(axis=0) + [0, 0, 1.0],
        20.0,
    )
    config = OccupancyConfig(resolution_m=0.1)
    means_xy, cov_xy = select_obstacle_gaussians(scene, 0.0, config)
    assert 0 < len(means_xy) < len(scene)
    args = (means_xy[::10], cov_xy[::10], np.zeros(2), 0.1, (60, 60), config.footprint_sigmas)
    fast = rasterise_footprints(*args)
    np.testing.assert_array_equal(fast, rasterise_footprints_reference(*args))
    ring = fast[20:40, 20:40]  # a ring: occupied around the edge, a hole in the middle
    assert fast.sum() > 100 and not fast[30, 30] and ring.any()


def test_plot_map_writes_png(tmp_path):
    occ = wall_map()
    field = geodesic_field(occ, np.array([8.0, 4.0]), RADIUS)
    path = field.path_from(np.array([2.0, 4.0]))
    out = plot_map(
        occ,
        tmp_path / "figs" / "map.png",
        trajectories=[path, path + 0.1],
        starts=[[2.0, 4.0]],
        goals=np.array([[8.0, 4.0]]),
    )
    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width > height > 100
    pixels = np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3).astype(int)
    assert (np.abs(pixels[:, 0] - pixels[:, 1]) > 60).any()  # coloured markers were drawn


def test_scene_map_command(tmp_path, capsys):
    n = 400
    rng = np.random.default_rng(1)
    wall = np.column_stack([np.full(n, 2.0), rng.uniform(0.0, 3.0, n), rng.uniform(0.1, 1.2, n)])
    from s2e_sim_bridge.scene.gaussians import GaussianScene
    from s2e_sim_bridge.scene.info import SceneInfo

    scene = GaussianScene(
        means=wall,
        quats=np.tile([1.0, 0, 0, 0], (n, 1)),
        scales=np.full((n, 3), 0.05),
        opacities=np.ones(n),
        sh=np.zeros((n, 1, 3)),
    )
    scene.info = SceneInfo(
        name="wall", floor_height_m=0.0, navigable_bounds_m=((0.0, 0.0), (4.0, 3.0)), sh_degree=0
    )
    ply, _ = save_scene(scene, tmp_path / "wall.ply")
    parser = argparse.ArgumentParser()
    add_map_command(parser.add_subparsers())
    args = parser.parse_args(
        ["map", str(ply), "--out", str(tmp_path / "m.png"), "--resolution-m", "0.1"]
    )
    assert args.func(args) == 0
    assert "40 x 30 cells" in capsys.readouterr().out
    assert (tmp_path / "m.png").stat().st_size > 0
    bad = parser.parse_args(["map", str(tmp_path / "missing.ply")])
    with pytest.raises(S2EError, match=r"missing\.ply"):
        bad.func(bad)
