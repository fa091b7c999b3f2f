"""The NavBench-GS sim bridge as an rclpy node: a thin adapter over :class:`SimBridgeCore`.

Needs a ROS 2 installation; the logic lives in :mod:`s2e_sim_bridge.ros.bridge_core` (tested
without ROS) and runs over Cyclone DDS in :mod:`s2e_sim_bridge.ros.dds_bridge_node`. Started by
``ros2 launch s2e_sim_bridge navbench.launch.py`` (or ``ros2 run s2e_sim_bridge
navbench_bridge``). The bridge owns the sim clock: it publishes ``/clock`` and must not run
with ``use_sim_time``. It waits for a policy (a subscriber on the camera and a publisher on
``cmd_vel``), runs the episodes in lockstep, writes the report and exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from std_srvs.srv import Trigger

from s2e_policy.errors import S2EError
from s2e_policy.ros.policy_node import QUEUE_DEPTH, RCLPY_MESSAGES
from s2e_sim_bridge.ros.bridge_cli import DEFAULT_WAIT_FOR_POLICY_S, NODE_NAME
from s2e_sim_bridge.ros.bridge_core import (
    PUBLISHED,
    SENSOR_TOPICS,
    TOPICS,
    BridgeConfig,
    SimBridgeCore,
)

POLICY_POLL_S = 0.1
"""Spin period while waiting for the policy to connect (s)."""

PARAMETERS: dict[str, tuple[Any, str]] = {
    "out": ("runs/navbench_ros", "output folder (same layout as s2e navbench --out)"),
    "scene": ("", "scene PLY/.splat with its scene YAML ('': the generated street)"),
    "tasks": ("empty", "comma-separated tasks: empty, obstacle, pedestrian, "
                       "obstacle_pedestrian"),
    "episodes": (5, "episodes per task"),
    "seed": (0, "episode sampling seed"),
    "episodes_file": ("", "episode-set JSON to run instead of sampling ('': sample)"),
    "embodiment": ("wheeled", "wheeled, go2 or an embodiment YAML path"),
    "render_width_px": (128, "camera width in pixels"),
    "backend": ("cpu", "renderer backend: cpu or cuda"),
    "stamped_cmd_vel": (False, "cmd_vel is geometry_msgs/TwistStamped (else Twist)"),
    "command_timeout_s": (5.0, "wall-clock wait for each step's cmd_vel (s)"),
    "command_hold_s": (0.5, "sim-time age up to which the last cmd_vel is reused (s)"),
    "episode_gap_s": (2.0, "sim time between episodes (s)"),
    "policy_name": ("ros policy", "policy name in the report"),
    "wait_for_policy_s": (DEFAULT_WAIT_FOR_POLICY_S, "how long to wait for a policy (s)"),
}
"""Parameters of the bridge node: name -> (default, description)."""


class BridgeNode(Node):
    """rclpy node running :class:`SimBridgeCore` (implements its ``BridgeTransport``)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        value = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.wait_for_policy_s = float(value["wait_for_policy_s"])
        self.config = BridgeConfig(
            out=Path(value["out"]), scene=Path(value["scene"]) if value["scene"] else None,
            tasks=tuple(t.strip() for t in value["tasks"].split(",") if t.strip()),
            episodes=value["episodes"], seed=value["seed"],
            episodes_file=Path(value["episodes_file"]) if value["episodes_file"] else None,
            embodiment=value["embodiment"], render_width_px=value["render_width_px"],
            backend=value["backend"], stamped_cmd_vel=value["stamped_cmd_vel"],
            command_timeout_s=value["command_timeout_s"],
            command_hold_s=value["command_hold_s"], episode_gap_s=value["episode_gap_s"],
            policy_name=value["policy_name"])
        self.core = SimBridgeCore(self.config, RCLPY_MESSAGES)
        self.publishers_by_key: dict[str, Any] = {}
        for key, msgtype in PUBLISHED.items():
            qos = qos_profile_sensor_data if key in SENSOR_TOPICS else QUEUE_DEPTH
            self.publishers_by_key[key] = self.create_publisher(
                RCLPY_MESSAGES.lookup(msgtype), TOPICS[key], qos)
        cmd_type = RCLPY_MESSAGES.lookup("geometry_msgs/msg/TwistStamped"
                                         if self.config.stamped_cmd_vel
                                         else "geometry_msgs/msg/Twist")
        self.create_subscription(cmd_type, TOPICS["cmd_vel"], self.core.on_cmd_vel,
                                 QUEUE_DEPTH)
        self.create_service(Trigger, TOPICS["reset"], self._trigger(self.core.request_reset))
        self.create_service(Trigger, TOPICS["skip"], self._trigger(self.core.request_skip))

    @staticmethod
    def _trigger(action: Any) -> Any:
        def handler(_request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            response.success, response.message = action()
            return response
        return handler

    def publish(self, key: str, msg: Any) -> None:
        """Send ``msg`` on the topic of ``key`` (``BridgeTransport``)."""
        self.publishers_by_key[key].publish(msg)

    def spin_once(self, timeout_s: float) -> None:
        """Run pending callbacks (``BridgeTransport``)."""
        rclpy.spin_once(self, timeout_sec=timeout_s)

    def wait_for_policy(self) -> bool:
        """Wait until something subscribes to the camera and publishes ``cmd_vel``."""
        clock = self.get_clock()
        deadline = clock.now().nanoseconds + int(self.wait_for_policy_s * 1e9)
        while clock.now().nanoseconds < deadline:
            if self.count_subscribers(self.publishers_by_key["image"].topic_name) > 0 and \
                    self.count_publishers(self.resolve_topic_name(TOPICS["cmd_vel"])) > 0:
                return True
            rclpy.spin_once(self, timeout_sec=POLICY_POLL_S)
        return False


def main(args: list[str] | None = None) -> None:
    """``ros2 run s2e_sim_bridge navbench_bridge``."""
    rclpy.init(args=args)
    node = BridgeNode()
    try:
        if not node.wait_for_policy():
            raise S2EError(f"no policy connected within {node.wait_for_policy_s} s")
        result = node.core.run(node)
        for task, agg in result.per_task.items():
            node.get_logger().info(f"{task}: SR {agg['success']:.2f} over {agg['episodes']} "
                                   f"episodes; report in {node.config.out}")
    except S2EError as exc:
        node.get_logger().error(str(exc))
        raise SystemExit(2) from None
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
