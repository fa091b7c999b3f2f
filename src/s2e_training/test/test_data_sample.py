import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from s2e_policy.errors import S2EError
from s2e_training.data import (
    AugmentConfig,
    NavDataset,
    SampleConfig,
    augment,
    collate,
    colour_jitter,
    hflip,
    make_sample,
    read_gnm_trajectory,
)

CONFIG = SampleConfig(
    image_size_px=24, context_frames=3, context_dt_s=0.25, num_waypoints=4,
    waypoint_dt_s=0.25, goal_min_s=1.0, goal_max_s=2.0,
)


@pytest.fixture(scope="module")
def trajectory(fixtures_dir):
    return read_gnm_trajectory(fixtures_dir / "gnm" / "euroc_cam1", 20.0)


@pytest.fixture(scope="module")
def sample(trajectory):
    return make_sample(trajectory, 30, CONFIG, np.random.default_rng(0))


def test_hflip_is_an_involution(sample):
    flipped = hflip(sample)
    back = hflip(flipped)
    for name in ("context", "goal", "waypoints"):
        np.testing.assert_array_equal(getattr(back, name), getattr(sample, name))
    assert back.speed == sample.speed


def test_hflip_mirrors_trajectory_and_image(sample):
    flipped = hflip(sample)
    np.testing.assert_array_equal(flipped.waypoints[:, 0], sample.waypoints[:, 0])
    np.testing.assert_array_equal(flipped.waypoints[:, 1:], -sample.waypoints[:, 1:])
    np.testing.assert_array_equal(flipped.goal, sample.goal * np.array([1, 1, -1], np.float32))
    np.testing.assert_array_equal(flipped.context[..., 0], sample.context[..., -1])
    assert not np.shares_memory(flipped.waypoints, sample.waypoints)


def test_colour_jitter_range_and_determinism(sample):
    config = AugmentConfig(brightness=0.4, contrast=0.4, saturation=0.4)
    a = colour_jitter(sample.context, np.random.default_rng(9), config)
    b = colour_jitter(sample.context, np.random.default_rng(9), config)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == sample.context.shape
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.allclose(a, sample.context)
    identity = AugmentConfig(brightness=0.0, contrast=0.0, saturation=0.0)
    same = colour_jitter(sample.context, np.random.default_rng(1), identity)
    np.testing.assert_allclose(same, sample.context, atol=1e-6)


def test_brightness_only_scales_pixels(sample):
    config = AugmentConfig(brightness=0.3, contrast=0.0, saturation=0.0)
    rng = np.random.default_rng(4)
    factor = np.random.default_rng(4).uniform(0.7, 1.3)
    out = colour_jitter(sample.context, rng, config)
    np.testing.assert_allclose(out, np.clip(sample.context * factor, 0, 1), atol=1e-5)


def test_augment_flip_probability(sample):
    always = AugmentConfig(flip_probability=1.0, brightness=0.0, contrast=0.0, saturation=0.0)
    never = dataclasses.replace(always, flip_probability=0.0)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(augment(sample, rng, always).waypoints, hflip(sample).waypoints)
    np.testing.assert_array_equal(augment(sample, rng, never).waypoints, sample.waypoints)


def test_dataset_is_deterministic_per_seed_and_epoch(trajectory):
    dataset = NavDataset([trajectory], CONFIG, augment_config=AugmentConfig(), seed=7)
    same = NavDataset([trajectory], CONFIG, augment_config=AugmentConfig(), seed=7)
    assert len(dataset) == 95 - 10 - 20  # 0.5 s of context history, 1 s of goal horizon
    a, b = dataset[5], same[5]
    np.testing.assert_array_equal(a.context, b.context)
    np.testing.assert_array_equal(a.goal, b.goal)
    goals = {tuple(dataset[5].goal) for dataset.epoch in range(6)}
    assert len(goals) > 1  # each epoch draws a new goal / flip
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_dataset_too_short(trajectory):
    long = dataclasses.replace(CONFIG, goal_min_s=10.0, goal_max_s=20.0)
    with pytest.raises(S2EError, match="long enough"):
        NavDataset([trajectory], long)


def test_collate_through_dataloader(trajectory):
    dataset = NavDataset([trajectory], CONFIG, seed=0)
    batch = next(iter(DataLoader(dataset, batch_size=4, collate_fn=collate)))
    assert batch["context"].shape == (4, 3, 3, 24, 24)
    assert batch["context"].dtype == torch.float32
    assert batch["goal"].shape == (4, 3)
    assert batch["waypoints"].shape == (4, 4, 3)
    assert batch["speed"].shape == (4,)
    assert batch["frame_index"].tolist() == [10, 11, 12, 13]
    assert batch["source"] == ["gnm"] * 4
    torch.testing.assert_close(batch["waypoints"][0], torch.from_numpy(dataset[0].waypoints))


def test_collate_rejects_empty_and_mixed(sample):
    with pytest.raises(S2EError, match="at least one"):
        collate([])
    other = dataclasses.replace(sample, waypoints=np.zeros((5, 3), np.float32))
    with pytest.raises(S2EError, match="waypoints"):
        collate([sample, other])


def test_sample_config_validation():
    assert SampleConfig.from_dict({"num_waypoints": 8}).num_waypoints == 8
    with pytest.raises(S2EError, match=r"unknown key.*waypoints_dt"):
        SampleConfig.from_dict({"waypoints_dt": 0.5})
    with pytest.raises(S2EError, match="context_frames"):
        SampleConfig(context_frames=0)
    with pytest.raises(S2EError, match="goal_min_s"):
        SampleConfig(goal_min_s=5.0, goal_max_s=2.0)
    with pytest.raises(S2EError, match="flip_probability"):
        AugmentConfig(flip_probability=1.5)
