"""``s2e data``: dataset tools (entry point ``data = s2e_training.data.cli:register``).

``s2e data inspect PATH --out sheet.png`` prints counts, duration, rates, gaps and path length
of a GNM folder, rosbag2 recording or video + pose CSV, writes a contact sheet of frames with
their future waypoints to ``--out`` and a top-down trajectory plot beside it
(``<out stem>_trajectory.png``).

Simulator rollouts are recorded as GNM folders by ``s2e navbench collect`` (the simulator's
command; this package only reads them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from s2e_training.data.inspection import (
    trajectory_stats,
    write_contact_sheet,
    write_trajectory_plot,
)
from s2e_training.data.labelling.command import add_label_video_parser
from s2e_training.data.sample import SampleConfig, SkipReport
from s2e_training.data.sources import load_trajectories

DEFAULT_TILES = 12


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command (with its ``inspect`` subcommand) to the ``s2e`` parser."""
    data = subparsers.add_parser("data", help="dataset tools (GNM folders, rosbag2, video)")
    data.set_defaults(func=lambda _args: _print_help(data))
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    inspect = commands.add_parser(
        "inspect",
        help="statistics, contact sheet and top-down plot of a recording",
        description=__doc__,
    )
    inspect.add_argument("path", type=Path, help="GNM folder(s), rosbag2 folder, or video file")
    inspect.add_argument("--out", type=Path, required=True, help="contact sheet PNG to write")
    inspect.add_argument("--image-topic", help="rosbag2: Image or CompressedImage topic")
    inspect.add_argument("--odom-topic", help="rosbag2: nav_msgs/Odometry topic")
    inspect.add_argument("--rate-hz", type=float, help="GNM: frame rate of the dataset, Hz")
    inspect.add_argument("--poses", type=Path, help="video: pose CSV (timestamp, x, y, yaw)")
    inspect.add_argument(
        "--skip-bad", action="store_true", help="skip bad frames/messages and list them"
    )
    inspect.add_argument("--tiles", type=int, default=DEFAULT_TILES, help="frames on the sheet")
    defaults = SampleConfig()
    inspect.add_argument(
        "--num-waypoints", type=int, default=defaults.num_waypoints, help="waypoints drawn"
    )
    inspect.add_argument(
        "--waypoint-dt-s", type=float, default=defaults.waypoint_dt_s, help="waypoint spacing, s"
    )
    inspect.set_defaults(func=run_inspect)

    add_label_video_parser(commands)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_inspect(args: argparse.Namespace) -> int:
    """Handler of ``s2e data inspect``; returns the exit status."""
    report = SkipReport()
    trajectories = load_trajectories(
        args.path,
        image_topic=args.image_topic,
        odom_topic=args.odom_topic,
        rate_hz=args.rate_hz,
        poses_csv=args.poses,
        skip_bad=args.skip_bad,
        report=report,
    )
    config = SampleConfig(num_waypoints=args.num_waypoints, waypoint_dt_s=args.waypoint_dt_s)
    total_frames = 0
    total_length = 0.0
    for trajectory in trajectories:
        stats = trajectory_stats(trajectory, config)
        print("\n".join(stats.lines()))
        total_frames += stats.frames
        total_length += stats.path_length_m
    print(
        f"total: {len(trajectories)} trajectories, {total_frames} frames, "
        f"{total_length:.2f} m"
    )
    if len(report):
        print(report.summary())
    tiles = write_contact_sheet(trajectories, config, args.out, tiles=args.tiles)
    plot = args.out.with_name(f"{args.out.stem}_trajectory.png")
    write_trajectory_plot(trajectories, plot)
    print(f"wrote {args.out} ({tiles} frames) and {plot}")
    return 0
