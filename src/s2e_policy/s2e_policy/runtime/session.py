"""Load one exported policy file and run it with ONNX Runtime (numpy in, numpy out).

:meth:`PolicyRuntime.from_file` reads the file's contract (:mod:`s2e_policy.contract`),
refuses files without one or with a newer version, checks that the graph's inputs and outputs
agree with the contract, picks the best available execution provider (TensorRT, then CUDA,
then CPU; ``providers=`` overrides), logs the one actually in use on the
``s2e_policy.runtime`` logger and runs one warm-up inference so the first real step does not
pay for lazy initialisation.

Shapes (contract version 1; B batch, T frames, S image side, K modes, W waypoints):
``frames`` ``(B, T, 3, S, S)`` and ``goal`` ``(B, 3)`` in; ``scores`` ``(B, K)``,
``traj_m`` ``(B, K, W, 3)``, ``speed_mps`` ``(B, K)``, ``traj_norm`` ``(B, K, W, 2)`` and
``gaussian`` ``(B, K, W, 3)`` out. Robot frame at the decision instant (REP-103).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from s2e_policy.contract import INPUT_NAMES, OUTPUT_NAMES, PolicyContract
from s2e_policy.errors import S2EError

log = logging.getLogger("s2e_policy.runtime")

PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
"""Execution providers in the order the runtime prefers them (the first available wins)."""

ONNX_ELEMENT_TYPES = {"fp32": "tensor(float)", "fp16": "tensor(float16)"}
"""ONNX Runtime's name of the input/output element type of each contract precision."""

NUMPY_DTYPES = {"fp32": np.float32, "fp16": np.float16}
"""numpy dtype fed to the graph for each contract precision."""

ORT_LOAD_ERRORS = (ort_state.InvalidProtobuf, ort_state.InvalidGraph, ort_state.Fail,
                   ort_state.InvalidArgument, ort_state.NotImplemented,
                   ort_state.RuntimeException, ort_state.EPFail, RuntimeError, ValueError)
"""What ``ort.InferenceSession`` raises for bytes it cannot load (corrupt, truncated, bad
graph, an operator or provider that cannot run it)."""

ORT_SEVERITY_ERROR = 3
"""ONNX Runtime log severity that reports errors only (0 verbose ... 4 fatal)."""


class PolicyFileError(S2EError):
    """A policy file is missing, not a loadable ONNX model, or disagrees with its contract."""


@dataclass(frozen=True)
class PolicyPrediction:
    """The graph's outputs for one batch, as float32 numpy arrays (batch axis first).

    Attributes:
        scores: ``(B, K)`` mode logits (softmax gives mode probabilities).
        traj_m: ``(B, K, W, 3)`` ``(x m, y m, heading rad)`` in the robot frame at the
            decision instant (REP-103: x forward, y left); waypoint ``w`` at ``(w+1) * dt``.
        speed_mps: ``(B, K)`` predicted mean speed of each mode (m/s).
        traj_norm: ``(B, K, W, 2)`` speed-normalised trajectories.
        gaussian: ``(B, K, W, 3)`` ``log sigma_x, log sigma_y, rho`` over ``traj_norm``.
        latency_s: wall time of the ``InferenceSession.run`` call (seconds).
    """

    scores: np.ndarray
    traj_m: np.ndarray
    speed_mps: np.ndarray
    traj_norm: np.ndarray
    gaussian: np.ndarray
    latency_s: float


def select_providers(requested: Sequence[str] | None = None) -> list[str]:
    """Execution providers to create a session with, best first.

    Args:
        requested: explicit provider names (used as given, in order), or ``None`` for every
            available provider of :data:`PROVIDER_PREFERENCE` in that order.

    Raises:
        PolicyFileError: a requested provider is not available in this onnxruntime build.
    """
    available = ort.get_available_providers()
    if requested is None:
        chosen = [p for p in PROVIDER_PREFERENCE if p in available]
        return chosen or list(available)
    requested = list(requested)
    missing = [p for p in requested if p not in available]
    if not requested or missing:
        raise PolicyFileError(
            f"providers: {missing or 'an empty list'} not available in this onnxruntime "
            f"build; available: {available}"
        )
    return requested


def session_options(intra_op_threads: int = 0) -> ort.SessionOptions:
    """Session options of the runtime: all graph optimisations, sequential execution.

    Args:
        intra_op_threads: threads inside one operator (0 lets ONNX Runtime choose, one per
            physical core).
    """
    if int(intra_op_threads) < 0:
        raise PolicyFileError(f"intra_op_threads: expected >= 0, got {intra_op_threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = int(intra_op_threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = ORT_SEVERITY_ERROR
    return options


class PolicyRuntime:
    """An ONNX Runtime session of one policy file plus its contract.

    Build it with :meth:`from_file`. :meth:`run` takes preprocessed context frames and an
    encoded goal and returns a :class:`PolicyPrediction`.

    Attributes:
        contract: the file's :class:`~s2e_policy.contract.PolicyContract`.
        source: the file path (for messages).
        provider: the execution provider actually in use.
    """

    def __init__(self, session: ort.InferenceSession, contract: PolicyContract,
                 source: str) -> None:
        self.session = session
        self.contract = contract
        self.source = source
        self.provider: str = session.get_providers()[0]
        self._dtype = NUMPY_DTYPES[contract.precision]
        _check_graph(session, contract, source)

    @classmethod
    def from_file(cls, path: str | Path, providers: Sequence[str] | None = None,
                  intra_op_threads: int = 0, warm_up: bool = True) -> PolicyRuntime:
        """Load a policy file, validate it against its contract and warm it up.

        Args:
            path: the ``.onnx`` file written by ``s2e export``.
            providers: execution providers in order of preference (``None``: TensorRT ->
                CUDA -> CPU, whichever this onnxruntime build has).
            intra_op_threads: threads inside one operator (0: ONNX Runtime's default).
            warm_up: run one inference on zero inputs at load (also checks output shapes).

        Raises:
            PolicyFileError: missing/unreadable file, not an ONNX model, unavailable
                provider, or a graph that disagrees with its contract.
            ContractError: no contract in the metadata, a newer version, or a bad key.
        """
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise PolicyFileError(f"{source}: policy file not found")
        chosen = select_providers(providers)
        options = session_options(intra_op_threads)
        try:
            session = ort.InferenceSession(path.read_bytes(), sess_options=options,
                                           providers=chosen)
        except ORT_LOAD_ERRORS as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PolicyFileError(
                f"{source}: not a loadable ONNX model (truncated or corrupt file?): {first}"
            ) from None
        props = session.get_modelmeta().custom_metadata_map
        contract = PolicyContract.from_metadata(props, source=source)
        runtime = cls(session, contract, source)
        log.info("%s: policy loaded on %s (providers tried: %s)", source, runtime.provider,
                 ", ".join(chosen))
        if warm_up:
            runtime.warm_up()
        return runtime

    def warm_up(self) -> PolicyPrediction:
        """Run one inference on zero frames and a goal straight ahead; check output shapes."""
        c = self.contract
        frames = np.zeros((c.context_frames, 3, c.image_size, c.image_size), np.float32)
        goal = np.array([1.0 / c.goal_max_distance_m, 1.0, 0.0], np.float32)
        prediction = self.run(frames, goal)
        log.debug("%s: warm-up inference took %.1f ms", self.source,
                  prediction.latency_s * 1e3)
        return prediction

    def run(self, frames: np.ndarray, goal: np.ndarray) -> PolicyPrediction:
        """Run the policy.

        Args:
            frames: float32 ``(T, 3, S, S)`` or ``(B, T, 3, S, S)`` RGB in ``[0, 1]``, oldest
                frame first (:class:`~s2e_policy.runtime.frames.FrameBuffer`).
            goal: float32 ``(3,)`` or ``(B, 3)`` encoded goal
                (:func:`s2e_policy.geometry.encode_goal`).

        Returns:
            The outputs with a batch axis (``B = 1`` for unbatched inputs).

        Frames are not scanned for NaN (a full scan costs about a millisecond at the paper's
        size): :func:`~s2e_policy.preprocess.preprocess_image` only yields values in [0, 1].

        Raises:
            S2EError: inputs of the wrong shape, or a non-finite goal.
        """
        c = self.contract
        frames = np.asarray(frames)
        goal = np.asarray(goal)
        if frames.ndim == 4:
            frames = frames[None]
        if goal.ndim == 1:
            goal = goal[None]
        frame_shape = (c.context_frames, 3, c.image_size, c.image_size)
        if frames.shape[1:] != frame_shape or goal.shape != (frames.shape[0], 3):
            raise S2EError(
                f"{self.source}: expected frames (B, {', '.join(map(str, frame_shape))}) and "
                f"goal (B, 3), got {frames.shape} and {goal.shape}"
            )
        if not np.isfinite(goal).all():
            raise S2EError(f"{self.source}: goal must be finite, got {goal.tolist()}")
        feeds = {"frames": frames.astype(self._dtype, copy=False),
                 "goal": goal.astype(self._dtype, copy=False)}
        start = time.perf_counter()
        outputs = self.session.run(list(OUTPUT_NAMES), feeds)
        latency = time.perf_counter() - start
        arrays = {name: np.asarray(value, dtype=np.float32)
                  for name, value in zip(OUTPUT_NAMES, outputs, strict=True)}
        _check_output_shapes(arrays, c, frames.shape[0], self.source)
        return PolicyPrediction(latency_s=latency, **arrays)


def _expected_output_shapes(c: PolicyContract, batch: int | str) -> dict[str, tuple]:
    k, w = c.num_anchors, c.waypoints
    return {"scores": (batch, k), "traj_m": (batch, k, w, 3), "speed_mps": (batch, k),
            "traj_norm": (batch, k, w, 2), "gaussian": (batch, k, w, 3)}


def _dims_agree(graph_shape: Sequence, expected: Sequence) -> bool:
    """Static graph dims must equal the expected ones; symbolic (str/None) dims are free."""
    if len(graph_shape) != len(expected):
        return False
    return all(not isinstance(g, int) or not isinstance(e, int) or g == e
               for g, e in zip(graph_shape, expected, strict=True))


def _check_graph(session: ort.InferenceSession, c: PolicyContract, source: str) -> None:
    """Input/output names, element types and static dims against the contract."""
    element = ONNX_ELEMENT_TYPES[c.precision]
    inputs = {i.name: i for i in session.get_inputs()}
    if set(inputs) != set(INPUT_NAMES):
        raise PolicyFileError(f"{source}: graph inputs {sorted(inputs)} do not match the "
                              f"contract's {list(INPUT_NAMES)}")
    for name, shape in c.input_shapes.items():
        node = inputs[name]
        if not _dims_agree(node.shape, shape) or node.type != element:
            raise PolicyFileError(
                f"{source}: graph input {name!r} is {node.type} {list(node.shape)}; its "
                f"contract expects {element} {list(shape)}"
            )
    outputs = {o.name: o for o in session.get_outputs()}
    missing = [n for n in OUTPUT_NAMES if n not in outputs]
    if missing:
        raise PolicyFileError(f"{source}: graph lacks the contract's output(s) {missing} "
                              f"(has {sorted(outputs)})")
    for name, shape in _expected_output_shapes(c, "B").items():
        node = outputs[name]
        if not _dims_agree(node.shape, shape) or node.type != element:
            raise PolicyFileError(
                f"{source}: graph output {name!r} is {node.type} {list(node.shape)}; its "
                f"contract expects {element} {list(shape)}"
            )


def _check_output_shapes(arrays: dict[str, np.ndarray], c: PolicyContract, batch: int,
                         source: str) -> None:
    for name, shape in _expected_output_shapes(c, batch).items():
        if arrays[name].shape != shape:
            raise PolicyFileError(f"{source}: output {name!r} has shape {arrays[name].shape}; "
                                  f"its contract expects {shape}")


__all__ = ["PolicyFileError", "PolicyPrediction", "PolicyRuntime",
           "select_providers", "session_options"]
