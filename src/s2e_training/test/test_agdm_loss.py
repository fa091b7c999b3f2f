"""AGDM loss: Gaussian NLL, winner-take-all selection, gradient routing, the regression flag."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

from s2e_policy.errors import S2EError
from s2e_training.losses import (
    REGRESSION_MODE_INDEX,
    AGDMLossConfig,
    agdm_loss,
    gaussian_nll_2d,
    normalised_targets,
    positive_modes,
)
from s2e_training.model.anchors import uniform_anchors
from s2e_training.model.config import EncoderConfig, ModelConfig, ModelConfigError
from s2e_training.model.network import PolicyOutput

W = 4
CFG = ModelConfig(
    context_frames=1,
    image_size=16,
    num_anchors=3,
    waypoints=W,
    d_model=8,
    heads=2,
    fusion_layers=0,
    decoder_layers=1,
    ffn_dim=8,
    encoder=EncoderConfig(kind="cnn", channels=(4,)),
    anchor_kind="uniform",
    waypoint_scale_m=0.5,
    waypoint_dt_s=0.5,
)
STEP = np.arange(1, W + 1, dtype=np.float32)
# Three hand-made normalised anchors: straight, veering left, veering right.
ANCHORS = torch.tensor(
    np.stack(
        [
            np.stack([STEP, 0 * STEP], -1),
            np.stack([STEP * 0.8, STEP * 0.6], -1),
            np.stack([STEP * 0.8, -STEP * 0.6], -1),
        ]
    )
)


def _output(
    traj_norm: torch.Tensor,
    gaussian: torch.Tensor | None = None,
    scores: torch.Tensor | None = None,
    speed: torch.Tensor | None = None,
) -> PolicyOutput:
    """A PolicyOutput built by hand from leaf tensors (B, K, W, 2) etc."""
    b, k = traj_norm.shape[:2]
    gaussian = torch.zeros(b, k, W, 3) if gaussian is None else gaussian
    scores = torch.zeros(b, k) if scores is None else scores
    speed = torch.full((b, k), CFG.nominal_speed_mps) if speed is None else speed
    offsets = traj_norm - ANCHORS[:k]
    heading = torch.zeros(b, k, W)
    xy_m = traj_norm * (speed * CFG.waypoint_dt_s)[..., None, None]
    traj_m = torch.cat([xy_m, heading[..., None]], dim=-1)
    return PolicyOutput(scores, offsets, traj_norm, heading, gaussian, speed, traj_m)


def _target_m(traj_norm: np.ndarray, speed_mps: float) -> torch.Tensor:
    return torch.tensor(traj_norm * speed_mps * CFG.waypoint_dt_s, dtype=torch.float32)[None]


def test_gaussian_nll_matches_multivariate_normal() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 64
    residual = torch.randn(n, 2, generator=gen) * 2
    log_sigma = torch.randn(n, 2, generator=gen)
    rho = torch.rand(n, generator=gen) * 1.9 - 0.95
    sx, sy = log_sigma.exp().unbind(-1)
    cov = torch.stack(
        [torch.stack([sx * sx, rho * sx * sy], -1), torch.stack([rho * sx * sy, sy * sy], -1)], -2
    )
    want = -MultivariateNormal(torch.zeros(n, 2), covariance_matrix=cov).log_prob(residual)
    got = gaussian_nll_2d(residual, torch.cat([log_sigma, rho[:, None]], -1))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_gaussian_nll_closed_form_at_the_mean() -> None:
    got = gaussian_nll_2d(torch.zeros(2), torch.tensor([0.0, 0.0, 0.0]))
    assert float(got) == pytest.approx(math.log(2 * math.pi))


def test_targets_are_normalised_with_the_step_length() -> None:
    target = _target_m(np.stack([STEP, 0 * STEP], -1), speed_mps=2.0)
    norm, speed = normalised_targets(target, CFG)
    torch.testing.assert_close(norm[0], ANCHORS[0])
    torch.testing.assert_close(speed, torch.tensor([2.0]))


def test_winner_take_all_picks_the_anchor_with_the_same_direction() -> None:
    left = ANCHORS[1].numpy() * 1.05 + np.array([0.0, 0.1], dtype=np.float32)
    right_fast = ANCHORS[2].numpy()
    straight = ANCHORS[0].numpy() + np.array([0.0, 0.3], dtype=np.float32)
    targets = torch.tensor(np.stack([left, right_fast, straight]))
    norm, _ = normalised_targets(targets * 3.0, CFG)  # scale must not matter
    assert positive_modes(norm, ANCHORS).tolist() == [1, 2, 0]


def test_hand_computed_loss_terms_and_weights() -> None:
    # Mode 1 predicts the ground truth exactly with unit sigmas; scores uniform; exact speed.
    gt_norm = ANCHORS[1].numpy()
    speed_mps = 1.5
    target = _target_m(gt_norm, speed_mps)
    traj = ANCHORS[None].clone()
    out = _output(traj, speed=torch.full((1, 3), speed_mps))
    terms = agdm_loss(out, target, ANCHORS, CFG)
    assert terms.positive.tolist() == [1]
    assert float(terms.nll) == pytest.approx(W * math.log(2 * math.pi), rel=1e-5)
    assert float(terms.score) == pytest.approx(math.log(3), rel=1e-5)
    assert float(terms.speed) == pytest.approx(0.0, abs=1e-10)
    assert float(terms.ade_m) == pytest.approx(0.0, abs=1e-5)
    # A speed error of one nominal speed costs exactly speed_weight.
    out = _output(traj, speed=torch.full((1, 3), speed_mps + CFG.nominal_speed_mps))
    weights = AGDMLossConfig(nll_weight=0.5, score_weight=2.0, speed_weight=3.0)
    terms = agdm_loss(out, target, ANCHORS, CFG, weights)
    assert float(terms.speed) == pytest.approx(1.0, rel=1e-5)
    want = 0.5 * W * math.log(2 * math.pi) + 2.0 * math.log(3) + 3.0
    assert float(terms.total) == pytest.approx(want, rel=1e-5)
    assert set(terms.as_floats()) == {"total", "nll", "score", "traj", "speed", "ade_m"}


def test_min_of_k_ade_in_metres() -> None:
    speed_mps = 1.0
    target = _target_m(ANCHORS[0].numpy(), speed_mps)
    traj = ANCHORS[None].clone()
    traj[0, 0, :, 1] += 0.5  # mode 0 is off by 0.5 normalised units = 0.25 m laterally
    out = _output(traj, speed=torch.full((1, 3), speed_mps))
    terms = agdm_loss(out, target, ANCHORS, CFG)
    assert float(terms.ade_m) == pytest.approx(0.5 * speed_mps * CFG.waypoint_dt_s, rel=1e-5)


def test_gradients_reach_only_the_positive_modes_trajectory() -> None:
    gen = torch.Generator().manual_seed(1)
    b = 2
    traj = (ANCHORS[None].repeat(b, 1, 1, 1) + 0.1 * torch.randn(b, 3, W, 2, generator=gen))
    traj.requires_grad_(True)
    gaussian = (0.1 * torch.randn(b, 3, W, 3, generator=gen)).requires_grad_(True)
    scores = torch.randn(b, 3, generator=gen).requires_grad_(True)
    speed = torch.rand(b, 3, generator=gen).add(0.5).requires_grad_(True)
    target = torch.tensor(np.stack([ANCHORS[1].numpy(), ANCHORS[2].numpy()]) * 0.7)
    out = _output(traj, gaussian, scores, speed)
    terms = agdm_loss(out, target, ANCHORS, CFG)
    assert terms.positive.tolist() == [1, 2]
    terms.total.backward()
    for grad in (traj.grad, gaussian.grad, speed.grad):
        for sample, positive in enumerate([1, 2]):
            others = [k for k in range(3) if k != positive]
            assert torch.all(grad[sample, others] == 0.0)
            assert grad[sample, positive].abs().sum() > 0
    assert torch.all(scores.grad != 0.0)  # the softmax couples every score


def test_regression_uses_mode_zero_mse_only() -> None:
    gen = torch.Generator().manual_seed(2)
    traj = (ANCHORS[None] + 0.2 * torch.randn(1, 3, W, 2, generator=gen)).requires_grad_(True)
    scores = torch.zeros(1, 3, requires_grad=True)
    target = _target_m(ANCHORS[2].numpy(), 1.0)
    out = _output(traj, scores=scores)
    terms = agdm_loss(out, target, ANCHORS, CFG, AGDMLossConfig(mode="regression"))
    want = float((traj[0, 0] - ANCHORS[2]).detach().square().mean())
    assert terms.as_floats()["traj"] == pytest.approx(want, rel=1e-5)
    assert float(terms.nll) == 0.0 and float(terms.score) == 0.0
    assert terms.positive.tolist() == [REGRESSION_MODE_INDEX]
    terms.total.backward()
    assert torch.all(traj.grad[0, 1:] == 0.0) and traj.grad[0, 0].abs().sum() > 0
    assert scores.grad is None or torch.all(scores.grad == 0.0)


@pytest.mark.parametrize("mode", ["agdm", "regression"])
def test_loss_is_finite_for_extreme_inputs(mode: str) -> None:
    b = 4
    traj = torch.full((b, 3, W, 2), 1e6)
    traj[1] = -1e6
    gaussian = torch.zeros(b, 3, W, 3)
    gaussian[..., :2] = -5.0  # the network's LOG_SIGMA_MIN
    gaussian[..., 2] = 0.95  # the network's RHO_MAX
    scores = torch.tensor([[1e4, -1e4, 0.0]]).repeat(b, 1)
    speed = torch.tensor([[0.0, 1e3, 1e-8]]).repeat(b, 1)
    target = torch.zeros(b, W, 3)
    target[1, :, 0] = torch.arange(1, W + 1) * 1e3  # fast
    target[2, :, 1] = 1e-9  # practically stationary
    target[3, :, :2] = torch.tensor(ANCHORS[2].numpy()) * 1e-3
    out = _output(traj, gaussian, scores, speed)
    terms = agdm_loss(out, target, ANCHORS, CFG, AGDMLossConfig(mode=mode))
    assert all(math.isfinite(v) for v in terms.as_floats().values())


def test_bad_targets_and_loss_config_raise() -> None:
    out = _output(ANCHORS[None].clone())
    with pytest.raises(S2EError, match=r"target waypoints: expected shape \(1, 4, 2\|3\)"):
        agdm_loss(out, torch.zeros(1, W + 1, 2), ANCHORS, CFG)
    with pytest.raises(ModelConfigError, match="'mode' must be one of"):
        AGDMLossConfig(mode="mse")
    with pytest.raises(ModelConfigError, match="'score_weight'"):
        AGDMLossConfig(score_weight=-1.0)


def test_loss_trains_the_network_end_to_end() -> None:
    from s2e_training.model.network import S2EPolicyNet

    cfg = ModelConfig(
        context_frames=1, image_size=16, num_anchors=6, waypoints=W, d_model=16, heads=2,
        fusion_layers=0, decoder_layers=1, ffn_dim=16, encoder=EncoderConfig(kind="cnn",
        channels=(4,)), anchor_kind="uniform",
    )
    net = S2EPolicyNet(cfg, uniform_anchors(cfg.num_anchors, W), seed=0)
    frames = torch.rand(8, 1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    goal = torch.tensor([[0.1, 1.0, 0.0]]).repeat(8, 1)
    target = _target_m(ANCHORS[1].numpy(), 0.8).repeat(8, 1, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        terms = agdm_loss(net(frames, goal), target, net.anchors, cfg)
        first = float(terms.total.detach()) if first is None else first
        opt.zero_grad()
        terms.total.backward()
        opt.step()
    assert terms.as_floats()["total"] < first - 1.0
