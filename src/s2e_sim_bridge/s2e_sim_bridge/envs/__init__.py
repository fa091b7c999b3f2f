"""Gymnasium environments of NavBench-GS (registered as ``NavBenchGS-v0``)."""

import gymnasium as gym

from s2e_sim_bridge.envs.navbench_env import (
    CRITIC_STATE,
    ENV_ID,
    EnvConfig,
    NavBenchEnv,
    RewardConfig,
    make_vector_env,
)

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="s2e_sim_bridge.envs.navbench_env:NavBenchEnv")

__all__ = ["CRITIC_STATE", "ENV_ID", "EnvConfig", "NavBenchEnv", "RewardConfig", "make_vector_env"]
