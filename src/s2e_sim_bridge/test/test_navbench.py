"""NavBench-GS end to end on a small generated street: episodes, agents, sim, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.cli import main
from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench.agents import make_agent
from s2e_sim_bridge.navbench.episodes import (
    OBSTACLE_KEEP_CLEAR_M,
    Episode,
    EpisodeSet,
    ObstacleSpec,
    sample_episodes,
    scene_fingerprint,
)
from s2e_sim_bridge.navbench.obstacles import obstacle_occupancy_fn
from s2e_sim_bridge.navbench.runner import run_episode
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.navbench.tasks import get_task
from s2e_sim_bridge.scene import generate_street_scene, save_scene
from s2e_sim_bridge.world.geodesics import geodesic_field

STREET = {"length_m": 30.0, "width_m": 14.0, "num_gaussians": 20_000}


@pytest.fixture(scope="module")
def sim() -> NavBenchSim:
    scene, _ = generate_street_scene(7, **STREET)
    return NavBenchSim(scene, load_embodiment("wheeled"), SimConfig(render=False))


def episodes(sim: NavBenchSim, task_name: str, n: int, seed: int = 0, **task_kw) -> EpisodeSet:
    task = get_task(task_name, **task_kw)
    emb = sim.embodiment
    eps = sample_episodes(sim.base_occupancy, task, n, seed, emb.footprint_radius_m,
                          emb.nominal_speed_mps,
                          obstacle_occupancy_fn(sim.scene.info.floor_height_m,
                                                sim.config.occupancy))
    return EpisodeSet(sim.scene.info.name, scene_fingerprint(sim.scene), task, emb.name, seed,
                      eps)


def success_rate(sim, ep_set, agent_name) -> float:
    return float(np.mean([run_episode(sim, ep_set, i, make_agent(agent_name))[0].success
                          for i in range(len(ep_set.episodes))]))


def test_episodes_are_seeded_valid_and_round_trip(sim, tmp_path) -> None:
    a = episodes(sim, "obstacle", 4, seed=3, min_geodesic_m=8.0, max_geodesic_m=20.0)
    b = episodes(sim, "obstacle", 4, seed=3, min_geodesic_m=8.0, max_geodesic_m=20.0)
    assert a.episodes == b.episodes
    assert a.episodes != episodes(sim, "obstacle", 4, seed=4, min_geodesic_m=8.0,
                                  max_geodesic_m=20.0).episodes
    radius = sim.embodiment.footprint_radius_m
    for ep in a.episodes:
        assert len(ep.obstacles) == 3
        occ = sim.occupancy_with(ep.obstacles)
        assert occ.is_free(np.array(ep.start[:2]), radius)
        assert occ.is_free(np.array(ep.goal), radius)
        for o in ep.obstacles:
            assert np.linalg.norm(np.subtract((o.x, o.y), ep.start[:2])) >= OBSTACLE_KEEP_CLEAR_M
        # The goal stays reachable around the obstacles, and the reference length accounts
        # for the detour (no shorter than the straight line).
        field = geodesic_field(occ, np.array(ep.goal), radius)
        assert np.isfinite(field.distance_at(np.array(ep.start[:2])))
        assert ep.shortest_path_m >= np.linalg.norm(np.subtract(ep.goal, ep.start[:2])) - 1e-6
        assert 8.0 * 0.9 <= ep.shortest_path_m
    path = a.save(tmp_path / "eps.json")
    loaded = EpisodeSet.load(path)
    assert loaded.episodes == a.episodes and loaded.task == a.task


def test_episode_file_errors(sim, tmp_path) -> None:
    ep_set = episodes(sim, "empty", 1)
    path = ep_set.save(tmp_path / "eps.json")
    with pytest.raises(S2EError, match="not on 'other'"):
        EpisodeSet.load(path).check_scene("other", "0" * 64, str(path))
    raw = json.loads(path.read_text())
    del raw["episodes"][0]["goal"]
    path.write_text(json.dumps(raw))
    with pytest.raises(S2EError, match=r"eps\.json: missing field 'goal'"):
        EpisodeSet.load(path)
    path.write_text("{not json")
    with pytest.raises(S2EError, match="not a JSON episode file"):
        EpisodeSet.load(path)
    with pytest.raises(S2EError, match="unknown task 'cliff'"):
        get_task("cliff")
    with pytest.raises(S2EError, match="could not sample"):
        episodes(sim, "empty", 1, min_geodesic_m=500.0, max_geodesic_m=600.0)


def test_expert_solves_empty(sim) -> None:
    assert success_rate(sim, episodes(sim, "empty", 8, seed=1), "expert") >= 0.95


def test_straight_is_worse_than_expert_on_obstacles(sim) -> None:
    ep_set = episodes(sim, "obstacle", 6, seed=2)
    expert = success_rate(sim, ep_set, "expert")
    assert expert >= 0.8
    assert success_rate(sim, ep_set, "straight") < expert


def test_same_seed_same_metrics_with_pedestrians(sim) -> None:
    ep_set = episodes(sim, "obstacle_pedestrian", 1, seed=5, num_pedestrians=8)
    m1, p1, _ = run_episode(sim, ep_set, 0, make_agent("expert"))
    m2, p2, _ = run_episode(sim, ep_set, 0, make_agent("expert"))
    assert m1 == m2
    np.testing.assert_array_equal(p1, p2)


def test_pedestrians_start_on_free_space_away_from_robot(sim) -> None:
    ep_set = episodes(sim, "pedestrian", 2, seed=6, num_pedestrians=10)
    for ep in ep_set.episodes:
        obs = sim.reset(ep, ep_set.task)
        assert obs.pedestrians_xy.shape == (10, 2)
        assert np.all(sim.occupancy.is_free(obs.pedestrians_xy, 0.25))
        assert np.all(np.linalg.norm(obs.pedestrians_xy - obs.pose[:2], axis=1) > 2.0)


def test_driving_into_an_obstacle_counts_one_collision_then_stuck(sim) -> None:
    # A box in the most open spot of the street, the robot 3 m before it driving at it.
    occ = sim.base_occupancy
    cells = np.argwhere(occ.distance_m == occ.distance_m.max())
    centre = occ.cell_to_world(cells[len(cells) // 2])
    box = ObstacleSpec(float(centre[0]), float(centre[1]), 0.0, (0.6, 0.6, 0.8), (0.8, 0.2, 0.2))
    offset = np.array([3.0, 0.0])
    start, goal = centre - offset, centre + offset
    scripted = Episode("ram", (*start, 0.0), tuple(goal), 6.0, 30.0, (box,))
    task = get_task("obstacle")
    sim.render_images = False
    sim.reset(scripted, task)
    info = None
    for _ in range(200):
        _, info = sim.step((1.0, 0.0, 0.0))
        if info.done:
            break
    rec = sim.record()
    assert rec.static_collisions == 1
    assert info.termination == "stuck"
    # It stopped at the box face: centre minus half the box minus the footprint radius.
    stop_x = centre[0] - 0.3 - sim.embodiment.footprint_radius_m
    assert abs(rec.poses[-1][0] - stop_x) < 0.1
    assert rec.success is False


def test_camera_sees_pedestrians(sim) -> None:
    ep_set = episodes(sim, "pedestrian", 1, seed=9, num_pedestrians=3)
    sim.render_images = True
    obs = sim.reset(ep_set.episodes[0], ep_set.task)
    assert obs.rgb.shape == (sim.height_px, sim.width_px, 3) and obs.rgb.dtype == np.uint8
    np.testing.assert_array_equal(obs.rgb, sim.render_camera())
    x, y, yaw = obs.pose
    ahead = np.array([x + 3.0 * np.cos(yaw), y + 3.0 * np.sin(yaw)])
    sim.crowd.state.positions[:] = ahead + 40.0  # everybody out of view
    empty = sim.render_camera().astype(float)
    sim.crowd.state.positions[0] = ahead  # one pedestrian 3 m in front of the camera
    seen = sim.render_camera().astype(float)
    changed = np.abs(seen - empty).max(axis=2) > 30.0
    third = sim.width_px // 3
    assert changed[:, third:2 * third].mean() > 0.03, "a pedestrian 3 m ahead is not visible"
    assert not changed[:, : sim.width_px // 5].any(), "it should not reach the image edges"


def test_cli_writes_report_and_resumes(tmp_path: Path) -> None:
    scene_path = tmp_path / "street.ply"
    scene, _ = generate_street_scene(7, **STREET)
    save_scene(scene, scene_path)
    out = tmp_path / "run"
    args = ["navbench", "--scene", str(scene_path), "--task", "empty", "--task", "pedestrian",
            "--policy", "expert", "--episodes", "2", "--videos", "1", "--render-width", "48",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"empty", "pedestrian"}
    assert metrics["tasks"]["empty"]["episodes"] == 2
    for name in ("report.md", "trajectories_empty.png", "episode_empty-000.gif",
                 "episodes_pedestrian.json"):
        assert (out / name).is_file(), name
    with (out / "episodes.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    # A re-run resumes: nothing is run twice.
    assert main(args) == 0
    with (out / "episodes.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 4
    # Episodes of this scene are refused on another one.
    other = tmp_path / "other.ply"
    save_scene(generate_street_scene(8, **STREET)[0], other)
    bad = ["navbench", "--scene", str(other), "--episodes-file",
           str(out / "episodes_empty.json"), "--out", str(tmp_path / "x"), "--no-progress"]
    assert main(bad) == 2
