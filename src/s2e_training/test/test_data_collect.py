"""``s2e navbench collect`` output read back by the training side's GNM adapter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from s2e_policy.cli import main
from s2e_sim_bridge.navbench.episodes import EpisodeSet
from s2e_sim_bridge.scene import generate_street_scene, save_scene
from s2e_training.data.gnm import read_gnm_dataset, read_gnm_trajectory

CONTROL_RATE_HZ = 5.0


def test_collect_writes_readable_gnm_and_resumes(tmp_path, capsys) -> None:
    scene_path = tmp_path / "street.ply"
    save_scene(generate_street_scene(7, length_m=30.0, width_m=14.0, num_gaussians=20_000)[0],
               scene_path)
    out = tmp_path / "data"
    args = ["navbench", "collect", "--out", str(out), "--scene", str(scene_path), "--task",
            "empty", "--episodes", "2", "--render-width", "40", "--no-progress"]
    assert main(args) == 0
    assert "2 episodes written" in capsys.readouterr().out
    ep_set = EpisodeSet.load(out / "episodes_street_seed7_empty.json")
    for ep in ep_set.episodes:
        traj = read_gnm_trajectory(out / f"street_seed7_{ep.episode_id}", CONTROL_RATE_HZ)
        assert len(traj.frames) == len(traj.poses) > 10
        assert traj.frames[0].shape == (30, 40, 3)
        np.testing.assert_allclose(traj.poses[0], ep.start, atol=1e-6)
        # The expert got there: the last pose is within the goal radius.
        assert np.linalg.norm(traj.poses[-1, :2] - ep.goal) <= ep_set.task.goal_radius_m
        # Consecutive frames are 0.2 s apart at <= 2 m/s.
        assert np.max(np.linalg.norm(np.diff(traj.poses[:, :2], axis=0), axis=1)) <= 0.4 + 1e-6
    # The dataset root is a folder of GNM folders: the reader takes it whole.
    assert len(read_gnm_dataset(out, CONTROL_RATE_HZ)) == 2
    assert main(args) == 0
    assert "0 episodes written" in capsys.readouterr().out
    assert json.loads((out / "episodes_street_seed7_empty.json").read_text())["seed"] == 0


def test_data_collect_is_gone() -> None:
    """One command records rollouts: ``s2e navbench collect``, not ``s2e data collect``."""
    with pytest.raises(SystemExit) as exc:
        main(["data", "collect", "--out", "x"])
    assert exc.value.code == 2
