"""End to end on a generated street: occupancy, expert path, physics following it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2e_policy.embodiment import load_embodiment
from s2e_sim_bridge.physics import NavPhysics
from s2e_sim_bridge.scene import generate_street_scene
from s2e_sim_bridge.world import build_occupancy, geodesic_field

SEED = 3
NUM_GAUSSIANS = 30_000
STREET_LENGTH_M = 30.0
POLICY_DT_S = 0.2
LOOKAHEAD_M = 0.5
HEADING_GAIN = 2.0
GOAL_TOL_M = 0.3
# The path keeps this clearance beyond the footprint (a tracking margin for the follower).
CLEARANCE_M = 0.2
# An object's Gaussians must occupy a cell within its radius plus this of its centre.
OBJECT_TOL_M = 0.1


ROUTE_HALF_LENGTH_M = 12.0
ROAD_HALF_WIDTH_M = 3.0


def clearest_road_point(occ, x: float) -> np.ndarray:
    """The point at ``x`` across the road with the most clearance."""
    candidates = np.column_stack(
        [np.full(61, x), np.linspace(-ROAD_HALF_WIDTH_M, ROAD_HALF_WIDTH_M, 61)]
    )
    return candidates[np.argmax(occ.distance_to_obstacle(candidates))]


@pytest.fixture(scope="module")
def street():
    scene, info = generate_street_scene(SEED, num_gaussians=NUM_GAUSSIANS, length_m=STREET_LENGTH_M)
    return scene, info, build_occupancy(scene)


def test_street_objects_are_obstacles_and_road_is_free(street):
    scene, info, occ = street
    assert occ.bounds_m == info.navigable_bounds_m
    centres = occ.cell_to_world(np.argwhere(occ.grid))
    for obj in scene.meta["generator"]["objects"]:
        gap = np.linalg.norm(centres - obj["xy"], axis=1).min()
        assert gap <= obj["radius_m"] + OBJECT_TOL_M, obj
    assert occ.grid.mean() < 0.1  # floor, road and sidewalk tops are not obstacles


@pytest.mark.parametrize("name", ["wheeled", "go2"])
def test_robot_follows_expert_path_along_street(street, name):
    _, info, occ = street
    emb = load_embodiment(name)
    start, goal = (
        clearest_road_point(occ, -ROUTE_HALF_LENGTH_M),
        clearest_road_point(occ, ROUTE_HALF_LENGTH_M),
    )
    field = geodesic_field(occ, goal, emb.footprint_radius_m + CLEARANCE_M)
    path = field.path_from(start)
    sim = NavPhysics(occ, emb, floor_z_m=info.floor_height_m)
    sim.reset((start[0], start[1], 0.0))
    target = 1
    for _ in range(
        int(3 * field.shortest_path_length_m(start) / emb.nominal_speed_mps / POLICY_DT_S)
    ):
        x, y, yaw = sim.pose()
        while target < len(path) - 1 and np.linalg.norm(path[target] - (x, y)) < LOOKAHEAD_M:
            target += 1
        dx, dy = path[target] - (x, y)
        err = (math.atan2(dy, dx) - yaw + math.pi) % (2 * math.pi) - math.pi
        cmd = (emb.nominal_speed_mps * max(0.0, math.cos(err)), 0.0, HEADING_GAIN * err)
        result = sim.step(cmd, POLICY_DT_S)
        if np.linalg.norm(goal - result.pose[:2]) < GOAL_TOL_M:
            break
    assert np.linalg.norm(goal - sim.pose()[:2]) < GOAL_TOL_M
    assert sim.static_contact_count == 0
