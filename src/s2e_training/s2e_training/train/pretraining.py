"""AGDM pretraining: trajectories in, checkpoints and TensorBoard scalars out.

One run (:func:`pretrain`) is, top to bottom:

1. check that the recordings are long enough for ``config.data`` (:func:`check_data_length`);
2. anchors (:func:`fit_anchors`): k-means over the future waypoints of every training sample
   (mirrored copies added when flip augmentation is on) for ``model.anchor_kind == kmeans``,
   the uniform fan otherwise; on resume they come from the checkpoint;
3. the network (:class:`S2EPolicyNet`, seeded by ``config.seed``) and AdamW;
4. the loop: each step draws its batch, runs :func:`train_step` (AGDM loss, backward, global
   grad-norm clip, AdamW step), updates the tqdm bar (loss, min-of-K ADE), writes TensorBoard
   scalars every ``log_every_steps`` (``<run>/tensorboard``) and a checkpoint every
   ``checkpoint_every_steps`` and at the end (:mod:`.checkpoint`, atomic).

Determinism and resume: the batch of step ``s`` is fixed by ``(seed, s)`` alone
(:class:`StepBatchSampler`: epoch ``e = s // steps_per_epoch`` is a permutation drawn from
``default_rng((seed, e))``, and item ``i`` of epoch ``e`` is cut and augmented with the
dataset's ``default_rng((seed, e, i))``), whatever the worker count. The checkpoint holds
the model, optimiser, step and the global torch generator states (used by dropout only), so
``--resume`` continues the loss curve exactly as an uninterrupted run would.

Ctrl-C (SIGINT) is deferred to the end of the current step: a checkpoint of that step is
written, then :class:`KeyboardInterrupt` is raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from s2e_policy.errors import S2EError
from s2e_training.data.dataset import NavDataset, collate
from s2e_training.data.sample import (
    NavSample,
    SampleConfig,
    Trajectory,
    future_waypoints,
    sample_indices,
)
from s2e_training.losses import agdm_loss
from s2e_training.model.anchors import build_anchors
from s2e_training.model.network import S2EPolicyNet
from s2e_training.train.checkpoint import (
    build_model,
    checkpoint_path,
    latest_checkpoint,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from s2e_training.train.config import TrainConfig

LOG = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
"""Sub-folder of a run folder with the TensorBoard event files."""
CONFIG_FILE = "config.yaml"
"""The resolved training config, written into the run folder."""
DEVICES = ("cpu", "cuda")

# TensorBoard tag of each logged scalar (train_step result key -> tag).
SCALAR_TAGS = {
    "total": "loss/total",
    "nll": "loss/nll",
    "score": "loss/score",
    "traj": "loss/traj",
    "speed": "loss/speed",
    "ade_m": "metrics/min_ade_m",
    "mode_entropy": "metrics/mode_entropy_nats",
    "grad_norm": "train/grad_norm",
}


@dataclass(frozen=True)
class PretrainResult:
    """What :func:`pretrain` did.

    Attributes:
        run_dir: the run folder.
        step: optimiser steps done (over all sessions of the run).
        checkpoint: the checkpoint holding that step.
        last: the scalar terms of the last step run in this call (empty when none ran).
    """

    run_dir: Path
    step: int
    checkpoint: Path
    last: dict[str, float]


def _lookahead_s(cfg: SampleConfig) -> float:
    """Seconds of poses a sample needs after its current frame."""
    return max(cfg.waypoint_horizon_s, cfg.goal_min_s)


def check_data_length(trajectories: Sequence[Trajectory], cfg: SampleConfig) -> int:
    """Number of samples ``cfg`` cuts from ``trajectories``; S2EError when there is none.

    Raises:
        S2EError: no trajectories, or none yields a sample; the message says how long a
            recording must be (context span + look-ahead) and how long the given ones are.
    """
    if not trajectories:
        raise S2EError("no training trajectories were loaded (check the --data paths)")
    count = sum(len(sample_indices(t, cfg)) for t in trajectories)
    if count:
        return count
    needed = cfg.context_span_s + _lookahead_s(cfg)
    longest = max(trajectories, key=lambda t: t.duration_s)
    if longest.duration_s < needed:
        raise S2EError(
            f"data too short for the sample config: a sample needs {cfg.context_span_s:g} s of "
            f"context ({cfg.context_frames} frames {cfg.context_dt_s:g} s apart) and "
            f"{_lookahead_s(cfg):g} s of poses after the current frame (waypoints "
            f"{cfg.num_waypoints} x {cfg.waypoint_dt_s:g} s, goal_min_s {cfg.goal_min_s:g}), so "
            f"recordings must be at least {needed:g} s long; the longest of "
            f"{len(trajectories)} is {longest.duration_s:.2f} s ({longest.trajectory_id})"
        )
    raise S2EError(
        f"no sample fits the sample config although {longest.trajectory_id} is "
        f"{longest.duration_s:.2f} s long: no frame lies within data.frame_tolerance_s="
        f"{cfg.frame_tolerance_s:g} s of every context time (context_dt_s={cfg.context_dt_s:g} s "
        "should be a whole number of frame periods; check --rate-hz)"
    )


def training_waypoints(trajectories: Sequence[Trajectory], cfg: SampleConfig) -> np.ndarray:
    """Future waypoints of every sample: float32 ``(M, W, 3)`` metres/radians, robot frame."""
    waypoints = [
        future_waypoints(t, int(i), cfg)
        for t in trajectories
        for i in sample_indices(t, cfg)
    ]
    return np.asarray(waypoints, dtype=np.float32).reshape(-1, cfg.num_waypoints, 3)


def fit_anchors(config: TrainConfig, trajectories: Sequence[Trajectory]) -> np.ndarray:
    """Anchors of ``config.model.anchor_kind`` for these training trajectories.

    ``kmeans`` clusters the future waypoints of every training sample (plus their mirror
    images ``y -> -y`` when the flip augmentation can fire, since the network trains on
    both), seeded by ``config.seed``; ``uniform`` ignores the data.

    Returns:
        ``(K, W, 3)`` float32 normalised anchors.

    Raises:
        S2EError: k-means with fewer training samples than anchors.
    """
    model = config.model
    trajs = None
    if model.anchor_kind == "kmeans":
        trajs = training_waypoints(trajectories, config.data)
        if config.augment is not None and config.augment.flip_probability > 0.0:
            trajs = np.concatenate([trajs, trajs * np.array([1.0, -1.0, -1.0], np.float32)])
        if len(trajs) < model.num_anchors:
            raise S2EError(
                f"model.anchor_kind 'kmeans' needs at least model.num_anchors="
                f"{model.num_anchors} training samples to cluster, got {len(trajs)}; add data "
                "or use anchor_kind 'uniform'"
            )
    return build_anchors(
        model.anchor_kind, model.num_anchors, model.waypoints, trajs, seed=config.seed,
        max_heading_rad=model.anchor_max_heading_rad, max_turn_rad=model.anchor_max_turn_rad,
    )


class EpochKeyedDataset(Dataset):
    """A :class:`NavDataset` indexed by ``(epoch, item)`` keys, so workers need no epoch sync."""

    def __init__(self, dataset: NavDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> NavSample:
        epoch, item = key
        self.dataset.set_epoch(epoch)
        return self.dataset[item]


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """The ``(epoch, item)`` keys of the batches of steps ``start .. stop - 1``.

    Epoch ``e`` is the permutation ``default_rng((seed, e)).permutation(num_items)`` cut into
    ``steps_per_epoch = max(1, num_items // batch_size)`` batches (the remainder is dropped;
    with fewer items than ``batch_size`` a batch is the whole permutation). The batch of step
    ``s`` therefore depends on ``(seed, s)`` only.
    """

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start: int, stop: int
    ) -> None:
        if num_items < 1 or batch_size < 1 or not 0 <= start <= stop:
            raise S2EError(
                f"StepBatchSampler: need num_items >= 1, batch_size >= 1, 0 <= start <= stop, "
                f"got {num_items}, {batch_size}, {start}, {stop}"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.stop = stop
        self.steps_per_epoch = max(1, num_items // batch_size)

    def __len__(self) -> int:
        return self.stop - self.start

    def batch(self, step: int) -> list[tuple[int, int]]:
        """Keys of step ``step``'s batch."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng((self.seed, epoch)).permutation(self.num_items)
        items = order[position * self.batch_size:(position + 1) * self.batch_size]
        return [(epoch, int(i)) for i in items]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield self.batch(step)


def mode_entropy(scores: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the mode distribution ``softmax(scores)``: (B, K) -> scalar."""
    log_p = torch.log_softmax(scores, dim=-1)
    return -(log_p.exp() * log_p).sum(-1).mean()


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over every parameter of ``model`` with ``config.optim``'s lr and weight decay."""
    return torch.optim.AdamW(
        model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay
    )


def train_step(
    model: S2EPolicyNet,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    config: TrainConfig,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """One optimiser step of AGDM on a collated batch.

    Args:
        model: the network (in train mode).
        optimizer: its optimiser.
        batch: from :func:`s2e_training.data.collate`: ``context`` (B, T, 3, S, S) float32 in
            [0, 1], ``goal`` (B, 3), ``waypoints`` (B, W, 3) metres/radians (robot frame).
        config: gives the loss weights and the gradient clip.
        device: where the model lives.

    Returns:
        The loss terms (``total nll score traj speed ade_m``), ``mode_entropy`` (nats) and
        ``grad_norm`` (before clipping) as floats.

    Raises:
        S2EError: the loss is not finite (the step is not applied).
    """
    frames = batch["context"].to(device, non_blocking=True)
    goal = batch["goal"].to(device, non_blocking=True)
    target = batch["waypoints"].to(device, non_blocking=True)
    output = model(frames, goal)
    terms = agdm_loss(output, target, model.anchors, config.model, config.loss)
    values = terms.as_floats()
    if not math.isfinite(values["total"]):
        raise S2EError(f"training loss is not finite ({values}); lower optim.lr")
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip_norm)
    optimizer.step()
    values["mode_entropy"] = float(mode_entropy(output.scores.detach()))
    values["grad_norm"] = float(grad_norm)
    return values


@contextlib.contextmanager
def deferred_sigint() -> Iterator[threading.Event]:
    """Turn SIGINT into a flag (set on Ctrl-C) for the duration of the block.

    Only the main thread can install signal handlers; elsewhere the flag is never set and
    Ctrl-C behaves as usual.
    """
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_sigint(_worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: Ctrl-C is for the training process, not the workers.

    Otherwise SIGINT (sent to the whole process group) would kill the workers while the
    training process still waits for batches, and the run would die before its checkpoint.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _config_differences(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Dotted keys whose values differ between two configs, ``steps`` excepted."""
    flat_a, flat_b = _flatten(a.to_dict()), _flatten(b.to_dict())
    keys = sorted(set(flat_a) | set(flat_b))
    return [k for k in keys if k != "steps" and flat_a.get(k) != flat_b.get(k)]


def _resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise S2EError(f"--device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise S2EError("--device cuda: torch sees no CUDA device (use --device cpu)")
    return torch.device(device)


def _resume_state(
    config: TrainConfig, run_dir: Path, latest: Path | None, data_summary: dict[str, Any]
) -> dict[str, Any]:
    """The checkpoint to resume from (:func:`read_checkpoint`), checked against the run.

    Raises:
        S2EError: no checkpoint, or a config that differs in anything but ``steps``.
    """
    if latest is None:
        raise S2EError(f"--resume: {run_dir} has no checkpoint to resume from")
    state = read_checkpoint(latest)
    differences = _config_differences(config, state["config"])
    if differences:
        raise S2EError(
            f"--resume: the config differs from the checkpoint {latest} in "
            f"{', '.join(differences)}; only 'steps' may change when resuming"
        )
    if state["data"] != data_summary:
        LOG.warning(
            "--resume: the data differ from the checkpoint's (%d samples from %d "
            "trajectories, now %d from %d): batches will not match an uninterrupted run",
            state["data"]["num_samples"], len(state["data"]["trajectories"]),
            data_summary["num_samples"], len(data_summary["trajectories"]))
    return state


def pretrain(
    config: TrainConfig,
    trajectories: Sequence[Trajectory],
    run_dir: Path,
    *,
    resume: bool = False,
    steps: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> PretrainResult:
    """Pretrain the S2E policy with AGDM (see the module docstring).

    Args:
        config: the run's configuration. On resume it must equal the checkpoint's apart from
            ``steps``.
        trajectories: training recordings (any adapter).
        run_dir: run folder (``config.yaml``, ``checkpoints/``, ``tensorboard/``).
        resume: continue from the latest checkpoint in ``run_dir``.
        steps: total steps of the run, overriding ``config.steps`` (e.g. to extend a run).
        device: ``cpu`` or ``cuda``.
        progress: show a tqdm progress bar.

    Returns:
        :class:`PretrainResult`.

    Raises:
        S2EError: data too short, k-means without enough samples, ``run_dir`` already
            trained without ``resume`` (or nothing to resume), a config that differs from the
            checkpoint's, a corrupt checkpoint, non-finite loss.
        KeyboardInterrupt: after Ctrl-C, once the checkpoint of the last finished step is
            written.
    """
    run_dir = Path(run_dir)
    torch_device = _resolve_device(device)
    if steps is not None:
        if steps < 1:
            raise S2EError(f"--steps must be >= 1, got {steps}")
        config = dataclasses.replace(config, steps=steps)
    num_samples = check_data_length(trajectories, config.data)
    data_summary = {"num_samples": num_samples,
                    "trajectories": [t.trajectory_id for t in trajectories]}
    latest = latest_checkpoint(run_dir)
    state = _resume_state(config, run_dir, latest, data_summary) if resume else None
    if state is None:
        if latest is not None:
            raise S2EError(
                f"{run_dir} already holds checkpoints (latest {latest.name}); pass --resume to "
                "continue that run or choose another --out"
            )
        anchors = fit_anchors(config, trajectories)
    else:
        anchors = state["anchors"]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")

    model = build_model(config, anchors).to(torch_device)
    optimizer = make_optimizer(model, config)
    start = 0
    if state is None:
        torch.manual_seed(config.seed)
    else:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"])
        start = int(state["step"])
    if start >= config.steps:
        assert latest is not None  # start > 0 only when resuming from a checkpoint
        LOG.info("%s: already at step %d of %d, nothing to do", run_dir, start, config.steps)
        return PretrainResult(run_dir, start, latest, {})

    dataset = NavDataset(
        trajectories, config.data, augment_config=config.augment, seed=config.seed
    )
    if len(dataset) < config.batch_size:
        LOG.warning("only %d samples for batch_size %d: every batch is the whole dataset",
                    len(dataset), config.batch_size)
    sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, start, config.steps)
    loader = DataLoader(
        EpochKeyedDataset(dataset),
        batch_sampler=sampler,
        num_workers=config.num_workers,
        collate_fn=collate,
        pin_memory=torch_device.type == "cuda",
        worker_init_fn=ignore_sigint,
        generator=torch.Generator().manual_seed(config.seed),
    )
    LOG.info("%s: %d samples from %d trajectories, steps %d -> %d on %s", run_dir, num_samples,
             len(trajectories), start, config.steps, torch_device)

    try:  # imported here: loading a checkpoint (ONNX export) must not need tensorboard
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise S2EError(
            f"TensorBoard logging needs the tensorboard package ({exc}): pip install tensorboard"
        ) from exc

    # Scalars are logged at the number of steps done; drop whatever an earlier session logged
    # after the step this one starts from, so the curve continues from the checkpoint.
    writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=start + 1)
    step, saved_step = start, start
    last: dict[str, float] = {}
    saved = latest

    def checkpoint() -> Path:
        return save_checkpoint(checkpoint_path(run_dir, step), model=model, optimizer=optimizer,
                               step=step, config=config, anchors=anchors, data=data_summary)

    model.train()
    bar = tqdm(total=config.steps, initial=start, desc="pretrain", unit="step",
               disable=not progress, dynamic_ncols=True)
    try:
        with deferred_sigint() as interrupted:
            for batch in loader:
                last = train_step(model, optimizer, batch, config, torch_device)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{last['total']:.3f}", min_ade_m=f"{last['ade_m']:.3f}")
                if step % config.log_every_steps == 0 or step == config.steps:
                    for key, tag in SCALAR_TAGS.items():
                        writer.add_scalar(tag, last[key], step)
                if step % config.checkpoint_every_steps == 0:
                    saved, saved_step = checkpoint(), step
                if interrupted.is_set():
                    if saved_step != step:
                        saved, saved_step = checkpoint(), step
                    LOG.warning("interrupted at step %d; checkpoint %s", step, saved)
                    raise KeyboardInterrupt
            if saved_step != step:
                saved, saved_step = checkpoint(), step
    finally:
        bar.close()
        writer.close()
    LOG.info("%s: finished at step %d, checkpoint %s", run_dir, step, saved)
    assert saved is not None  # at least one step ran, and the loop ends with a checkpoint
    return PretrainResult(run_dir, step, saved, last)
