"""The compiled crowd step (several substeps per call) against the numpy substep reference."""

from __future__ import annotations

import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_sim_bridge.pedestrians.social_force import SocialForceConfig, SocialForceCrowd
from s2e_sim_bridge.world.occupancy import OccupancyMap

RES = 0.05
NUM_AGENTS = 14
NUM_STEPS = 60
STEP_S = 0.2
ROBOT_RADIUS_M = 0.35
# The kernel and the numpy reference add the forces in different orders; rounding
# differences (1e-16) grow through agent contacts over the run.
TOLERANCE_M = 1e-6
# Short walks between waypoints: many arrivals (and some blocked moves) per run.
BUSY = SocialForceConfig(waypoint_min_distance_m=0.6, waypoint_max_distance_m=2.0,
                         waypoint_reached_m=0.4)


def room_with_pillars() -> OccupancyMap:
    """An 8 x 5 m room with 0.1 m walls and a row of 0.5 m pillars."""
    grid = np.zeros((100, 160), bool)
    grid[:2], grid[-2:], grid[:, :2], grid[:, -2:] = True, True, True, True
    for c in range(30, 140, 25):
        grid[45:55, c:c + 10] = True
    return OccupancyMap(grid, np.zeros(2), RES)


# Waypoints may not be sampled in these discs (x, y, radius).
KEEP_OUT = np.array([[4.0, 2.5, 0.8], [1.0, 1.0, 0.5]])


def crowd(occ: OccupancyMap, compiled: bool) -> SocialForceCrowd:
    c = SocialForceCrowd(occ, occ.bounds_m, NUM_AGENTS, np.random.default_rng(21), BUSY,
                         keep_out=KEEP_OUT)
    c.compiled = compiled
    return c


def test_compiled_steps_follow_the_numpy_substeps_and_rng():
    occ = room_with_pillars()
    fast, slow = crowd(occ, True), crowd(occ, False)
    robot = np.array([4.0, 2.5])
    resampled = 0
    for k in range(NUM_STEPS):
        before = fast.state.waypoints.copy()
        robot_xy = robot + np.array([np.sin(k / 7.0), 0.0])
        fast.step(STEP_S, robot_xy=robot_xy, robot_radius=ROBOT_RADIUS_M)
        slow.step(STEP_S, robot_xy=robot_xy, robot_radius=ROBOT_RADIUS_M)
        resampled += int(np.any(fast.state.waypoints != before, axis=1).sum())
        for name in ("positions", "velocities", "waypoints", "gait_phase"):
            np.testing.assert_allclose(getattr(fast.state, name), getattr(slow.state, name),
                                       atol=TOLERANCE_M, rtol=0, err_msg=f"{name}, step {k}")
    # the same waypoints were drawn from the crowd's generator in the same order
    assert fast.rng.bit_generator.state == slow.rng.bit_generator.state
    assert resampled > NUM_AGENTS  # arrivals (and blocked moves) happened mid-step, often
    assert np.all(occ.is_free(fast.state.positions, BUSY.agent_radius_m))
    gaps = np.linalg.norm(fast.state.waypoints[:, None] - KEEP_OUT[None, :, :2], axis=2)
    assert np.all(gaps > KEEP_OUT[:, 2] + BUSY.agent_radius_m)


def test_waypoint_checks_agree_with_numpy_methods():
    occ = room_with_pillars()
    fast, slow = crowd(occ, True), crowd(occ, False)
    rng = np.random.default_rng(8)
    origins = rng.uniform(-0.5, 8.5, (300, 2))  # some outside the room
    targets = origins + rng.normal(0.0, 2.0, (300, 2))
    answers = [fast._waypoint_ok(a, b) for a, b in zip(origins, targets, strict=True)]
    assert answers == [slow._waypoint_ok(a, b) for a, b in zip(origins, targets, strict=True)]
    assert 20 < sum(answers) < len(answers) - 20


def test_bad_keep_out_is_refused():
    occ = room_with_pillars()
    with pytest.raises(S2EError, match=r"keep_out must be \(M, 3\) discs"):
        SocialForceCrowd(occ, occ.bounds_m, 2, np.random.default_rng(0), keep_out=np.ones(3))


def test_empty_crowd_and_robot_absent():
    occ = room_with_pillars()
    empty = SocialForceCrowd(occ, occ.bounds_m, 0, np.random.default_rng(0))
    assert len(empty.step(STEP_S)) == 0
    fast, slow = crowd(occ, True), crowd(occ, False)
    for _ in range(5):
        fast.step(STEP_S)
        slow.step(STEP_S)
    np.testing.assert_allclose(fast.state.positions, slow.state.positions, atol=TOLERANCE_M)
