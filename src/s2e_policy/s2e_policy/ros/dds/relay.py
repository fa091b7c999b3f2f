r"""Relay one ROS 2 topic to another over DDS (like ``topic_tools relay``), without ROS.

Usage::

    python -m s2e_policy.ros.dds.relay /camera/image_raw /image sensor_msgs/msg/Image \
        --qos sensor_data
    python -m s2e_policy.ros.dds.relay /a /b geometry_msgs/msg/Twist --count 100

Every sample received on the input topic is republished unchanged on the output topic. With
``--count N`` the relay exits 0 after N samples, or 1 if ``--timeout-s`` passes first. Useful
to rename topics between a ROS 2 robot and a ROS-less server, and to check a DDS link (the
adapter's cross-process tests run it in a child process).
"""

from __future__ import annotations

import argparse
import sys
import time

from s2e_policy.cli import standalone_main
from s2e_policy.ros.dds.node import DdsNode
from s2e_policy.ros.dds.qos import PROFILES, qos_profile

NODE_NAME = "dds_relay"
"""Default node name of the relay."""

SPIN_PERIOD_S = 0.1
"""Longest wait for data between checks of the exit conditions, seconds."""


def build_parser() -> argparse.ArgumentParser:
    """The relay's command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m s2e_policy.ros.dds.relay",
        description="Republish a ROS 2 topic under another name over Cyclone DDS.",
    )
    parser.add_argument("input", help="topic to subscribe to, e.g. /camera/image_raw")
    parser.add_argument("output", help="topic to publish on, e.g. /image")
    parser.add_argument("msg_type", help="ROS 2 message type, e.g. sensor_msgs/msg/Image")
    parser.add_argument(
        "--qos", default="default", choices=sorted(PROFILES), help="QoS profile of both topics"
    )
    parser.add_argument("--count", type=int, default=0, help="exit after N samples (0: never)")
    parser.add_argument(
        "--timeout-s", type=float, default=0.0, help="exit 1 after this many seconds (0: never)"
    )
    parser.add_argument("--domain-id", type=int, default=None, help="default: $ROS_DOMAIN_ID or 0")
    parser.add_argument("--node-name", default=NODE_NAME, help="node name (for private topics)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Relay as ``args`` say; returns the exit status (0 done, 1 timed out)."""
    qos = qos_profile(args.qos)
    relayed = 0
    with DdsNode(args.node_name, domain_id=args.domain_id) as node:
        output = node.publisher(args.output, args.msg_type, qos)

        def forward(sample: object) -> None:
            nonlocal relayed
            output.publish(sample)
            relayed += 1

        node.subscription(args.input, args.msg_type, forward, qos)
        deadline = time.monotonic() + args.timeout_s if args.timeout_s > 0 else float("inf")
        while args.count <= 0 or relayed < args.count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                print(
                    f"relay: timed out after {relayed} of {args.count} samples",
                    file=sys.stderr,
                )
                return 1
            node.spin_once(min(SPIN_PERIOD_S, remaining))
        # Reliable writers keep unacknowledged samples only while they exist: let the last
        # samples reach their readers before the node leaves the domain.
        output.wait_for_acknowledgments(args.timeout_s or SPIN_PERIOD_S)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints bad input as one line and returns 2."""
    return standalone_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
