"""The DDS policy node end to end: a child process on loopback, driven like a robot would.

This process plays the robot and the simulator clock: it publishes ``/clock``, ``odom``,
``image``, ``goal_pose`` and ``e_stop`` and reads ``cmd_vel`` and ``/diagnostics`` over Cyclone
DDS; the node runs ``python -m s2e_policy.ros.dds_policy_node --use-sim-time`` with a real
ONNX policy (the goal seeker of ``onnx_models.py``). Each fault of issue #8 is exercised:
stale camera, NaN odometry, a goal in an unknown frame, the latched e-stop and its clearing
service, and a missing model at configure.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from s2e_policy.ros import msgbuild
from s2e_policy.ros.dds import CONFIG_ENV, DdsNode, idl_class, loopback_config_xml
from s2e_policy.ros.dds.factory import DDS_MESSAGES as F
from s2e_policy.ros.dds.node import MAX_DOMAIN_ID
from s2e_policy.ros.dds.qos import CLOCK_QOS, SENSOR_DATA_QOS

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_models as om

RATE_HZ = 5.0
PERIOD_NS = int(1e9 / RATE_HZ)
FRAME = np.full((24, 32, 3), 90, np.uint8)
MATCH_TIMEOUT_S = 20.0
REPLY_TIMEOUT_S = 10.0
INPUT_WAIT_S = 0.2  # the node's wall-clock wait for a tick's inputs (short: faults skip them)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv(CONFIG_ENV, loopback_config_xml())
    domain = random.Random(os.getpid() ^ time.time_ns()).randrange(1, MAX_DOMAIN_ID)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    return domain


def _node(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "s2e_policy.ros.dds_policy_node", *args],
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


class Robot:
    """The robot side: publishers of the node's inputs, subscriptions of its outputs."""

    def __init__(self, node: DdsNode) -> None:
        self.node = node
        self.clock = node.publisher("/clock", "rosgraph_msgs/msg/Clock", CLOCK_QOS)
        self.odom = node.publisher("odom", "nav_msgs/msg/Odometry")
        self.image = node.publisher("image", "sensor_msgs/msg/Image", SENSOR_DATA_QOS)
        self.goal = node.publisher("goal_pose", "geometry_msgs/msg/PoseStamped")
        self.estop = node.publisher("e_stop", "std_msgs/msg/Bool")
        self.cmds: list[Any] = []
        self.diagnostics: list[Any] = []
        self.cmd_sub = node.subscription("cmd_vel", "geometry_msgs/msg/Twist", self.cmds.append)
        node.subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray",
                          self.diagnostics.append)
        self.clear = node.client("/policy_node/clear_e_stop", "std_srvs/srv/Trigger")

    def step(self, t_ns: int, image: bool = True, odom_x: float = 0.0) -> tuple[float, ...]:
        """Publish the inputs of sim time ``t_ns``; returns the node's answer (vx, vy, wz)."""
        count = len(self.cmds)
        self.clock.publish(msgbuild.clock(F, t_ns))
        self.odom.publish(msgbuild.odometry(F, t_ns, "odom", "base_link", (odom_x, 0.0, 0.0),
                                            (0.0, 0.0, 0.0)))
        if image:
            self.image.publish(msgbuild.rgb_image(F, t_ns, "camera", FRAME))
        assert self.node.spin_until(lambda: len(self.cmds) > count, REPLY_TIMEOUT_S), \
            f"no cmd_vel for t={t_ns / 1e9} s"
        cmd = self.cmds[-1]
        return (cmd.linear.x, cmd.linear.y, cmd.angular.z)

    def status_at(self, t_ns: int) -> dict[str, str]:
        """The node's diagnostic status of the tick at ``t_ns``."""
        def stamped() -> list[Any]:
            return [d for d in self.diagnostics
                    if d.header.stamp.sec * 10**9 + d.header.stamp.nanosec == t_ns]
        assert self.node.spin_until(lambda: bool(stamped()), REPLY_TIMEOUT_S)
        status = stamped()[-1].status[0]
        return {kv.key: kv.value for kv in status.values} | {"level": str(status.level),
                                                              "message": status.message}


@pytest.fixture
def robot(loopback: int, tmp_path: Path) -> Iterator[Robot]:
    contract = om.make_contract(frame_rate_hz=RATE_HZ, waypoint_dt_s=1.0 / RATE_HZ)
    policy = om.save(om.goal_seeker(contract, speed_mps=1.0), tmp_path / "seeker.onnx")
    child = _node(["--use-sim-time", "--input-wait-s", str(INPUT_WAIT_S),
                   "-p", f"model_path:={policy}", "-p", "diagnostics_period_s:=0.1"])
    try:
        with DdsNode("robot") as node:
            robot = Robot(node)
            assert robot.cmd_sub.wait_for_publishers(1, MATCH_TIMEOUT_S), child.stdout
            assert robot.image.wait_for_subscribers(1, MATCH_TIMEOUT_S)
            assert robot.clear.wait_for_service(MATCH_TIMEOUT_S)
            yield robot
    finally:
        child.terminate()
        output, _ = child.communicate(timeout=20)
    assert child.returncode == 0, output


def test_faults_end_to_end_over_dds(robot: Robot) -> None:
    t = 0
    robot.goal.publish(msgbuild.pose_stamped(F, 0, "odom", (5.0, 2.0, 0.0)))
    for _ in range(3):  # fill the 3-frame context
        cmd = robot.step(t)
        t += PERIOD_NS
    assert cmd[0] > 0 and cmd[2] > 0  # goal ahead-left
    # Stale camera: zero within one watchdog period (0.5 s) of the last frame.
    last_frame = t - PERIOD_NS
    while t - last_frame <= 0.5e9:
        robot.step(t, image=False)
        t += PERIOD_NS
    assert robot.step(t, image=False) == (0.0, 0.0, 0.0)
    assert "stale_image" in robot.status_at(t)["stop_reasons"]
    t += PERIOD_NS
    for _ in range(3):  # the camera comes back
        cmd = robot.step(t)
        t += PERIOD_NS
    assert cmd[0] > 0
    # NaN odometry: zero and an ERROR diagnostic; finite odometry resumes.
    assert robot.step(t, odom_x=float("nan")) == (0.0, 0.0, 0.0)
    status = robot.status_at(t)
    assert status["level"] == "2" and "non_finite_odometry" in status["stop_reasons"]
    t += PERIOD_NS
    assert robot.step(t)[0] > 0
    t += PERIOD_NS
    # E-stop: latched until the service clears it (refused while pressed).
    Trigger = idl_class("std_srvs/srv/Trigger_Request")
    robot.estop.publish(msgbuild.bool_msg(F, True))
    assert robot.step(t) == (0.0, 0.0, 0.0)
    t += PERIOD_NS
    assert not robot.clear.call(Trigger(), REPLY_TIMEOUT_S).success
    robot.estop.publish(msgbuild.bool_msg(F, False))
    assert robot.step(t) == (0.0, 0.0, 0.0)
    t += PERIOD_NS
    reply = robot.clear.call(Trigger(), REPLY_TIMEOUT_S)
    assert reply.success and reply.message == "e-stop cleared"
    assert robot.step(t)[0] > 0
    t += PERIOD_NS
    # A goal in a frame no transform relates to odom: warning, no motion.
    robot.goal.publish(msgbuild.pose_stamped(F, t, "map", (5.0, 2.0, 0.0)))
    assert robot.step(t) == (0.0, 0.0, 0.0)
    assert "goal_frame_unknown" in robot.status_at(t)["stop_reasons"]


def test_missing_model_fails_configure_with_one_line(loopback: int, tmp_path: Path) -> None:
    child = _node(["-p", f"model_path:={tmp_path / 'missing.onnx'}"])
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 2
    assert output.strip().splitlines()[-1] == \
        f"python -m s2e_policy.ros.dds_policy_node: error: {tmp_path / 'missing.onnx'}: " \
        "policy file not found"
