"""``s2e data label-video``: the CLI of video labelling (registered by ``s2e data``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2e_policy.errors import S2EError
from s2e_training.data.labelling.config import LabelConfig
from s2e_training.data.labelling.labeller import label_videos
from s2e_training.data.labelling.report import REPORT_MARKDOWN, write_report

DESCRIPTION = """Label videos with pseudo ground truth: monocular visual odometry (or external
poses) projected to the ground plane; writes one GNM folder (frames + traj_data.pkl) per
continuous segment into --out, plus labels_report.{json,md}, a top-down plot and a contact
sheet. Segments are split or dropped at tracking loss, pure rotation, tiny parallax, motion
blur and scene cuts. One bad video does not stop the others (exit status 1 if any failed)."""


def add_label_video_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``label-video`` to the ``s2e data`` subcommands."""
    parser = commands.add_parser("label-video", help="videos -> pseudo-labelled GNM folders",
                                 description=DESCRIPTION)
    defaults = LabelConfig()
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video file(s)")
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--fps", type=float, default=None,
                        help=f"labelled frames per second (default {defaults.label_fps:g})")
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--speed-prior-mps", type=float, action="append", default=None,
                       help=f"assumed speed, m/s (default {defaults.speed_prior_mps:g}); once "
                       f"for all videos, or once per video in order")
    scale.add_argument("--scale-from", type=Path, action="append", default=None,
                       metavar="FILE", help="GPS/odometry poses (CSV timestamp,x,y,yaw or TUM "
                       ".txt) giving the scale; one per video, in order")
    scale.add_argument("--poses", type=Path, action="append", default=None, metavar="FILE",
                       help="external poses (CSV or TUM .txt) instead of visual odometry; "
                       "one per video, in order")
    parser.add_argument("--tum-frame", choices=("world", "camera"), default="world",
                        help="TUM files hold z-up body poses (world) or OpenCV camera poses")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="ROS camera_calibration YAML (default: --hfov-deg)")
    parser.add_argument("--hfov-deg", type=float, default=None,
                        help=f"horizontal FOV without calibration (default "
                        f"{defaults.default_hfov_deg:g})")
    parser.add_argument("--config", type=Path, default=None, help="YAML of LabelConfig fields")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_label_video)


def run_label_video(args: argparse.Namespace) -> int:
    """Handler of ``s2e data label-video``; 1 when any video failed."""
    config = LabelConfig.from_yaml(args.config) if args.config else LabelConfig()
    speeds = args.speed_prior_mps
    if speeds is not None and len(speeds) == 1:
        speeds = speeds * len(args.videos)
    overrides = {"label_fps": args.fps, "default_hfov_deg": args.hfov_deg}
    values = {**{k: getattr(config, k) for k in config.__dataclass_fields__},
              **{k: v for k, v in overrides.items() if v is not None}}
    config = LabelConfig.from_dict(values, "command line")
    if args.calibration is not None and not args.calibration.is_file():
        raise S2EError(f"--calibration {args.calibration}: no such file")
    results = label_videos(args.videos, args.out, config, scale_files=args.scale_from,
                           poses_files=args.poses, speeds_mps=speeds, calibration=args.calibration,
                           tum_frame=args.tum_frame, progress=not args.no_progress)
    write_report(results, args.out, config)
    failed = 0
    for labels in results:
        if labels.error is not None:
            failed += 1
            print(f"{labels.video}: FAILED: {labels.error}")
            continue
        frames = sum(s.frames for s in labels.segments)
        print(f"{labels.video}: {len(labels.segments)} segment(s), {frames} of "
              f"{len(labels.statuses)} labelled frames kept; {labels.status_counts()}")
        for warning in labels.warnings:
            print(f"  warning: {warning}")
    print(f"report: {args.out / REPORT_MARKDOWN}")
    return 1 if failed else 0
