"""GroupedAsyncVectorEnv: several environments per worker process, same results as SyncVectorEnv."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numba
import numpy as np
import pytest
from gymnasium import spaces

from s2e_policy.errors import S2EError
from s2e_sim_bridge.envs import EnvConfig, make_vector_env
from s2e_sim_bridge.envs.navbench_env import _worker_env
from s2e_sim_bridge.envs.vector import GroupedAsyncVectorEnv, VectorEnvWorkerError, _groups
from s2e_sim_bridge.navbench.sim import SimConfig
from s2e_sim_bridge.scene import generate_street_scene, save_scene

STREET = {"length_m": 30.0, "width_m": 14.0, "num_gaussians": 20_000}
# Small images, and collisions end episodes, so that autoresets happen within the test.
CONFIG = EnvConfig(task="obstacle_pedestrian", context_frames=2, image_size_px=24,
                   episode_pool_size=3, terminate_on_collision=True,
                   sim=SimConfig(render_width_px=32))


class CountingEnv(gym.Env):
    """Observation: ``[seed offset, steps]``; ends after ``length`` steps; NaN actions raise."""

    def __init__(self, length: int = 3) -> None:
        self.observation_space = spaces.Box(-1e6, 1e6, (2,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.length, self.steps, self.offset = length, 0, 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        self.offset = float(self.np_random.integers(1000))
        return np.array([self.offset, 0.0]), {"reset": True}

    def step(self, action):
        if not np.isfinite(action).all():
            raise S2EError(f"CountingEnv: action must be finite, got {action}")
        self.steps += 1
        obs = np.array([self.offset, float(self.steps)])
        return obs, float(action[0]), self.steps >= self.length, False, {"steps": self.steps}


def broken_env() -> gym.Env:
    raise S2EError("broken_env: no scene here")


def _assert_infos_equal(a: dict, b: dict, path: str = "info") -> None:
    assert sorted(a) == sorted(b), path
    for key, value in a.items():
        if isinstance(value, dict):
            _assert_infos_equal(value, b[key], f"{path}.{key}")
        else:
            assert np.array_equal(np.asarray(value), np.asarray(b[key])), f"{path}.{key}"


def test_groups_are_contiguous_and_near_equal() -> None:
    assert _groups(4, 2) == [range(0, 2), range(2, 4)]
    assert [len(g) for g in _groups(7, 3)] == [2, 3, 2]
    assert [i for g in _groups(5, 5) for i in g] == list(range(5))


@pytest.mark.parametrize("parent_group", [True, False])
def test_grouped_navbench_envs_equal_the_sync_env(tmp_path, parent_group) -> None:
    """Same seeds and actions as the sync env: the same results at every step.

    Observations, rewards, flags and infos, through autoresets, with groups of two envs
    and of one.
    """
    path = tmp_path / "street.ply"
    save_scene(generate_street_scene(7, **STREET)[0], path)
    sync = make_vector_env(3, asynchronous=False, scene=path, config=CONFIG, seed=4)
    if parent_group:  # make_vector_env's layout: group 0 in this process
        grouped = make_vector_env(3, asynchronous=True, scene=path, config=CONFIG, seed=4,
                                  num_workers=2)
        assert grouped._local is not None and len(grouped._processes) == 1
    else:
        grouped = GroupedAsyncVectorEnv(
            [partial(_worker_env, path, CONFIG, 4 + i, 1) for i in range(3)], num_workers=2)
        assert grouped._local is None and len(grouped._processes) == 2
    threads = numba.get_num_threads()
    assert [len(g) for g in grouped.groups] == [2, 1]
    rng = np.random.default_rng(0)
    ended = 0
    try:
        assert grouped.single_observation_space == sync.single_observation_space
        assert grouped.action_space == sync.action_space
        obs_s, info_s = sync.reset(seed=11)
        obs_g, info_g = grouped.reset(seed=11)
        for step in range(40):
            for key in obs_s:
                assert np.array_equal(obs_s[key], obs_g[key]), (step, key)
            _assert_infos_equal(info_s, info_g)
            actions = np.column_stack([rng.uniform(0.5, 2.0, 3), np.zeros(3),
                                       rng.uniform(-1.0, 1.0, 3)]).astype(np.float32)
            obs_s, rew_s, term_s, trunc_s, info_s = sync.step(actions)
            obs_g, rew_g, term_g, trunc_g, info_g = grouped.step(actions)
            assert np.array_equal(rew_s, rew_g), step
            assert np.array_equal(term_s, term_g) and np.array_equal(trunc_s, trunc_g), step
            ended += int(np.sum(term_s | trunc_s))
            assert numba.get_num_threads() == threads, "the parent's thread count is restored"
    finally:
        sync.close()
        grouped.close()
    assert ended >= 2, "the test must go through autoresets"


@pytest.mark.parametrize("parent_group", [False, True])
def test_failures_name_the_group_and_close_the_env(parent_group) -> None:
    with pytest.raises(VectorEnvWorkerError, match=r"(?s)group 1 \(environments 2-2, in worker "
                                                   r"1\) failed while building.*no scene"):
        GroupedAsyncVectorEnv([CountingEnv, CountingEnv, broken_env], num_workers=2,
                              parent_group=parent_group)
    place = "this process" if parent_group else "worker 0"
    with pytest.raises(VectorEnvWorkerError,
                       match=rf"(?s)group 0 \(environments 0-1, in {place}\) failed while "
                             r"building.*no scene"):
        GroupedAsyncVectorEnv([CountingEnv, broken_env, CountingEnv], num_workers=2,
                              parent_group=parent_group)
    for bad in (1, 2):  # in group 0 (this process, or worker 0), then in worker 1
        venv = GroupedAsyncVectorEnv([CountingEnv] * 3, num_workers=2, parent_group=parent_group)
        venv.reset(seed=0)
        actions = np.array([[0.1], [0.1], [0.2]], dtype=np.float32)
        actions[bad] = np.nan
        with pytest.raises(VectorEnvWorkerError,
                           match=rf"(?s)group {bad // 2} .*during step.*must be finite"):
            venv.step(actions)
        assert venv.closed
        assert not any(p.is_alive() for p in venv._processes)
        with pytest.raises(S2EError, match="closed"):
            venv.step(np.zeros((3, 1), dtype=np.float32))


@pytest.mark.parametrize("parent_group", [False, True])
def test_counting_envs_autoreset_on_the_next_step(parent_group) -> None:
    venv = GroupedAsyncVectorEnv([CountingEnv] * 3, num_workers=2, parent_group=parent_group)
    try:
        obs, info = venv.reset(seed=[1, 2, 3])
        assert info["reset"].all() and obs[:, 1].tolist() == [0.0, 0.0, 0.0]
        for _ in range(3):
            obs, reward, terminated, truncated, info = venv.step(np.full((3, 1), 0.5, np.float32))
        assert terminated.all() and not truncated.any() and obs[:, 1].tolist() == [3.0] * 3
        obs, reward, terminated, _, info = venv.step(np.full((3, 1), 0.5, np.float32))
        assert obs[:, 1].tolist() == [0.0] * 3 and reward.tolist() == [0.0] * 3
        assert info["_reset"].all() and not terminated.any()
    finally:
        venv.close()


def test_worker_count_is_checked() -> None:
    with pytest.raises(S2EError, match="num_workers must be in"):
        GroupedAsyncVectorEnv([CountingEnv] * 2, num_workers=3)
    with pytest.raises(S2EError, match="num_workers must be in"):
        GroupedAsyncVectorEnv([CountingEnv] * 2, num_workers=0)


@pytest.mark.parametrize("parent_group", [False, True])
def test_call_get_attr_and_set_attr_reach_every_env_in_order(parent_group) -> None:
    venv = GroupedAsyncVectorEnv([CountingEnv] * 3, num_workers=2, parent_group=parent_group)
    try:
        venv.reset(seed=0)
        assert venv.get_attr("length") == (3, 3, 3)
        venv.set_attr("length", [1, 2, 5])
        assert venv.get_attr("length") == (1, 2, 5)
        venv.set_attr("length", 4)
        assert venv.call("reset", seed=7)[2][1] == {"reset": True}
        assert venv.get_attr("length") == (4, 4, 4)
        with pytest.raises(S2EError, match="2 values for 3"):
            venv.set_attr("length", [1, 2])
        assert venv.render() is None
    finally:
        venv.close()
