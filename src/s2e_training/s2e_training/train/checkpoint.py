"""Pretraining checkpoints: atomic writes, discovery, validated reads, model loading.

A run folder keeps its checkpoints in ``<run>/checkpoints/step_<step, 8 digits>.pt``. Each is
a ``torch.save`` dict (loadable with ``weights_only=True``; nothing is unpickled but tensors
and plain containers) with:

* ``format_version`` (:data:`CHECKPOINT_FORMAT_VERSION`), ``step`` (optimiser steps done);
* ``config``: :meth:`TrainConfig.to_dict`; ``anchors``: float32 tensor ``(K, W, 3)``
  normalised ``(x, y, heading)`` anchors (robot frame, see :mod:`s2e_training.model.anchors`);
* ``model`` and ``optimizer``: state dicts;
* ``data``: what the run trained on, ``{"num_samples": int, "trajectories": [ids]}`` (a
  resume on other data is allowed but warned about: its batches differ);
* ``commit``: the source commit that trained it (``git describe --always --dirty`` of this
  package's checkout, full hash, ``-dirty`` with local changes), or ``None`` outside git;
  the ONNX contract carries it;
* ``rng``: ``torch`` (CPU generator state) and ``cuda`` (one state per visible GPU, may be
  empty). These are the only global generators training draws from: batch order and
  augmentations come from generators seeded per step / per item (see :mod:`.pretrain`).

Writes are atomic: the dict is written to a hidden temporary file in the same folder, synced,
then moved over the final name with :func:`os.replace`, so a crash never leaves a half-written
``step_*.pt``; leftover temporaries (``.step_*.tmp``) are ignored by discovery.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2e_policy.atomic_files import atomic_output
from s2e_policy.errors import S2EError
from s2e_training.model.network import S2EPolicyNet
from s2e_training.train.config import TrainConfig

CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
"""Sub-folder of a run folder that holds the checkpoints."""
RL_CHECKPOINT_KIND = "rl"
"""``data["kind"]`` of an RL post-training checkpoint (pretraining checkpoints have no
``kind``); see :mod:`s2e_training.rl.runner`."""

_CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.pt$")
_REQUIRED_KEYS = (
    "format_version", "step", "config", "anchors", "model", "optimizer", "rng", "data", "commit"
)
_GIT_TIMEOUT_S = 10.0


class CheckpointError(S2EError):
    """A checkpoint is missing, truncated, corrupt or inconsistent; the message names it."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """``<run_dir>/checkpoints/step_<step:08d>.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``run_dir``, oldest first (temporaries ignored)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _CHECKPOINT_NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the most steps in ``run_dir``, or ``None`` when there is none."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def rng_state() -> dict[str, Any]:
    """The global torch generator states (CPU, and every visible CUDA device)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`; CUDA states go to the devices that exist (by index)."""
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def training_commit() -> str | None:
    """``git describe --always --dirty`` (full hash) of this source tree, ``None`` outside git."""
    try:
        done = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "describe", "--always",
             "--dirty", "--abbrev=40"],
            capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    described = done.stdout.strip()
    return described if done.returncode == 0 and described else None


def save_checkpoint(
    path: Path,
    *,
    model: S2EPolicyNet,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: TrainConfig,
    anchors: np.ndarray,
    data: dict[str, Any],
) -> Path:
    """Atomically write a checkpoint to ``path`` (see the module docstring).

    Args:
        path: destination, normally :func:`checkpoint_path`; its folder is created.
        model: the network (its state dict is saved from the CPU or GPU as it is).
        optimizer: the optimiser whose state resumes the run.
        step: optimiser steps done.
        config: the run's configuration.
        anchors: ``(K, W, 3)`` float32 normalised anchors.
        data: summary of the training data (plain data: ints, strings, lists).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "step": int(step),
        "config": config.to_dict(),
        "anchors": torch.from_numpy(np.asarray(anchors, dtype=np.float32).copy()),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
        "data": data,
        "commit": training_commit(),
    }
    with atomic_output(path) as handle:
        torch.save(payload, handle)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load and validate a checkpoint dict (tensors on the CPU).

    Returns:
        The dict of the module docstring, with ``config`` parsed into a :class:`TrainConfig`
        and ``anchors`` as a float32 numpy array ``(K, W, 3)``.

    Raises:
        CheckpointError: missing file, truncated/corrupt file, unknown format version, missing
            keys, or anchors that do not fit the config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, pickle and zip errors
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint (truncated or corrupt: {exc}); delete it "
            "to resume from the previous checkpoint"
        ) from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(payload).__name__}")
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: not a pretraining checkpoint (missing key '{missing[0]}')")
    if payload["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {payload['format_version']!r}, expected "
            f"{CHECKPOINT_FORMAT_VERSION}"
        )
    try:
        config = TrainConfig.from_dict(payload["config"], source=f"{path} (config)")
    except S2EError as exc:
        raise CheckpointError(str(exc)) from exc
    anchors = payload["anchors"]
    expected = (config.model.num_anchors, config.model.waypoints, 3)
    if not isinstance(anchors, torch.Tensor) or tuple(anchors.shape) != expected:
        shape = tuple(anchors.shape) if isinstance(anchors, torch.Tensor) else type(anchors)
        raise CheckpointError(f"{path}: anchors of shape {shape}, expected {expected}")
    return {**payload, "config": config, "anchors": anchors.numpy().astype(np.float32)}


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 (hex) of ``model``'s state dict: names, dtypes, shapes and exact values.

    Equal digests mean bit-identical weights and buffers, wherever they live (CPU or GPU);
    distributed pretraining compares the ranks' digests at the end of a run.
    """
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        tensor = value.detach().cpu()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_model(config: TrainConfig, anchors: np.ndarray) -> S2EPolicyNet:
    """The network of ``config`` with ``anchors``, initialised from ``config.seed``."""
    return S2EPolicyNet(config.model, anchors, seed=config.seed)


def resolve_checkpoint(path: Path) -> Path:
    """The checkpoint file ``path`` names: itself, or a run folder's latest checkpoint.

    Raises:
        CheckpointError: a run folder without checkpoints.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"{path}: run folder has no checkpoints in {CHECKPOINT_DIR}/")
    return latest


def load_checkpoint(path: Path) -> tuple[S2EPolicyNet, TrainConfig, np.ndarray, int]:
    """Rebuild the trained network from a checkpoint (what the ONNX export uses).

    Args:
        path: a checkpoint file, or a run folder (its latest checkpoint is used).

    Returns:
        ``(model, config, anchors, step)``: the network on the CPU in eval mode, the run's
        :class:`TrainConfig` (``config.model`` is the network's), the ``(K, W, 3)`` float32
        normalised anchors, and the number of optimiser steps it was trained for.

    Raises:
        CheckpointError: see :func:`read_checkpoint`; also a run folder without checkpoints
            or weights that do not fit the config.
    """
    path = resolve_checkpoint(path)
    payload = read_checkpoint(path)
    config, anchors = payload["config"], payload["anchors"]
    model = build_model(config, anchors)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: model weights do not fit its config ({exc})") from exc
    model.eval()
    return model, config, anchors, int(payload["step"])
