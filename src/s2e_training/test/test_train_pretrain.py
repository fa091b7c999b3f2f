"""AGDM pretraining on real data: learning, exact resume, Ctrl-C, anchors, CLI and bad input."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from s2e_policy.cli import main
from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene import generate_street_scene, save_scene
from s2e_training.data import NavDataset, collate, load_trajectories, read_gnm_dataset
from s2e_training.model.anchors import build_anchors
from s2e_training.train import (
    StepBatchSampler,
    TrainConfig,
    fit_anchors,
    latest_checkpoint,
    load_checkpoint,
    pretrain,
    read_checkpoint,
    train_step,
)
from s2e_training.train import pretraining as pretrain_module
from s2e_training.train.pretraining import SCALAR_TAGS, make_optimizer, training_waypoints

EUROC_RATE_HZ = 20.0
SIM_RATE_HZ = 5.0
CLI_START_TIMEOUT_S = 60.0

# A tiny model and short samples: the EuRoC fixture is 4.7 s long.
TINY = {
    "model": {
        "preset": "small", "image_size": 32, "context_frames": 2, "num_anchors": 6,
        "waypoints": 4, "d_model": 32, "heads": 4, "fusion_layers": 1, "decoder_layers": 1,
        "ffn_dim": 64, "encoder": {"kind": "cnn", "channels": [8, 16]}, "waypoint_dt_s": 0.2,
        "anchor_kind": "kmeans",
    },
    "data": {"goal_min_s": 0.4, "goal_max_s": 2.0},
    "augment": {"flip_probability": 0.5, "brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
    "loss": {"mode": "agdm"},
    "optim": {"lr": 3.0e-3, "weight_decay": 0.01, "grad_clip_norm": 1.0},
    "steps": 4,
    "batch_size": 4,
    "num_workers": 0,
    "checkpoint_every_steps": 2,
    "log_every_steps": 1,
    "seed": 3,
}


def tiny_config(**overrides: object) -> TrainConfig:
    data = copy.deepcopy(TINY)
    data.update(overrides)
    return TrainConfig.from_dict(data, source="tiny")


@pytest.fixture(scope="module")
def euroc(fixtures_dir):
    return read_gnm_dataset(fixtures_dir / "gnm" / "euroc_cam1", EUROC_RATE_HZ)


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    """Scalars of every event file of a run (a resumed run writes a second file).

    Files are read one by one: a folder-level EventAccumulator follows file names in sorted
    order, and the writer's per-process counter in the name (``...9`` then ``...10``) can sort
    a later file first, after which the earlier one is never read.
    """
    out: dict[int, float] = {}
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            out.update({event.step: event.value for event in acc.Scalars(tag)})
    return dict(sorted(out.items()))  # in step order, whatever order the files were read in


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_b = b.state_dict()
    for name, value in a.state_dict().items():
        torch.testing.assert_close(value, state_b[name], rtol=1e-6, atol=1e-7, msg=name)


def test_loss_decreases_when_overfitting_a_fixed_batch(euroc) -> None:
    cfg = tiny_config(augment=None)
    anchors = fit_anchors(cfg, euroc)
    torch.manual_seed(0)
    model = pretrain_module.build_model(cfg, anchors)
    optimizer = make_optimizer(model, cfg)
    dataset = NavDataset(euroc, cfg.data, seed=cfg.seed)
    batch = collate([dataset[i] for i in range(0, len(dataset), len(dataset) // 8)][:8])
    history = [train_step(model, optimizer, batch, cfg) for _ in range(40)]
    first, last = history[0], history[-1]
    assert last["total"] < first["total"] - 1.0, (first, last)
    assert last["ade_m"] < 0.5 * first["ade_m"], (first, last)
    assert np.isfinite([h["mode_entropy"] for h in history]).all()


def test_kmeans_anchors_are_fitted_to_the_training_waypoints(euroc) -> None:
    cfg = tiny_config(augment=None)
    waypoints = training_waypoints(euroc, cfg.data)
    assert waypoints.shape == (len(NavDataset(euroc, cfg.data)), 4, 3)
    expected = build_anchors("kmeans", 6, 4, waypoints, seed=cfg.seed)
    np.testing.assert_array_equal(fit_anchors(cfg, euroc), expected)
    # With flips, mirrored copies join the fit: the anchor set becomes left/right symmetric.
    flipped = fit_anchors(tiny_config(), euroc)
    assert not np.allclose(flipped, expected)
    mirrored = flipped * np.array([1.0, -1.0, -1.0])
    nearest = np.abs(mirrored[:, None, :, :2] - flipped[None, :, :, :2]).max(axis=(2, 3)).min(1)
    assert nearest.max() < 0.15
    uniform = tiny_config(model={**TINY["model"], "anchor_kind": "uniform"})
    np.testing.assert_array_equal(fit_anchors(uniform, euroc), build_anchors("uniform", 6, 4))
    too_many = tiny_config(model={**TINY["model"], "num_anchors": 500})
    with pytest.raises(S2EError, match=r"at least model\.num_anchors=500 training samples"):
        fit_anchors(too_many, euroc)


def test_batches_depend_on_seed_and_step_only() -> None:
    full = StepBatchSampler(num_items=10, batch_size=3, seed=1, start=0, stop=9)
    batches = list(full)
    assert len(batches) == 9 and full.steps_per_epoch == 3
    tail = list(StepBatchSampler(num_items=10, batch_size=3, seed=1, start=4, stop=9))
    assert tail == batches[4:]
    for epoch in range(3):
        keys = [k for b in batches[3 * epoch:3 * epoch + 3] for k in b]
        assert {e for e, _ in keys} == {epoch}
        items = [i for _, i in keys]
        assert len(set(items)) == 9  # no repeats within an epoch
    assert batches[0] != batches[3]  # a fresh permutation per epoch


def test_resume_continues_exactly_and_ctrl_c_checkpoints(euroc, tmp_path, monkeypatch) -> None:
    cfg = tiny_config()
    straight = pretrain(cfg, euroc, tmp_path / "straight", progress=False)
    assert straight.step == 4 and straight.checkpoint.name == "step_00000004.pt"

    split = tmp_path / "split"
    assert pretrain(cfg, euroc, split, steps=2, progress=False).step == 2
    resumed = pretrain(cfg, euroc, split, resume=True, progress=False)
    assert resumed.step == 4
    assert resumed.last == pytest.approx(straight.last, rel=1e-5, abs=1e-6)
    assert_same_parameters(load_checkpoint(straight.checkpoint)[0],
                           load_checkpoint(resumed.checkpoint)[0])
    for tag in SCALAR_TAGS.values():  # the logged curve continues where it stopped
        curve, expected = scalars(split, tag), scalars(tmp_path / "straight", tag)
        assert sorted(curve) == [1, 2, 3, 4]
        assert list(curve.values()) == pytest.approx(list(expected.values()), rel=1e-5, abs=1e-6)

    # Ctrl-C during step 3: the step finishes, is checkpointed, then KeyboardInterrupt.
    calls = []

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return train_step(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, euroc, tmp_path / "ctrl_c", progress=False)
    assert latest_checkpoint(tmp_path / "ctrl_c").name == "step_00000003.pt"
    monkeypatch.undo()
    again = pretrain(cfg, euroc, tmp_path / "ctrl_c", resume=True, progress=False)
    assert_same_parameters(load_checkpoint(straight.checkpoint)[0],
                           load_checkpoint(again.checkpoint)[0])


def test_run_folder_rules(euroc, tmp_path, caplog) -> None:
    cfg = tiny_config(steps=2)
    run = tmp_path / "run"
    if not torch.cuda.is_available():
        with pytest.raises(S2EError, match="--device cuda: torch sees no CUDA device"):
            pretrain(cfg, euroc, run, device="cuda", progress=False)
    with pytest.raises(S2EError, match="has no checkpoint to resume from"):
        pretrain(cfg, euroc, run, resume=True, progress=False)
    pretrain(cfg, euroc, run, progress=False)
    with pytest.raises(S2EError, match=r"already holds checkpoints.*--resume"):
        pretrain(cfg, euroc, run, progress=False)
    changed = tiny_config(steps=2, optim={**TINY["optim"], "lr": 1e-3})
    with pytest.raises(S2EError, match=r"differs from the checkpoint .* in optim\.lr"):
        pretrain(changed, euroc, run, resume=True, progress=False)
    done = pretrain(cfg, euroc, run, resume=True, progress=False)  # already at its 2 steps
    assert done.step == 2 and done.last == {}
    assert "data differ" not in caplog.text
    assert TrainConfig.from_yaml(run / "config.yaml") == cfg
    more = pretrain(cfg, [*euroc, *euroc], run, resume=True, steps=3, progress=False)
    assert more.step == 3 and "the data differ from the checkpoint's" in caplog.text
    assert TrainConfig.from_yaml(run / "config.yaml").steps == 3


def test_data_too_short_says_how_long_it_must_be(euroc) -> None:
    cfg = tiny_config(data={"goal_min_s": 6.0, "goal_max_s": 8.0})
    with pytest.raises(S2EError, match=r"at least 6.2 s long; the longest of 1 is 4.70 s"):
        pretrain(cfg, euroc, Path("unused"), progress=False)
    off_grid = tiny_config(model={**TINY["model"], "waypoint_dt_s": 0.225})  # 4.5 frames
    with pytest.raises(S2EError, match=r"no frame lies within data\.frame_tolerance_s=0\.02 s"):
        pretrain(off_grid, euroc, Path("unused"), progress=False)
    with pytest.raises(S2EError, match="no training trajectories"):
        pretrain(tiny_config(), [], Path("unused"), progress=False)


def test_cli_trains_on_simulator_rollouts_and_reports_bad_input(
    euroc, fixtures_dir, tmp_path, capsys
) -> None:
    scene = tmp_path / "street.ply"
    save_scene(generate_street_scene(7, length_m=30.0, width_m=14.0, num_gaussians=20_000)[0],
               scene)
    data = tmp_path / "sim"
    assert main(["navbench", "collect", "--out", str(data), "--scene", str(scene),
                 "--task", "empty", "--episodes", "1", "--render-width", "40",
                 "--no-progress"]) == 0
    config = tmp_path / "tiny.yaml"
    # One loader worker: batches do not depend on the worker count.
    config.write_text(yaml.safe_dump({**TINY, "num_workers": 1, "steps": 3}))
    out = tmp_path / "runs" / "sim"
    euroc_dir = fixtures_dir / "gnm" / "euroc_cam1"
    args = ["train", "pretrain", "--config", str(config), "--data", str(data), "--rate-hz",
            str(SIM_RATE_HZ), "--data", str(euroc_dir), "--rate-hz", str(EUROC_RATE_HZ),
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "step 3, checkpoint" in capsys.readouterr().out
    model, cfg, anchors, step = load_checkpoint(out)
    assert step == 3 and cfg.num_workers == 1 and anchors.shape == (6, 4, 3)
    assert not model.training
    # Each GNM path was read at its own rate: the simulator's 5 Hz and EuRoC's 20 Hz.
    sim = read_gnm_dataset(data, SIM_RATE_HZ)
    expected = len(NavDataset(sim, cfg.data)) + len(NavDataset(euroc, cfg.data))
    assert read_checkpoint(latest_checkpoint(out))["data"]["num_samples"] == expected
    three_rates = [*args, "--rate-hz", "5"]
    assert main(three_rates) == 2
    assert "--rate-hz given 3 times for 2 --data paths" in capsys.readouterr().err

    # Bad input: a clear one-line error and exit status 2.
    missing = ["train", "pretrain", "--config", str(config), "--data", str(tmp_path / "nope"),
               "--out", str(tmp_path / "r2"), "--no-progress"]
    assert main(missing) == 2
    assert "nope: no such file or directory" in capsys.readouterr().err
    latest_checkpoint(out).write_bytes(b"PK\x03\x04 truncated")
    assert main([*args, "--resume", "--steps", "5"]) == 2
    assert "step_00000003.pt: cannot be read as a checkpoint" in capsys.readouterr().err


def test_ctrl_c_of_the_cli_with_loader_workers_checkpoints(fixtures_dir, tmp_path) -> None:
    """A real SIGINT to the whole process group (as a terminal sends it), workers included."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "num_workers": 1, "steps": 100_000}))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "s2e_policy.cli", "train", "pretrain", "--config",
               str(config), "--data", str(fixtures_dir / "gnm" / "euroc_cam1"), "--rate-hz",
               str(EUROC_RATE_HZ), "--out", str(out), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + CLI_START_TIMEOUT_S
        while latest_checkpoint(out) is None and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        assert latest_checkpoint(out) is not None, "no checkpoint before the timeout"
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=CLI_START_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted at step" in stderr and "Traceback" not in stderr, stderr
    model, _, _, step = load_checkpoint(out)
    assert step >= TINY["checkpoint_every_steps"]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_trains_on_a_rosbag2_recording(mcap_bag, tmp_path) -> None:
    trajectories = load_trajectories(mcap_bag, image_topic="/camera/image_raw/compressed",
                                     odom_topic="/odom")
    result = pretrain(tiny_config(steps=2), trajectories, tmp_path / "bag", progress=False)
    assert result.step == 2 and np.isfinite(result.last["total"])
    assert read_checkpoint(result.checkpoint)["data"]["trajectories"] == [
        trajectories[0].trajectory_id]
