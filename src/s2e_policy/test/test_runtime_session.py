"""PolicyRuntime: loading, contract checks, providers, inference against hand-computed outputs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from s2e_policy.contract import ContractError
from s2e_policy.errors import S2EError
from s2e_policy.geometry import encode_goal
from s2e_policy.runtime import PolicyFileError, PolicyRuntime, select_providers
from s2e_policy.runtime.session import PROVIDER_PREFERENCE, session_options

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_models as om


@pytest.fixture(scope="module")
def seeker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return om.save(om.goal_seeker(speed_mps=1.5, frame_weight=0.5),
                   tmp_path_factory.mktemp("onnx") / "seeker.onnx")


def test_loads_logs_provider_and_matches_hand_computed_outputs(seeker_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="s2e_policy.runtime"):
        runtime = PolicyRuntime.from_file(seeker_path)
    assert runtime.provider == "CPUExecutionProvider"
    assert any("CPUExecutionProvider" in r.getMessage() for r in caplog.records)
    c = runtime.contract
    assert (c.num_anchors, c.waypoints, c.context_frames, c.image_size) == (7, 5, 3, 16)
    frames = np.full((3, 3, 16, 16), 0.25, np.float32)
    goal_xy = np.array([2.0, -1.0])
    pred = runtime.run(frames, encode_goal(goal_xy))
    headings, traj = om.ray_fan(7, 5, 1.2)
    bearing = np.arctan2(goal_xy[1], goal_xy[0])
    expected_scores = 8.0 * np.cos(bearing - headings) + 0.5 * 0.25
    np.testing.assert_allclose(pred.scores[0], expected_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pred.traj_norm[0], traj, atol=1e-6)
    np.testing.assert_allclose(pred.traj_m[0, ..., :2], traj * 1.5 * c.waypoint_dt_s, atol=1e-6)
    np.testing.assert_allclose(pred.traj_m[0, ..., 2], np.repeat(headings[:, None], 5, 1),
                               atol=1e-6)
    np.testing.assert_allclose(pred.speed_mps, 1.5)
    assert pred.gaussian.shape == (1, 7, 5, 3) and pred.latency_s > 0
    # The contract's scaling rule holds for the graph's outputs.
    np.testing.assert_allclose(c.trajectory_at_speed(pred.traj_norm[0], pred.speed_mps[0]),
                               pred.traj_m[0, ..., :2], atol=1e-6)


def test_batched_run_and_frames_are_real_inputs(seeker_path) -> None:
    runtime = PolicyRuntime.from_file(seeker_path, warm_up=False)
    frames = np.stack([np.zeros((3, 3, 16, 16), np.float32), np.ones((3, 3, 16, 16), np.float32)])
    goal = np.stack([encode_goal(np.array([1.0, 0.0]))] * 2)
    pred = runtime.run(frames, goal)
    assert pred.scores.shape == (2, 7)
    np.testing.assert_allclose(pred.scores[1] - pred.scores[0], 0.5, atol=1e-5)


def test_run_rejects_wrong_shapes_and_non_finite_inputs(seeker_path) -> None:
    runtime = PolicyRuntime.from_file(seeker_path)
    goal = encode_goal(np.array([1.0, 0.0]))
    with pytest.raises(S2EError, match=r"expected frames \(B, 3, 3, 16, 16\)"):
        runtime.run(np.zeros((3, 3, 32, 32), np.float32), goal)
    with pytest.raises(S2EError, match="goal"):
        runtime.run(np.zeros((3, 3, 16, 16), np.float32), goal[:2])
    with pytest.raises(S2EError, match="goal must be finite"):
        runtime.run(np.zeros((3, 3, 16, 16), np.float32), np.array([np.nan, 1.0, 0.0]))


def test_provider_preference_and_override(monkeypatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: [
        "CPUExecutionProvider", "AzureExecutionProvider", "CUDAExecutionProvider",
        "TensorrtExecutionProvider"])
    assert select_providers() == list(PROVIDER_PREFERENCE)
    assert select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["AzureExecutionProvider", "CPUExecutionProvider"])
    assert select_providers() == ["CPUExecutionProvider"]
    with pytest.raises(PolicyFileError, match=r"CUDAExecutionProvider.*not available"):
        select_providers(["CUDAExecutionProvider"])
    with pytest.raises(PolicyFileError, match="empty"):
        select_providers([])


def test_session_options() -> None:
    options = session_options(2)
    assert options.intra_op_num_threads == 2
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with pytest.raises(PolicyFileError, match="intra_op_threads"):
        session_options(-1)


def test_explicit_cpu_provider_and_threads(seeker_path) -> None:
    runtime = PolicyRuntime.from_file(seeker_path, providers=["CPUExecutionProvider"],
                                      intra_op_threads=1)
    assert runtime.provider == "CPUExecutionProvider"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    contract = om.make_contract()
    good = om.goal_seeker(contract).SerializeToString()
    with pytest.raises(PolicyFileError, match="not found"):
        PolicyRuntime.from_file(tmp_path / "missing.onnx")
    truncated = _write(tmp_path, "truncated.onnx", good[: len(good) // 2])
    with pytest.raises(PolicyFileError, match=r"truncated\.onnx: not a loadable ONNX model"):
        PolicyRuntime.from_file(truncated)
    noise = _write(tmp_path, "noise.onnx", np.random.default_rng(0).bytes(4096))
    with pytest.raises(PolicyFileError, match="not a loadable ONNX model"):
        PolicyRuntime.from_file(noise)
    empty = _write(tmp_path, "empty.onnx", b"")
    with pytest.raises(S2EError, match=r"empty\.onnx"):
        PolicyRuntime.from_file(empty)


def test_missing_or_newer_contract_is_refused(tmp_path: Path) -> None:
    contract = om.make_contract()
    bare = om.save(om.goal_seeker(contract, metadata={"author": "someone"}),
                   tmp_path / "bare.onnx")
    with pytest.raises(ContractError, match=r"bare\.onnx: no S2E policy contract.*author"):
        PolicyRuntime.from_file(bare)
    newer = om.save(om.goal_seeker(contract, metadata=om.newer_version_metadata(contract)),
                    tmp_path / "newer.onnx")
    with pytest.raises(ContractError, match="newer than this runtime supports"):
        PolicyRuntime.from_file(newer)


def test_graph_that_disagrees_with_its_contract_is_refused(tmp_path: Path) -> None:
    contract = om.make_contract()
    wrong_size = om.save(om.goal_seeker(contract, frames_shape=("B", 3, 3, 24, 24)),
                         tmp_path / "size.onnx")
    with pytest.raises(PolicyFileError, match=r"input 'frames'.*\[.B., 3, 3, 16, 16\]"):
        PolicyRuntime.from_file(wrong_size)
    renamed = om.save(om.goal_seeker(contract, input_names=("frames", "goal_vec")),
                      tmp_path / "names.onnx")
    with pytest.raises(PolicyFileError, match=r"graph inputs.*goal_vec"):
        PolicyRuntime.from_file(renamed)
    # Graph built for 5 modes, contract claiming 7: static output dims disagree.
    five = om.make_contract(num_modes=5)
    mismatch = om.save(om.goal_seeker(five, metadata=contract.to_metadata()),
                       tmp_path / "modes.onnx")
    with pytest.raises(PolicyFileError, match="output 'scores'"):
        PolicyRuntime.from_file(mismatch)


def test_fp16_policy_gets_float16_inputs_and_float32_outputs(tmp_path: Path) -> None:
    contract = om.make_contract(precision="fp16")
    runtime = PolicyRuntime.from_file(om.save(om.goal_seeker(contract), tmp_path / "h.onnx"))
    goal_xy = np.array([1.0, 1.0])
    pred = runtime.run(np.zeros((3, 3, 16, 16), np.float32), encode_goal(goal_xy))
    headings, _ = om.ray_fan(7, 5, 1.2)
    assert pred.scores.dtype == np.float32
    np.testing.assert_allclose(pred.scores[0], 8.0 * np.cos(np.pi / 4 - headings), atol=2e-2)
    # A float32 graph whose contract claims fp16 is refused.
    lying = om.save(om.goal_seeker(om.make_contract(), metadata=contract.to_metadata()),
                    tmp_path / "lying.onnx")
    with pytest.raises(PolicyFileError, match=r"tensor\(float\).*expects tensor\(float16\)"):
        PolicyRuntime.from_file(lying)
