"""The policy node as an rclpy lifecycle node: a thin adapter over :class:`PolicyCore`.

Needs a ROS 2 installation (rclpy is not on PyPI); everything it does besides talking to
rclpy lives in :mod:`s2e_policy.ros.policy_core`, tested without ROS, and the same core runs
over Cyclone DDS in :mod:`s2e_policy.ros.dds_policy_node`. Run it with
``ros2 launch s2e_policy robot.launch.py`` or ``ros2 run s2e_policy policy_node``.

Interfaces (names relative to the node's namespace, remappable):

* subscribes ``image`` (``sensor_msgs/Image``, or ``CompressedImage`` with
  ``compressed_image``; sensor-data QoS), ``odom`` (``nav_msgs/Odometry``), ``goal_pose``
  (``geometry_msgs/PoseStamped`` in any frame tf2 can relate to ``odom_frame``) and
  ``e_stop`` (``std_msgs/Bool``);
* publishes ``cmd_vel`` (``Twist`` or ``TwistStamped``), ``~/waypoints`` (``nav_msgs/Path``)
  and ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``);
* serves ``~/clear_e_stop`` (``std_srvs/Trigger``).

Lifecycle: configure loads the ONNX file (the provider is logged; a missing model fails the
transition and the node stays unconfigured), activate starts a timer at the contract's rate
on the node's clock (``use_sim_time`` follows ``/clock``), deactivate publishes a zero command
and stops the timer. With ``autostart`` (default) the node configures and activates itself.
Raw images in encodings :mod:`s2e_policy.msgconv` does not know are converted with cv_bridge
when it is installed.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import rclpy
import tf2_ros
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from std_srvs.srv import Trigger

from s2e_policy.errors import S2EError
from s2e_policy.msgconv import SUPPORTED_ENCODINGS, image_to_rgb
from s2e_policy.ros.msgbuild import MessageFactory
from s2e_policy.ros.node_params import NODE_NAME, PARAMETER_DESCRIPTIONS, PolicyNodeParams
from s2e_policy.ros.policy_core import PolicyCore, RigidTransform, TickOutput

QUEUE_DEPTH = 10
"""Keep-last depth of the reliable topics (the ROS 2 default)."""

TF_TIMEOUT_S = 0.1
"""Longest wait for a goal's transform (s)."""

RCLPY_MESSAGES = MessageFactory(
    lookup=lambda msgtype: getattr(importlib.import_module(
        ".".join(msgtype.split("/")[:2])), msgtype.split("/")[2]),
    byte=lambda value: bytes([value]),
)
"""rclpy's message classes (``geometry_msgs/msg/Twist`` -> ``geometry_msgs.msg.Twist``);
``byte`` fields are 1-byte ``bytes``."""


def _cv_bridge_converter() -> Any | None:
    """cv_bridge's ``imgmsg_to_cv2`` when cv_bridge is installed, else ``None``."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


class PolicyNode(LifecycleNode):
    """rclpy lifecycle node running :class:`PolicyCore`."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, value in PolicyNodeParams().as_ros_values().items():
            self.declare_parameter(name, value,
                                   ParameterDescriptor(description=PARAMETER_DESCRIPTIONS[name]))
        self.core: PolicyCore | None = None
        self._timer = None
        self._tf_buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self._bridge = _cv_bridge_converter()

    # ------------------------------------------------------------------ helpers
    def _lookup(self, target: str, source: str, stamp_ns: int) -> RigidTransform:
        try:
            stamped = self._tf_buffer.lookup_transform(
                target, source, Time(nanoseconds=stamp_ns),
                timeout=Duration(seconds=TF_TIMEOUT_S))
        except (tf2_ros.LookupException, tf2_ros.ConnectivityException,
                tf2_ros.ExtrapolationException) as exc:
            raise LookupError(str(exc)) from None
        return RigidTransform.from_msg(stamped.transform)

    def _to_rgb(self, msg: Any) -> np.ndarray:
        encoding = getattr(msg, "encoding", None)
        if encoding is None or encoding.lower() in SUPPORTED_ENCODINGS or self._bridge is None:
            return image_to_rgb(msg)
        try:
            return np.asarray(self._bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception as exc:  # cv_bridge raises CvBridgeError or cv2.error
            raise S2EError(f"sensor_msgs/Image encoding {encoding!r}: cv_bridge could not "
                           f"convert it: {exc}") from None

    def _publish(self, out: TickOutput) -> None:
        self._cmd_vel.publish(out.cmd_vel)
        if out.waypoints is not None:
            self._waypoints.publish(out.waypoints)
        if out.diagnostics is not None:
            self._diagnostics.publish(out.diagnostics)

    def _on_timer(self) -> None:
        assert self.core is not None
        self._publish(self.core.tick(self.get_clock().now().nanoseconds))

    def _clear_estop(self, _request: Trigger.Request, response: Trigger.Response
                     ) -> Trigger.Response:
        assert self.core is not None
        response.success, response.message = self.core.clear_estop()
        return response

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Read the parameters, load the policy, create topics and the e-stop service."""
        values = {name: self.get_parameter(name).value for name in PARAMETER_DESCRIPTIONS}
        try:
            params = PolicyNodeParams.from_mapping(values, f"{self.get_name()} parameters")
            core = PolicyCore(params, RCLPY_MESSAGES, self._lookup, self.get_name(),
                              self._to_rgb)
            core.configure()
        except S2EError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.core = core
        self.get_logger().info(f"policy {params.model_path} on {core.runtime.provider}")
        image_type = RCLPY_MESSAGES.lookup("sensor_msgs/msg/CompressedImage"
                                           if params.compressed_image
                                           else "sensor_msgs/msg/Image")
        cmd_type = RCLPY_MESSAGES.lookup("geometry_msgs/msg/TwistStamped"
                                         if params.cmd_vel_stamped else "geometry_msgs/msg/Twist")
        self._cmd_vel = self.create_publisher(cmd_type, "cmd_vel", QUEUE_DEPTH)
        self._waypoints = self.create_publisher(RCLPY_MESSAGES.lookup("nav_msgs/msg/Path"),
                                                "~/waypoints", QUEUE_DEPTH)
        self._diagnostics = self.create_publisher(
            RCLPY_MESSAGES.lookup("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics",
            QUEUE_DEPTH)
        self.create_subscription(image_type, "image", core.on_image, qos_profile_sensor_data)
        self.create_subscription(RCLPY_MESSAGES.lookup("nav_msgs/msg/Odometry"), "odom",
                                 core.on_odometry, QUEUE_DEPTH)
        self.create_subscription(RCLPY_MESSAGES.lookup("geometry_msgs/msg/PoseStamped"),
                                 "goal_pose", core.on_goal, QUEUE_DEPTH)
        self.create_subscription(RCLPY_MESSAGES.lookup("std_msgs/msg/Bool"), "e_stop",
                                 core.on_estop, QUEUE_DEPTH)
        self.create_service(Trigger, "~/clear_e_stop", self._clear_estop)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Start inference at the contract's rate (node clock: sim time with use_sim_time)."""
        assert self.core is not None
        self.core.activate()
        self._timer = self.create_timer(1.0 / self.core.rate_hz, self._on_timer)
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Publish zero velocity and stop the timer."""
        assert self.core is not None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._cmd_vel.publish(self.core.deactivate())
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Release the policy."""
        if self.core is not None:
            self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop (zero velocity if active) and release everything."""
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self.core is not None:
            zero = self.core.shutdown()
            if zero is not None:
                self._cmd_vel.publish(zero)
        return TransitionCallbackReturn.SUCCESS


def main(args: list[str] | None = None) -> None:
    """``ros2 run s2e_policy policy_node``."""
    rclpy.init(args=args)
    node = PolicyNode()
    try:
        if node.get_parameter("autostart").value:
            node.trigger_configure()
            if node.core is not None:
                node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node.core is not None and node.core.state.value == "active":
            node.trigger_deactivate()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
