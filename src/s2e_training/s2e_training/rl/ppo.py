"""PPO for the S2E policy, in one file (CleanRL style): GAE, losses, the update.

Read top to bottom:

1. :class:`PPOConfig`: every hyperparameter, with its meaning.
2. :func:`compute_gae`: generalised advantage estimation over a rollout stored by
   :class:`~s2e_training.rl.storage.RolloutStorage` (next-step autoreset: the reset steps
   are invalid and cut the chains; truncated episodes bootstrap from the value of their
   last observation, terminated ones from 0).
3. :func:`ppo_loss`: for a minibatch, the clipped surrogate
   ``-min(r A, clip(r, 1 - eps, 1 + eps) A)`` with ``r = exp(log p_new - log p_old)`` of the
   mixture action (:mod:`s2e_training.rl.distribution`: mode + waypoints), the value loss
   ``0.5 (V - R)^2`` (optionally clipped around the old value as in PPO2), and the entropy
   bonus of the multimodal policy (categorical entropy of the modes + score-weighted Gaussian
   entropies, :func:`~s2e_training.rl.distribution.mixture_entropy`).
   ``loss = policy_loss + value_coef * value_loss - entropy_coef * entropy``.
4. :func:`ppo_update`: ``epochs`` passes over the rollout in ``minibatches`` random
   minibatches; each step clips the global gradient norm and applies Adam. KL early stop:
   before each step the approximate KL ``E[(r - 1) - log r]`` (Schulman's k3 estimator) of
   the minibatch is computed; once it exceeds ``target_kl`` the update stops there (the
   step is not applied).

Several processes (torch.distributed, one rollout per rank): each rank computes the
gradient of its own minibatch; :func:`all_reduce_gradients` averages them before every step
(as DistributedDataParallel does in pretraining), so every rank applies the same update and
the parameters stay identical. The KL of the early stop is averaged over ranks too, so all
ranks stop at the same step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from s2e_policy.errors import S2EError
from s2e_training.rl import distribution
from s2e_training.rl.ram import RamPolicy
from s2e_training.rl.storage import RolloutBatch, RolloutStorage
from s2e_training.train.pretraining import SINGLE_PROCESS, DistributedContext


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters (YAML section ``ppo``).

    Attributes:
        steps_per_rollout: environment steps per env per rollout (N); a rollout has
            ``N * num_envs`` transitions (per process).
        epochs: passes over each rollout.
        minibatches: minibatches per pass.
        lr: Adam learning rate (constant) of the actor's parameters (RAM, decoder or whole
            network, and log-std).
        value_lr: Adam learning rate of the value head; ``null``: ``lr``. The critic starts
            from scratch while the actor starts pretrained, so it may need a far larger rate
            than the actor's to track returns (explained variance) within a short run.
        value_warmup_updates: updates at the start that train only the value head: the
            policy stays the initial one (SFT) while the critic learns its returns, so the
            first policy gradients use a fitted baseline rather than a random one. Their
            environment steps count in the run's budget.
        gamma: discount per control step.
        gae_lambda: GAE lambda.
        clip_coef: surrogate clipping epsilon.
        clip_value_loss: clip the value prediction to ``clip_coef`` around the old value
            (PPO2; with unnormalised returns of several units this also caps how far the
            critic moves per update).
        value_coef: weight of the value loss.
        entropy_coef: weight of the entropy bonus (nats of the normalised mixture).
        target_kl: KL early-stop threshold per update (nats); ``null`` disables it.
        max_grad_norm: global gradient-norm clip.
        normalise_advantages: normalise advantages over each rollout.
    """

    steps_per_rollout: int = 64
    epochs: int = 4
    minibatches: int = 4
    lr: float = 1.0e-4
    value_lr: float | None = None
    value_warmup_updates: int = 0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_value_loss: bool = True
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    target_kl: float | None = 0.02
    max_grad_norm: float = 0.5
    normalise_advantages: bool = True

    def __post_init__(self) -> None:
        for key in ("steps_per_rollout", "epochs", "minibatches"):
            if getattr(self, key) < 1:
                raise S2EError(f"'ppo.{key}' must be an integer >= 1, got {getattr(self, key)}")
        positive = {"lr": self.lr, "clip_coef": self.clip_coef,
                    "max_grad_norm": self.max_grad_norm}
        if self.target_kl is not None:
            positive["target_kl"] = self.target_kl
        if self.value_lr is not None:
            positive["value_lr"] = self.value_lr
        for key, value in positive.items():
            if not (math.isfinite(value) and value > 0.0):
                raise S2EError(f"'ppo.{key}' must be a finite number > 0, got {value!r}")
        if self.value_warmup_updates < 0:
            raise S2EError("'ppo.value_warmup_updates' must be an integer >= 0, got "
                           f"{self.value_warmup_updates}")
        for key in ("gamma", "gae_lambda"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise S2EError(f"'ppo.{key}' must be in [0, 1], got {value!r}")
        for key in ("value_coef", "entropy_coef"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0.0):
                raise S2EError(f"'ppo.{key}' must be a finite number >= 0, got {value!r}")


def compute_gae(storage: RolloutStorage, gamma: float, gae_lambda: float) -> None:
    """Fill ``storage.advantage`` and ``storage.returns`` (N, E) from a full rollout.

    ``V_next(t)`` is the value of the observation after step ``t``: ``value[t + 1]`` (for the
    last step, ``storage.next_value``). With next-step autoreset, the observation after a
    finishing step is the episode's last, so a truncated episode bootstraps from it::

        delta_t = r_t + gamma * (1 - terminated_t) * V_next(t) - V(t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}

    and invalid (reset) steps get ``A_t = 0``.
    """
    n = storage.num_steps
    next_values = torch.cat([storage.value[1:], storage.next_value[None]], dim=0)
    advantage = torch.zeros_like(storage.next_value)
    for t in reversed(range(n)):
        delta = (storage.reward[t] + gamma * (1.0 - storage.terminated[t]) * next_values[t]
                 - storage.value[t])
        advantage = delta + gamma * gae_lambda * (1.0 - storage.done[t]) * advantage
        advantage = torch.where(storage.valid[t], advantage, torch.zeros_like(advantage))
        storage.advantage[t] = advantage
    storage.returns.copy_(storage.advantage + storage.value)


def ppo_loss(policy: RamPolicy, batch: RolloutBatch, config: PPOConfig,
             waypoint_dt_s: float, train_policy: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO loss of one minibatch and its parts (see the module docstring).

    With ``train_policy=False`` (value warm-up) the loss is ``value_coef * value_loss``
    alone, so no gradient reaches the actor; every term is still computed and reported.

    Returns:
        ``(loss, terms)``: the scalar to back-propagate and detached scalars
        ``policy_loss value_loss entropy mode_entropy gaussian_entropy approx_kl
        clip_fraction``.
    """
    output, value = policy.policy_and_value_from(batch.inputs)
    new_log_prob = distribution.log_prob(output, batch.mode, batch.waypoints_m, waypoint_dt_s,
                                         policy.exploration)
    log_ratio = new_log_prob - batch.log_prob
    ratio = log_ratio.exp()
    adv = batch.advantage
    surrogate = torch.max(-adv * ratio,
                          -adv * ratio.clamp(1.0 - config.clip_coef, 1.0 + config.clip_coef))
    policy_loss = surrogate.mean()
    value_error = (value - batch.returns).square()
    if config.clip_value_loss:
        clipped = batch.value + (value - batch.value).clamp(-config.clip_coef, config.clip_coef)
        value_error = torch.max(value_error, (clipped - batch.returns).square())
    value_loss = 0.5 * value_error.mean()
    entropy, mode_entropy, gaussian_entropy = distribution.mixture_entropy(output,
                                                                           policy.exploration)
    loss = config.value_coef * value_loss
    if train_policy:
        loss = loss + policy_loss - config.entropy_coef * entropy.mean()
    with torch.no_grad():
        terms = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy.mean(),
            "mode_entropy": mode_entropy.mean(),
            "gaussian_entropy": gaussian_entropy.mean(),
            "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "clip_fraction": ((ratio - 1.0).abs() > config.clip_coef).float().mean(),
        }
    return loss, terms


def all_reduce_gradients(params: list[torch.nn.Parameter],
                         distributed: DistributedContext) -> None:
    """Average the gradients of ``params`` over all ranks (in place; no-op in one process).

    Parameters without a gradient count as zero, so every rank all-reduces the same
    tensors in the same order.
    """
    if not distributed.distributed or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= distributed.world_size
    offset = 0
    for param in params:
        size = param.numel()
        param.grad = flat[offset:offset + size].view_as(param).clone()
        offset += size


def _mean_over_ranks(value: float, distributed: DistributedContext, device: torch.device,
                     ) -> float:
    return distributed.batch_mean({"v": value}, 1, device)[0]["v"]


def ppo_update(
    policy: RamPolicy,
    optimizer: torch.optim.Optimizer,
    storage: RolloutStorage,
    config: PPOConfig,
    waypoint_dt_s: float,
    generator: torch.Generator,
    distributed: DistributedContext = SINGLE_PROCESS,
    train_policy: bool = True,
) -> dict[str, float]:
    """Run the PPO epochs on a rollout whose advantages are computed (:func:`compute_gae`).

    Args:
        policy: the policy (its trainable parameters are what ``optimizer`` holds).
        optimizer: Adam over ``policy.trainable_parameters()``.
        storage: the full rollout.
        config: hyperparameters.
        waypoint_dt_s: the model's waypoint time step (s), for the action density.
        generator: orders the minibatches.
        distributed: this process's place in the group.
        train_policy: False during the value warm-up (only the value loss is minimised).

    Returns:
        Means over the minibatches applied of the :func:`ppo_loss` terms, plus
        ``grad_norm``, ``minibatch_steps`` (steps applied), ``early_stop`` (1.0 when the KL
        stop fired), ``stop_kl`` (the approximate KL of the minibatch that stopped the
        update, NaN when none did: a value far above ``target_kl`` after one step means the
        learning rate is too high for the policy's action density) and
        ``explained_variance`` of the rollout's values.

    Raises:
        S2EError: a non-finite loss.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    device = storage.value.device
    sums: dict[str, float] = {}
    steps, early_stop, stop_kl = 0, False, float("nan")
    for _epoch in range(config.epochs):
        for batch in storage.minibatches(config.minibatches, generator,
                                         config.normalise_advantages):
            optimizer.zero_grad(set_to_none=True)
            if batch.mode.numel():
                loss, terms = ppo_loss(policy, batch, config, waypoint_dt_s, train_policy)
                if not torch.isfinite(loss):
                    parts = ", ".join(f"{k} {float(v):.4g}" for k, v in terms.items())
                    raise S2EError(f"PPO loss is not finite ({parts}); lower ppo.lr")
                kl = float(terms["approx_kl"])
            else:  # this rank has no valid transition left for the minibatch
                loss, terms, kl = None, {}, 0.0
            mean_kl = (_mean_over_ranks(kl, distributed, device)
                       if config.target_kl is not None else 0.0)
            if config.target_kl is not None and mean_kl > config.target_kl:
                early_stop, stop_kl = True, mean_kl
                break
            if loss is not None:
                loss.backward()
            all_reduce_gradients(params, distributed)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            steps += 1
            for key, value in {**terms, "grad_norm": grad_norm}.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        if early_stop:
            break
    stats = {key: value / steps for key, value in sums.items()} if steps else {}
    valid = storage.valid
    returns, values = storage.returns[valid], storage.value[valid]
    variance = float(returns.var()) if returns.numel() > 1 else 0.0
    stats["explained_variance"] = (
        float("nan") if variance == 0.0 else 1.0 - float((returns - values).var()) / variance
    )
    stats["minibatch_steps"] = float(steps)
    stats["early_stop"] = float(early_stop)
    stats["stop_kl"] = stop_kl
    return stats
