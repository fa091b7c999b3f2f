"""RL post-training of the S2E policy: the Residual-Attention Module (RAM) and PPO.

- :mod:`.ram`: :class:`RamPolicy` (pretrained network + RAM + value head + log-std) and the
  ablation variants ``ram``/``decoder``/``full``/``sft``.
- :mod:`.distribution`: the mixture action (mode, then waypoints) with its log-probability
  and entropy.
- :mod:`.storage`, :mod:`.ppo`: rollout buffers; GAE, the clipped PPO losses, the update.
- :mod:`.runner`: rollouts on the NavBench-GS vector env, evaluation, checkpoints
  (``s2e train rl``); :mod:`.config`: the strict YAML config.
"""

from s2e_training.rl.config import EvalConfig, PolicyConfig, RLConfig, RLConfigError, env_config
from s2e_training.rl.ppo import PPOConfig, compute_gae, ppo_loss, ppo_update
from s2e_training.rl.ram import VARIANTS, RamPolicy, ResidualAttentionModule
from s2e_training.rl.runner import RLResult, build_policy, load_rl_checkpoint, train_rl

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
