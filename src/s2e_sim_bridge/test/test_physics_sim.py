"""MuJoCo physics: walls stop the robot, contacts count once, limits, lag, determinism."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.physics import NavPhysics, PhysicsConfig, merge_occupied_cells
from s2e_sim_bridge.world import OccupancyMap

RES = 0.05
POLICY_DT_S = 0.2
WALL_X = 7.5  # face of a one-cell (5 cm) wall: cells [150, 151) cover x in [7.5, 7.55]
POSITION_TOL_M = 0.01
VELOCITY_TOL = 1e-6


@pytest.fixture(scope="module")
def thin_wall() -> OccupancyMap:
    grid = np.zeros((100, 200), bool)
    grid[:, 150] = True
    return OccupancyMap(grid, np.zeros(2), RES)


@pytest.fixture(scope="module")
def open_map() -> OccupancyMap:
    return OccupancyMap(np.zeros((200, 200), bool), np.zeros(2), RES)


def test_merged_boxes_cover_grid_exactly():
    rng = np.random.default_rng(3)
    grid = rng.random((40, 50)) < 0.3
    grid[5:20, 10:30] = True
    boxes = merge_occupied_cells(grid)
    cover = np.zeros(grid.shape, int)
    for r0, r1, c0, c1 in boxes:
        cover[r0:r1, c0:c1] += 1
    np.testing.assert_array_equal(cover, grid.astype(int))  # exact and disjoint
    assert len(boxes) < grid.sum() / 2
    closing = [tuple(b) for b in boxes[:, [1, 2]].tolist()]  # (row1, col0): the model's order
    assert closing == sorted(closing)
    assert merge_occupied_cells(np.zeros((3, 3), bool)).shape == (0, 4)
    block = np.zeros((10, 10), bool)
    block[2:6, 3:8] = True
    np.testing.assert_array_equal(merge_occupied_cells(block), [[2, 6, 3, 8]])
    checker = np.indices((7, 9)).sum(axis=0) % 2 == 0  # no two cells merge: a box each
    assert len(merge_occupied_cells(checker)) == checker.sum()
    with pytest.raises(S2EError, match="grid must be 2D"):
        merge_occupied_cells(np.ones(5, bool))


def test_model_geometry(thin_wall):
    sim = NavPhysics(thin_wall, load_embodiment("wheeled"), num_pedestrians=3)
    assert sim.num_static_boxes == 1 + 4  # the merged wall plus four boundary walls
    assert sim.model.nmocap == 3
    robot = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_GEOM, "robot")
    assert sim.model.geom_type[robot] == mujoco.mjtGeom.mjGEOM_CYLINDER
    assert sim.model.geom_size[robot][0] == pytest.approx(0.35)
    assert sim.model.opt.timestep == pytest.approx(0.01)


@pytest.mark.parametrize("name", ["wheeled", "go2"])
def test_drive_into_wall_stops_at_wall_with_one_contact(thin_wall, name):
    emb = load_embodiment(name)
    sim = NavPhysics(thin_wall, emb)
    sim.reset((1.0, 2.5, 0.0))
    events, xs = 0, []
    for _ in range(40):  # 8 s at up to 2 m/s: reaches the wall and keeps pushing
        result = sim.step((2.0, 0.0, 0.0), POLICY_DT_S)
        events += result.static_contact_events
        xs.append(result.pose[0])
    assert max(xs) < WALL_X  # no tunnelling through the 5 cm wall
    assert xs[-1] == pytest.approx(WALL_X - emb.footprint_radius_m, abs=POSITION_TOL_M)
    assert events == 1 == sim.static_contact_count
    assert result.in_static_contact
    assert abs(result.pose[1] - 2.5) < POSITION_TOL_M and abs(result.pose[2]) < 1e-3


def test_each_touch_is_a_new_event(thin_wall):
    sim = NavPhysics(thin_wall, load_embodiment("go2"))
    sim.reset((6.0, 2.5, 0.0))
    counts = []
    for _ in range(3):
        touch = sum(sim.step((1.0, 0.0, 0.0), POLICY_DT_S).static_contact_events for _ in range(15))
        leave = sum(sim.step((-1.0, 0.0, 0.0), POLICY_DT_S).static_contact_events for _ in range(5))
        counts.append((touch, leave))
        assert not sim.step((0.0, 0.0, 0.0), 1.0).in_static_contact
    assert counts == [(1, 0)] * 3 and sim.static_contact_count == 3


def test_velocity_and_acceleration_limits(open_map):
    for name in ("wheeled", "go2"):
        emb = load_embodiment(name)
        sim = NavPhysics(open_map, emb)
        sim.reset((5.0, 5.0, 0.0))
        h = sim.config.timestep_s
        velocities = [sim.body_velocity()]
        for k in range(1000):
            cmd = (5.0, 5.0, 5.0) if k < 500 else (-5.0, -5.0, -5.0)
            velocities.append(sim.step(cmd, h).body_velocity)
        v = np.array(velocities)
        assert np.abs(v[:, 0]).max() <= emb.max_linear_mps + VELOCITY_TOL
        assert np.abs(v[:, 0]).max() >= emb.max_linear_mps - 1e-3  # it does reach the limit
        assert np.abs(v[:, 1]).max() <= emb.max_lateral_mps + VELOCITY_TOL
        assert np.abs(v[:, 2]).max() <= emb.max_angular_radps + VELOCITY_TOL
        accel = np.abs(np.diff(v, axis=0)) / h
        assert accel[:, 0].max() <= emb.max_linear_accel_mps2 * (1 + VELOCITY_TOL)
        assert accel[:, 2].max() <= emb.max_angular_accel_radps2 * (1 + VELOCITY_TOL)


def test_diff_drive_never_slides_sideways(open_map):
    sim = NavPhysics(open_map, load_embodiment("wheeled"))
    sim.reset((5.0, 5.0, 0.3))
    lateral = [
        sim.step((1.5, 1.0, 1.5 * math.sin(k / 5)), 0.05).body_velocity[1] for k in range(60)
    ]
    assert np.abs(lateral).max() < 1e-9


def test_go2_velocity_lag_reaches_63_percent_in_one_time_constant(open_map):
    emb = load_embodiment("go2")
    sim = NavPhysics(open_map, emb)
    sim.reset((5.0, 5.0, 0.0))
    step = 0.2  # small enough that the acceleration limit does not bind
    tau = emb.velocity_lag_s
    v_tau = sim.step((step, 0.5 * step, 0.0), tau).body_velocity
    assert v_tau[0] / step == pytest.approx(1 - math.exp(-1), abs=1e-3)
    assert v_tau[1] / (0.5 * step) == pytest.approx(1 - math.exp(-1), abs=1e-3)
    v_late = sim.step((step, 0.5 * step, 0.0), 5 * tau).body_velocity
    assert v_late[0] == pytest.approx(step, rel=0.01)


def test_determinism(thin_wall):
    def run() -> np.ndarray:
        sim = NavPhysics(thin_wall, load_embodiment("go2"), num_pedestrians=1)
        sim.reset((2.0, 1.0, 0.4), pedestrian_xy=[[4.0, 4.0]])
        rng = np.random.default_rng(7)
        poses = []
        for k in range(40):
            r = sim.step(rng.uniform(-2, 2, 3), POLICY_DT_S, pedestrian_xy=[[4.0 + 0.05 * k, 4.0]])
            poses.append(np.concatenate([r.pose, r.body_velocity, [r.static_contact_events]]))
        return np.array(poses)

    np.testing.assert_array_equal(run(), run())


def test_pedestrian_contact_events(open_map):
    sim = NavPhysics(open_map, load_embodiment("wheeled"), num_pedestrians=2)
    sim.reset((5.0, 5.0, 0.0), pedestrian_xy=[[8.0, 5.0], [np.nan, np.nan]])
    total = 0
    for k in range(20):  # pedestrian 0 walks through the robot's position, 1 stays parked
        r = sim.step(
            (0.0, 0.0, 0.0),
            POLICY_DT_S,
            pedestrian_xy=[[8.0 - 0.3 * (k + 1), 5.0], [5.0, 5.0 if k > 30 else np.nan]],
        )
        total += r.pedestrian_contact_events
        assert r.static_contact_events == 0
    assert total == 1 == sim.pedestrian_contact_count
    assert sim.pose()[0] < 5.0  # the kinematic pedestrian shoved the robot


def test_parked_pedestrians_are_moved_out_of_reach(open_map):
    """A parked (NaN) pedestrian's capsule goes to xy 0, deep below the floor.

    At reset and through every step with a NaN at either end; a walking one stands on the
    floor at its position.
    """
    sim = NavPhysics(open_map, load_embodiment("wheeled"), num_pedestrians=2)
    nan = [np.nan, np.nan]
    sim.reset((5.0, 5.0, 0.0), pedestrian_xy=[nan, [6.0, 5.0]])
    mocap = sim.data.mocap_pos
    deep = mocap[0, 2]
    assert deep < -1.0
    expected = [
        [[0.0, 0.0, deep], [6.0, 5.0, 0.0]],  # after reset
        [[0.0, 0.0, deep], [6.0, 5.0, 0.0]],  # pedestrian 0 still NaN
        [[0.0, 0.0, deep], [0.0, 0.0, deep]],  # 0 starts at NaN, 1 ends at NaN
        [[4.0, 4.0, 0.0], [0.0, 0.0, deep]],  # 0 from (4, 4) to (4, 4), 1 starts at NaN
        [[4.0, 4.0, 0.0], [6.0, 6.0, 0.0]],  # both walking
    ]
    ends = [[nan, [6.0, 5.0]], [[4.0, 4.0], nan], [[4.0, 4.0], [6.0, 6.0]],
            [[4.0, 4.0], [6.0, 6.0]]]
    assert mocap.tolist() == expected[0]
    for pedestrian_xy, want in zip(ends, expected[1:], strict=True):
        sim.step((0.0, 0.0, 0.0), POLICY_DT_S, pedestrian_xy=pedestrian_xy)
        assert mocap.tolist() == want, pedestrian_xy


def test_camera_pose_mount_and_gait(open_map):
    wheeled = NavPhysics(open_map, load_embodiment("wheeled"), floor_z_m=1.0)
    wheeled.reset((2.0, 3.0, math.pi / 2))
    position, yaw, pitch, roll = wheeled.camera_pose()
    mount = wheeled.embodiment.camera
    np.testing.assert_allclose(
        position, [2.0, 3.0 + mount.forward_offset_m, 1.0 + mount.height_m], atol=1e-9
    )
    assert yaw == pytest.approx(math.pi / 2) and pitch == pytest.approx(math.radians(10.0))
    assert roll == 0.0

    go2 = NavPhysics(open_map, load_embodiment("go2"))
    go2.reset((2.0, 3.0, 0.0))
    gait = go2.embodiment.gait
    still = [go2.step((0.0, 0.0, 0.0), 0.02) and go2.camera_pose() for _ in range(25)]
    assert {p[0][2] for p in still} == {go2.embodiment.camera.height_m}
    walking = [go2.step((1.0, 0.0, 0.0), 0.02) and go2.camera_pose() for _ in range(100)]
    z = np.array([p[0][2] for p in walking[50:]])
    rolls = np.array([p[3] for p in walking[50:]])
    assert np.ptp(z) == pytest.approx(2 * gait.bob_amplitude_m, rel=0.15)
    assert np.abs(rolls).max() == pytest.approx(math.radians(gait.roll_amplitude_deg), rel=0.15)


def test_bad_inputs(thin_wall):
    sim = NavPhysics(thin_wall, load_embodiment("go2"), num_pedestrians=1)
    with pytest.raises(S2EError, match="overlaps a static obstacle"):
        sim.reset((7.4, 2.5, 0.0))
    with pytest.raises(S2EError, match="reset pose must be finite"):
        sim.reset((np.nan, 2.5, 0.0))
    sim.reset((2.0, 2.5, 0.0))
    with pytest.raises(S2EError, match=r"dt=0\.013 s must be a positive multiple of the physics"):
        sim.step((1.0, 0.0, 0.0), 0.013)
    with pytest.raises(S2EError, match="velocity command must be finite"):
        sim.step((np.inf, 0.0, 0.0), POLICY_DT_S)
    with pytest.raises(S2EError, match=r"pedestrian_xy must have shape \(1, 2\)"):
        sim.step((0.0, 0.0, 0.0), POLICY_DT_S, pedestrian_xy=np.zeros((2, 2)))
    with pytest.raises(S2EError, match=r"PhysicsConfig\.timestep_s must be"):
        PhysicsConfig(timestep_s=0.0)
