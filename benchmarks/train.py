"""AGDM pretraining speed: the data loader alone vs the training step, side by side.

Prints, from one run on this machine, for a training config (default
``config/train/small.yaml``, the ``small`` preset at batch 16) and a dataset (default the
EuRoC GNM fixture at 20 Hz):

- samples/s of the data loader alone (JPEG decode, resize, goal, augmentation, collate) with
  0 workers and with the config's ``num_workers``;
- the training step alone (forward, AGDM loss, backward, clip, AdamW) on a pre-loaded batch:
  ms/step and samples/s;
- which of the two bounds the training loop.

Usage: python benchmarks/train.py [--config C] [--data PATH --rate-hz R] [--batches 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from s2e_training.data import NavDataset, collate, load_trajectories
from s2e_training.train import StepBatchSampler, TrainConfig, fit_anchors, train_step
from s2e_training.train.checkpoint import build_model
from s2e_training.train.pretraining import EpochKeyedDataset, make_optimizer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "config" / "train" / "small.yaml"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "fixtures" / "gnm" / "euroc_cam1"
DEFAULT_RATE_HZ = 20.0
BENCH_BATCH_SIZE = 16
WARMUP_STEPS = 3


def loader_samples_per_s(dataset: NavDataset, config: TrainConfig, workers: int,
                         batches: int) -> float:
    """Samples/s of iterating ``batches`` batches (worker start-up excluded)."""
    sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, 0,
                               batches + WARMUP_STEPS)
    loader = DataLoader(EpochKeyedDataset(dataset), batch_sampler=sampler, num_workers=workers,
                        collate_fn=collate)
    iterator = iter(loader)
    for _ in range(WARMUP_STEPS):
        next(iterator)
    t0 = time.perf_counter()
    count = sum(len(batch["goal"]) for batch in iterator)
    return count / (time.perf_counter() - t0)


def step_seconds(dataset: NavDataset, config: TrainConfig, anchors, steps: int) -> float:
    """Mean wall time of :func:`train_step` on one pre-loaded batch."""
    sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, 0, 1)
    batch = collate([EpochKeyedDataset(dataset)[key] for key in sampler.batch(0)])
    model = build_model(config, anchors)
    optimizer = make_optimizer(model, config)
    model.train()
    for _ in range(WARMUP_STEPS):
        train_step(model, optimizer, batch, config)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, batch, config)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rate-hz", type=float, default=DEFAULT_RATE_HZ)
    parser.add_argument("--batches", type=int, default=20, help="timed batches / steps")
    args = parser.parse_args()

    config = dataclasses.replace(TrainConfig.from_yaml(args.config),
                                 batch_size=BENCH_BATCH_SIZE)
    trajectories = load_trajectories(args.data, rate_hz=args.rate_hz)
    dataset = NavDataset(trajectories, config.data, augment_config=config.augment,
                         seed=config.seed)
    anchors = fit_anchors(config, trajectories)
    m = config.model
    print(f"config {args.config.name}: {m.context_frames} frames x {m.image_size}px, "
          f"K={m.num_anchors}, d_model={m.d_model}, batch {config.batch_size}; "
          f"data {args.data.name}: {len(dataset)} samples; torch threads "
          f"{torch.get_num_threads()}")
    rows = []
    for workers in sorted({0, config.num_workers}):
        rate = loader_samples_per_s(dataset, config, workers, args.batches)
        rows.append((f"data loader alone, {workers} workers", rate,
                     1e3 * config.batch_size / rate))
    step_s = step_seconds(dataset, config, anchors, args.batches)
    rows.append(("training step alone (fwd+bwd+AdamW)", config.batch_size / step_s, 1e3 * step_s))
    print(f"{'':40s} {'samples/s':>10s} {'ms/batch':>10s}")
    for label, rate, ms in rows:
        print(f"{label:40s} {rate:10.1f} {ms:10.1f}")
    loader_best = max(rate for label, rate, _ in rows if label.startswith("data"))
    bound = "data loading" if loader_best < config.batch_size / step_s else "the training step"
    print(f"the loop is bound by {bound}")


if __name__ == "__main__":
    main()
