"""The policy node core without ROS: lifecycle, inputs, outputs and every fault of issue #8.

Messages are DDS IDL samples built with :mod:`s2e_policy.ros.msgbuild` (the same attribute
names as rclpy messages); the policy is the analytic goal seeker of ``onnx_models.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from s2e_policy.errors import S2EError
from s2e_policy.geometry import quaternion_from_yaw
from s2e_policy.ros import msgbuild
from s2e_policy.ros.dds.factory import DDS_MESSAGES as F
from s2e_policy.ros.node_params import PolicyNodeParams
from s2e_policy.ros.policy_core import (
    GOAL_FRAME_UNKNOWN,
    LifecycleError,
    LifecycleState,
    PolicyCore,
)
from s2e_policy.ros.tf_buffer import TransformBuffer
from s2e_policy.runtime import PolicyFileError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_models as om

RATE_HZ = 5.0
PERIOD_NS = int(1e9 / RATE_HZ)
CONTEXT_FRAMES = 3
WAYPOINTS = 5
MODES = 7
FRAME = np.full((24, 32, 3), 90, np.uint8)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    contract = om.make_contract(num_modes=MODES, waypoints=WAYPOINTS,
                                context_frames=CONTEXT_FRAMES, frame_rate_hz=RATE_HZ,
                                waypoint_dt_s=1.0 / RATE_HZ)
    return om.save(om.goal_seeker(contract, speed_mps=1.0),
                   tmp_path_factory.mktemp("core") / "seeker.onnx")


def make_core(model: Path, lookup=None, **params) -> PolicyCore:
    core = PolicyCore(PolicyNodeParams(model_path=str(model), **params), F, lookup)
    core.configure()
    core.activate()
    return core


def feed(core: PolicyCore, t_ns: int, pose=(0.0, 0.0, 0.0), image: bool = True) -> None:
    core.on_odometry(msgbuild.odometry(F, t_ns, "odom", "base_link", pose, (0, 0, 0)))
    if image:
        core.on_image(msgbuild.rgb_image(F, t_ns, "camera_optical_frame", FRAME))


def goal(t_ns: int, xy, frame: str = "odom"):
    return msgbuild.pose_stamped(F, t_ns, frame, (*xy, 0.0))


def warm(core: PolicyCore, goal_xy=(5.0, 2.0), frame: str = "odom") -> int:
    """Fill the frame context; returns the time of the last frame."""
    core.on_goal(goal(0, goal_xy, frame))
    for k in range(CONTEXT_FRAMES):
        feed(core, k * PERIOD_NS)
    return (CONTEXT_FRAMES - 1) * PERIOD_NS


def diagnostics(out) -> dict[str, str]:
    assert out.diagnostics is not None
    status = out.diagnostics.status[0]
    return {kv.key: kv.value for kv in status.values} | {"_level": status.level,
                                                          "_message": status.message}


def test_lifecycle_and_missing_model(model: Path, tmp_path: Path) -> None:
    missing = PolicyCore(PolicyNodeParams(model_path=str(tmp_path / "nope.onnx")), F)
    with pytest.raises(PolicyFileError, match=r"nope\.onnx: policy file not found"):
        missing.configure()
    assert missing.state == LifecycleState.UNCONFIGURED
    with pytest.raises(S2EError, match="model_path is empty"):
        PolicyCore(PolicyNodeParams(), F).configure()
    core = PolicyCore(PolicyNodeParams(model_path=str(model)), F)
    with pytest.raises(LifecycleError, match="cannot activate from state unconfigured"):
        core.activate()
    core.configure()
    assert core.state == LifecycleState.INACTIVE and core.rate_hz == RATE_HZ
    with pytest.raises(LifecycleError, match="cannot tick from state inactive"):
        core.tick(0)
    core.activate()
    t = warm(core)
    assert core.tick(t).pilot.command[0] > 0
    zero = core.deactivate()
    assert (zero.linear.x, zero.linear.y, zero.angular.z) == (0.0, 0.0, 0.0)
    assert core.state == LifecycleState.INACTIVE
    core.cleanup()
    assert core.state == LifecycleState.UNCONFIGURED and core.runtime is None


def test_drives_to_goal_and_publishes_path_and_diagnostics(model: Path) -> None:
    core = make_core(model)
    out = core.tick(0)
    assert out.pilot.decision is None and out.waypoints is None
    assert "no_image" in diagnostics(out)["stop_reasons"]
    t = warm(core, goal_xy=(5.0, 2.0))
    out = core.tick(t)
    vx, _, wz = out.pilot.command
    assert vx > 0 and wz > 0  # goal ahead-left
    assert (out.cmd_vel.linear.x, out.cmd_vel.angular.z) == (pytest.approx(vx),
                                                             pytest.approx(wz))
    assert out.waypoints.header.frame_id == "base_link"
    assert len(out.waypoints.poses) == WAYPOINTS + 1  # the origin, then the chosen mode
    # Diagnostics are rate-limited (diagnostics_period_s): the first tick had them.
    assert out.diagnostics is None
    later = core.tick(t + int(1.2e9))  # inputs now stale: a diagnostic with the reasons
    d = diagnostics(later)
    assert d["provider"] == "CPUExecutionProvider" and d["_level"] == 1  # WARN
    assert "stale_image" in d["stop_reasons"] and "stale_odometry" in d["stop_reasons"]
    assert float(d["image_age_s"]) == pytest.approx(1.2)
    assert tuple(later.pilot.command) == (0.0, 0.0, 0.0)


def test_stale_camera_stops_within_one_watchdog_period(model: Path) -> None:
    core = make_core(model, image_timeout_s=0.5)
    t = warm(core)
    assert core.tick(t).pilot.command[0] > 0
    # Odometry keeps coming, the camera stops.
    for k in range(1, 4):
        feed(core, t + k * PERIOD_NS, image=False)
        out = core.tick(t + k * PERIOD_NS)
    assert k * PERIOD_NS > 0.5e9 and tuple(out.pilot.command) == (0, 0, 0)
    assert "stale_image" in [r.value for r in out.pilot.safe.reasons]


def test_nan_odometry_stops_with_an_error_diagnostic(model: Path) -> None:
    core = make_core(model, diagnostics_period_s=0.01)  # a diagnostic every tick
    t = warm(core)
    bad = msgbuild.odometry(F, t + PERIOD_NS, "odom", "base_link", (0, 0, 0), (0, 0, 0))
    bad.pose.pose.position.x = float("nan")
    core.on_odometry(bad)
    core.on_image(msgbuild.rgb_image(F, t + PERIOD_NS, "cam", FRAME))
    out = core.tick(t + PERIOD_NS)
    assert tuple(out.pilot.command) == (0, 0, 0)
    d = diagnostics(out)
    assert d["_level"] == 2 and "non_finite_odometry" in d["stop_reasons"]
    assert "pose.pose.position.x" in d["_message"]
    feed(core, t + 2 * PERIOD_NS)  # finite odometry again: motion resumes
    assert core.tick(t + 2 * PERIOD_NS).pilot.command[0] > 0


def test_goal_in_unknown_frame_warns_and_does_not_move(model: Path) -> None:
    tf = TransformBuffer()
    core = make_core(model, lookup=tf.lookup)
    t = warm(core, goal_xy=(4.0, 0.0), frame="map")
    out = core.tick(t)
    assert tuple(out.pilot.command) == (0, 0, 0)
    d = diagnostics(out)
    assert GOAL_FRAME_UNKNOWN in d["stop_reasons"] and "'map'" in d["_message"]
    # odom sits at (1, 2) in map, rotated by +90 deg: map (4, 0) is odom (-2, -3).
    tf.on_tf(msgbuild.tf_message(F, [msgbuild.transform_stamped(
        F, t, "map", "odom", (1.0, 2.0, 0.0), quaternion_from_yaw(np.pi / 2))]))
    assert tf.lookup("odom", "map", t).translation == pytest.approx([-2.0, 1.0, 0.0])
    assert core.on_goal(goal(t, (4.0, 0.0), "map"))
    assert core.pilot.goal == pytest.approx([-2.0, -3.0])
    out = core.tick(t)
    assert out.pilot.decision.behaviour == "turn_to_goal" and out.pilot.command[2] < 0
    assert GOAL_FRAME_UNKNOWN not in diagnostics_or_none(out)


def diagnostics_or_none(out) -> str:
    return "" if out.diagnostics is None else diagnostics(out)["stop_reasons"]


def test_estop_latches_until_cleared(model: Path) -> None:
    core = make_core(model)
    t = warm(core)
    core.on_estop(msgbuild.bool_msg(F, True))
    assert tuple(core.tick(t).pilot.command) == (0, 0, 0)
    assert core.clear_estop() == (False, "e-stop still pressed: release it first")
    core.on_estop(msgbuild.bool_msg(F, False))
    feed(core, t + PERIOD_NS)
    out = core.tick(t + PERIOD_NS)
    assert tuple(out.pilot.command) == (0, 0, 0)  # still latched
    assert "e_stop" in [r.value for r in out.pilot.safe.reasons]
    assert core.clear_estop() == (True, "e-stop cleared")
    feed(core, t + 2 * PERIOD_NS)
    assert core.tick(t + 2 * PERIOD_NS).pilot.command[0] > 0


def test_stamped_command_and_all_modes(model: Path) -> None:
    core = make_core(model, cmd_vel_stamped=True, waypoint_modes="all")
    t = warm(core)
    out = core.tick(t)
    assert out.cmd_vel.header.frame_id == "base_link"
    assert out.cmd_vel.header.stamp.sec * 10**9 + out.cmd_vel.header.stamp.nanosec == t
    assert out.cmd_vel.twist.linear.x == pytest.approx(out.pilot.command[0])
    assert len(out.waypoints.poses) == MODES * (WAYPOINTS + 1)


def test_odometry_in_another_frame_is_refused(model: Path) -> None:
    core = make_core(model)
    t = warm(core)
    core.on_odometry(msgbuild.odometry(F, t, "world", "base_link", (0, 0, 0), (0, 0, 0)))
    out = core.tick(t)
    assert tuple(out.pilot.command) == (0, 0, 0)
    assert "odometry_frame_mismatch" in diagnostics(out)["stop_reasons"]
