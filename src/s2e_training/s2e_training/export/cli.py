"""``s2e export``: checkpoint -> ONNX policy file (entry point ``export = ...export.cli:register``).

``s2e export CHECKPOINT --out policy.onnx [--fp16] [--opset N] [--embodiment NAME|YAML]
[--train-command TEXT] [--check-batch B]`` writes the policy with its contract in the
metadata_props (see :mod:`s2e_training.export.onnx_export`), prints the contract summary, then
a self-check: ONNX Runtime (CPU) on ``B`` random inputs against the float32 torch network,
max abs error per output. Exit status 1 when an error exceeds the precision's bound
(fp32 1e-4, fp16 5e-2); the file is written either way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from s2e_policy.errors import S2EError
from s2e_training.export.settings import (
    DEFAULT_EMBODIMENT,
    DEFAULT_OPSET,
    FP16_PARITY_ATOL,
    FP32_PARITY_ATOL,
)

DEFAULT_CHECK_BATCH = 2
_CHECK_SEED = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` command to the ``s2e`` parser."""
    parser = subparsers.add_parser(
        "export", help="export a checkpoint to an ONNX policy file with its contract",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", type=Path,
                        help="checkpoint file (step_*.pt) or run folder (latest checkpoint)")
    parser.add_argument("--out", type=Path, required=True, help="destination .onnx file")
    parser.add_argument("--fp16", action="store_true",
                        help="float16 weights, inputs and outputs (for GPUs)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset")
    parser.add_argument("--embodiment", default=DEFAULT_EMBODIMENT,
                        help="embodiment name or YAML whose limits the contract records")
    parser.add_argument("--train-command", default="",
                        help="the command line that trained the checkpoint, to record")
    parser.add_argument("--check-batch", type=int, default=DEFAULT_CHECK_BATCH,
                        help="batch size of the torch/ONNX Runtime self-check")
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``s2e export``; returns the exit status (1 when parity fails)."""
    if args.check_batch < 1:
        raise S2EError(f"--check-batch: expected an integer >= 1, got {args.check_batch}")
    # torch and onnx only when exporting, so `s2e` starts fast.
    from s2e_training.export.onnx_export import export_network, load_export_source, random_inputs
    from s2e_training.export.parity import max_abs_errors, open_session

    source = load_export_source(args.checkpoint)
    contract = export_network(
        source.model, args.out, fp16=args.fp16, opset=args.opset, embodiment=args.embodiment,
        train_config=source.train_config, checkpoint_step=source.checkpoint_step,
        git_commit=source.git_commit, train_command=args.train_command,
    )
    print(f"wrote {args.out} from {source.checkpoint} (opset {args.opset})")
    for key, value in contract.summary().items():
        print(f"  {key}: {json.dumps(value)}")

    frames, goal = random_inputs(source.model, args.check_batch, seed=_CHECK_SEED)
    errors = max_abs_errors(source.model, open_session(args.out), frames.numpy(), goal.numpy())
    bound = FP16_PARITY_ATOL if args.fp16 else FP32_PARITY_ATOL
    print(f"parity, ONNX Runtime CPU vs torch float32, batch {len(goal)}, max abs error "
          f"(bound {bound:g}):")
    for name, error in errors.items():
        print(f"  {name}: {error:.3g}")
    worst = max(errors, key=errors.__getitem__)
    if errors[worst] > bound:
        print(f"parity check FAILED for {args.out}: {worst} differs by {errors[worst]:.3g} "
              f"> {bound:g}")
        return 1
    print("parity check passed")
    return 0
