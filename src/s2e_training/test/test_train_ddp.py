"""torchrun DDP pretraining (2 CPU processes) and the TensorBoard predicted-modes image."""

from __future__ import annotations

import copy
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from s2e_policy.errors import S2EError
from s2e_training.data import NavDataset, collate, read_gnm_dataset
from s2e_training.train import (
    StepBatchSampler,
    TrainConfig,
    fit_anchors,
    load_checkpoint,
    pretrain,
)
from s2e_training.train.checkpoint import build_model, parameter_digest
from s2e_training.train.pretraining import (
    IMAGE_DPI,
    IMAGE_SIZE_IN,
    IMAGE_TAG,
    DistributedContext,
    prediction_image,
)

EUROC_RATE_HZ = 20.0
WORLD_SIZE = 2
DDP_TIMEOUT_S = 120.0
# A tiny model on short samples (the EuRoC fixture is 4.7 s long). No dropout: its masks
# depend on how the batch is split, and one- and two-process runs are compared.
TINY = {
    "model": {
        "preset": "small", "image_size": 32, "context_frames": 2, "num_anchors": 6,
        "waypoints": 4, "d_model": 32, "heads": 4, "fusion_layers": 1, "decoder_layers": 1,
        "ffn_dim": 64, "encoder": {"kind": "cnn", "channels": [8, 16]}, "waypoint_dt_s": 0.2,
        "anchor_kind": "kmeans", "dropout": 0.0,
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
DIGEST_LINE = re.compile(r"^\[rank (\d)/2\] .*: step 4, .*parameters sha256 ([0-9a-f]{64})$",
                         re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_match_one(fixtures_dir, tmp_path) -> None:
    # 5 samples a step: shards of 3 and 2, so the per-rank loss weighting matters.
    settings = {**copy.deepcopy(TINY), "batch_size": 5}
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    euroc_dir = fixtures_dir / "gnm" / "euroc_cam1"
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD_SIZE}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m",
               "s2e_policy.cli", "train", "pretrain", "--config", str(config_file), "--data",
               str(euroc_dir), "--rate-hz", str(EUROC_RATE_HZ), "--out", str(out),
               "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=DDP_TIMEOUT_S,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    # Both ranks finished with the same weights, and rank 0's checkpoint holds them.
    digests = dict(DIGEST_LINE.findall(done.stdout))
    assert sorted(digests) == ["0", "1"], done.stdout
    ddp_model, _, _, step = load_checkpoint(out)
    assert step == 4
    assert digests["0"] == digests["1"] == parameter_digest(ddp_model)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step_00000002.pt", "step_00000004.pt"]  # one writer, no leftover temporaries

    # One process on the same global batches learns the same network up to float rounding.
    # Compared through its predictions: parameters whose true gradient is zero (a conv bias
    # before a per-channel GroupNorm, attention key biases, the shared score bias) get pure
    # rounding noise as gradient, which Adam scales up to steps of size lr.
    config = TrainConfig.from_dict(settings)
    euroc = read_gnm_dataset(euroc_dir, EUROC_RATE_HZ)
    single = pretrain(config, euroc, tmp_path / "single", progress=False)
    assert single.world_size == 1 and single.digest != digests["0"]  # not bit-identical
    single_model = load_checkpoint(single.checkpoint)[0]
    dataset = NavDataset(euroc, config.data)
    batch = collate([dataset[i] for i in range(0, len(dataset), 8)])
    with torch.no_grad():
        ddp_out = ddp_model(batch["context"], batch["goal"])
        single_out = single_model(batch["context"], batch["goal"])
        initial_out = build_model(config, fit_anchors(config, euroc))(
            batch["context"], batch["goal"])
    for name in ("traj_m", "gaussian", "speed_mps"):
        torch.testing.assert_close(getattr(ddp_out, name), getattr(single_out, name),
                                   rtol=1e-4, atol=1e-5, msg=name)
        assert not torch.allclose(getattr(ddp_out, name), getattr(initial_out, name),
                                  rtol=1e-4, atol=1e-5), name  # training moved it
    torch.testing.assert_close(torch.log_softmax(ddp_out.scores, -1),
                               torch.log_softmax(single_out.scores, -1), rtol=1e-4, atol=1e-5)

    # The logged loss is the global batch mean, as in the single-process run.
    ddp_log, single_log = EventAccumulator(str(out / "tensorboard")), EventAccumulator(
        str(tmp_path / "single" / "tensorboard"))
    ddp_log.Reload()
    single_log.Reload()
    ddp_loss = [e.value for e in ddp_log.Scalars("loss/total")]
    single_loss = [e.value for e in single_log.Scalars("loss/total")]
    assert len(ddp_loss) == 4
    assert ddp_loss == pytest.approx(single_loss, rel=1e-4, abs=1e-5)
    assert [e.step for e in ddp_log.Images(IMAGE_TAG)] == [2, 4]


def test_predicted_modes_image_is_logged_at_checkpoints(fixtures_dir, tmp_path) -> None:
    euroc = read_gnm_dataset(fixtures_dir / "gnm" / "euroc_cam1", EUROC_RATE_HZ)
    config = TrainConfig.from_dict({**copy.deepcopy(TINY), "steps": 3})
    pretrain(config, euroc, tmp_path / "run", progress=False)
    log = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={IMAGES: 0})
    log.Reload()
    assert IMAGE_TAG in log.Tags()[IMAGES]
    images = log.Images(IMAGE_TAG)
    assert [e.step for e in images] == [2, 3]  # checkpoint_every_steps = 2, and the end
    width_px, height_px = (round(size * IMAGE_DPI) for size in IMAGE_SIZE_IN)
    assert (images[0].width, images[0].height) == (width_px, height_px)


def test_prediction_image_draws_frame_and_modes(fixtures_dir) -> None:
    euroc = read_gnm_dataset(fixtures_dir / "gnm" / "euroc_cam1", EUROC_RATE_HZ)
    config = TrainConfig.from_dict(copy.deepcopy(TINY))
    model = build_model(config, fit_anchors(config, euroc))
    batch = collate([NavDataset(euroc, config.data)[i] for i in (0, 5)])
    rng_before = torch.get_rng_state()
    image = prediction_image(model, batch, top_modes=3)
    assert model.training  # back in the mode it was in
    assert torch.equal(torch.get_rng_state(), rng_before)  # no global RNG draws
    width_px, height_px = (round(size * IMAGE_DPI) for size in IMAGE_SIZE_IN)
    assert image.shape == (height_px, width_px, 3) and image.dtype == np.uint8
    # The frame fills the figure outside the bottom-right inset: its pixels come through.
    frame = batch["context"][0, -1].permute(1, 2, 0).numpy()
    size = frame.shape[0]
    top_left = image[: height_px // 2, : width_px // 2]
    scaled = frame[: size // 2, : size // 2].repeat(width_px // size, 0).repeat(
        width_px // size, 1)
    assert np.abs(top_left / 255.0 - scaled).mean() < 0.02
    inset = image[int(0.55 * height_px):int(0.93 * height_px), int(0.6 * width_px):]
    assert (inset == 255).all(axis=-1).mean() > 0.3  # a white top-down panel with lines
    assert (inset != 255).any(axis=-1).mean() > 0.01


def test_torchrun_environment_and_batch_shards() -> None:
    assert DistributedContext.from_env({}) == DistributedContext(0, 1, 0)
    ctx = DistributedContext.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert ctx.distributed and not ctx.is_main
    with pytest.raises(S2EError, match="RANK, WORLD_SIZE set but LOCAL_RANK missing"):
        DistributedContext.from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(S2EError, match="must be integers"):
        DistributedContext.from_env({"RANK": "a", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(S2EError, match="RANK=2, WORLD_SIZE=2"):
        DistributedContext.from_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})

    # The ranks' shards are the global batch, in order, whatever the world size.
    for world in (1, 2, 3):
        samplers = [StepBatchSampler(10, 4, seed=5, start=0, stop=6,
                                     distributed=DistributedContext(rank, world, rank))
                    for rank in range(world)]
        for step in range(6):
            expected = samplers[0].global_batch(step)
            assert [k for s in samplers for k in s.batch(step)] == expected
            assert max(len(s.batch(step)) for s in samplers) - min(
                len(s.batch(step)) for s in samplers) <= 1
    single = StepBatchSampler(10, 4, seed=5, start=0, stop=6)
    assert list(single) == [single.global_batch(s) for s in range(6)]
    with pytest.raises(S2EError, match="cannot give each of 3 processes a sample"):
        StepBatchSampler(10, 2, seed=0, start=0, stop=1, distributed=DistributedContext(0, 3, 0))
