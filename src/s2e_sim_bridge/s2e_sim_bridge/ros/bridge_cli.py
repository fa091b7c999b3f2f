"""Command line of the DDS sim bridge (``s2e navbench-bridge``), importable without cyclonedds.

The ``s2e`` CLI loads every subcommand's ``register`` at start-up; the handler imports
:mod:`s2e_sim_bridge.ros.dds_bridge_node` (and so ``cyclonedds``) only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from s2e_sim_bridge.navbench.tasks import TASKS
from s2e_sim_bridge.ros.bridge_core import BridgeConfig

NODE_NAME = "navbench_bridge"
"""Default node name of the bridge."""

DEFAULT_WAIT_FOR_POLICY_S = 60.0
"""How long the bridge waits for a policy to connect before giving up (s)."""


def config_from_args(args: argparse.Namespace) -> BridgeConfig:
    """The :class:`BridgeConfig` of parsed command-line arguments."""
    tasks = tuple(TASKS) if not args.task or "all" in args.task else tuple(args.task)
    return BridgeConfig(
        out=args.out, scene=args.scene, tasks=tasks, episodes=args.episodes, seed=args.seed,
        episodes_file=args.episodes_file, embodiment=args.embodiment,
        render_width_px=args.render_width, backend=args.backend,
        stamped_cmd_vel=args.stamped_cmd_vel, command_timeout_s=args.command_timeout_s,
        command_hold_s=args.command_hold_s, episode_gap_s=args.episode_gap_s,
        policy_name=args.policy_name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bridge's command-line options (``s2e navbench-bridge`` and ``python -m``)."""
    d = BridgeConfig(out=Path("runs/navbench_ros"))
    parser.add_argument("--scene", type=Path, default=None,
                        help="scene PLY/.splat with its scene YAML (default: generated street)")
    parser.add_argument("--task", action="append", choices=[*TASKS, "all"], default=None,
                        help="task(s) to run (repeatable; default: empty)")
    parser.add_argument("--episodes", type=int, default=d.episodes, help="episodes per task")
    parser.add_argument("--seed", type=int, default=d.seed, help="episode sampling seed")
    parser.add_argument("--episodes-file", type=Path, default=None,
                        help="run the episodes of this episode-set JSON instead of sampling")
    parser.add_argument("--embodiment", default=d.embodiment, help="wheeled | go2 | YAML path")
    parser.add_argument("--render-width", type=int, default=d.render_width_px,
                        help="camera width in pixels")
    parser.add_argument("--backend", default=d.backend, choices=["cpu", "cuda"],
                        help="renderer backend")
    parser.add_argument("--out", type=Path, default=d.out, help="output folder")
    parser.add_argument("--stamped-cmd-vel", action="store_true",
                        help="cmd_vel is geometry_msgs/TwistStamped (default Twist)")
    parser.add_argument("--command-timeout-s", type=float, default=d.command_timeout_s,
                        help="wall-clock wait for each step's cmd_vel")
    parser.add_argument("--command-hold-s", type=float, default=d.command_hold_s,
                        help="sim-time age up to which the last cmd_vel is reused on a timeout")
    parser.add_argument("--episode-gap-s", type=float, default=d.episode_gap_s,
                        help="sim time between episodes")
    parser.add_argument("--policy-name", default=d.policy_name, help="policy name in the report")
    parser.add_argument("--wait-for-policy-s", type=float, default=DEFAULT_WAIT_FOR_POLICY_S,
                        help="how long to wait for a policy node to connect")
    parser.add_argument("-r", "--remap", action="append", default=[], metavar="FROM:=TO",
                        help="rename a topic or service (repeatable)")
    parser.add_argument("--node-name", default=NODE_NAME, help="ROS node name")
    parser.add_argument("--namespace", default="/", help="ROS namespace")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="DDS domain (default: $ROS_DOMAIN_ID or 0)")


def _run(args: argparse.Namespace) -> int:
    from s2e_sim_bridge.ros.dds_bridge_node import run

    return run(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``s2e navbench-bridge``."""
    p = subparsers.add_parser(
        "navbench-bridge", help="NavBench-GS as ROS 2 topics over Cyclone DDS (no ROS needed)",
        description="Publish NavBench-GS episodes (camera, odom, /tf, /clock, model_states, "
                    "goal_pose), step the simulator with cmd_vel in lockstep, and write the "
                    "same metrics and report as s2e navbench. Needs pip install "
                    "s2e_policy[dds].")
    add_arguments(p)
    p.set_defaults(func=_run)
