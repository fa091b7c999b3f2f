"""The gymnasium face of NavBench-GS: spaces, rewards, vector envs."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numba
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from s2e_policy.errors import S2EError
from s2e_policy.preprocess import preprocess_image
from s2e_sim_bridge.envs import (
    CRITIC_STATE,
    ENV_ID,
    EnvConfig,
    NavBenchEnv,
    RewardConfig,
    make_vector_env,
)
from s2e_sim_bridge.navbench.agents import make_agent
from s2e_sim_bridge.navbench.sim import SimConfig
from s2e_sim_bridge.scene import generate_street_scene

STREET = {"length_m": 30.0, "width_m": 14.0, "num_gaussians": 20_000}
SMALL = EnvConfig(context_frames=3, image_size_px=32, episode_pool_size=3,
                  sim=SimConfig(render_width_px=48))


@pytest.fixture(scope="module")
def scene():
    return generate_street_scene(7, **STREET)[0]


@pytest.fixture(scope="module")
def env(scene) -> NavBenchEnv:
    return NavBenchEnv(scene, SMALL, seed=0)


def test_passes_gymnasium_checks(scene) -> None:
    check_env(NavBenchEnv(scene, SMALL, seed=1), skip_render_check=True)
    assert ENV_ID in gym.registry


def test_observation_is_what_the_policy_consumes(env) -> None:
    obs, info = env.reset(seed=0)
    assert obs["frames"].shape == (3, 3, 32, 32) and obs["frames"].dtype == np.float32
    # After a reset every slot holds the first image; then they shift, oldest first.
    np.testing.assert_array_equal(obs["frames"][0], obs["frames"][2])
    np.testing.assert_array_equal(obs["frames"][2],
                                  preprocess_image(env.sim.render_camera(), 32))
    first = obs["frames"][2].copy()
    obs, _, _, _, info = env.step(np.array([1.0, 0.0, 0.5]))
    np.testing.assert_array_equal(obs["frames"][1], first)
    pose = info["pose"]
    rel = env.sim.goal_xy - pose[:2]
    bearing = np.arctan2(rel[1], rel[0]) - pose[2]
    expected = [min(max(np.linalg.norm(rel), 0.1), 200.0) / 200.0, np.cos(bearing),
                np.sin(bearing)]
    np.testing.assert_allclose(obs["goal"], expected, atol=1e-5)


def test_reward_is_the_sum_of_its_terms_and_progress_rewards_the_expert(env) -> None:
    env.reset(seed=3)
    expert = make_agent("expert")
    sim_obs = env.sim._observe(0.0)
    expert.reset(env.sim, sim_obs)
    total_progress = 0.0
    for _ in range(25):
        action = expert.act(env.sim._observe(env.sim.physics.time_s))
        _, reward, terminated, truncated, info = env.step(action)
        terms = info["reward_terms"]
        assert set(terms) == {"progress", "arrival", "collision", "sidewalk_centring",
                              "social", "smoothness", "clearance", "overspeed"}
        assert terms["clearance"] == terms["overspeed"] == 0.0  # weights 0 by default
        assert reward == pytest.approx(sum(terms.values()))
        total_progress += terms["progress"]
        if terminated or truncated:
            break
    assert total_progress > 3.0, "the expert's progress was not rewarded"


def test_progress_cap_stops_paying_for_speed(scene) -> None:
    cap_mps = 0.4
    reward = RewardConfig(progress_per_m=2.0, progress_max_mps=cap_mps)
    env = NavBenchEnv(scene, EnvConfig(**{**SMALL.__dict__, "reward": reward}), seed=0)
    _, info = env.reset(seed=3)
    expert = make_agent("expert")
    expert.reset(env.sim, env.sim._observe(0.0))
    dt = env.config.sim.control_period_s
    capped = 0
    for _ in range(25):
        before = info["geodesic_to_goal_m"]
        _, _, terminated, truncated, info = env.step(
            expert.act(env.sim._observe(env.sim.physics.time_s)))
        progress = before - info["geodesic_to_goal_m"]
        # Each step credits its progress up to the cap's distance, never more.
        assert info["reward_terms"]["progress"] == pytest.approx(
            2.0 * min(progress, cap_mps * dt))
        capped += progress > cap_mps * dt
        if terminated or truncated:
            break
    assert capped >= 5, "the expert never drove faster than the cap: the test checks nothing"
    with pytest.raises(S2EError, match="progress_max_mps"):
        RewardConfig(progress_max_mps=0.0)


def test_overspeed_term_weighs_the_command_above_the_cruise_speed(scene) -> None:
    reward = RewardConfig(overspeed_per_mps=-2.0)
    env = NavBenchEnv(scene, EnvConfig(**{**SMALL.__dict__, "reward": reward}), seed=0)
    env.reset(seed=0)
    nominal = env.embodiment.nominal_speed_mps
    assert env.embodiment.max_linear_mps > nominal
    speeds = []
    for _ in range(12):  # full speed ahead: the acceleration limit ramps the command up
        _, reward_total, terminated, truncated, info = env.step(
            np.array([env.embodiment.max_linear_mps, 0.0, 0.0]))
        speeds.append(float(np.hypot(*info["command"][:2])))
        assert info["reward_terms"]["overspeed"] == pytest.approx(
            -2.0 * max(0.0, speeds[-1] - nominal))
        assert reward_total == pytest.approx(sum(info["reward_terms"].values()))
        if terminated or truncated:
            break
    assert min(speeds) < nominal < max(speeds), speeds  # both sides of the cruise speed


def test_clearance_term_weighs_the_footprint_edge_inside_the_margin(scene) -> None:
    reward = RewardConfig(clearance_per_m=-2.0, clearance_margin_m=0.4)
    env = NavBenchEnv(scene, EnvConfig(**{**SMALL.__dict__, "reward": reward}), seed=0)
    env.reset(seed=0)
    occupancy, radius = env.sim.occupancy, env.embodiment.footprint_radius_m
    free = np.argwhere(occupancy.distance_m > radius + 1.0)
    near = np.argwhere((occupancy.distance_m > radius + 0.1)
                       & (occupancy.distance_m < radius + 0.3))
    assert len(free) and len(near)
    far_xy, near_xy = (occupancy.cell_to_world(cells[len(cells) // 2])
                       for cells in (free, near))
    assert env._clearance_intrusion_m(np.array([*far_xy, 0.0])) == 0.0
    d = float(occupancy.distance_to_obstacle(near_xy))
    assert env._clearance_intrusion_m(np.array([*near_xy, 0.0])) == pytest.approx(
        0.4 - (d - radius))
    # Each step's term is the weight times the intrusion at the pose it ends in.
    for _ in range(5):
        _, reward_total, terminated, truncated, info = env.step(np.array([1.0, 0.0, 0.8]))
        assert info["reward_terms"]["clearance"] == pytest.approx(
            -2.0 * env._clearance_intrusion_m(info["pose"]))
        assert reward_total == pytest.approx(sum(info["reward_terms"].values()))
        if terminated or truncated:
            break
    with pytest.raises(S2EError, match="clearance_margin_m"):
        RewardConfig(clearance_margin_m=-0.1)


def test_critic_state_condenses_the_privileged_state(env) -> None:
    _, info = env.reset(seed=1)
    assert info["critic_state"].dtype == np.float32 and info["critic_state"].shape == (4,)
    for _ in range(3):
        *_, info = env.step(np.array([0.8, 0.0, 0.3]))
    state, pose = info["critic_state"], info["pose"]
    assert CRITIC_STATE == ("geodesic_to_goal", "clearance", "nearest_pedestrian", "time")
    assert state[0] == pytest.approx(min(info["geodesic_to_goal_m"] / 50.0, 1.0), abs=1e-6)
    clearance = (float(env.sim.occupancy.distance_to_obstacle(pose[:2]))
                 - env.embodiment.footprint_radius_m)
    assert state[1] == pytest.approx(np.clip(clearance / 2.0, 0.0, 1.0), abs=1e-6)
    peds = info["pedestrians_xy"]
    nearest = np.min(np.linalg.norm(peds - pose[:2], axis=1)) / 5.0 if len(peds) else 1.0
    assert state[2] == pytest.approx(min(nearest, 1.0), abs=1e-6)
    assert state[3] == pytest.approx(0.6 / env.sim.episode.time_limit_s, abs=1e-6)


def test_sidewalk_term(env) -> None:
    road_half, width = env.sidewalks
    assert env._sidewalk_term(0.0) == 1.0
    assert env._sidewalk_term(road_half + width / 2) == pytest.approx(0.0)
    assert env._sidewalk_term(-(road_half + width / 2)) == pytest.approx(0.0)
    assert 0.0 < env._sidewalk_term(road_half + width / 4) < 1.0


def test_waypoint_actions_and_bad_input(scene) -> None:
    env = NavBenchEnv(scene, EnvConfig(**{**SMALL.__dict__, "action_type": "waypoints"}), seed=2)
    env.reset(seed=0)
    waypoints = np.stack([np.arange(1, 6) * 0.2, np.zeros(5)], axis=1)
    env.step(waypoints)
    _, _, _, _, info = env.step(waypoints)
    assert info["command"][0] > 0.0 and info["command"][2] == pytest.approx(0.0)
    with pytest.raises(S2EError, match="finite"):
        env.step(np.full((5, 2), np.nan))
    with pytest.raises(S2EError, match="action_type"):
        NavBenchEnv(scene, EnvConfig(**{**SMALL.__dict__, "action_type": "torque"}))


def test_env_caches_its_episode_pool(env) -> None:
    # The sim keeps every pool episode's world: a redrawn episode reuses its physics and
    # replays exactly as it did the first time, other episodes drawn in between.
    assert env.sim.episode_cache_size == SMALL.episode_pool_size
    episode = env.pool[0][1]

    def run():
        obs, _ = env.reset(options={"episode": episode})
        frames, rewards, poses = [obs["frames"]], [], []
        for _ in range(5):
            obs, reward, _, _, info = env.step(np.array([1.0, 0.0, 0.4], np.float32))
            frames.append(obs["frames"])
            rewards.append(reward)
            poses.append(info["pose"])
        return env.sim.physics, np.array(frames), np.array(rewards), np.array(poses)

    physics, *first = run()
    for seed in range(6):
        env.reset(seed=seed)
        env.step(np.array([1.0, 0.0, -0.4], np.float32))
        assert env.sim.cached_episodes() <= SMALL.episode_pool_size
    again, *second = run()
    assert again is physics
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_vector_env(scene, tmp_path, asynchronous) -> None:
    from s2e_sim_bridge.scene import save_scene

    path = tmp_path / "street.ply"
    save_scene(scene, path)
    threads = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)
    venv = make_vector_env(2, asynchronous=asynchronous, scene=path, config=SMALL, seed=0)
    # Async workers render on their share of the cores; the env gymnasium builds in this
    # process to read the spaces must not shrink this process's own thread count.
    assert numba.get_num_threads() == threads
    try:
        obs, _ = venv.reset(seed=0)
        assert obs["frames"].shape == (2, 3, 3, 32, 32)
        for _ in range(3):
            obs, reward, *_ = venv.step(
                np.tile([[0.8, 0.0, 0.0]], (2, 1)).astype(np.float32))
        assert reward.shape == (2,) and np.all(np.isfinite(reward))
        # Different seeds give the copies different episode pools.
        assert not np.array_equal(obs["goal"][0], obs["goal"][1])
    finally:
        venv.close()


@pytest.mark.parametrize("terminate", [True, None])
def test_collision_rule_can_end_training_episodes(scene, terminate) -> None:
    # `straight` drives into the obstacle on the path: with the override the episode ends
    # (terminated) at that step; with the task's own rule it goes on after the collision.
    config = EnvConfig(**{**SMALL.__dict__, "task": "obstacle",
                          "terminate_on_collision": terminate})
    env = NavBenchEnv(scene, config, seed=0)
    env.reset(seed=0)
    straight = make_agent("straight")
    straight.reset(env.sim, env.sim._observe(0.0))
    for _ in range(300):
        action = straight.act(env.sim._observe(env.sim.physics.time_s))
        _, _, terminated, truncated, info = env.step(action)
        if info["reward_terms"]["collision"] < 0.0:
            break
        assert not (terminated or truncated), "episode ended before the straight run collided"
    else:
        pytest.fail("straight never hit the obstacle")
    assert terminated is (terminate is True)
    assert (info["termination"] == "collision") is (terminate is True)
    assert env.task.terminate_on_collision is (terminate is True)


def test_one_env_trains_on_several_scenes(scene) -> None:
    other = generate_street_scene(8, **STREET)[0]
    env = NavBenchEnv([scene, other], SMALL, seed=0)
    # The episode cache is split between the scenes, at most each one's pool.
    assert [sim.episode_cache_size for sim, _ in env._scenes] == [3, 3]  # 8 -> 4 + 4, pool 3
    split = NavBenchEnv([scene, other, scene], dataclasses.replace(
        SMALL, episode_pool_size=8, episode_cache_size=7), seed=0)
    assert [sim.episode_cache_size for sim, _ in split._scenes] == [3, 2, 2]
    with pytest.raises(S2EError, match="episode_cache_size"):
        NavBenchEnv(scene, dataclasses.replace(SMALL, episode_cache_size=-1), seed=0)
    # Each scene has its own pool; scene 0's is the single-scene environment's pool.
    assert [k for k, _ in env.pool] == [0] * 3 + [1] * 3
    single = NavBenchEnv(scene, SMALL, seed=0)
    assert [e for _, e in env.pool[:3]] == [e for _, e in single.pool]
    assert [e.start for _, e in env.pool[3:]] != [e.start for _, e in single.pool]
    seen = set()
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        k = info["scene_index"]
        seen.add(k)
        assert env.sim.scene is (scene, other)[k]
        assert np.allclose(obs["frames"][-1], preprocess_image(env.sim.render_camera(), 32))
        env.step(np.zeros(3, np.float32))
    assert seen == {0, 1}
    _, info = env.reset(options={"episode": env.pool[4][1], "scene_index": 1})
    assert info["scene_index"] == 1 and env.sim.scene is other
    with pytest.raises(S2EError, match="scene_index 2"):
        env.reset(options={"episode": env.pool[0][1], "scene_index": 2})
    with pytest.raises(S2EError, match="scenes is 2"):
        NavBenchEnv(scene, EnvConfig(**{**SMALL.__dict__, "scenes": 2}))
    with pytest.raises(S2EError, match="empty"):
        NavBenchEnv([], SMALL)
