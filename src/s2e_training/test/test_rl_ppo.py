"""PPO: GAE with next-step autoreset, the update, KL early stop, gradients over 2 processes."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from s2e_policy.errors import S2EError
from s2e_training.model import ModelConfig, S2EPolicyNet
from s2e_training.model.anchors import build_anchors
from s2e_training.rl import distribution
from s2e_training.rl.ppo import PPOConfig, compute_gae, ppo_update
from s2e_training.rl.ram import RamPolicy
from s2e_training.rl.storage import RolloutStorage
from s2e_training.train.checkpoint import parameter_digest

TINY_MODEL = {
    "preset": "small", "image_size": 16, "context_frames": 2, "num_anchors": 4, "waypoints": 3,
    "d_model": 16, "heads": 2, "fusion_layers": 1, "decoder_layers": 1, "ffn_dim": 32,
    "encoder": {"kind": "cnn", "channels": [4, 8]}, "waypoint_dt_s": 0.2,
}
DT_S = 0.2
NUM_STEPS, NUM_ENVS = 8, 4
DDP_TIMEOUT_S = 120.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_policy(variant: str = "ram") -> RamPolicy:
    net = S2EPolicyNet(ModelConfig.from_dict(TINY_MODEL), build_anchors("uniform", 4, 3), seed=0)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return RamPolicy(net, variant, value_hidden=16, seed=0)


def filled_storage(policy: RamPolicy, seed: int, store_observations: bool = False,
                   ) -> RolloutStorage:
    """A rollout of random observations with actions sampled from ``policy``.

    It stores what ``policy.rollout_inputs`` returns, or with ``store_observations`` the
    frames and goals themselves.
    """
    generator = torch.Generator().manual_seed(seed)
    shapes = ({"frames": (2, 3, 16, 16), "goal": (3,)} if store_observations
              else policy.rollout_input_shapes())
    storage = RolloutStorage(NUM_STEPS, NUM_ENVS, shapes, 3)
    with torch.no_grad():
        for _ in range(NUM_STEPS):
            frames = torch.rand((NUM_ENVS, 2, 3, 16, 16), generator=generator)
            goal = torch.nn.functional.normalize(torch.randn(NUM_ENVS, 3, generator=generator))
            inputs = ({"frames": frames, "goal": goal} if store_observations
                      else policy.rollout_inputs(frames, goal))
            output, value = policy.policy_and_value_from(inputs)
            action = distribution.sample(output, DT_S, generator)
            storage.add(inputs=inputs, mode=action.mode,
                        waypoints_m=action.waypoints_m, log_prob=action.log_prob, value=value,
                        reward=torch.randn(NUM_ENVS, generator=generator),
                        terminated=torch.zeros(NUM_ENVS, dtype=torch.bool),
                        truncated=torch.zeros(NUM_ENVS, dtype=torch.bool),
                        valid=torch.ones(NUM_ENVS, dtype=torch.bool))
    return storage


def test_gae_with_next_step_autoreset() -> None:
    # One env: t1 is truncated, t2 is the autoreset step, t4 terminates, t5 resets again.
    storage = RolloutStorage(6, 1, {"goal": (3,)}, 1)
    rewards = [1.0, 2.0, 0.0, 3.0, 10.0, 0.0]
    values = [0.5, 0.4, 0.7, 0.2, 0.1, 0.9]
    terminated = [False, False, False, False, True, False]
    truncated = [False, True, False, False, False, False]
    valid = [True, True, False, True, True, False]
    for t in range(6):
        storage.add(inputs={"goal": torch.zeros(1, 3)},
                    mode=torch.zeros(1, dtype=torch.int64), waypoints_m=torch.zeros(1, 1, 2),
                    log_prob=torch.zeros(1), value=torch.tensor([values[t]]),
                    reward=torch.tensor([rewards[t]]), terminated=torch.tensor([terminated[t]]),
                    truncated=torch.tensor([truncated[t]]), valid=torch.tensor([valid[t]]))
    storage.next_value[:] = 0.3
    gamma, lam = 0.9, 0.8
    compute_gae(storage, gamma, lam)
    a4 = 10.0 - 0.1  # terminated: no bootstrap
    a3 = 3.0 + gamma * 0.1 - 0.2 + gamma * lam * a4
    a1 = 2.0 + gamma * 0.7 - 0.4  # truncated: bootstraps from V(last observation) = value[2]
    a0 = 1.0 + gamma * 0.4 - 0.5 + gamma * lam * a1
    expected = torch.tensor([a0, a1, 0.0, a3, a4, 0.0])
    torch.testing.assert_close(storage.advantage[:, 0], expected)
    torch.testing.assert_close(storage.returns[:, 0], expected + torch.tensor(values))
    # The rollout's end bootstraps from next_value when the episode goes on.
    storage.terminated[4] = 0.0
    storage.done[4] = 0.0
    storage.valid[5] = True
    compute_gae(storage, gamma, lam)
    a5 = 0.0 + gamma * 0.3 - 0.9
    assert float(storage.advantage[5, 0]) == pytest.approx(a5)


def test_minibatches_cover_the_valid_transitions_once() -> None:
    storage = filled_storage(tiny_policy(), seed=0)
    storage.valid[2, 1] = False
    storage.valid[5, 3] = False
    storage.advantage.copy_(torch.arange(NUM_STEPS * NUM_ENVS, dtype=torch.float32)
                            .view(NUM_STEPS, NUM_ENVS))
    batches = list(storage.minibatches(3, torch.Generator().manual_seed(0), False))
    assert len(batches) == 3
    seen = torch.cat([b.advantage for b in batches]).sort().values
    expected = storage.advantage[storage.valid].sort().values
    torch.testing.assert_close(seen, expected)


def test_update_follows_the_advantages_and_moves_only_trainable_parameters() -> None:
    policy = tiny_policy("ram")
    storage = filled_storage(policy, seed=1)
    storage.advantage.copy_(torch.where(storage.mode % 2 == 0, 1.0, -1.0))
    storage.returns.copy_(storage.value + 1.0)
    base_before = {k: v.clone() for k, v in policy.base.state_dict().items()}
    config = PPOConfig(steps_per_rollout=NUM_STEPS, epochs=4, minibatches=2, lr=3e-3,
                       target_kl=None, normalise_advantages=False)
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=config.lr)
    stats = ppo_update(policy, optimizer, storage, config, DT_S, torch.Generator().manual_seed(0))
    assert stats["minibatch_steps"] == 8 and stats["early_stop"] == 0.0
    assert math.isnan(stats["stop_kl"])
    assert stats["approx_kl"] > 0 and 0.0 <= stats["clip_fraction"] <= 1.0
    with torch.no_grad():
        output, value = policy.policy_and_value_from(
            {name: value.flatten(0, 1) for name, value in storage.inputs.items()})
        new = distribution.log_prob(output, storage.mode.flatten(),
                                    storage.waypoints_m.flatten(0, 1), DT_S)
    change = new - storage.log_prob.flatten()
    favoured = storage.advantage.flatten() > 0
    assert change[favoured].mean() > 0 > change[~favoured].mean()
    assert (value - storage.value.flatten()).mean() > 0  # the critic moved towards returns
    for name, tensor in policy.base.state_dict().items():
        assert torch.equal(tensor, base_before[name]), name


def test_value_warmup_moves_only_the_critic_at_its_own_rate() -> None:
    """``train_policy=False`` fits the value head and leaves the actor bit-identical."""
    from s2e_training.rl.config import RLConfig
    from s2e_training.rl.runner import make_optimizer

    policy = tiny_policy("ram")
    storage = filled_storage(policy, seed=4)
    storage.advantage.copy_(torch.where(storage.mode % 2 == 0, 1.0, -1.0))
    storage.returns.copy_(storage.value + 3.0)
    config = PPOConfig(steps_per_rollout=NUM_STEPS, epochs=4, minibatches=2, lr=3e-3,
                       value_lr=3e-2, clip_value_loss=False, target_kl=None)
    shipped = Path(__file__).resolve().parents[3] / "config" / "train" / "rl_small.yaml"
    rl_config = dataclasses.replace(RLConfig.from_yaml(shipped), ppo=config)
    optimizer = make_optimizer(policy, rl_config)
    critic = {id(p) for p in policy.value_head.parameters()}
    groups = optimizer.param_groups
    assert [g["lr"] for g in groups] == [3e-3, 3e-2]
    assert {id(p) for p in groups[1]["params"]} == critic
    assert not critic & {id(p) for p in groups[0]["params"]} and groups[0]["params"]
    actor_before = {name: p.detach().clone() for name, p in policy.named_parameters()
                    if id(p) not in critic}
    error_before = float((storage.value - storage.returns).abs().mean())
    stats = ppo_update(policy, optimizer, storage, config, DT_S,
                       torch.Generator().manual_seed(0), train_policy=False)
    assert stats["minibatch_steps"] == 8
    for name, param in policy.named_parameters():
        if id(param) not in critic:
            assert torch.equal(param, actor_before[name]), name
    with torch.no_grad():
        _, value = policy.policy_and_value_from(
            {name: v.flatten(0, 1) for name, v in storage.inputs.items()})
    assert float((value - storage.returns.flatten()).abs().mean()) < 0.5 * error_before
    # the same update with the policy trained does move the actor
    ppo_update(policy, optimizer, storage, config, DT_S, torch.Generator().manual_seed(0))
    assert any(not torch.equal(p, actor_before[n]) for n, p in policy.named_parameters()
               if id(p) not in critic)


def test_frozen_encoders_store_the_memory_and_update_as_from_the_frames() -> None:
    assert set(tiny_policy("ram").rollout_input_shapes()) == {"memory"}
    assert set(tiny_policy("decoder").rollout_input_shapes()) == {"memory"}
    assert set(tiny_policy("full").rollout_input_shapes()) == {"frames", "goal"}
    config = PPOConfig(steps_per_rollout=NUM_STEPS, epochs=2, minibatches=2, lr=3e-3,
                       target_kl=None)
    results = []
    for store_observations in (False, True):
        policy = tiny_policy("ram")
        storage = filled_storage(policy, seed=6, store_observations=store_observations)
        compute_gae(storage, 0.99, 0.95)
        encoder_calls: list[int] = []
        hook = policy.base.encoder.register_forward_hook(
            lambda *_, calls=encoder_calls: calls.append(1))
        optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=config.lr)
        stats = ppo_update(policy, optimizer, storage, config, DT_S,
                           torch.Generator().manual_seed(0))
        hook.remove()
        results.append((storage, stats, len(encoder_calls), policy.trainable_parameters()))
    (memory_run, memory_stats, memory_calls, memory_params), (frames_run, _, frames_calls,
                                                              frames_params) = results
    assert memory_calls == 0 and frames_calls == config.epochs * config.minibatches
    # the same actions were drawn from the same outputs, and the updates agree
    torch.testing.assert_close(memory_run.log_prob, frames_run.log_prob, rtol=0, atol=0)
    assert memory_stats["minibatch_steps"] == 4
    for a, b in zip(memory_params, frames_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_kl_early_stop() -> None:
    policy = tiny_policy("full")
    storage = filled_storage(policy, seed=2)
    storage.advantage.copy_(torch.randn(storage.advantage.shape,
                                        generator=torch.Generator().manual_seed(3)))
    storage.returns.copy_(storage.value)
    config = PPOConfig(steps_per_rollout=NUM_STEPS, epochs=10, minibatches=4, lr=0.05,
                       target_kl=1e-3)
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=config.lr)
    stats = ppo_update(policy, optimizer, storage, config, DT_S, torch.Generator().manual_seed(0))
    assert stats["early_stop"] == 1.0
    assert 1 <= stats["minibatch_steps"] < 40
    assert stats["stop_kl"] > config.target_kl  # the KL that stopped it is reported


def test_config_is_validated() -> None:
    with pytest.raises(S2EError, match=r"'ppo.gae_lambda' must be in \[0, 1\]"):
        PPOConfig(gae_lambda=1.5)
    with pytest.raises(S2EError, match=r"'ppo.minibatches' must be an integer >= 1"):
        PPOConfig(minibatches=0)
    with pytest.raises(S2EError, match=r"'ppo.target_kl' must be a finite number > 0"):
        PPOConfig(target_kl=-1.0)
    assert dataclasses.replace(PPOConfig(), target_kl=None).target_kl is None
    with pytest.raises(S2EError, match=r"'ppo.value_lr' must be a finite number > 0"):
        PPOConfig(value_lr=0.0)
    with pytest.raises(S2EError, match=r"'ppo.value_warmup_updates' must be an integer >= 0"):
        PPOConfig(value_warmup_updates=-1)


WORKER = textwrap.dedent('''
    import os, sys, torch
    sys.path.insert(0, os.environ["TEST_DIR"])
    torch.set_num_threads(1)
    import importlib.util
    spec = importlib.util.spec_from_file_location("ppo_test", os.environ["TEST_FILE"])
    test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test)
    from s2e_training.rl.ppo import PPOConfig, compute_gae, ppo_update
    from s2e_training.train.checkpoint import parameter_digest
    from s2e_training.train.pretraining import DistributedContext, process_group
    ctx = DistributedContext.from_env()
    with process_group(ctx, torch.device("cpu")):
        policy = test.tiny_policy("ram")
        storage = test.filled_storage(policy, seed=10 + ctx.rank)  # each rank its own rollout
        compute_gae(storage, 0.99, 0.95)
        config = PPOConfig(steps_per_rollout=8, epochs=2, minibatches=2, lr=1e-2, target_kl=None)
        optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=config.lr)
        ppo_update(policy, optimizer, storage, config, 0.2, torch.Generator().manual_seed(0), ctx)
        print(f"rank {ctx.rank} digest {parameter_digest(policy)}", flush=True)
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_average_gradients_and_stay_identical(tmp_path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = {"TEST_DIR": str(tmp_path), "TEST_FILE": __file__, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(worker)],
        capture_output=True, text=True, timeout=DDP_TIMEOUT_S, check=False,
        env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    # The two ranks print concurrently: match "rank R digest HEX" anywhere in the stream.
    digests = dict(re.findall(r"(rank \d) digest ([0-9a-f]+)", done.stdout))
    assert set(digests) == {"rank 0", "rank 1"}
    assert digests["rank 0"] == digests["rank 1"]  # same averaged update on both ranks
    # ... and it is neither rank's own update alone.
    policy = tiny_policy("ram")
    storage = filled_storage(policy, seed=10)
    compute_gae(storage, 0.99, 0.95)
    config = PPOConfig(steps_per_rollout=8, epochs=2, minibatches=2, lr=1e-2, target_kl=None)
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=config.lr)
    ppo_update(policy, optimizer, storage, config, DT_S, torch.Generator().manual_seed(0))
    assert parameter_digest(policy) != digests["rank 0"]
