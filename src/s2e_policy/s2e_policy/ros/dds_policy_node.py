r"""The policy node over Cyclone DDS: the same core as the rclpy node, no ROS install needed.

Runs :class:`~s2e_policy.ros.policy_core.PolicyCore` on :class:`~s2e_policy.ros.dds.DdsNode`,
so a machine without ROS (a GPU server, CI) serves the policy to ROS 2 robots running
``rmw_cyclonedds_cpp`` on the same ``ROS_DOMAIN_ID``: the robot publishes ``image``, ``odom``,
``goal_pose`` and ``e_stop`` and receives ``cmd_vel``, ``~/waypoints`` and ``/diagnostics``
as from the rclpy node. Usage::

    s2e policy-node --params-file src/s2e_policy/config/wheeled.yaml \
        -p model_path:=policy.onnx --remap image:=/camera/image_raw
    python -m s2e_policy.ros.dds_policy_node ...        # the same

Lifecycle: the node configures and activates at start (like a lifecycle manager with
``autostart``); a configure failure (missing model...) is printed as one line and the
process exits 2 without publishing. ``~/clear_e_stop`` (``std_srvs/Trigger``) releases a
latched e-stop. SIGINT/SIGTERM deactivate the node (a zero ``cmd_vel`` is sent) and exit 0.

Clock: wall time (ROS system time), or with ``--use-sim-time`` the latest ``/clock``. With sim
time, a tick due at ``t`` runs once the camera frame and odometry stamped ``>= t`` arrived (so
a simulator that waits for ``cmd_vel`` gets one answer per frame: deterministic lockstep), or
after ``--input-wait-s`` of wall time without them (the safety core then judges the inputs).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from s2e_policy.cli import standalone_main
from s2e_policy.errors import S2EError
from s2e_policy.ros.dds import (
    CLOCK_QOS,
    DEFAULT_QOS,
    SENSOR_DATA_QOS,
    TF_QOS,
    TF_STATIC_QOS,
    DdsNode,
    idl_class,
)
from s2e_policy.ros.dds.factory import DDS_MESSAGES
from s2e_policy.ros.node_cli import (
    DEFAULT_INPUT_WAIT_S,
    add_arguments,
    parse_parameter_overrides,
    parse_remaps,
)
from s2e_policy.ros.node_params import NODE_NAME, PolicyNodeParams
from s2e_policy.ros.policy_core import LifecycleState, PolicyCore, TickOutput
from s2e_policy.ros.tf_buffer import TransformBuffer
from s2e_policy.runtime.frames import NS_PER_S

log = logging.getLogger("s2e_policy.ros")

TOPICS: dict[str, str] = {
    "image": "image",
    "odom": "odom",
    "goal_pose": "goal_pose",
    "e_stop": "e_stop",
    "cmd_vel": "cmd_vel",
    "waypoints": "~/waypoints",
    "diagnostics": "/diagnostics",
    "clock": "/clock",
    "tf": "/tf",
    "tf_static": "/tf_static",
    "clear_e_stop": "~/clear_e_stop",
}
"""Default topic and service names of the node (relative names resolve in its namespace);
remap them with ``--remap name:=new``."""

SPIN_SLICE_S = 0.05
"""Longest wait for data between checks of the clock and the stop flag (s)."""

ACK_TIMEOUT_S = 1.0
"""Wait for subscribers to acknowledge the final zero command before leaving (s)."""


class DdsPolicyNode:
    """:class:`PolicyCore` wired to DDS topics, a clock and a transform buffer.

    Args:
        params: the node's parameters.
        node_name: ROS node name (private topics resolve under it).
        namespace: ROS namespace.
        domain_id: DDS domain (default ``$ROS_DOMAIN_ID`` or 0).
        use_sim_time: take time from ``/clock`` (see the module docstring).
        remaps: topic renames (keys of :data:`TOPICS` or the default names).
        input_wait_s: sim time only: see :data:`DEFAULT_INPUT_WAIT_S`.
    """

    def __init__(self, params: PolicyNodeParams, node_name: str = NODE_NAME,
                 namespace: str = "/", domain_id: int | None = None,
                 use_sim_time: bool = False, remaps: dict[str, str] | None = None,
                 input_wait_s: float = DEFAULT_INPUT_WAIT_S) -> None:
        remaps = remaps or {}
        self.topics = {key: remaps.get(key, remaps.get(name, name))
                       for key, name in TOPICS.items()}
        self.use_sim_time = use_sim_time
        self.input_wait_s = input_wait_s
        self.tf = TransformBuffer()
        self.core = PolicyCore(params, DDS_MESSAGES, self.tf.lookup, node_name)
        self.node = DdsNode(node_name, namespace=namespace, domain_id=domain_id)
        self._clock_ns: int | None = None
        self._clock_wall_s = time.monotonic()
        self._next_tick_ns: int | None = None
        self._stop = False
        self.ticks = 0

    def start(self) -> None:
        """Configure (load the model) and activate, then create the topics.

        Raises:
            S2EError: ``autostart`` is off (this adapter has no lifecycle services), or
                configure failed (the node stays unconfigured and publishes nothing).
        """
        if not self.core.params.autostart:
            raise S2EError("parameter autostart: the DDS policy node has no lifecycle "
                           "services and needs autostart:=true")
        self.core.configure()
        p, t, node = self.core.params, self.topics, self.node
        image_type = "sensor_msgs/msg/CompressedImage" if p.compressed_image \
            else "sensor_msgs/msg/Image"
        cmd_type = "geometry_msgs/msg/TwistStamped" if p.cmd_vel_stamped \
            else "geometry_msgs/msg/Twist"
        self.cmd_vel = node.publisher(t["cmd_vel"], cmd_type)
        self.waypoints = node.publisher(t["waypoints"], "nav_msgs/msg/Path")
        self.diagnostics = node.publisher(t["diagnostics"], "diagnostic_msgs/msg/DiagnosticArray")
        node.subscription(t["image"], image_type, self.core.on_image, SENSOR_DATA_QOS)
        node.subscription(t["odom"], "nav_msgs/msg/Odometry", self.core.on_odometry, DEFAULT_QOS)
        node.subscription(t["goal_pose"], "geometry_msgs/msg/PoseStamped", self.core.on_goal,
                          DEFAULT_QOS)
        node.subscription(t["e_stop"], "std_msgs/msg/Bool", self.core.on_estop, DEFAULT_QOS)
        node.subscription(t["tf"], "tf2_msgs/msg/TFMessage", self.tf.on_tf, TF_QOS)
        node.subscription(t["tf_static"], "tf2_msgs/msg/TFMessage", self.tf.on_tf,
                          TF_STATIC_QOS)
        if self.use_sim_time:
            node.subscription(t["clock"], "rosgraph_msgs/msg/Clock", self._on_clock, CLOCK_QOS)
        node.service(t["clear_e_stop"], "std_srvs/srv/Trigger", self._clear_estop)
        self.core.activate()

    def _on_clock(self, msg: Any) -> None:
        stamp = int(msg.clock.sec) * NS_PER_S + int(msg.clock.nanosec)
        if self._clock_ns is None or stamp != self._clock_ns:
            self._clock_wall_s = time.monotonic()
        self._clock_ns = stamp

    def _clear_estop(self, _request: Any) -> Any:
        success, message = self.core.clear_estop()
        return idl_class("std_srvs/srv/Trigger_Response")(success=success, message=message)

    def now_ns(self) -> int | None:
        """The node's time: the latest ``/clock`` (``None`` before one) or wall time."""
        return self._clock_ns if self.use_sim_time else time.time_ns()

    def _due(self, now_ns: int) -> bool:
        if self._next_tick_ns is None or now_ns < self._next_tick_ns - self.core.period_ns:
            self._next_tick_ns = now_ns  # first tick, or the clock jumped back
        if now_ns < self._next_tick_ns:
            return False
        if not self.use_sim_time:
            return True
        stamps = self.core.input_stamps_ns  # the inputs of this instant arrived?
        current = all(stamps[k] is not None and stamps[k] >= self._next_tick_ns
                      for k in ("image", "odometry"))
        return current or time.monotonic() - self._clock_wall_s >= self.input_wait_s

    def spin_once(self, timeout_s: float = SPIN_SLICE_S) -> TickOutput | None:
        """Handle received data, then tick and publish if a tick is due."""
        self.node.spin_once(timeout_s)
        now = self.now_ns()
        if now is None or self.core.state != LifecycleState.ACTIVE or not self._due(now):
            return None
        out = self.core.tick(now)
        period = self.core.period_ns
        while self._next_tick_ns is not None and self._next_tick_ns <= now:
            self._next_tick_ns += period
        self.publish(out)
        self.ticks += 1
        return out

    def publish(self, out: TickOutput) -> None:
        """Send one tick's messages."""
        self.cmd_vel.publish(out.cmd_vel)
        if out.waypoints is not None:
            self.waypoints.publish(out.waypoints)
        if out.diagnostics is not None:
            self.diagnostics.publish(out.diagnostics)

    def request_stop(self, *_args: object) -> None:
        """Make :meth:`run` return (signal-handler signature)."""
        self._stop = True

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Spin until :meth:`request_stop` or ``should_stop()``; then send zero and close."""
        try:
            while not self._stop and not should_stop():
                self.spin_once()
        finally:
            self.close()

    def close(self) -> None:
        """Deactivate (publishing a zero command) and leave the domain."""
        if self.core.state == LifecycleState.ACTIVE:
            self.cmd_vel.publish(self.core.shutdown())
            self.cmd_vel.wait_for_acknowledgments(ACK_TIMEOUT_S)
        self.node.close()


def run(args: argparse.Namespace) -> int:
    """Run the node as ``args`` say; returns the exit status."""
    values: dict[str, Any] = {}
    if args.params_file is not None:
        values.update(PolicyNodeParams.from_file(args.params_file, args.node_name)
                      .as_ros_values())
    values.update(parse_parameter_overrides(args.param))
    params = PolicyNodeParams.from_mapping(values, "policy node parameters")
    node = DdsPolicyNode(params, args.node_name, args.namespace, args.domain_id,
                         args.use_sim_time, parse_remaps(args.remap), args.input_wait_s)
    try:
        node.start()
    except S2EError:
        node.close()
        raise
    signal.signal(signal.SIGTERM, node.request_stop)
    signal.signal(signal.SIGINT, node.request_stop)
    log.info("%s: serving over DDS domain %d", args.node_name, node.node.domain_id)
    node.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m s2e_policy.ros.dds_policy_node``: bad input -> one line, exit 2."""
    parser = argparse.ArgumentParser(prog="python -m s2e_policy.ros.dds_policy_node",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return standalone_main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
