"""NavBench-GS end to end on a small generated street: episodes, agents, sim, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.cli import main
from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench import sim as sim_module
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
from s2e_sim_bridge.navbench.tasks import TaskConfig, get_task
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


# Commands of the episode-cache runs: a weaving drive that hits a static obstacle or the
# street's edge within the run (checked below), so the contact state has something to carry.
CACHE_RUN_COMMANDS = [(1.5, 0.0, 0.8 * np.sin(0.5 * k)) for k in range(25)]


def _drive(sim: NavBenchSim, episode: Episode, task: TaskConfig) -> dict[str, object]:
    """Everything a run of ``episode`` under CACHE_RUN_COMMANDS observed, per step."""
    observations = [sim.reset(episode, task)]
    infos = []
    for cmd in CACHE_RUN_COMMANDS:
        obs, info = sim.step(cmd)
        observations.append(obs)
        infos.append(info)
    return {
        "time_s": np.array([o.time_s for o in observations]),
        "pose": np.array([o.pose for o in observations]),
        "velocity": np.array([o.velocity for o in observations]),
        "pedestrians_xy": np.array([o.pedestrians_xy for o in observations]),
        "geodesic_to_goal_m": np.array([o.geodesic_to_goal_m for o in observations]),
        "rgb": np.array([o.rgb for o in observations]),
        "collisions": np.array([(i.static_collisions, i.pedestrian_collisions) for i in infos]),
        "totals": np.array([sim.static_collisions, sim.pedestrian_collisions,
                            sim.physics.static_contact_count,
                            sim.physics.pedestrian_contact_count]),
        "termination": np.array(str(sim.termination)),
    }


def _assert_same_run(got: dict[str, object], expected: dict[str, object], what: str) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=f"{what}: {key}")


def test_episode_cache_resets_bit_identically(sim) -> None:
    # An episode with obstacles and pedestrians, and another (a different crowd size, so a
    # different physics model) run in between: the cached physics must not carry state over.
    a = episodes(sim, "obstacle_pedestrian", 1, seed=5, num_pedestrians=8)
    b = episodes(sim, "pedestrian", 1, seed=6, num_pedestrians=5)
    config = SimConfig(render_width_px=16)
    fresh = NavBenchSim(sim.scene, sim.embodiment, config)
    cached = NavBenchSim(sim.scene, sim.embodiment, config, episode_cache_size=2)
    expected = {ep.episode_id: _drive(fresh, ep, s.task)
                for s in (a, b) for ep in s.episodes}
    for run in expected.values():
        assert run["rgb"].shape == (len(CACHE_RUN_COMMANDS) + 1, fresh.height_px,
                                    fresh.width_px, 3)
        assert run["totals"][0] >= 1, "the run should end up touching the static world"
    physics = {}
    for ep_set in (a, a, b, a, b):
        episode = ep_set.episodes[0]
        got = _drive(cached, episode, ep_set.task)
        _assert_same_run(got, expected[episode.episode_id], episode.episode_id)
        # From the second run of an episode on, its physics is the cached one.
        assert physics.setdefault(episode.episode_id, cached.physics) is cached.physics
    assert cached.cached_episodes() == 2


def _count_builds(monkeypatch) -> dict[str, int]:
    """Count the geodesic fields and physics models the sim module builds from now on."""
    builds = {"geodesic_field": 0, "NavPhysics": 0}
    for name in builds:
        real = getattr(sim_module, name)

        def counted(*args, _name=name, _real=real, **kwargs):
            builds[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(sim_module, name, counted)
    return builds


def test_episode_cache_serves_a_repeated_episode_without_rebuilding(sim, monkeypatch,
                                                                    tmp_path) -> None:
    ep_set = episodes(sim, "obstacle_pedestrian", 2, seed=5, num_pedestrians=8)
    a, b = ep_set.episodes
    builds = _count_builds(monkeypatch)
    cached = NavBenchSim(sim.scene, sim.embodiment, SimConfig(render=False),
                         episode_cache_size=2)
    assert cached.episode_cache_size == 2 and cached.cached_episodes() == 0
    cached.reset(a, ep_set.task)
    first = (cached.obstacles, cached.occupancy, cached.goal_field, cached.physics)
    crowd = cached.crowd
    cached.reset(b, ep_set.task)
    cached.reset(a, ep_set.task)
    assert builds == {"geodesic_field": 2, "NavPhysics": 2}
    assert all(x is y for x, y in zip(
        first, (cached.obstacles, cached.occupancy, cached.goal_field, cached.physics),
        strict=True))
    assert cached.crowd is not crowd  # the crowd is drawn afresh each reset
    # The same episode read back from its file is the same content: served from the cache.
    loaded = EpisodeSet.load(ep_set.save(tmp_path / "eps.json")).episodes[0]
    assert loaded == a and loaded is not a
    cached.reset(loaded, ep_set.task)
    assert cached.physics is first[3] and builds["NavPhysics"] == 2
    # Another id or crowd seed shares the entry; another goal, obstacles or crowd size not.
    cached.reset(dataclasses.replace(a, episode_id="again", pedestrian_seed=1), ep_set.task)
    assert cached.physics is first[3] and builds["NavPhysics"] == 2
    for changed in ({"goal": a.start[:2]}, {"obstacles": a.obstacles[:1]},
                    {"num_pedestrians": 3}):
        cached.reset(dataclasses.replace(a, **changed), ep_set.task)
        assert cached.physics is not first[3], changed
    assert builds == {"geodesic_field": 5, "NavPhysics": 5}
    # Without a cache (the default) every reset builds its own.
    plain = NavBenchSim(sim.scene, sim.embodiment, SimConfig(render=False))
    assert plain.episode_cache_size == 0
    plain.reset(a, ep_set.task)
    physics = plain.physics
    plain.reset(a, ep_set.task)
    assert plain.physics is not physics and plain.cached_episodes() == 0
    assert builds == {"geodesic_field": 7, "NavPhysics": 7}


def test_episode_cache_evicts_the_least_recently_reset(sim, monkeypatch) -> None:
    ep_set = episodes(sim, "empty", 3, seed=1)
    a, b, c = ep_set.episodes
    builds = _count_builds(monkeypatch)
    cached = NavBenchSim(sim.scene, sim.embodiment, SimConfig(render=False),
                         episode_cache_size=2)
    counts = []
    for episode in (a, b, a, c, a, b, c):
        cached.reset(episode, ep_set.task)
        assert cached.cached_episodes() <= 2
        counts.append(builds["geodesic_field"])
    # a, b built; a served; c built, evicting b (a was reset after it); a served; b built,
    # evicting c; c built again.
    assert counts == [1, 2, 2, 3, 3, 4, 5]
    assert builds["NavPhysics"] == 1  # no obstacles: one physics for all three


def test_episodes_without_obstacles_share_one_physics(sim, monkeypatch) -> None:
    # Same crowd size: one MuJoCo model, reset between episodes; a run after another
    # episode used it equals the run of a sim that never ran anything else.
    ep_set = episodes(sim, "pedestrian", 2, seed=7, num_pedestrians=6)
    a, b = ep_set.episodes
    config = SimConfig(render_width_px=16)
    expected = _drive(NavBenchSim(sim.scene, sim.embodiment, config), b, ep_set.task)
    builds = _count_builds(monkeypatch)
    shared = NavBenchSim(sim.scene, sim.embodiment, config)
    _drive(shared, a, ep_set.task)
    physics = shared.physics
    _assert_same_run(_drive(shared, b, ep_set.task), expected, "after another episode")
    assert shared.physics is physics and builds["NavPhysics"] == 1
    # another crowd size, or obstacles: a model of its own
    shared.reset(dataclasses.replace(a, num_pedestrians=3), ep_set.task)
    assert shared.physics is not physics and builds["NavPhysics"] == 2
    blocked = episodes(sim, "obstacle", 1, seed=5).episodes[0]
    shared.reset(blocked, ep_set.task)
    assert shared.physics is not physics and builds["NavPhysics"] == 3


@pytest.mark.parametrize("size", [-1, 1.5, None])
def test_episode_cache_size_must_be_a_count(sim, size) -> None:
    with pytest.raises(S2EError, match=rf"episode_cache_size must be an integer >= 0.*"
                                       rf"got {size!r}"):
        NavBenchSim(sim.scene, sim.embodiment, SimConfig(render=False),
                    episode_cache_size=size)


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
