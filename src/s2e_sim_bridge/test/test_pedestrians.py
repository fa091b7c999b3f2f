"""Social-force crowds on a real occupancy map, and their Gaussian bodies."""

from __future__ import annotations

import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_sim_bridge.pedestrians.bodies import build_template, pose_bodies, sample_palettes
from s2e_sim_bridge.pedestrians.social_force import SocialForceConfig, SocialForceCrowd
from s2e_sim_bridge.world.occupancy import OccupancyMap

RES = 0.05


def corridor(length_m: float = 20.0, width_m: float = 4.0, pillar: bool = False) -> OccupancyMap:
    """A corridor along +x with 0.2 m walls (and optionally a 1 m pillar in the middle)."""
    rows, cols = round((width_m + 0.4) / RES), round(length_m / RES)
    grid = np.zeros((rows, cols), bool)
    wall = round(0.2 / RES)
    grid[:wall] = True
    grid[-wall:] = True
    if pillar:
        r0, c0 = rows // 2, cols // 2
        half = round(0.5 / RES)
        grid[r0 - half:r0 + half, c0 - half:c0 + half] = True
    return OccupancyMap(grid=grid, origin_xy_m=np.array([0.0, -0.2 - width_m / 2]),
                        resolution_m=RES)


def make_crowd(occ: OccupancyMap, n: int, seed: int = 0, **kw) -> SocialForceCrowd:
    return SocialForceCrowd(occ, occ.bounds_m, n, np.random.default_rng(seed), **kw)


def test_spawn_on_free_space_apart() -> None:
    occ = corridor(pillar=True)
    crowd = make_crowd(occ, 12)
    s = crowd.state
    assert np.all(occ.is_free(s.positions, s.radii[0]))
    d = np.linalg.norm(s.positions[:, None] - s.positions[None], axis=2) + np.eye(12) * 9
    assert d.min() >= 2 * s.radii[0]
    assert np.all(occ.is_free(s.waypoints, s.radii[0]))


def test_keep_out_disc_is_respected() -> None:
    occ = corridor()
    keep = np.array([[10.0, 0.0, 3.0]])
    crowd = make_crowd(occ, 10, keep_out=keep)
    d = np.linalg.norm(crowd.state.positions - keep[0, :2], axis=1)
    assert np.all(d > 3.0)


def test_head_on_agents_pass_without_contact() -> None:
    occ = corridor()
    crowd = make_crowd(occ, 2)
    s = crowd.state
    s.positions[:] = [[4.0, 0.05], [16.0, -0.05]]
    s.waypoints[:] = [[18.0, 0.0], [2.0, 0.0]]
    s.velocities[:] = 0.0
    s.preferred_speeds[:] = 1.3
    min_gap = np.inf
    for _ in range(150):  # 15 s at 10 Hz
        crowd.step(0.1)
        gap = np.linalg.norm(s.positions[0] - s.positions[1]) - 2 * s.radii[0]
        min_gap = min(min_gap, gap)
    # The body-compression term allows a few cm of overlap at most.
    assert min_gap > -0.02, "agents walked through each other"
    assert s.positions[0, 0] > 12.0 and s.positions[1, 0] < 8.0, "agents did not pass"


def test_agents_never_enter_walls_or_pillar() -> None:
    occ = corridor(pillar=True)
    crowd = make_crowd(occ, 15, seed=3)
    for _ in range(300):
        crowd.step(0.1)
        assert np.all(occ.is_free(crowd.state.positions, 0.0))


def test_agents_keep_away_from_robot() -> None:
    occ = corridor()
    crowd = make_crowd(occ, 1)
    s = crowd.state
    s.positions[:] = [[4.0, 0.0]]
    s.waypoints[:] = [[16.0, 0.0]]
    robot = np.array([10.0, 0.0])
    min_d = np.inf
    for _ in range(150):
        crowd.step(0.1, robot_xy=robot, robot_radius=0.35)
        min_d = min(min_d, np.linalg.norm(s.positions[0] - robot))
    assert min_d > 0.35 + s.radii[0], "pedestrian walked into a standing robot"
    # Without the robot term the same agent walks straight through that point.
    crowd2 = make_crowd(occ, 1)
    crowd2.state.positions[:] = [[4.0, 0.0]]
    crowd2.state.waypoints[:] = [[16.0, 0.0]]
    free_min = min(np.linalg.norm(crowd2.step(0.1).positions[0] - robot) for _ in range(150))
    assert free_min < 0.3


def test_walks_at_preferred_speed_and_resamples_waypoints() -> None:
    occ = corridor(length_m=40.0)
    crowd = make_crowd(occ, 1, seed=5)
    s = crowd.state
    s.positions[:] = [[2.0, 0.0]]
    s.waypoints[:] = [[30.0, 0.0]]
    s.preferred_speeds[:] = 1.2
    for _ in range(50):
        crowd.step(0.1)
    assert np.linalg.norm(s.velocities[0]) == pytest.approx(1.2, abs=0.05)
    for _ in range(300):
        crowd.step(0.1)
    assert not np.allclose(s.waypoints[0], [30.0, 0.0]), "waypoint never resampled"


def test_deterministic_for_a_seed() -> None:
    occ = corridor(pillar=True)
    runs = []
    for _ in range(2):
        crowd = make_crowd(occ, 8, seed=11)
        for _ in range(50):
            crowd.step(0.1, robot_xy=np.array([5.0, 0.0]), robot_radius=0.3)
        runs.append(crowd.state.positions.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_bad_inputs() -> None:
    occ = corridor(length_m=2.0, width_m=1.0)
    with pytest.raises(S2EError, match="free space for only"):
        make_crowd(occ, 50)
    crowd = make_crowd(corridor(), 2)
    with pytest.raises(S2EError, match="dt"):
        crowd.step(float("nan"))


def test_bodies_are_posed_at_agents() -> None:
    template = build_template()
    m = len(template.parts)
    pos = np.array([[1.0, 2.0], [5.0, -1.0]])
    heading = np.array([0.0, np.pi / 2])
    scene = pose_bodies(template, pos, heading, np.zeros(2),
                        sample_palettes(2, np.random.default_rng(0)), floor_height_m=0.1)
    assert len(scene) == 2 * m
    means = scene.means.reshape(2, m, 3)
    # Standing still (phase 0): every body stays within its radius and height.
    for i in range(2):
        assert np.all(np.linalg.norm(means[i, :, :2] - pos[i], axis=1) < 0.3)
    assert means[..., 2].min() > 0.1 and means[..., 2].max() < 0.1 + 1.8
    np.testing.assert_allclose(np.linalg.norm(scene.quats, axis=1), 1.0, atol=1e-6)
    # Rotating the heading by 90 degrees rotates the body's offsets by 90 degrees.
    local0 = means[0, :, :2] - pos[0]
    local1 = means[1, :, :2] - pos[1]
    np.testing.assert_allclose(local1, np.stack([-local0[:, 1], local0[:, 0]], 1), atol=1e-5)


def test_gait_swings_legs_in_opposite_directions() -> None:
    template = build_template()
    pal = sample_palettes(1, np.random.default_rng(0))
    still = pose_bodies(template, np.zeros((1, 2)), np.zeros(1), np.zeros(1), pal).means
    walk = pose_bodies(template, np.zeros((1, 2)), np.zeros(1), np.full(1, np.pi / 2), pal).means
    dx = walk[:, 0] - still[:, 0]
    from s2e_sim_bridge.pedestrians.bodies import PART_LEFT_LEG, PART_RIGHT_LEG
    assert dx[template.parts == PART_LEFT_LEG].min() > 0.0
    assert dx[template.parts == PART_RIGHT_LEG].max() < 0.0


def test_config_is_used() -> None:
    occ = corridor()
    crowd = make_crowd(occ, 3, config=SocialForceConfig(agent_radius_m=0.4))
    assert np.all(crowd.state.radii == 0.4)


def test_compiled_substep_matches_numpy_reference() -> None:
    occ = corridor(pillar=True)
    fast = make_crowd(occ, 10, seed=4)
    slow = make_crowd(occ, 10, seed=4)
    slow.compiled = False
    robot = np.array([10.0, 0.3])
    for _ in range(100):
        fast.step(0.2, robot_xy=robot, robot_radius=0.35)
        slow.step(0.2, robot_xy=robot, robot_radius=0.35)
    np.testing.assert_allclose(fast.state.positions, slow.state.positions, atol=1e-9)
    np.testing.assert_allclose(fast.state.velocities, slow.state.velocities, atol=1e-9)
    np.testing.assert_allclose(fast.state.waypoints, slow.state.waypoints, atol=1e-9)
