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

Several processes (``torchrun --nproc_per_node=N -m s2e_policy.cli train pretrain ...``):
:func:`pretrain` reads torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
(:class:`DistributedContext`), joins the process group (gloo on the CPU, NCCL on CUDA, one GPU
per ``LOCAL_RANK``) and wraps the network in ``DistributedDataParallel``. Every rank draws the
same global batch of a step and trains on its contiguous shard of it
(:meth:`StepBatchSampler.batch`); each rank's loss is scaled by its share of the global batch
so that DDP's gradient average is the gradient of the global batch mean, whatever the world
size (up to float rounding). The logged loss terms are global batch means. Rank 0 alone
writes ``config.yaml``, checkpoints (between barriers), TensorBoard and the progress bar;
Ctrl-C on any rank stops every rank after the same step; at the end the ranks compare
:func:`parameter_digest` of their weights and fail loudly when they diverged.

TensorBoard images: whenever a checkpoint is due (every ``checkpoint_every_steps`` and at the
last step), rank 0 also logs ``predictions/top_modes`` (:func:`prediction_image`): the last
context frame of the step's first sample with the top :data:`IMAGE_TOP_MODES` predicted
trajectories drawn top-down in an inset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from s2e_policy.errors import S2EError
from s2e_training import DEVICES
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
    parameter_digest,
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
DISTRIBUTED_BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
"""torch.distributed backend for each device type."""
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""Environment variables torchrun sets in every worker process."""

IMAGE_TAG = "predictions/top_modes"
"""TensorBoard tag of the predicted-modes image."""
IMAGE_TOP_MODES = 5
"""Number of highest-scoring modes drawn in the predicted-modes image."""
IMAGE_SIZE_IN = (4.0, 4.0)
"""Width and height of the predicted-modes figure, inches (square, as the frames are)."""
IMAGE_DPI = 80
"""Resolution of the predicted-modes figure, dots per inch (so 320 x 320 pixels)."""
IMAGE_INSET_BOUNDS = (0.55, 0.05, 0.42, 0.42)
"""Top-down inset ``(left, bottom, width, height)`` as fractions of the figure."""

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
        digest: :func:`parameter_digest` of the final weights (equal on every rank).
        rank: this process's rank (0 outside torchrun).
        world_size: number of training processes (1 outside torchrun).
    """

    run_dir: Path
    step: int
    checkpoint: Path
    last: dict[str, float]
    digest: str = ""
    rank: int = 0
    world_size: int = 1


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


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (torchrun) group; ``world_size == 1`` is a plain run.

    Attributes:
        rank: global rank, 0 .. world_size - 1 (rank 0 writes the run folder).
        world_size: number of training processes.
        local_rank: rank on this machine (picks the GPU under CUDA).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise S2EError(
                f"torchrun environment: need WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE and "
                f"LOCAL_RANK >= 0, got RANK={self.rank}, WORLD_SIZE={self.world_size}, "
                f"LOCAL_RANK={self.local_rank}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DistributedContext:
        """The context torchrun describes in ``environ`` (default ``os.environ``).

        Without ``WORLD_SIZE`` (not under torchrun) this is the single-process context.

        Raises:
            S2EError: some but not all of :data:`TORCHRUN_ENV` are set, or one is not an
                integer or out of range.
        """
        environ = os.environ if environ is None else environ
        present = [key for key in TORCHRUN_ENV if key in environ]
        if not present:
            return cls()
        if len(present) != len(TORCHRUN_ENV):
            missing = sorted(set(TORCHRUN_ENV) - set(present))
            raise S2EError(
                f"torchrun environment: {', '.join(present)} set but {', '.join(missing)} "
                "missing; launch with torchrun (or set all of RANK, WORLD_SIZE, LOCAL_RANK)"
            )
        try:
            values = {key.lower(): int(environ[key]) for key in TORCHRUN_ENV}
        except ValueError as exc:
            raise S2EError(f"torchrun environment: RANK, WORLD_SIZE and LOCAL_RANK must be "
                           f"integers ({exc})") from exc
        return cls(**values)

    @property
    def distributed(self) -> bool:
        """More than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    def shard(self, size: int) -> slice:
        """The contiguous part of ``size`` items this rank takes (sizes differ by at most one)."""
        base, extra = divmod(size, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def barrier(self) -> None:
        """Wait for every rank (a no-op in a single-process run)."""
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is set on any rank (``flag`` itself in a single-process run)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def batch_mean(
        self, values: dict[str, float], count: int, device: torch.device
    ) -> tuple[dict[str, float], int]:
        """Global batch means of per-shard means ``values`` over ``count`` samples per rank.

        Returns:
            ``(means, total)``: the means weighted by each rank's sample count, and the global
            sample count. A single-process run returns its inputs.
        """
        if not self.distributed:
            return values, count
        keys = sorted(values)
        packed = torch.tensor([float(count)] + [count * values[k] for k in keys],
                              dtype=torch.float64, device=device)
        dist.all_reduce(packed)
        total = round(packed[0].item())
        sums = packed[1:].tolist()
        return {key: value / total for key, value in zip(keys, sums, strict=True)}, total


SINGLE_PROCESS = DistributedContext()
"""The context of a run without torchrun."""


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
    ``s`` therefore depends on ``(seed, s)`` only. Under several processes (``distributed``)
    each rank yields its contiguous shard (:meth:`DistributedContext.shard`) of that global
    batch, so the ranks together see exactly the batch a single process would.
    """

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start: int, stop: int,
        distributed: DistributedContext = SINGLE_PROCESS,
    ) -> None:
        if num_items < 1 or batch_size < 1 or not 0 <= start <= stop:
            raise S2EError(
                f"StepBatchSampler: need num_items >= 1, batch_size >= 1, 0 <= start <= stop, "
                f"got {num_items}, {batch_size}, {start}, {stop}"
            )
        if min(num_items, batch_size) < distributed.world_size:
            raise S2EError(
                f"batch_size {batch_size} with {num_items} training samples cannot give each of "
                f"{distributed.world_size} processes a sample: use batch_size >= the number of "
                "processes (--nproc_per_node x nodes) and at least that many samples"
            )
        self.distributed = distributed
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.stop = stop
        self.steps_per_epoch = max(1, num_items // batch_size)

    def __len__(self) -> int:
        return self.stop - self.start

    def global_batch(self, step: int) -> list[tuple[int, int]]:
        """Keys of step ``step``'s whole batch (over all ranks)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng((self.seed, epoch)).permutation(self.num_items)
        items = order[position * self.batch_size:(position + 1) * self.batch_size]
        return [(epoch, int(i)) for i in items]

    def batch(self, step: int) -> list[tuple[int, int]]:
        """Keys of this rank's shard of step ``step``'s batch (all of it in a plain run)."""
        keys = self.global_batch(step)
        return keys[self.distributed.shard(len(keys))]

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


def unwrap(model: torch.nn.Module) -> S2EPolicyNet:
    """The network inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def train_step(
    model: S2EPolicyNet | DistributedDataParallel,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    config: TrainConfig,
    device: torch.device | str = "cpu",
    distributed: DistributedContext = SINGLE_PROCESS,
    mixed_precision: bool = False,
) -> dict[str, float]:
    """One optimiser step of AGDM on a collated batch.

    Under several processes ``model`` is DDP-wrapped, ``batch`` is this rank's shard, the
    loss is scaled by ``world_size * shard / global batch`` so that DDP's gradient average
    equals the gradient of the global batch mean, and the returned terms are global means.

    Args:
        model: the network (in train mode), DDP-wrapped when ``distributed``.
        optimizer: its optimiser.
        batch: from :func:`s2e_training.data.collate`: ``context`` (B, T, 3, S, S) float32 in
            [0, 1], ``goal`` (B, 3), ``waypoints`` (B, W, 3) metres/radians (robot frame).
        config: gives the loss weights and the gradient clip.
        device: where the model lives.
        distributed: this process's place in the group.
        mixed_precision: run the forward pass and loss under bfloat16 autocast (CUDA only;
            bfloat16 keeps float32's range, so no loss scaling is needed).

    Returns:
        The loss terms (``total nll score traj speed ade_m``), ``mode_entropy`` (nats) and
        ``grad_norm`` (before clipping) as floats.

    Raises:
        S2EError: the loss is not finite (the step is not applied).
    """
    frames = batch["context"].to(device, non_blocking=True)
    goal = batch["goal"].to(device, non_blocking=True)
    target = batch["waypoints"].to(device, non_blocking=True)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                        enabled=mixed_precision and frames.device.type == "cuda"):
        output = model(frames, goal)
        terms = agdm_loss(output, target, unwrap(model).anchors, config.model, config.loss)
    values = terms.as_floats()
    values["mode_entropy"] = float(mode_entropy(output.scores.detach()))
    count = int(frames.shape[0])
    # Every rank sees the global total, so a non-finite loss stops all ranks alike.
    values, total_count = distributed.batch_mean(values, count, frames.device)
    if not math.isfinite(values["total"]):
        raise S2EError(f"training loss is not finite ({values}); lower optim.lr")
    optimizer.zero_grad(set_to_none=True)
    loss = terms.total
    if distributed.distributed:
        loss = loss * (distributed.world_size * count / total_count)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip_norm)
    optimizer.step()
    values["grad_norm"] = float(grad_norm)
    return values


@torch.no_grad()
def prediction_image(
    model: S2EPolicyNet, batch: dict[str, Any], device: torch.device | str = "cpu",
    top_modes: int = IMAGE_TOP_MODES,
) -> np.ndarray:
    """Picture of the network's predictions for the first sample of ``batch``.

    The last context frame fills the figure; a top-down inset (robot frame, REP-103: x
    forward drawn up, y left drawn left, metres) shows the ``top_modes`` highest-scoring
    predicted trajectories (line width and opacity grow with the mode probability) and the
    ground-truth waypoints. The network runs in eval mode (no dropout, no gradients, no global
    RNG draws) and is put back in the mode it was in.

    Args:
        model: the (unwrapped) network.
        batch: a collated batch (``context`` (B, T, 3, S, S) float32 in [0, 1], ``goal``
            (B, 3), ``waypoints`` (B, W, 3) metres/radians).
        device: where the model lives.
        top_modes: how many modes to draw (at most K).

    Returns:
        uint8 ``(H, W, 3)`` RGB image (``IMAGE_SIZE_IN * IMAGE_DPI`` pixels).
    """
    was_training = model.training
    model.eval()
    try:
        output = model(batch["context"][:1].to(device), batch["goal"][:1].to(device))
    finally:
        model.train(was_training)
    probabilities = torch.softmax(output.scores[0], dim=-1).cpu().numpy()
    trajectories = output.traj_m[0, :, :, :2].cpu().numpy()
    truth = batch["waypoints"][0, :, :2].cpu().numpy()
    frame = batch["context"][0, -1].permute(1, 2, 0).clamp(0.0, 1.0).cpu().numpy()

    figure = Figure(figsize=IMAGE_SIZE_IN, dpi=IMAGE_DPI)
    canvas = FigureCanvasAgg(figure)
    image_axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    image_axes.imshow(frame, interpolation="nearest")
    image_axes.set_axis_off()
    inset = figure.add_axes(IMAGE_INSET_BOUNDS)
    inset.set_facecolor("white")
    order = np.argsort(-probabilities)[:top_modes]
    for rank, mode in enumerate(order):
        p = float(probabilities[mode])
        xy = np.concatenate([np.zeros((1, 2)), trajectories[mode]])  # from the robot
        inset.plot(-xy[:, 1], xy[:, 0], marker=".", linewidth=1.0 + 3.0 * p,
                   alpha=0.35 + 0.65 * p, label=f"#{rank + 1} p={p:.2f}")
    xy = np.concatenate([np.zeros((1, 2)), truth])
    inset.plot(-xy[:, 1], xy[:, 0], "k--", linewidth=1.5, label="truth")
    inset.plot([0.0], [0.0], "k^")
    inset.set_aspect("equal", adjustable="datalim")
    inset.tick_params(labelsize="xx-small")
    inset.set_title("top-down, m (x forward up, y left)", fontsize="xx-small")
    inset.legend(fontsize="xx-small", loc="best", framealpha=0.5)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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


def _resolve_device(device: str, distributed: DistributedContext) -> torch.device:
    """The torch device; under CUDA each local rank gets GPU ``LOCAL_RANK``."""
    if device not in DEVICES:
        raise S2EError(f"--device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return torch.device(device)
    if not torch.cuda.is_available():
        raise S2EError("--device cuda: torch sees no CUDA device (use --device cpu)")
    if not distributed.distributed:
        return torch.device(device)
    if distributed.local_rank >= torch.cuda.device_count():
        raise S2EError(
            f"--device cuda: LOCAL_RANK {distributed.local_rank} but only "
            f"{torch.cuda.device_count()} GPU(s) visible; use --nproc_per_node <= the GPU count"
        )
    torch.cuda.set_device(distributed.local_rank)
    return torch.device("cuda", distributed.local_rank)


@contextlib.contextmanager
def process_group(distributed: DistributedContext, device: torch.device) -> Iterator[None]:
    """Join torchrun's process group for the block (nothing to do in a single-process run).

    The group is initialised from the environment (``MASTER_ADDR``/``MASTER_PORT`` set by
    torchrun) with :data:`DISTRIBUTED_BACKENDS` ``[device.type]`` and destroyed afterwards; a
    group the caller already initialised is used as it is and left alone.
    """
    if not distributed.distributed or dist.is_initialized():
        yield
        return
    dist.init_process_group(
        backend=DISTRIBUTED_BACKENDS[device.type], rank=distributed.rank,
        world_size=distributed.world_size,
        device_id=device if device.type == "cuda" else None,
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def _check_ranks_agree(digest: str, distributed: DistributedContext) -> None:
    """Raise when the ranks' final weights differ (DDP went out of sync)."""
    if not distributed.distributed:
        return
    digests: list[str | None] = [None] * distributed.world_size
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise S2EError(
            f"distributed training diverged: the ranks' final weights differ (sha256 per rank: "
            f"{', '.join(str(d)[:12] for d in digests)})"
        )


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
    mixed_precision: bool = True,
) -> PretrainResult:
    """Pretrain the S2E policy with AGDM (see the module docstring).

    Under torchrun (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) every rank calls this with
    the same arguments; it joins the process group for the run and leaves it at the end.

    Args:
        config: the run's configuration. On resume it must equal the checkpoint's apart from
            ``steps``.
        trajectories: training recordings (any adapter).
        run_dir: run folder (``config.yaml``, ``checkpoints/``, ``tensorboard/``).
        resume: continue from the latest checkpoint in ``run_dir``.
        steps: total steps of the run, overriding ``config.steps`` (e.g. to extend a run).
        device: ``cpu`` or ``cuda`` (under torchrun: GPU ``LOCAL_RANK``).
        progress: show a tqdm progress bar (rank 0 only).
        mixed_precision: bfloat16 autocast where available (CUDA devices with bfloat16
            support); CPU runs always train in float32.

    Returns:
        :class:`PretrainResult`.

    Raises:
        S2EError: data too short, k-means without enough samples, ``run_dir`` already
            trained without ``resume`` (or nothing to resume), a config that differs from the
            checkpoint's, a corrupt checkpoint, non-finite loss, a bad torchrun environment,
            fewer samples per step than processes, ranks that diverged.
        KeyboardInterrupt: after Ctrl-C, once the checkpoint of the last finished step is
            written.
    """
    distributed = DistributedContext.from_env()
    torch_device = _resolve_device(device, distributed)
    with process_group(distributed, torch_device):
        amp = (mixed_precision and torch_device.type == "cuda"
               and torch.cuda.is_bf16_supported())
        return _pretrain(config, trajectories, Path(run_dir), resume=resume, steps=steps,
                         device=torch_device, progress=progress, distributed=distributed,
                         amp=amp)


def _pretrain(
    config: TrainConfig,
    trajectories: Sequence[Trajectory],
    run_dir: Path,
    *,
    resume: bool,
    steps: int | None,
    device: torch.device,
    progress: bool,
    distributed: DistributedContext,
    amp: bool,
) -> PretrainResult:
    """:func:`pretrain` inside its process group.

    Arguments as there, with ``device`` resolved and ``amp`` true when bfloat16 autocast is
    on.
    """
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
    dataset = NavDataset(
        trajectories, config.data, augment_config=config.augment, seed=config.seed
    )
    start = 0 if state is None else int(state["step"])
    sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, start,
                               max(start, config.steps), distributed)
    # Every rank has read the run folder (above) before rank 0 writes to it.
    distributed.barrier()
    if distributed.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")

    model = build_model(config, anchors).to(device)
    optimizer = make_optimizer(model, config)
    if state is None:
        torch.manual_seed(config.seed)
    else:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"])
    if start >= config.steps:
        assert latest is not None  # start > 0 only when resuming from a checkpoint
        LOG.info("%s: already at step %d of %d, nothing to do", run_dir, start, config.steps)
        return PretrainResult(run_dir, start, latest, {}, parameter_digest(model),
                              distributed.rank, distributed.world_size)
    trained: S2EPolicyNet | DistributedDataParallel = model
    if distributed.distributed:
        trained = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    if len(dataset) < config.batch_size:
        LOG.warning("only %d samples for batch_size %d: every batch is the whole dataset",
                    len(dataset), config.batch_size)
    loader = DataLoader(
        EpochKeyedDataset(dataset),
        batch_sampler=sampler,
        num_workers=config.num_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        worker_init_fn=ignore_sigint,
        generator=torch.Generator().manual_seed(config.seed),
    )
    if distributed.is_main:
        LOG.info("%s: %d samples from %d trajectories, steps %d -> %d on %s x %d", run_dir,
                 num_samples, len(trajectories), start, config.steps, device,
                 distributed.world_size)

    writer = _summary_writer(run_dir, start) if distributed.is_main else None
    step, saved_step = start, start
    last: dict[str, float] = {}
    saved = latest

    def checkpoint() -> Path:
        path = checkpoint_path(run_dir, step)
        distributed.barrier()
        if distributed.is_main:
            save_checkpoint(path, model=model, optimizer=optimizer, step=step, config=config,
                            anchors=anchors, data=data_summary)
        distributed.barrier()  # no rank goes on before the checkpoint exists
        return path

    trained.train()
    bar = tqdm(total=config.steps, initial=start, desc="pretrain", unit="step",
               disable=not (progress and distributed.is_main), dynamic_ncols=True)
    try:
        with deferred_sigint() as interrupted:
            for batch in loader:
                last = train_step(trained, optimizer, batch, config, device, distributed,
                                  mixed_precision=amp)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{last['total']:.3f}", min_ade_m=f"{last['ade_m']:.3f}")
                checkpoint_due = step % config.checkpoint_every_steps == 0
                if writer is not None:
                    if step % config.log_every_steps == 0 or step == config.steps:
                        for key, tag in SCALAR_TAGS.items():
                            writer.add_scalar(tag, last[key], step)
                    if checkpoint_due or step == config.steps:
                        writer.add_image(IMAGE_TAG, prediction_image(model, batch, device), step,
                                         dataformats="HWC")
                if checkpoint_due:
                    saved, saved_step = checkpoint(), step
                if distributed.any(interrupted.is_set(), device):
                    if saved_step != step:
                        saved, saved_step = checkpoint(), step
                    LOG.warning("interrupted at step %d; checkpoint %s", step, saved)
                    raise KeyboardInterrupt
            if saved_step != step:
                saved, saved_step = checkpoint(), step
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    digest = parameter_digest(model)
    _check_ranks_agree(digest, distributed)
    if distributed.is_main:
        LOG.info("%s: finished at step %d, checkpoint %s", run_dir, step, saved)
    assert saved is not None  # at least one step ran, and the loop ends with a checkpoint
    return PretrainResult(run_dir, step, saved, last, digest, distributed.rank,
                          distributed.world_size)


def _summary_writer(run_dir: Path, start: int) -> Any:
    """A TensorBoard ``SummaryWriter`` for ``<run_dir>/tensorboard`` continuing at ``start``.

    Scalars are logged at the number of steps done; whatever an earlier session logged after
    ``start`` is dropped, so the curve continues from the checkpoint.
    """
    try:  # imported here: loading a checkpoint (ONNX export) must not need tensorboard
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise S2EError(
            f"TensorBoard logging needs the tensorboard package ({exc}): pip install tensorboard"
        ) from exc
    return SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=start + 1)
