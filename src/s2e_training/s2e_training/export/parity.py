"""Torch vs ONNX Runtime parity of an exported policy: max abs error per contract output.

The reference is always the float32 torch network (:class:`.onnx_export.PolicyGraph`); an
fp16 file is fed its inputs cast to float16 and its outputs are compared as float32, so the
figures measure what the float16 export costs against the trained network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from s2e_policy.contract import INPUT_NAMES, OUTPUT_NAMES
from s2e_training.export.onnx_export import PolicyGraph
from s2e_training.model.network import S2EPolicyNet

CPU_PROVIDERS = ("CPUExecutionProvider",)
_ORT_LOG_ERRORS_ONLY = 3
_FP16_TYPE = "tensor(float16)"


def open_session(model: Path | bytes, providers: Sequence[str] = CPU_PROVIDERS
                 ) -> ort.InferenceSession:
    """An ONNX Runtime session on ``model`` (a path or serialised bytes), warnings muted."""
    options = ort.SessionOptions()
    options.log_severity_level = _ORT_LOG_ERRORS_ONLY
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=list(providers))


def onnx_outputs(session: ort.InferenceSession, frames: np.ndarray, goal: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Run the policy file: frames (B,T,3,S,S), goal (B,3) -> outputs by name, as float32.

    Inputs are cast to the graph's element type (float16 for fp16 files).
    """
    fp16 = session.get_inputs()[0].type == _FP16_TYPE
    dtype = np.float16 if fp16 else np.float32
    feed = {name: np.asarray(x, dtype=dtype) for name, x in zip(INPUT_NAMES, (frames, goal),
                                                                   strict=True)}
    values = session.run(list(OUTPUT_NAMES), feed)
    return {name: v.astype(np.float32) for name, v in zip(OUTPUT_NAMES, values, strict=True)}


def torch_outputs(model: S2EPolicyNet, frames: np.ndarray, goal: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """The float32 torch network's contract outputs by name (CPU, eval mode, no grad)."""
    graph = PolicyGraph(model).eval()
    with torch.inference_mode():
        values = graph(torch.as_tensor(frames, dtype=torch.float32),
                       torch.as_tensor(goal, dtype=torch.float32))
    return {name: v.float().numpy() for name, v in zip(OUTPUT_NAMES, values, strict=True)}


def max_abs_errors(model: S2EPolicyNet, session: ort.InferenceSession, frames: np.ndarray,
                   goal: np.ndarray) -> dict[str, float]:
    """Max abs difference, per output name, between ONNX Runtime and the torch network.

    Args:
        model: the float32 torch network the file was exported from (CPU).
        session: a session on the exported file (:func:`open_session`).
        frames: (B, T, 3, S, S) float32 RGB in [0, 1].
        goal: (B, 3) float32 encoded goal.
    """
    got = onnx_outputs(session, frames, goal)
    ref = torch_outputs(model, frames, goal)
    return {name: float(np.max(np.abs(got[name] - ref[name]))) for name in OUTPUT_NAMES}
