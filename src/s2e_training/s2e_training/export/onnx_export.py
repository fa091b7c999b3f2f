"""ONNX export of the S2E policy: one ``.onnx`` file that carries the ONNX contract.

The graph is traced with torch's TorchScript exporter (``dynamo=False``) from
:class:`PolicyGraph`, which returns the five contract outputs in order. Interface (B dynamic,
named ``"B"`` on every input and output; T, S, K, W fixed by the model config; robot frame at
the decision instant, REP-103)::

    frames     (B, T, 3, S, S)  float32 (float16 with fp16) RGB in [0, 1], oldest first
    goal       (B, 3)           [clip(d, 0.1, 200) / 200, cos th, sin th]
    scores     (B, K)           mode logits
    traj_m     (B, K, W, 3)     x m, y m, heading rad
    speed_mps  (B, K)           mean speed per mode, m/s
    traj_norm  (B, K, W, 2)     speed-normalised trajectories
    gaussian   (B, K, W, 3)     log sigma_x, log sigma_y, rho over traj_norm

The file's ``metadata_props`` hold :meth:`PolicyContract.to_metadata`: image size, context
length, frame rate (``1 / context_dt_s``), goal encoding, waypoint scale and time step,
anchors, output semantics, the embodiment limits it was exported for, the model and training
configs, the SHA-256 of the training config (canonical JSON), the training commit and step.
Every file is checked with ``onnx.checker.check_model(full_check=True)`` and its graph
interface against the contract before it is written; writes are atomic (a temporary file in
the destination folder, then :func:`os.replace`), so an interrupted export never leaves a
partial ``.onnx``.

``fp16`` exports a float16 copy of the network (weights, inputs and outputs float16; traced
on the CPU), contract precision ``fp16``. ONNX Runtime's CPU provider runs it by casting
around kernels that lack float16; it is meant for GPUs.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from s2e_policy.atomic_files import write_bytes_atomic
from s2e_policy.contract import INPUT_NAMES, OUTPUT_NAMES, PolicyContract
from s2e_policy.embodiment import Embodiment, load_embodiment
from s2e_policy.errors import S2EError
from s2e_training import __version__
from s2e_training.export.settings import (
    DEFAULT_EMBODIMENT,
    DEFAULT_OPSET,
    MAX_OPSET,
    MIN_OPSET,
)
from s2e_training.model.network import S2EPolicyNet
from s2e_training.train.checkpoint import (
    RL_CHECKPOINT_KIND,
    load_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
)
from s2e_training.train.config import TrainConfig

BATCH_AXIS = "B"
"""Name of the dynamic batch axis (axis 0 of every input and output)."""
TRACE_BATCH = 2
"""Batch size of the tracing inputs; not 1, so that no batch-1 special case is traced."""

EMBODIMENT_LIMIT_KEYS = (
    "name",
    "kind",
    "max_linear_mps",
    "max_lateral_mps",
    "max_angular_radps",
    "max_linear_accel_mps2",
    "max_angular_accel_radps2",
    "nominal_speed_mps",
)
"""The :class:`Embodiment` fields recorded in the contract's ``embodiment``."""

_ELEM_TYPES = {"fp32": onnx.TensorProto.FLOAT, "fp16": onnx.TensorProto.FLOAT16}
_TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class ExportError(S2EError):
    """An export cannot be done or produced an invalid file; the message names it."""


class PolicyGraph(nn.Module):
    """The exported graph: :class:`S2EPolicyNet` returning the contract outputs in order.

    ``forward(frames (B,T,3,S,S), goal (B,3))`` returns the tuple
    ``(scores (B,K), traj_m (B,K,W,3), speed_mps (B,K), traj_norm (B,K,W,2),
    gaussian (B,K,W,3))``, i.e. :data:`s2e_policy.contract.OUTPUT_NAMES`, robot frame.
    """

    def __init__(self, net: S2EPolicyNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, frames: Tensor, goal: Tensor) -> tuple[Tensor, ...]:
        """(B,T,3,S,S) frames and (B,3) goal -> the five contract outputs (see class doc)."""
        out = self.net(frames, goal)
        return tuple(getattr(out, name) for name in OUTPUT_NAMES)


@dataclass(frozen=True)
class ExportSource:
    """A trained network and what its contract records about its training.

    Attributes:
        model: the network (CPU, eval mode).
        train_config: the run's configuration.
        checkpoint_step: optimiser steps it was trained for.
        git_commit: commit of the training code, or ``None`` when unknown.
        checkpoint: the checkpoint file it was loaded from.
    """

    model: S2EPolicyNet
    train_config: TrainConfig
    checkpoint_step: int
    git_commit: str | None
    checkpoint: Path


def load_export_source(checkpoint: Path) -> ExportSource:
    """Load a checkpoint file (or a run folder's latest checkpoint) for export.

    A pretraining checkpoint gives the :class:`S2EPolicyNet`; an RL checkpoint
    (``s2e train rl``) gives its :class:`~s2e_training.rl.ram.RamPolicy` (the pretrained
    network with RAM and log-std; ``checkpoint_step`` is then its number of PPO updates).

    Raises:
        CheckpointError: missing, corrupt or inconsistent checkpoint (names the file).
    """
    path = resolve_checkpoint(checkpoint)
    payload = read_checkpoint(path)
    data = payload["data"]
    if isinstance(data, dict) and data.get("kind") == RL_CHECKPOINT_KIND:
        # RL post-training: the RAM-augmented policy (same forward and contract).
        from s2e_training.rl.runner import load_rl_checkpoint

        model, _rl_config, train_config, _anchors, step = load_rl_checkpoint(path)
    else:
        model, train_config, _anchors, step = load_checkpoint(path)
    commit = payload["commit"]
    return ExportSource(model=model, train_config=train_config, checkpoint_step=step,
                        git_commit=commit if isinstance(commit, str) else None,
                        checkpoint=path)


def config_sha256(config: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``config`` (sorted keys, no spaces)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embodiment_limits(embodiment: Embodiment) -> dict[str, Any]:
    """The contract's ``embodiment`` object: :data:`EMBODIMENT_LIMIT_KEYS` of ``embodiment``."""
    return {key: getattr(embodiment, key) for key in EMBODIMENT_LIMIT_KEYS}


def build_contract(
    model: S2EPolicyNet,
    *,
    precision: str = "fp32",
    embodiment: str | Path = DEFAULT_EMBODIMENT,
    train_config: TrainConfig | None = None,
    checkpoint_step: int = 0,
    git_commit: str | None = None,
    train_command: str = "",
) -> PolicyContract:
    """The :class:`PolicyContract` of ``model`` (validated by its constructor).

    Args:
        model: the network; its config and ``anchors`` buffer (K, W, 2) go in the contract.
        precision: ``fp32`` or ``fp16``.
        embodiment: packaged embodiment name or YAML path whose limits are recorded.
        train_config: the training configuration, or ``None`` (an untrained network: an
            empty ``train_config``, frame rate ``1 / model.config.waypoint_dt_s``).
        checkpoint_step: optimiser steps the network was trained for.
        git_commit: commit of the training code, or ``None``.
        train_command: the command line that trained it, or ``""``.

    Raises:
        EmbodimentError: unknown embodiment. ContractError: values the contract refuses.
    """
    cfg = model.config
    train_dict = train_config.to_dict() if train_config is not None else {}
    context_dt_s = (train_config.data.context_dt_s if train_config is not None
                    else cfg.waypoint_dt_s)
    return PolicyContract(
        image_size=cfg.image_size,
        context_frames=cfg.context_frames,
        frame_rate_hz=1.0 / context_dt_s,
        num_anchors=cfg.num_anchors,
        waypoints=cfg.waypoints,
        waypoint_scale_m=cfg.waypoint_scale_m,
        waypoint_dt_s=cfg.waypoint_dt_s,
        anchors=model.anchors.detach().cpu().float().numpy(),
        anchor_kind=cfg.anchor_kind,
        precision=precision,
        embodiment=embodiment_limits(load_embodiment(embodiment)),
        model_config=cfg.to_dict(),
        train_config=train_dict,
        train_config_sha256=config_sha256(train_dict),
        git_commit=git_commit,
        train_command=train_command,
        checkpoint_step=int(checkpoint_step),
        producer=f"s2e_training {__version__} torch {torch.__version__}",
    )


def random_inputs(model: S2EPolicyNet, batch: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Valid random float32 inputs for ``model`` (CPU), reproducible from ``seed``.

    Returns:
        ``frames`` (batch, T, 3, S, S) uniform in [0, 1] and ``goal`` (batch, 3) encoded as
        ``[d / d_max, cos th, sin th]`` with ``d / d_max`` uniform in [0, 1] and th uniform.
    """
    cfg = model.config
    generator = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, cfg.context_frames, 3, cfg.image_size, cfg.image_size,
                        generator=generator)
    bearing = torch.rand(batch, generator=generator) * 2 * torch.pi
    distance = torch.rand(batch, generator=generator)
    return frames, torch.stack([distance, torch.cos(bearing), torch.sin(bearing)], dim=1)


def to_onnx(model: S2EPolicyNet, contract: PolicyContract, opset: int = DEFAULT_OPSET
            ) -> onnx.ModelProto:
    """Trace ``model`` into a checked ONNX model carrying ``contract`` in its metadata_props.

    The network is copied (to the CPU, float16 when ``contract.precision == "fp16"``); the
    caller's model is not modified.

    Raises:
        ExportError: an opset outside [:data:`MIN_OPSET`, :data:`MAX_OPSET`], a tracing
            failure, a graph that fails ``onnx.checker`` or does not match the contract.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset: expected an integer in [{MIN_OPSET}, {MAX_OPSET}], "
                          f"got {opset}")
    dtype = _TORCH_DTYPES[contract.precision]
    graph = PolicyGraph(copy.deepcopy(model).to(device="cpu", dtype=dtype)).eval()
    names = INPUT_NAMES + OUTPUT_NAMES
    inputs = tuple(x.to(dtype) for x in random_inputs(model, TRACE_BATCH))
    buffer = io.BytesIO()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # The fused inference kernels of nn.MultiheadAttention/TransformerEncoderLayer have no
    # ONNX symbolic; the exporter must trace the composite ops.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(
                graph, inputs, buffer, dynamo=False, opset_version=opset,
                input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                dynamic_axes={n: {0: BATCH_AXIS} for n in names}, do_constant_folding=True,
            )
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise ExportError(f"tracing the policy to ONNX opset {opset} failed: {exc}") from exc
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    proto = onnx.load_model_from_string(buffer.getvalue())
    declare_output_shapes(proto, contract)
    onnx.helper.set_model_props(proto, contract.to_metadata())
    proto.doc_string = "S2E visual navigation policy; contract in metadata_props (s2e.*)"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"exported graph fails onnx.checker: {exc}") from exc
    check_graph_interface(proto, contract)
    return proto


def contract_shapes(contract: PolicyContract) -> dict[str, tuple[int | str, ...]]:
    """Tensor name -> shape of every graph input and output, ``"B"`` the dynamic batch axis."""
    k, w = contract.num_anchors, contract.waypoints
    return {
        **contract.input_shapes,
        "scores": (BATCH_AXIS, k), "traj_m": (BATCH_AXIS, k, w, 3),
        "speed_mps": (BATCH_AXIS, k), "traj_norm": (BATCH_AXIS, k, w, 2),
        "gaussian": (BATCH_AXIS, k, w, 3),
    }


def declare_output_shapes(proto: onnx.ModelProto, contract: PolicyContract) -> None:
    """Give the outputs the contract's static K and W sizes where the tracer left symbols.

    The tracer names some output dims symbolically (e.g. after a Squeeze); declaring the
    sizes lets readers see them, and ``onnx.checker``'s strict shape inference then verifies
    them against the graph.
    """
    shapes = contract_shapes(contract)
    for value in proto.graph.output:
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(list(dims)[1:], shapes.get(value.name, ())[1:], strict=False):
            if not dim.HasField("dim_value"):
                dim.dim_value = int(size)


def check_graph_interface(proto: onnx.ModelProto, contract: PolicyContract) -> None:
    """Check names, element types and shapes of the graph's inputs/outputs against ``contract``.

    Inputs must be :data:`INPUT_NAMES`, outputs :data:`OUTPUT_NAMES`, with the shapes of
    :func:`contract_shapes` (axis 0 the dynamic ``B``) and the precision's element type.

    Raises:
        ExportError: naming the first tensor that does not match.
    """
    expected = contract_shapes(contract)
    elem_type = _ELEM_TYPES[contract.precision]
    for kind, values, names in (("input", proto.graph.input, INPUT_NAMES),
                                ("output", proto.graph.output, OUTPUT_NAMES)):
        found = tuple(v.name for v in values)
        if found != names:
            raise ExportError(f"graph {kind}s are {found}, the contract expects {names}")
        for value in values:
            tensor = value.type.tensor_type
            dims = tuple(d.dim_param or d.dim_value for d in tensor.shape.dim)
            if dims != expected[value.name] or tensor.elem_type != elem_type:
                raise ExportError(
                    f"graph {kind} {value.name!r}: shape {dims} of element type "
                    f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}, the contract expects "
                    f"{expected[value.name]} of {onnx.TensorProto.DataType.Name(elem_type)}"
                )


def check_out_path(out: Path) -> Path:
    """``out`` as a :class:`Path`; raises :class:`ExportError` when it is an existing folder."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out}: is a folder, expected a .onnx file path")
    return out


def write_atomic(data: bytes, out: Path) -> Path:
    """Write ``data`` to ``out`` through a temporary file in the same folder + :func:`os.replace`.

    On any failure the temporary file is removed and an existing ``out`` is left unchanged.

    Raises:
        ExportError: ``out`` is a folder or cannot be written.
    """
    out = check_out_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out, data)
    except OSError as exc:
        raise ExportError(f"--out {out}: writing failed ({exc})") from exc
    return out


def export_network(
    model: S2EPolicyNet,
    out: Path,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    embodiment: str | Path = DEFAULT_EMBODIMENT,
    train_config: TrainConfig | None = None,
    checkpoint_step: int = 0,
    git_commit: str | None = None,
    train_command: str = "",
) -> PolicyContract:
    """Export an in-memory network to ``out`` (see the module docstring); returns its contract.

    Args:
        model: the network (any device; not modified).
        out: destination ``.onnx`` path (its folder is created; replaced atomically).
        fp16: export float16 weights, inputs and outputs (contract precision ``fp16``).
        opset: ONNX opset of the graph.
        embodiment: packaged embodiment name or YAML path whose limits the contract records.
        train_config: the training configuration, or ``None`` (see :func:`build_contract`).
        checkpoint_step: optimiser steps the network was trained for.
        git_commit: commit of the training code, or ``None``.
        train_command: the command line that trained it, or ``""``.

    Raises:
        ExportError, EmbodimentError, ContractError: see :func:`to_onnx`, :func:`build_contract`.
    """
    check_out_path(out)
    contract = build_contract(
        model, precision="fp16" if fp16 else "fp32", embodiment=embodiment,
        train_config=train_config, checkpoint_step=checkpoint_step, git_commit=git_commit,
        train_command=train_command,
    )
    proto = to_onnx(model, contract, opset)
    write_atomic(proto.SerializeToString(), out)
    return contract


def export_onnx(
    checkpoint: Path,
    out: Path,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    embodiment: str | Path = DEFAULT_EMBODIMENT,
    train_command: str = "",
) -> PolicyContract:
    """Export a pretraining checkpoint (file or run folder) to ``out``; returns its contract.

    The contract records the checkpoint's training config (and its SHA-256), step and
    training commit; ``train_command`` is recorded as given (checkpoints do not store it).

    Raises:
        CheckpointError: missing/corrupt checkpoint. See also :func:`export_network`.
    """
    source = load_export_source(checkpoint)
    return export_network(
        source.model, out, fp16=fp16, opset=opset, embodiment=embodiment,
        train_config=source.train_config, checkpoint_step=source.checkpoint_step,
        git_commit=source.git_commit, train_command=train_command,
    )

