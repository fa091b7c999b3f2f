"""Pilot: the whole onboard loop (frames -> navigator -> safety) closed around a unicycle."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.runtime import Pilot, PolicyRuntime, SafetyConfig, StopReason

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_models as om

S = 1_000_000_000
PERIOD_NS = S // 4  # the test contract's 4 Hz frame rate
FRAME = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> PolicyRuntime:
    path = om.save(om.goal_seeker(speed_mps=1.0), tmp_path_factory.mktemp("pilot") / "p.onnx")
    return PolicyRuntime.from_file(path)


def feed(pilot: Pilot, now_ns: int, pose: np.ndarray, goal: np.ndarray) -> None:
    pilot.on_image(now_ns, FRAME)
    pilot.on_odometry(now_ns, pose)
    pilot.on_goal(now_ns, goal)


def unicycle(pose: np.ndarray, command: np.ndarray, dt_s: float) -> np.ndarray:
    x, y, yaw = pose
    v, _, w = command
    return np.array([x + v * math.cos(yaw) * dt_s, y + v * math.sin(yaw) * dt_s, yaw + w * dt_s])


def test_closed_loop_reaches_the_goal_and_stops(runtime) -> None:
    pilot = Pilot(runtime, load_embodiment("wheeled"), safety=SafetyConfig(goal_tolerance_m=0.3))
    pose, goal = np.array([0.0, 0.0, 0.3]), np.array([4.0, -2.5])
    outputs = []
    for step in range(120):
        now = step * PERIOD_NS
        feed(pilot, now, pose, goal)
        out = pilot.step(now)
        outputs.append(out)
        pose = unicycle(pose, out.command, 0.25)
        if StopReason.GOAL_REACHED in out.safe.reasons:
            break
    # Warm-up: zero commands until the 3-frame context exists.
    assert [o.safe.reasons for o in outputs[:2]] == [(StopReason.CONTEXT_INCOMPLETE,)] * 2
    assert outputs[2].decision is not None and outputs[2].safe.reasons == ()
    assert StopReason.GOAL_REACHED in outputs[-1].safe.reasons
    np.testing.assert_array_equal(outputs[-1].command, np.zeros(3))
    assert np.linalg.norm(pose[:2] - goal) <= 0.3 + 1e-9
    assert len(outputs) < 40  # drove there, about 4.7 m at up to 1 m/s


def test_estop_stops_at_once_and_motion_resumes_from_rest_after_reset(runtime) -> None:
    wheeled = load_embodiment("wheeled")
    pilot = Pilot(runtime, wheeled)
    goal = np.array([10.0, 0.0])
    for step in range(8):
        feed(pilot, step * PERIOD_NS, np.zeros(3), goal)
        moving = pilot.step(step * PERIOD_NS)
    assert moving.command[0] == pytest.approx(1.0)
    pilot.on_estop(True)
    now = 8 * PERIOD_NS
    feed(pilot, now, np.zeros(3), goal)
    stopped = pilot.step(now)
    assert stopped.safe.reasons == (StopReason.ESTOP,) and stopped.decision is None
    np.testing.assert_array_equal(stopped.command, np.zeros(3))  # not ramped down
    pilot.on_estop(False)
    feed(pilot, now + PERIOD_NS, np.zeros(3), goal)
    assert pilot.step(now + PERIOD_NS).safe.reasons == (StopReason.ESTOP,)  # latched
    assert pilot.reset_estop()
    feed(pilot, now + 2 * PERIOD_NS, np.zeros(3), goal)
    resumed = pilot.step(now + 2 * PERIOD_NS)
    assert resumed.safe.reasons == ()
    assert resumed.command[0] == pytest.approx(wheeled.max_linear_accel_mps2 * 0.25)


def test_stale_camera_and_nan_odometry_stop_the_robot(runtime) -> None:
    pilot = Pilot(runtime, load_embodiment("wheeled"), safety=SafetyConfig(image_timeout_s=0.5))
    goal = np.array([10.0, 0.0])
    for step in range(4):
        feed(pilot, step * PERIOD_NS, np.zeros(3), goal)
    assert pilot.step(3 * PERIOD_NS).safe.reasons == ()
    now = 3 * PERIOD_NS + S  # camera silent for 1 s, odometry still coming
    pilot.on_odometry(now, np.zeros(3))
    assert pilot.step(now).safe.reasons == (StopReason.STALE_IMAGE,)
    assert not pilot.on_odometry(now, np.array([np.nan, 0.0, 0.0]))
    pilot.on_image(now, FRAME)
    out = pilot.step(now)
    assert StopReason.NON_FINITE_ODOMETRY in out.safe.reasons and out.decision is None


def test_goal_at_the_robot_stops_without_error(runtime) -> None:
    pilot = Pilot(runtime, load_embodiment("wheeled"))
    pose = np.array([1.0, 1.0, 0.5])
    for step in range(4):
        feed(pilot, step * PERIOD_NS, pose, pose[:2])
        out = pilot.step(step * PERIOD_NS)
        assert StopReason.GOAL_REACHED in out.safe.reasons
        np.testing.assert_array_equal(out.command, np.zeros(3))
    assert out.decision is not None and out.decision.goal.distance_m == 0.0


def test_nan_policy_output_is_zeroed(tmp_path: Path) -> None:
    contract = om.make_contract()
    _, traj = om.ray_fan(7, 5, 1.2)
    path = om.save(om.build_policy(contract, traj, np.full(7, np.nan)), tmp_path / "nan.onnx")
    pilot = Pilot(PolicyRuntime.from_file(path), load_embodiment("wheeled"))
    for step in range(3):
        feed(pilot, step * PERIOD_NS, np.zeros(3), np.array([5.0, 0.0]))
    out = pilot.step(2 * PERIOD_NS)
    assert out.safe.reasons == (StopReason.NON_FINITE_COMMAND,)
    np.testing.assert_array_equal(out.command, np.zeros(3))


def test_misshapen_odometry_and_goal_raise(runtime) -> None:
    pilot = Pilot(runtime, load_embodiment("wheeled"))
    with pytest.raises(S2EError, match="odometry pose"):
        pilot.on_odometry(0, np.zeros(2))
    with pytest.raises(S2EError, match="goal"):
        pilot.on_goal(0, np.zeros(4))
