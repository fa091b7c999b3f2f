"""NavPhysics' compiled substep pieces against a plain-Python step loop, bit for bit.

The reference below is the substep loop written out in Python over the same MJCF model
(``build_mjcf``): lag and rate limit of the reference, deadbeat control, ``mj_step``, the
diff-drive projection, and contact events with hysteresis from MuJoCo's contact list.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from s2e_policy.embodiment import Embodiment, load_embodiment
from s2e_sim_bridge.physics import NavPhysics, PhysicsConfig, build_mjcf
from s2e_sim_bridge.world import OccupancyMap

RES = 0.05
POLICY_DT_S = 0.2
NUM_STEPS = 60
START = (6.2, 2.5, 0.0)
PEDESTRIAN_SPEED_MPS = 1.5


class ReferencePhysics:
    """The substep loop in plain Python (one robot, kinematic pedestrians, contact events)."""

    def __init__(self, occupancy: OccupancyMap, embodiment: Embodiment, num_pedestrians: int):
        self.config = PhysicsConfig()
        self.embodiment = embodiment
        self.model = mujoco.MjModel.from_xml_string(
            build_mjcf(occupancy, embodiment, self.config, num_pedestrians))
        self.data = mujoco.MjData(self.model)
        self.robot = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "robot")
        self.ped_of_geom = {
            mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"pedestrian{k}"): k
            for k in range(num_pedestrians)}
        self.num_pedestrians = num_pedestrians
        h = self.config.timestep_s
        e = embodiment
        self.alpha = 1.0 - math.exp(-h / e.velocity_lag_s)
        self.limits = np.array([e.max_linear_mps, e.max_lateral_mps, e.max_angular_radps])
        self.accel = h * np.array(
            [e.max_linear_accel_mps2, e.max_linear_accel_mps2, e.max_angular_accel_radps2])

    def reset(self, pose, pedestrian_xy: np.ndarray) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = pose
        self.data.mocap_pos[:, :2] = pedestrian_xy
        mujoco.mj_forward(self.model, self.data)
        self.reference = [0.0, 0.0, 0.0]
        self.ped_xy = np.array(pedestrian_xy, dtype=np.float64)
        self.in_static = False
        self.in_ped = [d <= 0.0 for d in self.distances()[1]]

    def distances(self) -> tuple[float, list[float]]:
        static, ped = math.inf, [math.inf] * self.num_pedestrians
        for (g1, g2), dist in zip(self.data.contact.geom.tolist(),
                                  self.data.contact.dist.tolist(), strict=True):
            if self.robot not in (g1, g2):
                continue
            other = g2 if g1 == self.robot else g1
            if other in self.ped_of_geom:
                k = self.ped_of_geom[other]
                ped[k] = min(ped[k], dist)
            else:
                static = min(static, dist)
        return static, ped

    def step(self, cmd, dt: float, pedestrian_xy: np.ndarray) -> tuple[int, int]:
        target = np.clip(np.asarray(cmd, dtype=np.float64), -self.limits, self.limits)
        if not self.embodiment.is_holonomic:
            target[1] = 0.0
        n = round(dt / self.config.timestep_s)
        qpos, qvel, ctrl = self.data.qpos, self.data.qvel, self.data.ctrl
        h, release = self.config.timestep_s, self.config.contact_release_m
        start, delta = self.ped_xy, pedestrian_xy - self.ped_xy
        events = [0, 0]
        for k in range(n):
            self.data.mocap_pos[:, :2] = start + ((k + 1) / n) * delta
            for i in range(3):
                self.reference[i] += min(self.accel[i], max(
                    -self.accel[i], self.alpha * (target[i] - self.reference[i])))
            rx, ry, rw = self.reference
            yaw_next = qpos[2] + rw * h
            c, s = math.cos(yaw_next), math.sin(yaw_next)
            ctrl[0] = 2.0 * (c * rx - s * ry) - qvel[0]
            ctrl[1] = 2.0 * (s * rx + c * ry) - qvel[1]
            ctrl[2] = 2.0 * rw - qvel[2]
            mujoco.mj_step(self.model, self.data)
            if not self.embodiment.is_holonomic:
                c, s = math.cos(qpos[2]), math.sin(qpos[2])
                forward = c * qvel[0] + s * qvel[1]
                qvel[0], qvel[1] = c * forward, s * forward
            static, ped = self.distances()
            if not self.in_static and static <= 0.0:
                self.in_static = True
                events[0] += 1
            elif self.in_static and static > release:
                self.in_static = False
            for j, d in enumerate(ped):
                began = not self.in_ped[j] and d <= 0.0
                self.in_ped[j] = (self.in_ped[j] and d <= release) or began
                events[1] += began
        self.ped_xy = np.array(pedestrian_xy, dtype=np.float64)
        return events[0], events[1]


@pytest.fixture(scope="module")
def thin_wall() -> OccupancyMap:
    grid = np.zeros((100, 200), bool)
    grid[:, 150] = True  # a one-cell wall at x = 7.5 m
    return OccupancyMap(grid, np.zeros(2), RES)


def pedestrian_tracks(num_steps: int) -> np.ndarray:
    """``(num_steps, 2, 2)``: one pedestrian walks to and fro across the robot's lane."""
    t = np.arange(1, num_steps + 1) * POLICY_DT_S
    y = 2.5 + 2.0 * np.sin(PEDESTRIAN_SPEED_MPS * t / 2.0)
    walker = np.column_stack([np.full(num_steps, 6.8), y])
    standing = np.tile([3.0, 1.0], (num_steps, 1))
    return np.stack([walker, standing], axis=1)


@pytest.mark.parametrize("name", ["wheeled", "go2"])
def test_compiled_step_matches_python_reference(thin_wall, name):
    emb = load_embodiment(name)
    tracks = pedestrian_tracks(NUM_STEPS)
    fast = NavPhysics(thin_wall, emb, num_pedestrians=2)
    slow = ReferencePhysics(thin_wall, emb, num_pedestrians=2)
    first = np.array([[6.8, 2.5 + 2.0], [3.0, 1.0]])
    fast.reset(START, first)
    slow.reset(START, first)
    rng = np.random.default_rng(11)
    totals = np.zeros(2, int)
    for k in range(NUM_STEPS):
        # push towards the wall (+x) most of the time, back off now and then
        cmd = rng.uniform([-0.5, -0.5, -1.0], [2.0, 0.5, 1.0]) * (1 if k % 15 < 11 else -1)
        result = fast.step(cmd, POLICY_DT_S, tracks[k])
        events = slow.step(cmd, POLICY_DT_S, tracks[k])
        assert (result.static_contact_events, result.pedestrian_contact_events) == events, k
        np.testing.assert_array_equal(fast.data.qpos, slow.data.qpos)
        np.testing.assert_array_equal(fast.data.qvel, slow.data.qvel)
        assert result.in_static_contact == slow.in_static
        np.testing.assert_array_equal(result.pedestrians_in_contact, slow.in_ped)
        totals += events
    assert totals[0] >= 2 and totals[1] >= 1  # the run does exercise both kinds of contact
    assert fast.static_contact_count == totals[0]
    assert fast.pedestrian_contact_count == totals[1]
