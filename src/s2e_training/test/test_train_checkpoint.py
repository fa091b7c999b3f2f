"""Checkpoints: atomic writes, discovery ignoring temporaries, validated reads, model loading."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from s2e_training.model.anchors import uniform_anchors
from s2e_training.train import CheckpointError, TrainConfig, latest_checkpoint, load_checkpoint
from s2e_training.train import checkpoint as ckpt
from s2e_training.train.pretraining import make_optimizer

CONFIG = {
    "model": {
        "preset": "small", "image_size": 32, "context_frames": 2, "num_anchors": 4,
        "waypoints": 3, "d_model": 16, "heads": 2, "fusion_layers": 0, "decoder_layers": 1,
        "ffn_dim": 16, "encoder": {"kind": "cnn", "channels": [4]}, "anchor_kind": "uniform",
    },
    "data": {"goal_min_s": 0.5, "goal_max_s": 1.0},
    "augment": None,
    "loss": {},
    "optim": {"lr": 1.0e-3, "weight_decay": 0.0, "grad_clip_norm": 1.0},
    "steps": 10, "batch_size": 2, "num_workers": 0, "checkpoint_every_steps": 5,
    "log_every_steps": 1, "seed": 0,
}
DATA = {"num_samples": 12, "trajectories": ["a", "b"]}


@pytest.fixture()
def trained():
    config = TrainConfig.from_dict(copy.deepcopy(CONFIG))
    anchors = uniform_anchors(4, 3)
    model = ckpt.build_model(config, anchors)
    optimizer = make_optimizer(model, config)
    out = model(torch.rand(2, 2, 3, 32, 32), torch.tensor([[0.1, 1.0, 0.0]] * 2))
    (out.traj_norm.square().mean() + out.speed_mps.mean()).backward()
    optimizer.step()
    return config, anchors, model, optimizer


def test_round_trip_and_latest(trained, tmp_path) -> None:
    config, anchors, model, optimizer = trained
    for step in (5, 10):
        path = ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, step), model=model,
                                    optimizer=optimizer, step=step, config=config,
                                    anchors=anchors, data=DATA)
    assert path == tmp_path / "checkpoints" / "step_00000010.pt"
    loaded, loaded_config, loaded_anchors, step = load_checkpoint(tmp_path)  # a run folder
    assert step == 10 and loaded_config == config and not loaded.training
    np.testing.assert_array_equal(loaded_anchors, anchors)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)
    payload = ckpt.read_checkpoint(path)
    assert payload["data"] == DATA
    if (Path(__file__).resolve().parents[3] / ".git").exists():  # the checkout's full hash
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", payload["commit"]), payload["commit"]
    assert payload["optimizer"]["state"]  # AdamW moments are there to resume from
    assert torch.equal(payload["rng"]["torch"], torch.get_rng_state())
    assert load_checkpoint(tmp_path / "checkpoints" / "step_00000005.pt")[3] == 5


def test_leftover_temporary_is_ignored_and_failed_write_leaves_nothing(
    trained, tmp_path, monkeypatch
) -> None:
    config, anchors, model, optimizer = trained
    kwargs = {"model": model, "optimizer": optimizer, "config": config, "anchors": anchors,
              "data": DATA}
    ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, 5), step=5, **kwargs)
    folder = tmp_path / "checkpoints"
    (folder / ".step_00000010.abc123.tmp").write_bytes(b"half a checkpoint")  # a crash
    assert latest_checkpoint(tmp_path) == folder / "step_00000005.pt"
    assert load_checkpoint(tmp_path)[3] == 5

    def crash_midway(obj, handle, *args, **kw):
        handle.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, 10), step=10, **kwargs)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".step_00000010.abc123.tmp", "step_00000005.pt"]
    assert latest_checkpoint(tmp_path) == folder / "step_00000005.pt"


def test_bad_checkpoints_raise_checkpoint_error(trained, tmp_path) -> None:
    config, anchors, model, optimizer = trained
    good = ckpt.save_checkpoint(tmp_path / "good.pt", model=model, optimizer=optimizer,
                                step=1, config=config, anchors=anchors, data=DATA)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: cannot be read as a checkpoint"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="run folder has no checkpoints"):
        load_checkpoint(tmp_path)
    payload = torch.load(good, weights_only=True)
    del payload["optimizer"]
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing key 'optimizer'"):
        load_checkpoint(tmp_path / "partial.pt")
    payload = torch.load(good, weights_only=True)
    payload["anchors"] = payload["anchors"][:2]
    torch.save(payload, tmp_path / "anchors.pt")
    with pytest.raises(CheckpointError,
                       match=r"anchors of shape \(2, 3, 3\), expected \(4, 3, 3\)"):
        load_checkpoint(tmp_path / "anchors.pt")
    payload = torch.load(good, weights_only=True)
    payload["config"]["optim"]["lr"] = "fast"
    torch.save(payload, tmp_path / "config.pt")
    with pytest.raises(CheckpointError, match=r"config.pt \(config\).*'optim.lr' must be a number"):
        load_checkpoint(tmp_path / "config.pt")
    payload = torch.load(good, weights_only=True)
    payload["model"].pop("score_head.weight")
    torch.save(payload, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="weights do not fit its config"):
        load_checkpoint(tmp_path / "weights.pt")
