"""RL post-training of the S2E policy: the Residual-Attention Module (RAM) and PPO.

- :mod:`.ram`: :class:`RamPolicy` (pretrained network + RAM + value head + log-std) and the
  ablation variants ``ram``/``decoder``/``full``/``sft``.
- :mod:`.distribution`: the mixture action (mode, then waypoints) with its log-probability
  and entropy.
- :mod:`.storage`, :mod:`.ppo`: rollout buffers; GAE, the clipped PPO losses, the update.
- :mod:`.runner`: rollouts on the NavBench-GS vector env, evaluation, checkpoints
  (``s2e train rl``); :mod:`.config`: the strict YAML config.
"""

from s2e_policy.cli import lazy_attributes

# torch-backed: imported on first use, so `s2e` start-up stays free of torch.
__getattr__ = lazy_attributes(__name__, {
    **dict.fromkeys(("EvalConfig", "PolicyConfig", "RLConfig", "RLConfigError", "env_config"),
                    "config"),
    **dict.fromkeys(("PPOConfig", "compute_gae", "ppo_loss", "ppo_update"), "ppo"),
    **dict.fromkeys(("VARIANTS", "RamPolicy", "ResidualAttentionModule"), "ram"),
    **dict.fromkeys(("RLResult", "build_policy", "load_rl_checkpoint", "train_rl"), "runner"),
})

__all__ = [
    "VARIANTS",
    "EvalConfig",
    "PPOConfig",
    "PolicyConfig",
    "RLConfig",
    "RLConfigError",
    "RLResult",
    "RamPolicy",
    "ResidualAttentionModule",
    "build_policy",
    "compute_gae",
    "env_config",
    "load_rl_checkpoint",
    "ppo_loss",
    "ppo_update",
    "train_rl",
]
