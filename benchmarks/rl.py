"""RL post-training speed: the policy's share of a rollout step and the PPO update.

Prints, from one run on this machine, for an RL config (default
``config/train/rl_small.yaml``) around a pretrained checkpoint (default the shipped policy's):

- the policy's work per rollout step of ``num_envs`` envs (encode the observations, decode,
  value, sample an action): ms per step;
- one PPO update (``epochs x minibatches`` Adam steps over a rollout of
  ``steps_per_rollout x num_envs`` transitions, KL stop off so every step runs) two ways,
  side by side: from the fused memory the rollout stored (what :func:`train_rl` does for
  every variant with a frozen encoder: ``ram``, ``decoder``) and from the frames (re-running
  the image encoder in every minibatch, what ``full`` must do), and their ratio.

The observations are random frames and goals of the policy's shapes: the cost of the network
does not depend on what the frames show. The simulator's own speed is ``benchmarks/sim.py``.

Usage: python benchmarks/rl.py [--config C] [--init CHECKPOINT] [--variant ram] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch

from s2e_training.pretrained import shipped_checkpoint_path
from s2e_training.rl import RLConfig, distribution
from s2e_training.rl.ppo import compute_gae, ppo_update
from s2e_training.rl.ram import RamPolicy
from s2e_training.rl.runner import build_policy
from s2e_training.rl.storage import RolloutStorage
from s2e_training.train.checkpoint import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "config" / "train" / "rl_small.yaml"


def fill_rollout(policy: RamPolicy, config: RLConfig, store_frames: bool,
                 generator: torch.Generator) -> tuple[RolloutStorage, float]:
    """A full rollout of random observations; returns it and the policy's ms per step."""
    model = policy.config
    n, e = config.ppo.steps_per_rollout, config.env.num_envs
    frame_shape = (model.context_frames, 3, model.image_size, model.image_size)
    shapes = ({"frames": frame_shape, "goal": (3,)} if store_frames
              else policy.rollout_input_shapes())
    storage = RolloutStorage(n, e, shapes, model.waypoints)
    seconds = 0.0
    with torch.no_grad():
        for _ in range(n):
            frames = torch.rand((e, *frame_shape), generator=generator)
            goal = torch.nn.functional.normalize(torch.randn(e, 3, generator=generator))
            t0 = time.perf_counter()
            inputs = policy.rollout_inputs(frames, goal)
            output, value = policy.policy_and_value_from(inputs)
            action = distribution.sample(output, model.waypoint_dt_s, generator,
                                         policy.exploration)
            seconds += time.perf_counter() - t0
            if store_frames:
                inputs = {"frames": frames, "goal": goal}
            storage.add(inputs=inputs, mode=action.mode, waypoints_m=action.waypoints_m,
                        log_prob=action.log_prob, value=value,
                        reward=torch.randn(e, generator=generator),
                        terminated=torch.zeros(e, dtype=torch.bool),
                        truncated=torch.zeros(e, dtype=torch.bool),
                        valid=torch.ones(e, dtype=torch.bool))
    return storage, 1e3 * seconds / n


def update_seconds(policy: RamPolicy, config: RLConfig, storage: RolloutStorage) -> float:
    """Seconds of one PPO update (every minibatch step runs); ``policy`` is restored after."""
    ppo = dataclasses.replace(config.ppo, target_kl=None)
    compute_gae(storage, ppo.gamma, ppo.gae_lambda)
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=ppo.lr)
    state = {k: v.clone() for k, v in policy.state_dict().items()}
    t0 = time.perf_counter()
    ppo_update(policy, optimizer, storage, ppo, policy.config.waypoint_dt_s,
               torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - t0
    policy.load_state_dict(state)  # every timed update starts from the same weights
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="RL YAML")
    parser.add_argument("--init", type=Path, default=None,
                        help="pretraining checkpoint (default: the shipped policy's)")
    parser.add_argument("--variant", default="ram", choices=("ram", "decoder"),
                        help="a variant with a frozen encoder")
    parser.add_argument("--repeats", type=int, default=3, help="timed updates per way")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as each RL process runs (OMP_NUM_THREADS=1 beside env workers)
    config = RLConfig.from_yaml(args.config)
    base, *_ = load_checkpoint(args.init or shipped_checkpoint_path())
    policy = build_policy(base, dataclasses.replace(
        config, policy=dataclasses.replace(config.policy, variant=args.variant)))
    policy.train()
    generator = torch.Generator().manual_seed(config.seed)
    memory_rollout, step_ms = fill_rollout(policy, config, False, generator)
    frames_rollout, _ = fill_rollout(policy, config, True, generator)
    ppo = config.ppo
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, torch threads 1, "
          f"variant {args.variant}, {config.env.num_envs} envs x {ppo.steps_per_rollout} steps, "
          f"{ppo.epochs} epochs x {ppo.minibatches} minibatches")
    print(f"policy per rollout step ({config.env.num_envs} envs): {step_ms:.1f} ms")
    memory_s, frames_s = [], []
    for _ in range(args.repeats):  # interleaved, so both ways see the same load
        memory_s.append(update_seconds(policy, config, memory_rollout))
        frames_s.append(update_seconds(policy, config, frames_rollout))
    best_memory, best_frames = min(memory_s), min(frames_s)
    print(f"PPO update from stored memory: {best_memory:.2f} s   from frames: "
          f"{best_frames:.2f} s   ratio {best_frames / best_memory:.2f}x  (best of "
          f"{args.repeats})")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
