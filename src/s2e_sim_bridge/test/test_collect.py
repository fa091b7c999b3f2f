"""``s2e navbench collect``: expert rollouts as GNM folders, with noise, scenes and resume."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from s2e_policy.cli import main
from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench.agents import make_agent
from s2e_sim_bridge.navbench.collect import (
    MANIFEST_FILE,
    CollectConfig,
    NoiseConfig,
    PerturbedAgent,
    collect_rollouts,
)
from s2e_sim_bridge.navbench.gnm_format import FRAME_SUFFIX, TRAJ_DATA_FILE, write_gnm
from s2e_sim_bridge.navbench.runner import episode_set_for, run_episode
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.scene import generate_street_scene, save_scene

STREET = {"length_m": 30.0, "width_m": 14.0, "num_gaussians": 20_000}
WIDTH_PX = 32


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "street.ply"
    save_scene(generate_street_scene(7, **STREET)[0], path)
    return path


@pytest.fixture(scope="module")
def sim() -> NavBenchSim:
    scene, _ = generate_street_scene(7, **STREET)
    return NavBenchSim(scene, load_embodiment("wheeled"), SimConfig(render=False))


def read_folder(folder):
    with open(folder / TRAJ_DATA_FILE, "rb") as handle:
        data = pickle.load(handle)
    return data["position"], data["yaw"]


def test_write_gnm_round_trip_and_errors(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    poses = [np.array([i, 2.0 * i, 0.1 * i]) for i in range(3)]
    assert write_gnm(tmp_path / "a", frames, poses) == 3
    position, yaw = read_folder(tmp_path / "a")
    np.testing.assert_array_equal(position, [[0, 0], [1, 2], [2, 4]])
    np.testing.assert_allclose(yaw, [0.0, 0.1, 0.2])
    assert position.dtype == yaw.dtype == np.float64
    with Image.open(tmp_path / "a" / f"2{FRAME_SUFFIX}") as image:
        assert image.size == (8, 6)
    with pytest.raises(S2EError, match="more frames than poses"):
        write_gnm(tmp_path / "b", frames, poses[:2])
    with pytest.raises(S2EError, match="more poses than frames"):
        write_gnm(tmp_path / "c", frames[:2], poses)
    with pytest.raises(S2EError, match="uint8"):
        write_gnm(tmp_path / "d", [frames[0].astype(np.float32)], poses[:1])
    with pytest.raises(S2EError, match="3 finite numbers"):
        write_gnm(tmp_path / "e", frames[:1], [np.array([0.0, np.nan, 0.0])])
    with pytest.raises(S2EError, match="jpeg_quality"):
        write_gnm(tmp_path / "f", frames, poses, jpeg_quality=0)
    assert not (tmp_path / "b" / TRAJ_DATA_FILE).exists()  # an unfinished folder has no poses


def test_noise_bursts_perturb_what_the_robot_did(sim) -> None:
    ep_set = episode_set_for(sim, "empty", 2, 0)
    clean, _, _ = run_episode(sim, ep_set, 0, make_agent("expert"))
    clean_poses = sim.record().poses
    noise = NoiseConfig(probability=0.3, std=0.5, burst_steps=3)
    agent = PerturbedAgent(make_agent("expert"), noise, np.random.default_rng(1))
    metrics, poses, _ = run_episode(sim, ep_set, 0, agent)
    assert agent.perturbed_steps > 0
    # the recorded poses are the robot's own, and they differ from the clean run
    np.testing.assert_array_equal(poses, sim.record().poses)
    n = min(len(poses), len(clean_poses))
    assert np.abs(poses[:n, :2] - clean_poses[:n, :2]).max() > 0.05
    # the expert recovers from the bursts
    assert metrics.success and clean.success
    # same seed, same data
    again = PerturbedAgent(make_agent("expert"), noise, np.random.default_rng(1))
    np.testing.assert_array_equal(run_episode(sim, ep_set, 0, again)[1], poses)


def test_noise_off_is_the_expert(sim) -> None:
    ep_set = episode_set_for(sim, "obstacle", 1, 0)
    expert = run_episode(sim, ep_set, 0, make_agent("expert"))[1]
    agent = PerturbedAgent(make_agent("expert"), NoiseConfig(), np.random.default_rng(0))
    np.testing.assert_array_equal(run_episode(sim, ep_set, 0, agent)[1], expert)
    assert agent.perturbed_steps == 0


def test_collect_over_scenes_and_tasks_resumes(tmp_path, monkeypatch) -> None:
    from s2e_sim_bridge.navbench import collect

    small_street = generate_street_scene
    monkeypatch.setattr(collect, "generate_street_scene",
                        lambda seed: small_street(seed, **(STREET | {"num_gaussians": 5000})))
    config = CollectConfig(tasks=("empty", "pedestrian"), episodes_per_task=1, num_scenes=2,
                           scene_seed=3, render_width_px=WIDTH_PX, successful_only=False,
                           noise=NoiseConfig(probability=0.2))
    counts = collect_rollouts(tmp_path, config, progress=False)
    assert counts["written"] == 4 and counts["skipped_existing"] == 0
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())["episodes"]
    assert sorted(manifest) == ["street_seed3_empty-000", "street_seed3_pedestrian-000",
                                "street_seed4_empty-000", "street_seed4_pedestrian-000"]
    for key, outcome in manifest.items():
        assert (tmp_path / f"episodes_{outcome['scene']}_{outcome['task']}.json").is_file()
        position, yaw = read_folder(tmp_path / key)
        assert position.shape == (outcome["frames"], 2) and yaw.shape == (outcome["frames"],)
        with Image.open(tmp_path / key / f"0{FRAME_SUFFIX}") as image:
            assert image.size == (WIDTH_PX, WIDTH_PX * 3 // 4)
    # the two streets differ, so their episodes do
    for task in config.tasks:
        first, second = (read_folder(tmp_path / f"street_seed{s}_{task}-000")[0][0]
                         for s in (3, 4))
        assert np.abs(first - second).max() > 0.1
    again = collect_rollouts(tmp_path, config, progress=False)
    assert again["written"] == 0 and again["skipped_existing"] == 4


def test_cli_collect_and_errors(tmp_path, scene_path, capsys) -> None:
    out = tmp_path / "data"
    args = ["navbench", "collect", "--out", str(out), "--scene", str(scene_path), "--task",
            "obstacle", "--episodes", "1", "--render-width", str(WIDTH_PX), "--noise-prob",
            "0.2", "--noise-std", "0.3", "--no-progress"]
    assert main(args) == 0
    assert "1 episodes written" in capsys.readouterr().out
    assert (out / "street_seed7_obstacle-000" / TRAJ_DATA_FILE).is_file()
    bad = [
        (["--episodes", "0"], "episodes_per_task must be >= 1"),
        (["--noise-prob", "1.5"], "noise probability must be in"),
        (["--noise-std", "-1"], "noise std must be"),
        (["--scenes", "2"], "a scene file is one scene"),
    ]
    for extra, message in bad:
        assert main([*args, *extra]) == 2
        assert message in capsys.readouterr().err
