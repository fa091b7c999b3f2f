r"""The NavBench-GS sim bridge over Cyclone DDS: ROS 2 topics without a ROS install.

Runs :class:`~s2e_sim_bridge.ros.bridge_core.SimBridgeCore` on
:class:`~s2e_policy.ros.dds.DdsNode`, so any ROS 2 policy node (rclpy with
``rmw_cyclonedds_cpp`` and ``use_sim_time``, or ``s2e policy-node --use-sim-time``) can be
evaluated in NavBench-GS from a machine without ROS::

    s2e navbench-bridge --task empty --episodes 5 --out runs/ros_bridge &   # or
    python -m s2e_sim_bridge.ros.dds_bridge_node --task empty ...
    s2e policy-node --use-sim-time --params-file src/s2e_policy/config/wheeled.yaml \
        -p model_path:=policy.onnx --remap image:=camera/image_raw

It waits (``--wait-for-policy-s``) until a policy subscribes to the camera and publishes on
``cmd_vel``, runs the episodes in lockstep, writes the report and exits 0. Services
``~/reset`` and ``~/skip`` (``std_srvs/Trigger``) restart or end the current episode.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from s2e_policy.cli import standalone_main
from s2e_policy.errors import S2EError
from s2e_policy.ros.dds import (
    CLOCK_QOS,
    DEFAULT_QOS,
    SENSOR_DATA_QOS,
    TF_QOS,
    DdsNode,
    DdsPublisher,
    QosProfile,
    idl_class,
)
from s2e_policy.ros.dds.factory import DDS_MESSAGES
from s2e_policy.ros.node_cli import parse_remaps
from s2e_sim_bridge.ros.bridge_cli import add_arguments, config_from_args
from s2e_sim_bridge.ros.bridge_core import PUBLISHED, SENSOR_TOPICS, TOPICS, SimBridgeCore

log = logging.getLogger("s2e_sim_bridge.ros")

ACK_TIMEOUT_S = 1.0
"""Wait for reliable subscribers to acknowledge the last messages before leaving (s)."""

QOS: dict[str, QosProfile] = {"clock": CLOCK_QOS, "tf": TF_QOS,
                              **{key: SENSOR_DATA_QOS for key in SENSOR_TOPICS}}
"""QoS of the published topics (keys of :data:`PUBLISHED`) that do not use the default."""


class DdsBridgeTransport:
    """The bridge's topics and services on a :class:`DdsNode`.

    Args:
        core: the bridge logic (its ``cmd_vel`` callback and services are wired here).
        node: the DDS node.
        topics: topic names by :data:`TOPICS` key (after remapping).
    """

    def __init__(self, core: SimBridgeCore, node: DdsNode, topics: dict[str, str]) -> None:
        self.node = node
        self.publishers: dict[str, DdsPublisher[Any]] = {
            key: node.publisher(topics[key], msgtype, QOS.get(key, DEFAULT_QOS))
            for key, msgtype in PUBLISHED.items()}
        cmd_type = "geometry_msgs/msg/TwistStamped" if core.config.stamped_cmd_vel \
            else "geometry_msgs/msg/Twist"
        self.cmd_vel = node.subscription(topics["cmd_vel"], cmd_type, core.on_cmd_vel)
        response = idl_class("std_srvs/srv/Trigger_Response")

        def trigger(action: Any) -> Any:
            def handler(_request: Any) -> Any:
                success, message = action()
                return response(success=success, message=message)
            return handler

        node.service(topics["reset"], "std_srvs/srv/Trigger", trigger(core.request_reset))
        node.service(topics["skip"], "std_srvs/srv/Trigger", trigger(core.request_skip))

    def publish(self, key: str, msg: Any) -> None:
        """Send ``msg`` on the topic of ``key``."""
        self.publishers[key].publish(msg)

    def spin_once(self, timeout_s: float) -> None:
        """Run the callbacks of received samples (waits up to ``timeout_s``)."""
        self.node.spin_once(timeout_s)

    def wait_for_policy(self, timeout_s: float) -> bool:
        """Block until something subscribes to the camera and publishes ``cmd_vel``."""
        return self.publishers["image"].wait_for_subscribers(1, timeout_s) and \
            self.cmd_vel.wait_for_publishers(1, timeout_s)

    def flush(self) -> None:
        """Let reliable subscribers receive the last messages."""
        for publisher in self.publishers.values():
            publisher.wait_for_acknowledgments(ACK_TIMEOUT_S)


def run(args: argparse.Namespace) -> int:
    """Run the bridge as ``args`` say; returns the exit status."""
    config = config_from_args(args)
    remaps = parse_remaps(args.remap)
    topics = {key: remaps.get(key, remaps.get(name, name)) for key, name in TOPICS.items()}
    core = SimBridgeCore(config, DDS_MESSAGES)
    with DdsNode(args.node_name, namespace=args.namespace, domain_id=args.domain_id) as node:
        transport = DdsBridgeTransport(core, node, topics)
        if not transport.wait_for_policy(args.wait_for_policy_s):
            raise S2EError(f"bridge: no policy subscribed to {topics['image']} and published on "
                           f"{topics['cmd_vel']} within {args.wait_for_policy_s} s (domain "
                           f"{node.domain_id})")
        result = core.run(transport)
        transport.flush()
    for task, agg in result.per_task.items():
        print(f"{task}: SR {agg['success']:.2f} over {agg['episodes']} episodes "
              f"({result.missed_commands} missed commands); report in {config.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m s2e_sim_bridge.ros.dds_bridge_node``: bad input -> one line, exit 2."""
    parser = argparse.ArgumentParser(prog="python -m s2e_sim_bridge.ros.dds_bridge_node",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return standalone_main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
