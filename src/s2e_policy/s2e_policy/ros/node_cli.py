"""Command line of the DDS policy node (``s2e policy-node``), importable without cyclonedds.

The ``s2e`` CLI loads every subcommand's ``register`` at start-up, so this module imports
nothing from the DDS adapter; the handler imports
:mod:`s2e_policy.ros.dds_policy_node` (and so ``cyclonedds``) only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from s2e_policy.errors import S2EError
from s2e_policy.ros.node_params import NODE_NAME

DEFAULT_INPUT_WAIT_S = 1.0
"""Sim time: longest wall-clock wait for the inputs of a due tick (s)."""


def parse_parameter_overrides(items: list[str]) -> dict[str, Any]:
    """``name:=value`` strings (ROS ``-p`` syntax; values parsed as YAML) -> mapping.

    Raises:
        S2EError: an item without ``:=``.
    """
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition(":=")
        if not sep or not name:
            raise S2EError(f"parameter override {item!r}: expected name:=value")
        values[name] = yaml.safe_load(text) if text else ""
    return values


def parse_remaps(items: list[str]) -> dict[str, str]:
    """``from:=to`` strings -> mapping of :data:`TOPICS` keys or names to new names.

    Raises:
        S2EError: malformed item.
    """
    remaps: dict[str, str] = {}
    for item in items:
        source, sep, target = item.partition(":=")
        if not sep or not source or not target:
            raise S2EError(f"remap {item!r}: expected from:=to, e.g. image:=/camera/image_raw")
        remaps[source] = target
    return remaps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The node's command-line options (shared by ``s2e policy-node`` and ``python -m``)."""
    parser.add_argument("--params-file", type=Path, default=None,
                        help="ROS 2 params file (e.g. src/s2e_policy/config/wheeled.yaml)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="set a parameter (repeatable; overrides the params file)")
    parser.add_argument("-r", "--remap", action="append", default=[], metavar="FROM:=TO",
                        help="rename a topic, e.g. image:=/camera/image_raw (repeatable)")
    parser.add_argument("--node-name", default=NODE_NAME, help="ROS node name")
    parser.add_argument("--namespace", default="/", help="ROS namespace")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="DDS domain (default: $ROS_DOMAIN_ID or 0)")
    parser.add_argument("--use-sim-time", action="store_true", help="take time from /clock")
    parser.add_argument("--input-wait-s", type=float, default=DEFAULT_INPUT_WAIT_S,
                        help="sim time: longest wait for a tick's camera frame and odometry")


def _run(args: argparse.Namespace) -> int:
    from s2e_policy.ros.dds_policy_node import run

    return run(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``s2e policy-node``."""
    p = subparsers.add_parser(
        "policy-node", help="the ROS 2 policy node over Cyclone DDS (no ROS install needed)",
        description="Serve the policy to ROS 2 robots over DDS: subscribes image, odom, "
                    "goal_pose, e_stop; publishes cmd_vel, ~/waypoints, /diagnostics. Needs "
                    "pip install s2e_policy[dds].")
    add_arguments(p)
    p.set_defaults(func=_run)
