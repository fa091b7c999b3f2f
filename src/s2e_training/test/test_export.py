"""ONNX export: contract in the file, dynamic batch, torch/ORT parity, CLI, bad input, atomicity."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from s2e_policy.cli import main
from s2e_policy.contract import INPUT_NAMES, OUTPUT_NAMES, PolicyContract
from s2e_policy.errors import S2EError
from s2e_policy.geometry import encode_goal, world_to_robot
from s2e_policy.preprocess import preprocess_image
from s2e_training.data.gnm import load_frame, read_traj_data
from s2e_training.export import (
    ExportError,
    export_network,
    export_onnx,
    max_abs_errors,
    onnx_export,
    open_session,
    random_inputs,
)
from s2e_training.export.settings import DEFAULT_OPSET, FP16_PARITY_ATOL, FP32_PARITY_ATOL
from s2e_training.model.anchors import build_anchors
from s2e_training.train import TrainConfig, load_checkpoint, save_checkpoint
from s2e_training.train.checkpoint import build_model
from s2e_training.train.pretraining import make_optimizer

CONTEXT_DT_S = 0.2
TINY = {
    "model": {
        "preset": "small", "image_size": 32, "context_frames": 3, "num_anchors": 6,
        "waypoints": 4, "d_model": 32, "heads": 4, "fusion_layers": 1, "decoder_layers": 1,
        "ffn_dim": 64, "encoder": {"kind": "cnn", "channels": [8, 16]},
        "waypoint_dt_s": CONTEXT_DT_S, "anchor_kind": "uniform",
    },
    "data": {"goal_min_s": 0.4, "goal_max_s": 2.0},
    "augment": None,
    "loss": {"mode": "agdm"},
    "optim": {"lr": 1.0e-3, "weight_decay": 0.01, "grad_clip_norm": 1.0},
    "steps": 2, "batch_size": 2, "num_workers": 0, "checkpoint_every_steps": 1,
    "log_every_steps": 1, "seed": 5,
}
STEP = 7
HEAD_WEIGHT_STD = 0.3
"""The heads start at zero (constant outputs); trained-like random weights make parity bite."""


def tiny_model(config: TrainConfig, anchors: np.ndarray) -> torch.nn.Module:
    model = build_model(config, anchors)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for head in (model.score_head, model.offset_head, model.gaussian_head, model.speed_head):
            for p in head.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * HEAD_WEIGHT_STD)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    config = TrainConfig.from_dict(copy.deepcopy(TINY), source="tiny")
    anchors = build_anchors("uniform", config.model.num_anchors, config.model.waypoints)
    model = tiny_model(config, anchors)
    path = tmp_path_factory.mktemp("run") / "checkpoints" / "step_00000007.pt"
    return save_checkpoint(path, model=model, optimizer=make_optimizer(model, config),
                           step=STEP, config=config, anchors=anchors,
                           data={"num_samples": 0, "trajectories": []})


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> tuple[Path, PolicyContract]:
    out = tmp_path_factory.mktemp("onnx") / "policy.onnx"
    contract = export_onnx(checkpoint, out, train_command="s2e train pretrain --config tiny")
    return out, contract


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_checkpoint(checkpoint)[0]


def test_file_carries_the_contract(exported, checkpoint) -> None:
    path, contract = exported
    session = open_session(path)
    meta = session.get_modelmeta().custom_metadata_map
    parsed = PolicyContract.from_metadata(meta, source=str(path))
    assert parsed.to_metadata() == contract.to_metadata()
    config = TrainConfig.from_dict(copy.deepcopy(TINY), source="tiny")
    assert (parsed.image_size, parsed.context_frames, parsed.num_anchors, parsed.waypoints) == (
        32, 3, 6, 4)
    assert parsed.frame_rate_hz == pytest.approx(1.0 / CONTEXT_DT_S)
    assert parsed.waypoint_dt_s == CONTEXT_DT_S and parsed.waypoint_scale_m == 0.25
    np.testing.assert_array_equal(parsed.anchors, build_anchors("uniform", 6, 4)[..., :2])
    assert parsed.anchor_kind == "uniform" and parsed.precision == "fp32"
    assert parsed.checkpoint_step == STEP
    assert parsed.train_command == "s2e train pretrain --config tiny"
    assert parsed.model_config == config.model.to_dict()
    assert parsed.train_config == json.loads(json.dumps(config.to_dict()))
    canonical = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    assert parsed.train_config_sha256 == hashlib.sha256(canonical.encode()).hexdigest()
    commit = torch.load(checkpoint, weights_only=True)["commit"]
    assert parsed.git_commit == commit
    assert parsed.embodiment["name"] == "wheeled" and parsed.embodiment["max_linear_mps"] > 0
    assert set(parsed.embodiment) == set(onnx_export.EMBODIMENT_LIMIT_KEYS)
    assert parsed.producer.startswith("s2e_training ") and torch.__version__ in parsed.producer
    assert json.loads(meta["s2e.outputs"]).keys() == set(OUTPUT_NAMES)

    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    assert all(v.type.tensor_type.shape.dim[0].dim_param == "B"
               for v in list(proto.graph.input) + list(proto.graph.output))
    assert proto.opset_import[0].version == DEFAULT_OPSET
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim[1:]] == [6]
    onnx_export.check_graph_interface(proto, contract)
    with pytest.raises(ExportError, match=r"graph input 'frames': shape \('B', 3, 3, 32, 32\)"):
        onnx_export.check_graph_interface(proto, dataclasses.replace(contract, image_size=64))


def test_dynamic_batch_and_fp32_parity_on_random_inputs(exported, model) -> None:
    path, contract = exported
    session = open_session(path)
    for batch in (1, 3):
        frames, goal = random_inputs(model, batch, seed=batch)
        errors = max_abs_errors(model, session, frames.numpy(), goal.numpy())
        assert max(errors.values()) <= FP32_PARITY_ATOL, errors
        outputs = dict(zip(OUTPUT_NAMES, session.run(None, {"frames": frames.numpy(),
                                                             "goal": goal.numpy()}), strict=True))
        k, w = contract.num_anchors, contract.waypoints
        assert outputs["scores"].shape == (batch, k)
        assert outputs["traj_m"].shape == (batch, k, w, 3)
        assert outputs["traj_norm"].shape == (batch, k, w, 2)
        # The outputs are not trivially constant (random heads): parity means something.
        assert np.ptp(outputs["scores"]) > 0.1 and np.ptp(outputs["traj_m"][..., :2]) > 0.01
        xy = contract.trajectory_at_speed(outputs["traj_norm"], outputs["speed_mps"])
        np.testing.assert_allclose(outputs["traj_m"][..., :2], xy, rtol=1e-5, atol=1e-5)


def test_fp32_parity_on_real_frames(exported, model, fixtures_dir) -> None:
    path, contract = exported
    folder = fixtures_dir / "gnm" / "euroc_cam1"
    positions, yaws = read_traj_data(folder / "traj_data.pkl")
    last = contract.context_frames - 1
    frames = np.stack([preprocess_image(load_frame(folder / f"{i}.jpg"), contract.image_size)
                       for i in range(contract.context_frames)])[None]
    pose = np.array([positions[last, 0], positions[last, 1], yaws[last]])
    goal = encode_goal(world_to_robot(positions[-1:], pose)[0])[None]
    errors = max_abs_errors(model, open_session(path), frames, goal)
    assert max(errors.values()) <= FP32_PARITY_ATOL, errors


def test_fp16_export_parity_is_bounded(model, tmp_path) -> None:
    out = tmp_path / "policy_fp16.onnx"
    contract = export_network(model, out, fp16=True, embodiment="go2")
    session = open_session(out)
    assert session.get_inputs()[0].type == "tensor(float16)"
    parsed = PolicyContract.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert parsed.precision == "fp16" == contract.precision
    assert parsed.embodiment["name"] == "go2" and parsed.train_config == {}
    frames, goal = random_inputs(model, 2, seed=4)
    errors = max_abs_errors(model, session, frames.numpy(), goal.numpy())
    print("fp16 max abs error:", errors)
    assert max(errors.values()) <= FP16_PARITY_ATOL, errors
    assert max(errors.values()) > 0.0  # really float16 arithmetic


def test_bad_checkpoints_name_the_file(tmp_path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(S2EError, match=r"nope\.pt"):
        export_onnx(missing, tmp_path / "a.onnx")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(S2EError, match=r"corrupt\.pt.*truncated or corrupt"):
        export_onnx(corrupt, tmp_path / "a.onnx")
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    with pytest.raises(S2EError, match="run folder has no checkpoints"):
        export_onnx(empty_run, tmp_path / "a.onnx")
    assert not (tmp_path / "a.onnx").exists()


def test_bad_options_are_refused(model, tmp_path) -> None:
    with pytest.raises(ExportError, match=r"--opset: expected an integer in \[14, 20\], got 9"):
        export_network(model, tmp_path / "a.onnx", opset=9)
    with pytest.raises(S2EError, match="unknown embodiment 'tank'"):
        export_network(model, tmp_path / "a.onnx", embodiment="tank")
    with pytest.raises(ExportError, match="is a folder"):
        export_network(model, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file_and_keeps_the_old_one(model, tmp_path, monkeypatch
                                                            ) -> None:
    out = tmp_path / "policy.onnx"
    out.write_bytes(b"previous export")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ExportError, match=r"policy\.onnx: writing failed.*No space left"):
        export_network(model, out)
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["policy.onnx"]


def test_cli_exports_and_reports_parity(checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "cli" / "policy.onnx"
    run_dir = checkpoint.parent.parent  # a run folder: its latest checkpoint is exported
    assert main(["export", str(run_dir), "--out", str(out), "--opset", "18",
                 "--check-batch", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "checkpoint_step: 7" in printed
    for name in OUTPUT_NAMES:
        assert f"  {name}: " in printed
    assert "parity check passed" in printed
    proto = onnx.load(out)
    assert proto.opset_import[0].version == 18
    meta = {p.key: p.value for p in proto.metadata_props}
    assert PolicyContract.from_metadata(meta).checkpoint_step == STEP

    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "missing.pt: no such checkpoint file" in capsys.readouterr().err
    assert main(["export", str(checkpoint), "--out", str(out), "--check-batch", "0"]) == 2
    assert "--check-batch: expected an integer >= 1, got 0" in capsys.readouterr().err
