"""The action distribution of the S2E policy in RL: a mixture over trajectory modes.

One action is a pair ``(k, a)``: a mode ``k ~ Categorical(softmax(scores / tau))``, then the
waypoints ``a`` (W, 2), metres in base_link at the decision instant (REP-103: x forward, y
left), drawn from that mode's per-waypoint correlated 2D Gaussians. The network predicts the
Gaussians in the normalised motion space (:mod:`s2e_training.model.network`): mean
``traj_norm[k]`` (W, 2) and ``[log sigma_x, log sigma_y, rho]`` (W, 3). The mode's predicted
speed scales them to metres with the step length ``scale_k = max(speed_k * dt, MIN_STEP_M)``
(metres per waypoint interval; the floor keeps the density finite for a standing mode)::

    n ~ N(traj_norm[k], Sigma_k)        (normalised, independent across waypoints)
    a = n * scale_k                     (metres)

so ``a`` is Gaussian with mean ``traj_norm[k] * scale_k`` and log sigmas shifted by
``log scale_k``. Two settings of :class:`Exploration` shape this behaviour distribution of
RL (they change neither the network nor its deterministic action, :func:`greedy_waypoints_m`):

- the mode temperature ``tau`` (1 = the network's own score distribution): ``tau < 1``
  sharpens it towards the top-scored mode, which is the mode the robot runs;
- the exploration floor ``min_sigma_m`` (metres, 0 = none) adds isotropic noise of that
  standard deviation to every waypoint, i.e. ``sigma_min^2 I`` to each waypoint's covariance
  (``sx' = sqrt(sx^2 + s^2)``, ``sy'`` alike, ``rho' = rho sx sy / (sx' sy')``);

and a third, ``sampled_waypoints`` ``n`` (0 = all ``W``), says how much of the trajectory is
an action at all: only waypoints ``w < n`` are drawn from their Gaussians, the others are the
mode's mean (a function of the observation and ``k``, so they add nothing to the density)::

    log p(k, a) = log softmax(scores / tau)[k]
                  - sum_{w < n} NLL_2D(a_w - mean_w, gaussian_w + log scale_k)

with the one correlated-Gaussian density of the project
(:func:`s2e_training.losses.gaussian_nll_2d`). Because the density is of ``a`` in metres,
a change of the predicted speed changes the probability of an executed action: PPO's ratio
is that of what the robot actually did.

The paper's controller (:func:`s2e_policy.controller.direct_command`) steers by the first
waypoint only, so with ``n = W`` the other ``2 (W - 1)`` dimensions of every action are noise
the environment never sees: they carry no advantage, yet every change of their means moves
PPO's ratio and spends its KL budget. ``n = 1`` scores what the robot executes.

Every draw is a deterministic function of standard random numbers, :class:`ExplorationNoise`:
the mode by the Gumbel-max trick, ``k = argmax_j(log softmax(scores / tau)_j + g_j)`` with
``g`` standard Gumbel, and the waypoint noise from standard normals ``z`` through each
waypoint's Cholesky factor. A fourth setting, ``hold_steps``, lets a rollout keep the same
``(g, z)`` of an environment for that many control steps (:class:`HeldNoise`): at every
step the action is still distributed exactly as ``p(k, a)`` (so the log-probability PPO
scores is unchanged), but consecutive actions are correlated. Fresh noise every 0.2 s step
makes a robot that should swerve around an obstacle dither instead: a detour takes seconds
of steering one way, and with the same ``g`` the same anchor (a fixed trajectory shape) keeps
winning while its score stays competitive, as with state-dependent exploration (gSDE).

Entropy (:func:`mixture_entropy`): the exact entropy of the joint ``(k, n)`` in the
normalised space (modes at the temperature ``tau``, Gaussians without the floor),
``H(k) + sum_k p_k H(N_k)`` (the categorical entropy of the modes plus the
score-weighted Gaussian entropies, ``H(N) = sum_w [log(2 pi e) + log sx + log sy +
0.5 log(1 - rho^2)]``). It is the usual approximation of the entropy of the mixture's
marginal over waypoints (exact when the modes do not overlap, an upper bound otherwise).
It is measured in the normalised space so that an entropy bonus widens the Gaussians and
spreads the mode probabilities but does not reward driving faster; in metres the joint
entropy is ``mixture_entropy + 2 W sum_k p_k log scale_k``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from s2e_training.losses import gaussian_nll_2d
from s2e_training.model.anchors import MIN_STEP_M
from s2e_training.model.network import PolicyOutput

_LOG_2PI_E = math.log(2.0 * math.pi) + 1.0


class Exploration(NamedTuple):
    """How RL's behaviour distribution departs from the network's (see the module docstring).

    Attributes:
        min_sigma_m: exploration floor: standard deviation (metres) of the isotropic noise
            added to every waypoint; 0 adds none.
        mode_temperature: ``tau`` of ``softmax(scores / tau)``, the mode probabilities;
            1 keeps the network's, smaller values favour the top-scored mode.
        sampled_waypoints: the leading waypoints drawn from their Gaussians and scored; the
            rest are the mode's mean; 0 draws and scores all of them.
        hold_steps: control steps a rollout keeps an environment's :class:`ExplorationNoise`
            (1: fresh noise every step); it correlates consecutive actions without changing
            the distribution of any one of them.
    """

    min_sigma_m: float = 0.0
    mode_temperature: float = 1.0
    sampled_waypoints: int = 0
    hold_steps: int = 1

    def sampled(self, num_waypoints: int) -> int:
        """How many of ``num_waypoints`` leading waypoints are drawn and scored."""
        n = self.sampled_waypoints
        return num_waypoints if n <= 0 else min(n, num_waypoints)


NO_EXPLORATION = Exploration()
"""The network's own distribution: no floor, temperature 1."""


def mode_log_probs(output: PolicyOutput, exploration: Exploration = NO_EXPLORATION) -> Tensor:
    """(B, K) log-probabilities of the modes, ``log_softmax(scores / tau)``."""
    return torch.log_softmax(output.scores / exploration.mode_temperature, dim=-1)


class MixtureAction(NamedTuple):
    """A batch of sampled actions.

    Attributes:
        mode: (B,) int64 sampled mode index ``k``.
        waypoints_m: (B, W, 2) float32 sampled waypoints in metres (base_link).
        log_prob: (B,) float32 ``log p(k, a)`` under the distribution that drew them.
    """

    mode: Tensor
    waypoints_m: Tensor
    log_prob: Tensor


class ExplorationNoise(NamedTuple):
    """The standard random numbers of B actions (see the module docstring).

    Attributes:
        gumbel: (B, K) standard Gumbel variables, one per mode.
        normal: (B, W, 2) standard normal variables, one pair per waypoint.
    """

    gumbel: Tensor
    normal: Tensor


def draw_noise(batch: int, modes: int, waypoints: int,
               generator: torch.Generator | None = None) -> ExplorationNoise:
    """Fresh :class:`ExplorationNoise` for ``batch`` actions of ``modes`` x ``waypoints``."""
    exponential = torch.empty(batch, modes).exponential_(generator=generator)
    gumbel = -torch.log(exponential.clamp_min(torch.finfo(exponential.dtype).tiny))
    return ExplorationNoise(gumbel, torch.randn(batch, waypoints, 2, generator=generator))


class HeldNoise:
    """The :class:`ExplorationNoise` of E environments, each kept for ``hold_steps`` steps.

    Call :meth:`next` once per control step: an environment gets fresh noise when it has
    used its noise for ``hold_steps`` steps or when ``restart`` says its episode ended, and
    otherwise keeps the noise of its previous step.
    """

    def __init__(self, num_envs: int, hold_steps: int) -> None:
        if hold_steps < 1:
            raise ValueError(f"hold_steps must be >= 1, got {hold_steps}")
        self.hold_steps = hold_steps
        self.age = np.full(num_envs, hold_steps, dtype=np.int64)
        self.noise: ExplorationNoise | None = None

    def next(self, modes: int, waypoints: int, restart: np.ndarray,
             generator: torch.Generator | None = None) -> ExplorationNoise:
        """The noise of this step for every environment.

        Args:
            modes: K, the policy's modes.
            waypoints: W, its waypoints per mode.
            restart: (E,) bool, environments whose episode ended at the previous step.
            generator: for the fresh draws (one draw for all E every step, so the stream
                does not depend on which environments renew).
        """
        fresh = draw_noise(len(self.age), modes, waypoints, generator)
        renew = (self.age >= self.hold_steps) | np.asarray(restart, dtype=bool)
        if self.noise is None:
            self.noise = fresh
        else:
            rows = torch.as_tensor(renew)
            self.noise = ExplorationNoise(
                torch.where(rows[:, None], fresh.gumbel, self.noise.gumbel),
                torch.where(rows[:, None, None], fresh.normal, self.noise.normal))
        self.age = np.where(renew, 1, self.age + 1)
        return self.noise


def step_scale_m(output: PolicyOutput, waypoint_dt_s: float) -> Tensor:
    """Metres per waypoint interval of each mode: (B, K) ``max(speed * dt, MIN_STEP_M)``."""
    return (output.speed_mps * waypoint_dt_s).clamp_min(MIN_STEP_M)


def _pick(x: Tensor, mode: Tensor) -> Tensor:
    """Mode ``mode[b]`` of each sample: (B, K, ...) x (B,) -> (B, ...)."""
    return x[torch.arange(x.shape[0], device=x.device), mode]


def _mode_gaussian_m(
    output: PolicyOutput, mode: Tensor, waypoint_dt_s: float, min_sigma_m: float
) -> tuple[Tensor, Tensor]:
    """Mean (B, W, 2) metres and ``[log sx, log sy, rho]`` (B, W, 3) metres of mode ``mode``.

    With ``min_sigma_m > 0`` the covariance is widened by ``min_sigma_m^2 I`` (module doc).
    """
    scale = _pick(step_scale_m(output, waypoint_dt_s), mode)  # (B,)
    mean_m = _pick(output.traj_norm, mode) * scale[:, None, None]
    gaussian = _pick(output.gaussian, mode)
    log_scale = torch.log(scale)[:, None, None]
    log_sx, log_sy = gaussian[..., 0:1] + log_scale, gaussian[..., 1:2] + log_scale
    rho = gaussian[..., 2:]
    if min_sigma_m > 0.0:
        log_floor = 2.0 * math.log(min_sigma_m)
        wide_sx = 0.5 * torch.logaddexp(2.0 * log_sx, torch.full_like(log_sx, log_floor))
        wide_sy = 0.5 * torch.logaddexp(2.0 * log_sy, torch.full_like(log_sy, log_floor))
        rho = rho * torch.exp(log_sx + log_sy - wide_sx - wide_sy)
        log_sx, log_sy = wide_sx, wide_sy
    return mean_m, torch.cat([log_sx, log_sy, rho], dim=-1)


def log_prob(
    output: PolicyOutput, mode: Tensor, waypoints_m: Tensor, waypoint_dt_s: float,
    exploration: Exploration = NO_EXPLORATION,
) -> Tensor:
    """``log p(k, a)`` of given actions (see the module docstring).

    Waypoints past ``exploration.sampled_waypoints`` are not scored.

    Args:
        output: the policy's prediction for B observations.
        mode: (B,) int64 mode indices.
        waypoints_m: (B, W, 2) waypoints in metres (base_link).
        waypoint_dt_s: seconds between waypoints (the model config's ``waypoint_dt_s``).
        exploration: floor and mode temperature, as used to draw the actions.

    Returns:
        (B,) log-probabilities (log of a density in metres^-2n times a mode probability).
    """
    log_p_mode = _pick(mode_log_probs(output, exploration), mode)
    mean_m, gaussian_m = _mode_gaussian_m(output, mode, waypoint_dt_s, exploration.min_sigma_m)
    n = exploration.sampled(mean_m.shape[1])
    return log_p_mode - gaussian_nll_2d(waypoints_m[:, :n] - mean_m[:, :n],
                                        gaussian_m[:, :n]).sum(-1)


def sample(
    output: PolicyOutput, waypoint_dt_s: float, generator: torch.Generator | None = None,
    exploration: Exploration = NO_EXPLORATION, noise: ExplorationNoise | None = None,
) -> MixtureAction:
    """Draw one action per observation: a mode, then that mode's waypoints.

    Args:
        output: the policy's prediction for B observations.
        waypoint_dt_s: seconds between waypoints.
        generator: torch generator for fresh noise (default: the global one).
        exploration: floor and mode temperature (see the module docstring).
        noise: the standard random numbers to draw with (e.g. held ones,
            :class:`HeldNoise`); None draws fresh ones from ``generator``.

    Returns:
        :class:`MixtureAction` (no gradients).
    """
    with torch.no_grad():
        batch, modes, waypoints = output.traj_norm.shape[:3]
        if noise is None:
            noise = draw_noise(batch, modes, waypoints, generator)
        log_p = mode_log_probs(output, exploration)
        mode = (log_p + noise.gumbel.to(log_p)).argmax(dim=-1)
        mean_m, gaussian_m = _mode_gaussian_m(output, mode, waypoint_dt_s,
                                              exploration.min_sigma_m)
        sx, sy = gaussian_m[..., 0].exp(), gaussian_m[..., 1].exp()
        rho = gaussian_m[..., 2]
        z = noise.normal.to(mean_m)
        dx = sx * z[..., 0]
        dy = sy * (rho * z[..., 0] + torch.sqrt(1.0 - rho.square()) * z[..., 1])
        offset = torch.stack([dx, dy], dim=-1)
        offset[:, exploration.sampled(mean_m.shape[1]):] = 0.0
        waypoints = mean_m + offset
        return MixtureAction(mode, waypoints, log_prob(output, mode, waypoints, waypoint_dt_s,
                                                       exploration))


def greedy_waypoints_m(output: PolicyOutput) -> Tensor:
    """The deterministic action: the top-scored mode's mean waypoints, (B, W, 2) metres."""
    best = output.scores.argmax(dim=-1)
    return _pick(output.traj_m[..., :2], best)


def gaussian_entropy(gaussian: Tensor) -> Tensor:
    """Entropy (nats) of correlated 2D Gaussians ``[log sx, log sy, rho]``: (..., 3) -> (...)."""
    log_sx, log_sy, rho = gaussian.unbind(-1)
    return _LOG_2PI_E + log_sx + log_sy + 0.5 * torch.log(1.0 - rho.square())


def mixture_entropy(output: PolicyOutput, exploration: Exploration = NO_EXPLORATION,
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """Entropy of the joint ``(mode, normalised waypoints)`` (see the module docstring).

    Only the sampled waypoints (``exploration.sampled_waypoints``) count: the others are
    not random.

    Returns:
        ``(total, mode_entropy, gaussian_entropy)``, each (B,) nats: ``total = mode_entropy
        + sum_k p_k H(N_k)`` with ``gaussian_entropy`` the score-weighted second term and
        ``p`` the mode probabilities at ``exploration.mode_temperature``.
    """
    log_p = mode_log_probs(output, exploration)
    p = log_p.exp()
    mode_h = -(p * log_p).sum(-1)
    n = exploration.sampled(output.gaussian.shape[2])
    per_mode = gaussian_entropy(output.gaussian[:, :, :n]).sum(-1)  # (B, K): over waypoints
    gauss_h = (p * per_mode).sum(-1)
    return mode_h + gauss_h, mode_h, gauss_h
