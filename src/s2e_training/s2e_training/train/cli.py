"""``s2e train``: training commands (entry point ``train = s2e_training.train.cli:register``).

``s2e train pretrain --config config/train/small.yaml --data PATH [--data PATH ...]
[--rate-hz R ...] --out runs/NAME [--resume] [--steps N] [--device cpu|cuda]`` pretrains the
policy with AGDM on GNM folders (including ``s2e navbench collect`` output, 5 Hz; give
``--rate-hz`` once for all GNM paths or once per ``--data`` path, in order), rosbag2
recordings (``--image-topic``/``--odom-topic``) or videos (``--poses``), writing checkpoints
to ``runs/NAME/checkpoints/`` and TensorBoard scalars to ``runs/NAME/tensorboard/``
(``tensorboard --logdir runs``). Ctrl-C writes a checkpoint; ``--resume`` continues from it.

Several processes with DistributedDataParallel: the same command under torchrun,
``torchrun --nproc_per_node=N -m s2e_policy.cli train pretrain ...`` (gloo on the CPU, one GPU
per process with ``--device cuda``); ``batch_size`` stays the global batch, split over the
processes. Every process prints its final line, prefixed ``[rank R/N]``, with the SHA-256 of
its final weights (all equal).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from s2e_policy.cli import module_docstring
from s2e_policy.errors import S2EError
from s2e_training import DEVICES
from s2e_training.data.sample import SkipReport, Trajectory
from s2e_training.data.sources import load_trajectories


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command (subcommands ``pretrain`` and ``rl``) to the ``s2e`` parser."""
    train = subparsers.add_parser("train", help="pretrain (AGDM) and post-train (RL) the policy")
    train.set_defaults(func=lambda _args: _print_help(train))
    commands = train.add_subparsers(dest="train_command", metavar="SUBCOMMAND")
    run = commands.add_parser(
        "pretrain", help="AGDM pretraining with checkpoints and TensorBoard logs",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", type=Path, required=True, help="training YAML")
    run.add_argument("--data", type=Path, action="append", required=True,
                     help="GNM folder(s), rosbag2 folder or video (repeatable)")
    run.add_argument("--out", type=Path, required=True, help="run folder")
    run.add_argument("--resume", action="store_true",
                     help="continue from the run folder's latest checkpoint")
    run.add_argument("--steps", type=int, help="total steps (overrides the config's steps)")
    run.add_argument("--device", choices=DEVICES, default="cpu", help="torch device")
    run.add_argument("--no-amp", action="store_true",
                     help="train in float32 on CUDA too (default: bfloat16 autocast on GPUs "
                          "that support it; CPU always trains in float32)")
    run.add_argument("--rate-hz", type=float, action="append",
                     help="GNM: frame rate, Hz; once for every --data, or once per --data in "
                          "the same order (e.g. 5 for `s2e navbench collect` output)")
    run.add_argument("--image-topic", help="rosbag2: Image or CompressedImage topic")
    run.add_argument("--odom-topic", help="rosbag2: nav_msgs/Odometry topic")
    run.add_argument("--poses", type=Path, help="video: pose CSV (timestamp, x, y, yaw)")
    run.add_argument("--skip-bad", action="store_true",
                     help="skip unreadable frames/messages and list them")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=run_pretrain)
    _register_rl(commands)


def _register_rl(commands: argparse._SubParsersAction) -> None:
    """Add ``s2e train rl`` (RAM + PPO post-training, :mod:`s2e_training.rl.runner`)."""
    rl = commands.add_parser(
        "rl", help="RL post-training (RAM + PPO) in NavBench-GS",
        description=module_docstring("s2e_training.rl.runner"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rl.add_argument("--init", type=Path,
                    help="pretrained checkpoint (file or run folder); default: the shipped "
                         "policy's pretraining checkpoint; not needed with --resume")
    rl.add_argument("--config", type=Path, required=True, help="RL YAML (config/train/rl_*.yaml)")
    rl.add_argument("--out", type=Path, required=True, help="run folder")
    rl.add_argument("--resume", action="store_true",
                    help="continue from the run folder's latest checkpoint")
    rl.add_argument("--env-steps", type=int,
                    help="total environment steps (overrides the config's total_env_steps)")
    rl.add_argument("--device", choices=DEVICES, default="cpu", help="torch device")
    rl.add_argument("--torch-threads", type=int, default=1,
                    help="torch intra-op threads of each training process (default 1: the "
                         "environments use the other cores)")
    rl.add_argument("--no-progress", action="store_true", help="no progress bar")
    rl.set_defaults(func=run_rl)


def run_rl(args: argparse.Namespace) -> int:
    """Handler of ``s2e train rl``; returns the exit status."""
    from s2e_training.rl.config import RLConfig
    from s2e_training.rl.runner import train_rl

    init = args.init
    if init is None and not args.resume:
        from s2e_training.pretrained import shipped_checkpoint_path

        init = shipped_checkpoint_path()
        print(f"--init: the shipped policy's pretraining checkpoint {init}")
    result = train_rl(RLConfig.from_yaml(args.config), args.out, init=init,
                      resume=args.resume, total_env_steps=args.env_steps, device=args.device,
                      progress=not args.no_progress, torch_threads=args.torch_threads)
    evaluation = "; ".join(
        f"{task} SR {agg['success']:.2f} coll/ep {agg['collisions']:.2f}"
        for task, agg in result.evaluation.items())
    _print_result_line(result.rank, result.world_size,
                       f"{result.run_dir}: update {result.updates}, env steps "
                       f"{result.env_steps}, checkpoint {result.checkpoint}"
                       + (f", eval: {evaluation}" if evaluation else "")
                       + f", parameters sha256 {result.digest}")
    return 0


def _print_result_line(rank: int, world_size: int, text: str) -> None:
    """Print a run's closing line, ``[rank r/n]``-prefixed in a multi-process run.

    The processes of a torchrun job share one stdout (unbuffered there): ``print`` writes
    the text and its newline separately, so two ranks' lines could run together. One write
    of the whole line (far below the pipe's atomic size) keeps each line whole.
    """
    prefix = f"[rank {rank}/{world_size}] " if world_size > 1 else ""
    sys.stdout.write(f"{prefix}{text}\n")
    sys.stdout.flush()


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _rates_per_path(paths: list[Path], rates: list[float] | None) -> list[float | None]:
    """The ``--rate-hz`` of each ``--data`` path: none, one for all, or one each."""
    if not rates:
        return [None] * len(paths)
    if len(rates) == 1:
        return rates * len(paths)
    if len(rates) != len(paths):
        raise S2EError(
            f"--rate-hz given {len(rates)} times for {len(paths)} --data paths: give it once "
            "(for all) or once per --data, in the same order"
        )
    return list(rates)


def run_pretrain(args: argparse.Namespace) -> int:
    """Handler of ``s2e train pretrain``; returns the exit status."""
    # torch only when training, so `s2e` starts fast.
    from s2e_training.train.config import TrainConfig
    from s2e_training.train.pretraining import pretrain

    config = TrainConfig.from_yaml(args.config)
    report = SkipReport()
    trajectories: list[Trajectory] = []
    for path, rate_hz in zip(args.data, _rates_per_path(args.data, args.rate_hz), strict=True):
        trajectories += load_trajectories(
            path, image_topic=args.image_topic, odom_topic=args.odom_topic,
            rate_hz=rate_hz, poses_csv=args.poses, skip_bad=args.skip_bad, report=report,
        )
    if len(report):
        print(report.summary())
    result = pretrain(config, trajectories, args.out, resume=args.resume, steps=args.steps,
                      device=args.device, progress=not args.no_progress,
                      mixed_precision=not args.no_amp)
    summary = ", ".join(f"{key} {result.last[key]:.4f}" for key in ("total", "ade_m")
                        if key in result.last)
    _print_result_line(result.rank, result.world_size,
                       f"{result.run_dir}: step {result.step}, checkpoint {result.checkpoint}"
                       + (f" (last step: {summary})" if summary else "")
                       + f", parameters sha256 {result.digest}")
    return 0
