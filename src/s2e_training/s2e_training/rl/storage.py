"""Rollout storage for PPO on a gymnasium vector env with next-step autoreset.

Tensors are laid out ``(N, E, ...)``: N steps per rollout, E environments. Gymnasium's vector
envs reset a finished environment on the *next* ``step`` call (``AutoresetMode.NEXT_STEP``):
the observation returned with ``terminated``/``truncated`` is the episode's last one, and the
following step ignores the action, returns reward 0 and the new episode's first observation.
That reset step is stored with ``valid = False`` and left out of the losses; its value
``V(last observation)`` is exactly what a truncated episode bootstraps from (see
:func:`s2e_training.rl.ppo.compute_gae`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

ADVANTAGE_STD_EPS = 1e-8
"""Added to the advantages' standard deviation when normalising them."""


@dataclass
class RolloutBatch:
    """A flat batch of valid transitions (B of them) for one PPO minibatch.

    Attributes:
        inputs: the policy's inputs per transition (:meth:`RamPolicy.rollout_inputs`):
            ``{"memory": (B, T+1, D)}`` with a frozen encoder, else
            ``{"frames": (B, T, 3, S, S), "goal": (B, 3)}``.
        mode: (B,) int64 sampled modes; ``waypoints_m`` (B, W, 2) sampled waypoints, metres.
        log_prob: (B,) log-probabilities at sampling time; ``value`` (B,) values then.
        advantage: (B,) GAE advantages; ``returns`` (B,) ``advantage + value``.
    """

    inputs: dict[str, Tensor]
    mode: Tensor
    waypoints_m: Tensor
    log_prob: Tensor
    value: Tensor
    advantage: Tensor
    returns: Tensor


class RolloutStorage:
    """Fixed-size buffers for one rollout of ``num_steps`` steps of ``num_envs`` envs.

    Args:
        num_steps: N, steps per environment per rollout.
        num_envs: E.
        input_shapes: shape of each policy input of one observation
            (:meth:`RamPolicy.rollout_input_shapes`), e.g. ``{"memory": (T+1, D)}``.
        num_waypoints: W of one action.
        device: where the buffers live.
    """

    def __init__(self, num_steps: int, num_envs: int, input_shapes: Mapping[str, tuple[int, ...]],
                 num_waypoints: int, device: torch.device | str = "cpu") -> None:
        n, e = num_steps, num_envs
        self.num_steps, self.num_envs = n, e
        self.inputs = {name: torch.zeros((n, e, *shape), device=device)
                       for name, shape in input_shapes.items()}
        self.mode = torch.zeros((n, e), dtype=torch.int64, device=device)
        self.waypoints_m = torch.zeros((n, e, num_waypoints, 2), device=device)
        self.log_prob = torch.zeros((n, e), device=device)
        self.value = torch.zeros((n, e), device=device)
        self.reward = torch.zeros((n, e), device=device)
        self.terminated = torch.zeros((n, e), device=device)
        self.done = torch.zeros((n, e), device=device)
        self.valid = torch.zeros((n, e), dtype=torch.bool, device=device)
        self.next_value = torch.zeros(e, device=device)
        self.advantage = torch.zeros((n, e), device=device)
        self.returns = torch.zeros((n, e), device=device)
        self.step = 0

    def add(self, *, inputs: Mapping[str, Tensor], mode: Tensor, waypoints_m: Tensor,
            log_prob: Tensor, value: Tensor, reward: Tensor, terminated: Tensor,
            truncated: Tensor, valid: Tensor) -> None:
        """Store step ``self.step`` (each argument is (E, ...), as documented on the fields)."""
        if self.step >= self.num_steps:
            raise IndexError(f"rollout storage is full ({self.num_steps} steps)")
        if set(inputs) != set(self.inputs):
            raise KeyError(f"rollout inputs {sorted(inputs)}: this storage holds "
                           f"{sorted(self.inputs)}")
        i = self.step
        for name, tensor in inputs.items():
            self.inputs[name][i] = tensor
        self.mode[i] = mode
        self.waypoints_m[i] = waypoints_m
        self.log_prob[i] = log_prob
        self.value[i] = value
        self.reward[i] = reward
        self.terminated[i] = terminated.float()
        self.done[i] = (terminated | truncated).float()
        self.valid[i] = valid
        self.step += 1

    def reset(self) -> None:
        """Start filling from step 0 again."""
        self.step = 0

    def minibatches(self, num_minibatches: int, generator: torch.Generator,
                    normalise_advantages: bool) -> Iterator[RolloutBatch]:
        """The valid transitions in a random order, split into ``num_minibatches`` batches.

        Advantages are normalised (zero mean, unit std) over all valid transitions of the
        rollout when ``normalise_advantages``.
        """
        index = torch.nonzero(self.valid.flatten(), as_tuple=False).squeeze(-1)
        advantage = self.advantage.flatten()
        if normalise_advantages and index.numel() > 1:
            valid_adv = advantage[index]
            advantage = (advantage - valid_adv.mean()) / (valid_adv.std() + ADVANTAGE_STD_EPS)
        order = index[torch.randperm(index.numel(), generator=generator).to(index.device)]
        inputs = {name: value.flatten(0, 1) for name, value in self.inputs.items()}
        flat = {
            "mode": self.mode.flatten(), "waypoints_m": self.waypoints_m.flatten(0, 1),
            "log_prob": self.log_prob.flatten(), "value": self.value.flatten(),
            "advantage": advantage, "returns": self.returns.flatten(),
        }
        for chunk in torch.tensor_split(order, num_minibatches):
            yield RolloutBatch(inputs={name: value[chunk] for name, value in inputs.items()},
                               **{key: value[chunk] for key, value in flat.items()})
