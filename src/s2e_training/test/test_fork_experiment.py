"""The fork experiment: AGDM keeps both detours, single-mode regression drives into the obstacle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from s2e_training.experiments import fork
from s2e_training.model.config import EncoderConfig, ModelConfig

TINY = ModelConfig(
    context_frames=2,
    image_size=32,
    num_anchors=8,
    waypoints=10,
    d_model=32,
    heads=4,
    fusion_layers=1,
    decoder_layers=2,
    ffn_dim=64,
    encoder=EncoderConfig(kind="cnn", channels=(8, 16, 32)),
    anchor_kind="uniform",
)
# Demonstrations slower than the nominal speed, so both models must learn the speed too.
CFG = fork.ForkConfig(model=TINY, steps=150, batch_size=16, eval_samples=32, speed_mps=0.6,
                      obstacle_distance_m=(0.7, 1.1), obstacle_radius_m=0.2, detour_offset_m=0.45,
                      cover_ade_m=0.12)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and do not fight other tests for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_demonstrations_avoid_the_obstacle_but_their_mean_does_not() -> None:
    x_o = np.array([0.8, 1.0])
    left = fork.detour_waypoints(x_o, np.array([fork.LEFT] * 2), CFG)
    right = fork.detour_waypoints(x_o, np.array([fork.RIGHT] * 2), CFG)
    assert not fork.path_hits_obstacle(left, x_o, CFG.obstacle_radius_m).any()
    assert not fork.path_hits_obstacle(right, x_o, CFG.obstacle_radius_m).any()
    assert fork.path_hits_obstacle((left + right) / 2, x_o, CFG.obstacle_radius_m).all()
    np.testing.assert_allclose(left[..., 1], -right[..., 1])


def test_path_hits_obstacle_uses_segments_not_just_waypoints() -> None:
    # Waypoints on either side of a small obstacle: only the segment between them crosses it.
    traj = np.array([[[0.5, 0.0], [1.5, 0.0]]])
    assert fork.path_hits_obstacle(traj, np.array([1.0]), 0.1).all()
    assert not fork.path_hits_obstacle(traj + np.array([0.0, 0.2]), np.array([1.0]), 0.1).any()


def test_renders_show_the_obstacle_growing_as_the_robot_approaches() -> None:
    frames = fork.render_observations(np.array([1.0]), CFG)
    assert frames.shape == (1, 2, 3, 32, 32) and frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    red = (frames[0, :, 0] - frames[0, :, 2]) > 0.4  # obstacle pixels per frame
    assert 0 < red[0].sum() < red[1].sum()


def test_agdm_covers_both_branches_and_regression_hits_the_obstacle(tmp_path, one_thread) -> None:
    results = fork.run_fork(CFG)
    agdm, reg = results["metrics"]["agdm"], results["metrics"]["regression"]
    assert agdm["top2_covers_both_rate"] >= 0.9
    assert agdm["inside_obstacle_rate"] <= 0.1
    assert reg["inside_obstacle_rate"] >= 0.9
    assert reg["top2_covers_both_rate"] == 0.0
    assert agdm["ade_m"] < 0.5 * reg["ade_m"]
    # Regression learned the mean of the two detours (straight, at the demonstrated speed).
    evaluation = results["regression"]
    mean_branch = evaluation.branches_m.mean(axis=1)
    ade_to_mean = np.linalg.norm(evaluation.traj_m[:, 0, :, :2] - mean_branch, axis=-1).mean()
    assert ade_to_mean < 0.1
    fork.plot_fork(results, tmp_path / "fork.png", CFG)
    assert (tmp_path / "fork.png").stat().st_size > 10_000
    json.dumps(results["metrics"])  # metrics.json content is serialisable


def test_bad_experiment_config_raises() -> None:
    with pytest.raises(fork.S2EError, match="detour_offset_m"):
        fork.ForkConfig(model=TINY, obstacle_radius_m=0.5, detour_offset_m=0.4)
    with pytest.raises(fork.S2EError, match="obstacle_distance_m"):
        fork.ForkConfig(model=TINY, obstacle_distance_m=(2.0, 1.0))
