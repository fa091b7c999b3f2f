"""The mixture action: sampling, log-probabilities and entropy agree with each other."""

from __future__ import annotations

import math

import pytest
import torch

from s2e_training.losses import gaussian_nll_2d
from s2e_training.model.network import PolicyOutput
from s2e_training.rl import distribution

DT_S = 0.2
SAMPLES = 100_000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mixture(waypoints: int, speeds: tuple[float, ...]) -> PolicyOutput:
    """One observation, K = len(speeds) modes with distinct means, sigmas and correlations."""
    k = len(speeds)
    generator = torch.Generator().manual_seed(0)
    traj_norm = torch.randn((1, k, waypoints, 2), generator=generator)
    log_sigma = torch.rand((1, k, waypoints, 2), generator=generator) * 0.8 - 0.6
    rho = torch.rand((1, k, waypoints, 1), generator=generator) * 1.6 - 0.8
    scores = torch.tensor([[0.5, -0.3, 1.0, 0.0][:k]])
    speed = torch.tensor([speeds])
    traj_m = torch.cat([traj_norm * (speed * DT_S)[..., None, None],
                        torch.zeros((1, k, waypoints, 1))], dim=-1)
    return PolicyOutput(scores, traj_norm, traj_norm, traj_m[..., 2],
                        torch.cat([log_sigma, rho], dim=-1), speed, traj_m)


def repeat(output: PolicyOutput, n: int) -> PolicyOutput:
    return PolicyOutput(*(t.expand(n, *t.shape[1:]) for t in output))


def test_density_integrates_to_one_over_modes_and_the_plane() -> None:
    # W = 1: the action is a mode and a point of the plane; sum_k of the integral of
    # exp(log p(k, a)) over a fine grid must be 1.
    output = mixture(1, (1.5, 0.8, 2.5))
    step, half = 0.02, 3.0
    axis = torch.arange(-half, half, step) + step / 2
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 1, 2)
    total = 0.0
    for k in range(3):
        batch = repeat(output, grid.shape[0])
        mode = torch.full((grid.shape[0],), k)
        total += float(distribution.log_prob(batch, mode, grid, DT_S).exp().sum()) * step**2
    assert total == pytest.approx(1.0, abs=2e-3)


def test_samples_follow_the_mode_probabilities_and_gaussians() -> None:
    output = mixture(3, (1.5, 0.8, 2.5, 1.2))
    batch = repeat(output, SAMPLES)
    action = distribution.sample(batch, DT_S, torch.Generator().manual_seed(1))
    frequencies = torch.bincount(action.mode, minlength=4).float() / SAMPLES
    torch.testing.assert_close(frequencies, torch.softmax(output.scores[0], -1), atol=4e-3,
                               rtol=0)
    for k in range(4):
        a = action.waypoints_m[action.mode == k]  # (n, W, 2) metres
        scale = output.speed_mps[0, k] * DT_S
        mean = output.traj_norm[0, k] * scale
        sx, sy = (output.gaussian[0, k, :, :2].exp() * scale).unbind(-1)
        rho = output.gaussian[0, k, :, 2]
        torch.testing.assert_close(a.mean(0), mean, atol=0.02, rtol=0)
        torch.testing.assert_close(a.std(0), torch.stack([sx, sy], -1), atol=0.02, rtol=0.02)
        centred = a - a.mean(0)
        corr = (centred[..., 0] * centred[..., 1]).mean(0) / (a[..., 0].std(0) * a[..., 1].std(0))
        torch.testing.assert_close(corr, rho, atol=0.02, rtol=0)


def test_log_prob_of_a_sample_is_the_sum_of_its_parts() -> None:
    output = mixture(4, (1.5, 0.8, 2.5))
    action = distribution.sample(repeat(output, 64), DT_S, torch.Generator().manual_seed(2))
    batch = repeat(output, 64)
    recomputed = distribution.log_prob(batch, action.mode, action.waypoints_m, DT_S)
    torch.testing.assert_close(action.log_prob, recomputed)
    for i in range(8):
        k = int(action.mode[i])
        scale = output.speed_mps[0, k] * DT_S
        log_mode = torch.log_softmax(output.scores[0], -1)[k]
        # Density of the normalised waypoints, then the change of variables to metres.
        norm = action.waypoints_m[i] / scale
        log_norm = -gaussian_nll_2d(norm - output.traj_norm[0, k], output.gaussian[0, k]).sum()
        log_jacobian = -2 * 4 * math.log(scale)
        assert float(action.log_prob[i]) == pytest.approx(
            float(log_mode + log_norm) + log_jacobian, abs=1e-4)


def test_entropy_is_the_expected_negative_log_probability() -> None:
    speeds = (1.5, 0.8, 2.5)
    output = mixture(2, speeds)
    batch = repeat(output, SAMPLES)
    action = distribution.sample(batch, DT_S, torch.Generator().manual_seed(3))
    total, mode_h, gauss_h = distribution.mixture_entropy(output)
    p = torch.softmax(output.scores[0], -1)
    assert float(mode_h) == pytest.approx(float(-(p * p.log()).sum()), abs=1e-6)
    # Joint entropy in metres = the normalised entropy + 2 W E_k[log scale_k].
    log_scale = torch.log(torch.tensor(speeds) * DT_S)
    expected_m = float(total) + 2 * 2 * float((p * log_scale).sum())
    assert float(-action.log_prob.mean()) == pytest.approx(expected_m, abs=0.02)
    assert float(gauss_h) == pytest.approx(float(total - mode_h), abs=1e-6)


def test_standing_modes_keep_a_finite_density() -> None:
    output = mixture(2, (0.0, 1.0))
    action = distribution.sample(repeat(output, 16), DT_S, torch.Generator().manual_seed(4))
    assert torch.isfinite(action.log_prob).all()
    assert torch.isfinite(action.waypoints_m).all()


def test_greedy_action_is_the_top_mode_mean() -> None:
    output = mixture(3, (1.5, 0.8, 2.5))
    greedy = distribution.greedy_waypoints_m(output)
    torch.testing.assert_close(greedy[0], output.traj_m[0, 2, :, :2])  # score 1.0 is top


def test_exploration_floor_adds_isotropic_noise_to_every_waypoint() -> None:
    # A mode with millimetre-wide Gaussians (as pretrained policies predict): the floor
    # widens each waypoint's covariance to Sigma + s^2 I; samples and density agree on it.
    floor_m = 0.1
    output = mixture(2, (1.5, 0.8))
    narrow = torch.full_like(output.gaussian[..., :2], -4.5)  # sigma ~ 0.3 mm at 1.5 m/s
    output = output._replace(gaussian=torch.cat([narrow, output.gaussian[..., 2:]], -1))
    batch = repeat(output, SAMPLES)
    action = distribution.sample(batch, DT_S, torch.Generator().manual_seed(5),
                                 distribution.Exploration(min_sigma_m=floor_m))
    for k in range(2):
        a = action.waypoints_m[action.mode == k]
        scale = output.speed_mps[0, k] * DT_S
        sx, sy = (output.gaussian[0, k, :, :2].exp() * scale).unbind(-1)
        rho = output.gaussian[0, k, :, 2]
        cov_xy = rho * sx * sy
        centred = a - a.mean(0)
        torch.testing.assert_close(a.mean(0), output.traj_norm[0, k] * scale, atol=2e-3,
                                   rtol=0)
        torch.testing.assert_close(a.var(0), torch.stack([sx**2, sy**2], -1) + floor_m**2,
                                   atol=3e-4, rtol=0.02)
        torch.testing.assert_close((centred[..., 0] * centred[..., 1]).mean(0), cov_xy,
                                   atol=3e-4, rtol=0)
    recomputed = distribution.log_prob(batch, action.mode, action.waypoints_m, DT_S,
                                      distribution.Exploration(min_sigma_m=floor_m))
    torch.testing.assert_close(action.log_prob, recomputed)
    # Without the floor the same actions are tens of sigmas off (log-densities hundreds of
    # nats lower): the floor is what keeps the density of executed actions smooth for PPO.
    unfloored = distribution.log_prob(repeat(output, 64),
                                      action.mode[:64], action.waypoints_m[:64], DT_S)
    assert float(unfloored.max()) < float(recomputed[:64].min()) - 100.0


def test_mode_temperature_sharpens_the_modes_consistently() -> None:
    # tau < 1: modes are drawn from softmax(scores / tau), the log-probability and the mode
    # entropy use the same probabilities, the Gaussians and the greedy action do not change.
    tau = 0.3
    exploration = distribution.Exploration(mode_temperature=tau)
    output = mixture(2, (1.5, 0.8, 2.5, 1.2))
    batch = repeat(output, SAMPLES)
    action = distribution.sample(batch, DT_S, torch.Generator().manual_seed(6), exploration)
    expected = torch.softmax(output.scores[0] / tau, -1)
    frequencies = torch.bincount(action.mode, minlength=4).float() / SAMPLES
    torch.testing.assert_close(frequencies, expected, atol=4e-3, rtol=0)
    assert float(expected.max()) > float(torch.softmax(output.scores[0], -1).max()) + 0.2
    tempered = distribution.log_prob(batch, action.mode, action.waypoints_m, DT_S, exploration)
    torch.testing.assert_close(action.log_prob, tempered)
    plain = distribution.log_prob(batch, action.mode, action.waypoints_m, DT_S)
    mode_shift = expected.log() - torch.log_softmax(output.scores[0], -1)
    torch.testing.assert_close(tempered - plain, mode_shift[action.mode])
    _, mode_h, _ = distribution.mixture_entropy(output, exploration)
    assert float(mode_h) == pytest.approx(float(-(expected * expected.log()).sum()), abs=1e-6)


def test_only_the_executed_waypoints_are_drawn_and_scored() -> None:
    # sampled_waypoints = 1: the first waypoint (the one the controller steers by) is drawn
    # from its Gaussian, the others are the mode's mean; the log-probability and the
    # entropy are of the mode and that first waypoint alone.
    speeds = (1.5, 0.8, 2.5)
    exploration = distribution.Exploration(sampled_waypoints=1)
    output = mixture(3, speeds)
    batch = repeat(output, SAMPLES)
    action = distribution.sample(batch, DT_S, torch.Generator().manual_seed(7), exploration)
    scale = output.speed_mps[0, action.mode] * DT_S
    mean_m = output.traj_norm[0, action.mode] * scale[:, None, None]
    torch.testing.assert_close(action.waypoints_m[:, 1:], mean_m[:, 1:])
    assert float((action.waypoints_m[:, 0] - mean_m[:, 0]).abs().mean()) > 1e-2
    torch.testing.assert_close(
        action.log_prob,
        distribution.log_prob(batch, action.mode, action.waypoints_m, DT_S, exploration))
    # moving a later waypoint changes nothing; moving the first one does
    moved = action.waypoints_m.clone()
    moved[:, 1:] += 0.5
    torch.testing.assert_close(
        distribution.log_prob(batch, action.mode, moved, DT_S, exploration), action.log_prob)
    moved[:, 0] += 0.5
    assert not torch.allclose(
        distribution.log_prob(batch, action.mode, moved, DT_S, exploration), action.log_prob)
    # the density's own entropy: E[-log p] = normalised entropy + 2 * 1 * E_k[log scale_k]
    total, _, gauss_h = distribution.mixture_entropy(output, exploration)
    p = torch.softmax(output.scores[0], -1)
    log_scale = torch.log(torch.tensor(speeds) * DT_S)
    expected_m = float(total) + 2 * 1 * float((p * log_scale).sum())
    assert float(-action.log_prob.mean()) == pytest.approx(expected_m, abs=0.02)
    first = distribution.gaussian_entropy(output.gaussian[0, :, 0])  # (K,) first waypoint
    assert float(gauss_h) == pytest.approx(float((p * first).sum()), abs=1e-6)


def test_held_noise_correlates_actions_without_changing_their_distribution() -> None:
    # The same noise gives the same action; held noise renews after hold_steps steps or
    # when an episode ends; every step's action still follows p(k, a).
    exploration = distribution.Exploration(min_sigma_m=0.02, mode_temperature=0.5,
                                           sampled_waypoints=1, hold_steps=3)
    output = repeat(mixture(2, (1.5, 0.8, 2.5, 1.2)), SAMPLES)
    held = distribution.HeldNoise(SAMPLES, exploration.hold_steps)
    generator = torch.Generator().manual_seed(8)
    no_restart = torch.zeros(SAMPLES, dtype=torch.bool).numpy()
    steps = [distribution.sample(output, DT_S, generator, exploration,
                                 held.next(4, 2, no_restart, generator)) for _ in range(4)]
    expected = torch.softmax(output.scores[0] / 0.5, -1)
    for action in steps:
        frequencies = torch.bincount(action.mode, minlength=4).float() / SAMPLES
        torch.testing.assert_close(frequencies, expected, atol=5e-3, rtol=0)
        torch.testing.assert_close(action.log_prob, distribution.log_prob(
            output, action.mode, action.waypoints_m, DT_S, exploration))
    # steps 0-2 share their noise (the same action for the same observation), step 3 renews
    for later in steps[1:3]:
        assert torch.equal(later.mode, steps[0].mode)
        assert torch.equal(later.waypoints_m, steps[0].waypoints_m)
    same_mode = float((steps[3].mode == steps[2].mode).float().mean())
    assert same_mode == pytest.approx(float(expected.square().sum()), abs=5e-3)
    # fresh noise every step (hold 1) does not repeat actions
    fresh = distribution.HeldNoise(SAMPLES, 1)
    a, b = (distribution.sample(output, DT_S, generator, exploration,
                                fresh.next(4, 2, no_restart, generator)) for _ in range(2))
    assert float((a.mode == b.mode).float().mean()) < 0.9
    # an ended episode renews only its own environment's noise
    small = distribution.HeldNoise(3, 5)
    first = small.next(4, 2, no_restart[:3], generator)
    restart = no_restart[:3].copy()
    restart[1] = True
    second = small.next(4, 2, restart, generator)
    assert torch.equal(second.gumbel[[0, 2]], first.gumbel[[0, 2]])
    assert torch.equal(second.normal[[0, 2]], first.normal[[0, 2]])
    assert not torch.equal(second.gumbel[1], first.gumbel[1])
    assert not torch.equal(second.normal[1], first.normal[1])
    with pytest.raises(ValueError, match="hold_steps"):
        distribution.HeldNoise(2, 0)
