"""Anchor-Guided Distribution Matching (AGDM) and the single-mode regression baseline.

AGDM (winner-take-all over anchors), for each sample with ground-truth waypoints ``p`` (W, 2)
in metres (robot frame):

1. Normalise the ground truth (:func:`s2e_training.model.anchors.normalise_trajectories`):
   ``p_norm = p / step_m`` and the target speed ``v = step_m / waypoint_dt_s`` (m/s).
2. The *positive* mode ``k*`` is the anchor nearest to ``p_norm``: the smallest mean
   waypoint distance in the normalised space
   (:func:`s2e_training.model.anchors.anchor_distances`). It depends only on the anchors and
   the ground truth, never on the predictions, so the assignment is stable during training.
3. ``nll``: the negative log-likelihood of ``p_norm`` under mode ``k*``'s per-waypoint 2D
   Gaussians (mean ``traj_norm[k*]``, standard deviations ``exp(log_sigma)``, correlation
   ``rho``), summed over waypoints.
4. ``score``: cross-entropy ``-log softmax(scores)[k*]``.
5. ``speed``: ``((speed_mps[k*] - v) / nominal_speed_mps) ** 2`` (speed in units of the
   config's nominal speed, so the term is unit-free).

``total = nll_weight * nll + score_weight * score + speed_weight * speed`` (batch means).
Only mode ``k*``'s trajectory, Gaussian and speed receive gradients; every mode's score does.

The ``regression`` baseline trains the same network with one mode: mode 0's normalised
trajectory is fitted by mean squared error (``traj`` term, weight ``nll_weight``), its speed by
the same ``speed`` term; there is no score or likelihood term.

Every call also reports ``ade_m``: the min-over-modes average displacement error in metres
(AGDM), or mode 0's (regression); it is a metric, not part of the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from s2e_policy.errors import S2EError
from s2e_training.model.anchors import MIN_STEP_M, anchor_distances, normalise_trajectories
from s2e_training.model.config import ModelConfig, ModelConfigError
from s2e_training.model.network import PolicyOutput

LOSS_MODES = ("agdm", "regression")
REGRESSION_MODE_INDEX = 0
"""The mode the regression baseline trains and predicts with."""

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class AGDMLossConfig:
    """Weights and mode of the training loss.

    Attributes:
        mode: ``agdm`` (winner-take-all mixture) or ``regression`` (single-mode MSE baseline).
        nll_weight: weight of the Gaussian NLL (AGDM) or trajectory MSE (regression).
        score_weight: weight of the positive mode's cross-entropy (AGDM only).
        speed_weight: weight of the squared speed error (in nominal-speed units).
        min_step_m: floor on the ground-truth step length (m) when normalising.
    """

    mode: str = "agdm"
    nll_weight: float = 1.0
    score_weight: float = 1.0
    speed_weight: float = 1.0
    min_step_m: float = MIN_STEP_M

    def __post_init__(self) -> None:
        if self.mode not in LOSS_MODES:
            raise ModelConfigError(f"'mode' must be one of {LOSS_MODES}, got {self.mode!r}")
        for key in ("nll_weight", "score_weight", "speed_weight"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0.0):
                raise ModelConfigError(f"'{key}' must be a finite number >= 0, got {value!r}")
        if not self.min_step_m > 0.0:
            raise ModelConfigError(f"'min_step_m' must be > 0 metres, got {self.min_step_m!r}")


class LossTerms(NamedTuple):
    """The total loss and its parts (scalars, batch means) plus the WTA assignment.

    Attributes:
        total: weighted sum that is back-propagated.
        nll: Gaussian NLL of the positive mode (AGDM; 0 for regression).
        score: cross-entropy of the positive mode (AGDM; 0 for regression).
        traj: trajectory MSE of mode 0 in normalised units (regression; 0 for AGDM).
        speed: squared speed error in nominal-speed units.
        ade_m: min-of-K (AGDM) / mode-0 (regression) average displacement error, metres;
            detached.
        positive: (B,) int64 index of the positive mode of each sample.
    """

    total: Tensor
    nll: Tensor
    score: Tensor
    traj: Tensor
    speed: Tensor
    ade_m: Tensor
    positive: Tensor

    def as_floats(self) -> dict[str, float]:
        """The scalar terms as Python floats (for logging)."""
        return {
            name: float(getattr(self, name).detach())
            for name in ("total", "nll", "score", "traj", "speed", "ade_m")
        }


def gaussian_nll_2d(residual: Tensor, gaussian: Tensor) -> Tensor:
    """Negative log-density of a correlated 2D Gaussian at ``residual`` (= x - mean).

    ``-log N = log(2 pi) + log sx + log sy + 0.5 log(1 - rho^2)
    + (dx^2/sx^2 - 2 rho dx dy/(sx sy) + dy^2/sy^2) / (2 (1 - rho^2))``.

    Args:
        residual: (..., 2) ``x - mean``.
        gaussian: (..., 3) ``[log sigma_x, log sigma_y, rho]`` with |rho| < 1.

    Returns:
        (...) per-point negative log-likelihood.
    """
    log_sx, log_sy, rho = gaussian.unbind(-1)
    zx = residual[..., 0] * torch.exp(-log_sx)
    zy = residual[..., 1] * torch.exp(-log_sy)
    one_minus_rho2 = 1.0 - rho.square()
    mahalanobis = (zx.square() - 2.0 * rho * zx * zy + zy.square()) / one_minus_rho2
    return _LOG_2PI + log_sx + log_sy + 0.5 * torch.log(one_minus_rho2) + 0.5 * mahalanobis


def normalised_targets(
    target_m: Tensor, model_config: ModelConfig, min_step_m: float = MIN_STEP_M
) -> tuple[Tensor, Tensor]:
    """Ground truth (B, W, 2|3) metres -> normalised XY (B, W, 2) and speed (B,) m/s.

    Uses the one numpy implementation of the normalisation (the targets need no gradient).
    """
    norm, step_m = normalise_trajectories(target_m.detach().cpu().numpy(), min_step_m)
    device, dtype = target_m.device, torch.float32
    speed = torch.from_numpy(step_m).to(device, dtype) / model_config.waypoint_dt_s
    return torch.from_numpy(norm).to(device, dtype), speed


def positive_modes(target_norm: Tensor, anchors: Tensor) -> Tensor:
    """Winner-take-all assignment: (B, W, 2) normalised GT x (K, W, 2) anchors -> (B,) int64."""
    dist = anchor_distances(target_norm.detach().cpu().numpy(), anchors.detach().cpu().numpy())
    return torch.from_numpy(dist.argmin(axis=1)).to(target_norm.device)


def _select_mode(x: Tensor, index: Tensor) -> Tensor:
    """Pick mode ``index[b]`` of each sample: (B, K, ...) x (B,) -> (B, ...)."""
    return x[torch.arange(x.shape[0], device=x.device), index]


def _check_target(target_m: Tensor, output: PolicyOutput) -> None:
    b, _, w = output.traj_norm.shape[:3]
    if target_m.dim() != 3 or tuple(target_m.shape[:2]) != (b, w) or target_m.shape[2] not in (
        2,
        3,
    ):
        raise S2EError(
            f"target waypoints: expected shape ({b}, {w}, 2|3) metres, got {tuple(target_m.shape)}"
        )


def agdm_loss(
    output: PolicyOutput,
    target_m: Tensor,
    anchors: Tensor,
    model_config: ModelConfig,
    loss_config: AGDMLossConfig | None = None,
) -> LossTerms:
    """AGDM (or the regression baseline, per ``loss_config.mode``); see the module docstring.

    Args:
        output: the network's prediction for a batch of B samples.
        target_m: (B, W, 2|3) ground-truth future waypoints in metres, robot frame (a heading
            column is ignored).
        anchors: (K, W, 2) normalised anchors (the network's ``anchors`` buffer).
        model_config: gives ``waypoint_dt_s`` and ``nominal_speed_mps``.
        loss_config: weights and mode; defaults to AGDM with unit weights.

    Returns:
        :class:`LossTerms` (``total`` is what to back-propagate).
    """
    cfg = loss_config or AGDMLossConfig()
    _check_target(target_m, output)
    target_norm, target_speed = normalised_targets(target_m, model_config, cfg.min_step_m)
    zero = output.scores.new_zeros(())
    ade_per_mode = (output.traj_m[..., :2] - target_m[:, None, :, :2]).norm(dim=-1).mean(-1)
    if cfg.mode == "regression":
        positive = torch.full_like(target_speed, REGRESSION_MODE_INDEX, dtype=torch.int64)
        traj = (output.traj_norm[:, REGRESSION_MODE_INDEX] - target_norm).square().mean()
        nll = score = zero
        ade_m = ade_per_mode[:, REGRESSION_MODE_INDEX].mean().detach()
    else:
        positive = positive_modes(target_norm, anchors)
        residual = target_norm - _select_mode(output.traj_norm, positive)
        nll = gaussian_nll_2d(residual, _select_mode(output.gaussian, positive)).sum(-1).mean()
        score = torch.nn.functional.cross_entropy(output.scores, positive)
        traj = zero
        ade_m = ade_per_mode.min(dim=1).values.mean().detach()
    speed_error = (_select_mode(output.speed_mps, positive) - target_speed)
    speed = (speed_error / model_config.nominal_speed_mps).square().mean()
    total = (
        cfg.nll_weight * (nll + traj) + cfg.score_weight * score + cfg.speed_weight * speed
    )
    return LossTerms(total, nll, score, traj, speed, ade_m, positive)
