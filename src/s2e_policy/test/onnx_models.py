"""Real ONNX policy graphs for tests, built with ``onnx.helper`` (no torch).

:func:`build_policy` writes a contract-version-1 graph whose outputs are analytic functions
of its inputs, so tests can compute the expected outputs by hand:

* ``scores = goal[:, 1:3] @ goal_weights + score_bias + frame_weight * mean(frames)``;
* ``speed_mps = speed`` (per mode), ``traj_norm = traj_norm`` (per mode), broadcast over the
  batch; ``traj_m[..., :2] = traj_norm * speed_mps * waypoint_dt_s`` and ``traj_m[..., 2] =
  heading``; ``gaussian = 0``.

:func:`goal_seeker` is the useful special case: K straight rays fanned over headings
``h_k`` whose scores are ``sharpness * cos(theta_goal - h_k)``, so the best mode is the ray
closest to the goal bearing. The other helpers make broken files for error tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from s2e_policy.contract import CONTRACT_VERSION, METADATA_PREFIX, PolicyContract

OPSET = 17
IR_VERSION = 8  # read by every onnxruntime >= 1.10
TEST_EMBODIMENT = {"name": "wheeled", "kind": "diff_drive", "max_linear_mps": 2.0,
                   "max_lateral_mps": 0.0, "max_angular_radps": 2.0, "nominal_speed_mps": 1.2}


def ray_fan(num_modes: int, waypoints: int, max_heading_rad: float) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Straight rays: headings ``(K,)`` in ``[-max, max]`` and ``traj_norm (K, W, 2)``.

    Waypoint ``w`` of ray ``k`` is ``(w + 1) * (cos h_k, sin h_k)`` (unit speed-normalised
    steps).
    """
    headings = np.linspace(-max_heading_rad, max_heading_rad, num_modes)
    steps = np.arange(1, waypoints + 1, dtype=np.float64)
    traj = np.stack([np.cos(headings)[:, None] * steps, np.sin(headings)[:, None] * steps],
                    axis=-1)
    return headings, traj.astype(np.float32)


def make_contract(num_modes: int = 7, waypoints: int = 5, context_frames: int = 3,
                  image_size: int = 16, frame_rate_hz: float = 4.0, waypoint_dt_s: float = 0.25,
                  max_heading_rad: float = 1.2, **overrides) -> PolicyContract:
    """A small valid contract whose anchors are :func:`ray_fan`."""
    _, anchors = ray_fan(num_modes, waypoints, max_heading_rad)
    values = dict(image_size=image_size, context_frames=context_frames,
                  frame_rate_hz=frame_rate_hz, num_anchors=num_modes, waypoints=waypoints,
                  waypoint_scale_m=0.25, waypoint_dt_s=waypoint_dt_s, anchors=anchors,
                  anchor_kind="uniform", embodiment=dict(TEST_EMBODIMENT), model_config={},
                  train_config_sha256="0" * 64, producer="s2e_policy test/onnx_models.py")
    values.update(overrides)
    return PolicyContract(**values)


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def build_policy(contract: PolicyContract, traj_norm: np.ndarray, speed: np.ndarray,
                 heading: np.ndarray | None = None, goal_weights: np.ndarray | None = None,
                 score_bias: np.ndarray | None = None, frame_weight: float = 0.0,
                 metadata: dict[str, str] | None = None,
                 input_names: tuple[str, str] = ("frames", "goal"),
                 frames_shape: tuple | None = None) -> onnx.ModelProto:
    """A policy graph with the given per-mode outputs (see the module docstring).

    Args:
        contract: the contract written into the metadata (and giving K, W, T, S, dt).
        traj_norm: ``(K, W, 2)`` speed-normalised trajectories of every mode.
        speed: ``(K,)`` speed of every mode (m/s).
        heading: ``(K, W)`` headings (rad); default: direction of each segment.
        goal_weights: ``(2, K)`` weights of ``(cos, sin)`` of the goal bearing in the scores.
        score_bias: ``(K,)`` constant logits.
        frame_weight: weight of the mean frame value in every score.
        metadata: ``metadata_props`` (default: the contract's).
        input_names: graph input names (to build a graph that disagrees with its contract).
        frames_shape: declared shape of the frames input (default: the contract's).

    With ``contract.precision == "fp16"`` the graph's inputs and outputs are float16 (the
    arithmetic inside stays float32, between Cast nodes).
    """
    k, w = contract.num_anchors, contract.waypoints
    traj_norm = np.asarray(traj_norm, dtype=np.float32).reshape(k, w, 2)
    if heading is None:
        pts = np.concatenate([np.zeros((k, 1, 2), np.float32), traj_norm], axis=1)
        d = np.diff(pts, axis=1)
        heading = np.arctan2(d[..., 1], d[..., 0])
    goal_weights = np.zeros((2, k)) if goal_weights is None else goal_weights
    score_bias = np.zeros(k) if score_bias is None else score_bias
    frames_in, goal_in = input_names
    fp16 = contract.precision == "fp16"
    element = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    frames_name, goal_name = (f"{frames_in}_f32", f"{goal_in}_f32") if fp16 else input_names
    out = {n: f"{n}_f32" if fp16 else n
           for n in ("scores", "traj_m", "speed_mps", "traj_norm", "gaussian")}
    inits = [
        _const("goal_weights", goal_weights), _const("score_bias", np.reshape(score_bias, (1, k))),
        _const("frame_weight", [frame_weight]), _const("zero", [0.0]),
        _const("speed_row", np.reshape(speed, (1, k))),
        _const("traj_norm_k", traj_norm[None]),
        _const("heading_k", np.reshape(heading, (1, k, w, 1))),
        _const("gaussian_k", np.zeros((1, k, w, 3))),
        _const("dt", [contract.waypoint_dt_s]),
        numpy_helper.from_array(np.array([1], np.int64), "i1"),
        numpy_helper.from_array(np.array([3], np.int64), "i3"),
        numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "shape_b111"),
        numpy_helper.from_array(np.array([-1, k, 1, 1], np.int64), "shape_bk11"),
    ]
    casts_in = [helper.make_node("Cast", [frames_in], [frames_name], to=TensorProto.FLOAT),
                helper.make_node("Cast", [goal_in], [goal_name], to=TensorProto.FLOAT)]
    casts_out = [helper.make_node("Cast", [internal], [name], to=TensorProto.FLOAT16)
                 for name, internal in out.items()]
    nodes = [
        helper.make_node("ReduceMean", [frames_name], ["fm5"], axes=[1, 2, 3, 4], keepdims=1),
        helper.make_node("Flatten", ["fm5"], ["fm"], axis=1),                  # (B, 1)
        helper.make_node("Mul", ["fm", "zero"], ["zb"]),                       # (B, 1) zeros
        helper.make_node("Reshape", ["zb", "shape_b111"], ["zb4"]),            # (B,1,1,1)
        helper.make_node("Slice", [goal_name, "i1", "i3", "i1"], ["goal_cs"]),  # (B, 2)
        helper.make_node("MatMul", ["goal_cs", "goal_weights"], ["s_goal"]),
        helper.make_node("Mul", ["fm", "frame_weight"], ["s_frames"]),
        helper.make_node("Add", ["s_goal", "s_frames"], ["s_sum"]),
        helper.make_node("Add", ["s_sum", "score_bias"], [out["scores"]]),
        helper.make_node("Add", ["zb", "speed_row"], [out["speed_mps"]]),
        helper.make_node("Add", ["zb4", "traj_norm_k"], [out["traj_norm"]]),
        helper.make_node("Reshape", [out["speed_mps"], "shape_bk11"], ["speed4"]),
        helper.make_node("Mul", ["speed4", "dt"], ["step_m"]),
        helper.make_node("Mul", [out["traj_norm"], "step_m"], ["xy_m"]),
        helper.make_node("Add", ["zb4", "heading_k"], ["heading"]),
        helper.make_node("Concat", ["xy_m", "heading"], [out["traj_m"]], axis=-1),
        helper.make_node("Add", ["zb4", "gaussian_k"], [out["gaussian"]]),
    ]
    if fp16:
        nodes = casts_in + nodes + casts_out
    s, t = contract.image_size, contract.context_frames
    frames_shape = frames_shape or ("B", t, 3, s, s)
    inputs = [helper.make_tensor_value_info(frames_in, element, list(frames_shape)),
              helper.make_tensor_value_info(goal_in, element, ["B", 3])]
    outputs = [
        helper.make_tensor_value_info("scores", element, ["B", k]),
        helper.make_tensor_value_info("traj_m", element, ["B", k, w, 3]),
        helper.make_tensor_value_info("speed_mps", element, ["B", k]),
        helper.make_tensor_value_info("traj_norm", element, ["B", k, w, 2]),
        helper.make_tensor_value_info("gaussian", element, ["B", k, w, 3]),
    ]
    graph = helper.make_graph(nodes, "s2e_test_policy", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="s2e_policy-tests")
    model.ir_version = IR_VERSION
    props = contract.to_metadata() if metadata is None else metadata
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def goal_seeker(contract: PolicyContract | None = None, speed_mps: float = 1.0,
                sharpness: float = 8.0, frame_weight: float = 0.0,
                max_heading_rad: float = 1.2, **build_kw) -> onnx.ModelProto:
    """K rays over ``[-max_heading_rad, max_heading_rad]``; the ray nearest the goal wins.

    ``scores_k = sharpness * cos(theta_goal - h_k) + frame_weight * mean(frames)``; every
    mode moves at ``speed_mps``.
    """
    contract = contract or make_contract(max_heading_rad=max_heading_rad)
    headings, traj = ray_fan(contract.num_anchors, contract.waypoints, max_heading_rad)
    weights = sharpness * np.stack([np.cos(headings), np.sin(headings)])
    heading = np.repeat(headings[:, None], contract.waypoints, axis=1)
    return build_policy(contract, traj, np.full(contract.num_anchors, speed_mps), heading,
                        goal_weights=weights, frame_weight=frame_weight, **build_kw)


def newer_version_metadata(contract: PolicyContract) -> dict[str, str]:
    """The contract's metadata claiming the version after :data:`CONTRACT_VERSION`."""
    props = contract.to_metadata()
    props[METADATA_PREFIX + "version"] = str(CONTRACT_VERSION + 1)
    return props


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` to ``path`` and return the path."""
    path.write_bytes(model.SerializeToString())
    return path
