r"""``s2e replay``: measure one or more exported policies on a recorded rosbag2.

Example::

    s2e replay bags/run1 --model policy.onnx --model other.onnx \
        --image-topic /camera/image_raw/compressed --odom-topic /odom --out runs/run1

writes ``runs/run1/comparison.{csv,md}`` and ``runs/run1/<model>/`` (instants.csv,
metrics.json, plots), and an annotated MCAP bag per model beside the input
(``<bag>_s2e_<model>``; ``--annotated-dir`` puts them elsewhere, ``--no-annotated-bag`` skips
them). Exit status 0, or 1 when ``--keep-partial`` kept the results of a damaged bag.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from s2e_policy.controller import CONTROLLERS
from s2e_policy.replay.annotate import default_annotated_path, write_annotated_bag
from s2e_policy.replay.loop import (
    DEFAULT_GOAL_HORIZON_S,
    DEFAULT_WORST_INSTANTS,
    ReplayConfig,
    replay_bag,
    unique_labels,
)
from s2e_policy.replay.metrics import (
    DEFAULT_STILL_DISTANCE_M,
    DEFAULT_STRAIGHT_BEARING_RAD,
    MetricsConfig,
)
from s2e_policy.replay.plots import write_plots
from s2e_policy.replay.report import write_comparison, write_run
from s2e_policy.runtime import NavigatorConfig, PolicyRuntime

log = logging.getLogger("s2e_policy.replay")

EXIT_PARTIAL = 1
"""Exit status when a damaged bag's partial results were written (``--keep-partial``)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``replay`` subcommand."""
    p = subparsers.add_parser(
        "replay", help="replay a rosbag2 through exported policies and measure them offline",
        description="Feed a recorded rosbag2 (sqlite3 or MCAP; raw or compressed images) "
                    "through the onboard runtime exactly as on the robot and compare each "
                    "decision with the logged future: ADE/FDE (chosen and min-of-K), heading "
                    "error, direction agreement, command vs logged velocity, latency.")
    p.add_argument("bag", type=Path, help="rosbag2 folder (or its .mcap/.db3 file)")
    p.add_argument("--model", type=Path, action="append", required=True,
                   help="exported .onnx policy (repeat to compare several in one table)")
    p.add_argument("--image-topic", required=True,
                   help="sensor_msgs/Image or CompressedImage topic")
    p.add_argument("--odom-topic", required=True, help="nav_msgs/Odometry topic")
    p.add_argument("--goal-horizon", type=float, default=DEFAULT_GOAL_HORIZON_S, metavar="S",
                   help="goal = the logged position S seconds after each decision, or the "
                        f"bag's end (default {DEFAULT_GOAL_HORIZON_S})")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. runs/NAME")
    p.add_argument("--embodiment", default=None,
                   help="wheeled | go2 | YAML path (default: each model's contract)")
    p.add_argument("--controller", choices=CONTROLLERS, default="direct",
                   help="waypoint-to-velocity controller (default direct, the paper's)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--decision-rate", type=float, default=None, metavar="HZ",
                      help="at most this many decisions per second, at camera frames "
                           "(default: each model's context frame rate, as the policy node)")
    rate.add_argument("--every-frame", action="store_true",
                      help="decide at every camera frame")
    p.add_argument("--max-odometry-gap", type=float, default=None, metavar="S",
                   help="skip instants whose future has a longer odometry gap (default: the "
                        "prediction horizon)")
    p.add_argument("--straight-deg", type=float,
                   default=math.degrees(DEFAULT_STRAIGHT_BEARING_RAD),
                   help="last-waypoint bearings within this many degrees count as straight "
                        f"(default {math.degrees(DEFAULT_STRAIGHT_BEARING_RAD):g})")
    p.add_argument("--worst", type=int, default=DEFAULT_WORST_INSTANTS,
                   help=f"instants on the contact sheet (default {DEFAULT_WORST_INSTANTS})")
    p.add_argument("--keep-partial", action="store_true",
                   help="on a truncated/corrupt bag keep the results before the damage "
                        f"(exit status {EXIT_PARTIAL})")
    p.add_argument("--annotated-dir", type=Path, default=None,
                   help="folder of the annotated MCAP bags (default: beside the input bag)")
    p.add_argument("--no-annotated-bag", action="store_true", help="do not write them")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--threads", type=int, default=0,
                   help="ONNX Runtime intra-op threads (0: its default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``s2e replay``; returns the exit status."""
    runtimes = [PolicyRuntime.from_file(m, intra_op_threads=args.threads) for m in args.model]
    labels = unique_labels(args.model)
    config = ReplayConfig(
        image_topic=args.image_topic, odom_topic=args.odom_topic,
        goal_horizon_s=args.goal_horizon,
        decision_rate_hz=math.inf if args.every_frame else args.decision_rate,
        max_odometry_gap_s=args.max_odometry_gap, keep_partial=args.keep_partial,
        embodiment=args.embodiment, navigator=NavigatorConfig(controller=args.controller),
        metrics=MetricsConfig(straight_bearing_rad=math.radians(args.straight_deg),
                              still_distance_m=DEFAULT_STILL_DISTANCE_M),
        worst_instants=args.worst,
    )
    runs = replay_bag(args.bag, runtimes, config, labels)
    summaries = []
    for r in runs:
        folder = args.out / r.label
        summaries.append(write_run(r, folder))
        if not args.no_plots:
            write_plots(r, folder)
        if not args.no_annotated_bag:
            dst = default_annotated_path(args.bag, r.label)
            if args.annotated_dir is not None:
                dst = args.annotated_dir / dst.name
            count = write_annotated_bag(r, dst)
            log.info("%s: annotated bag %s (%d messages)", r.label, dst, count)
        if not r.evaluated:
            log.warning("%s: no decision could be evaluated (statuses: %s)", r.label,
                        r.status_counts())
    print(write_comparison(summaries, args.out), end="")
    print(f"results in {args.out}")
    if runs and runs[0].partial_error is not None:
        log.error("partial results only: %s", runs[0].partial_error)
        return EXIT_PARTIAL
    return 0
