"""Waypoint-to-velocity controllers and the embodiment limiter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2e_policy.controller import VelocityLimiter, direct_command, pure_pursuit_command
from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError


def test_direct_is_the_papers_formula() -> None:
    wp = np.array([[0.3, 0.1, 0.0], [0.6, 0.3, 0.0]])
    cmd = direct_command(wp, 0.2)
    assert cmd[0] == pytest.approx(0.3 / 0.2)
    assert cmd[1] == 0.0
    assert cmd[2] == pytest.approx(math.atan2(0.1, 0.3) / 0.2)
    np.testing.assert_array_equal(direct_command(np.zeros((3, 2)), 0.2), np.zeros(3))


def test_pure_pursuit_straight_and_arc() -> None:
    straight = np.stack([np.arange(1, 6) * 0.2, np.zeros(5)], 1)
    cmd = pure_pursuit_command(straight, 0.2, lookahead_m=0.6)
    np.testing.assert_allclose(cmd, [1.0, 0.0, 0.0], atol=1e-9)
    # Points on a circle of radius 2 m (left turn): curvature 0.5 -> w = v / 2.
    theta = np.arange(1, 11) * 0.1
    arc = np.stack([2 * np.sin(theta), 2 * (1 - np.cos(theta))], 1)
    cmd = pure_pursuit_command(arc, 0.2, lookahead_m=1.0)
    assert cmd[2] / cmd[0] == pytest.approx(0.5, rel=0.02)
    assert cmd[2] > 0


def test_pure_pursuit_target_behind_turns_in_place() -> None:
    behind = np.array([[-0.5, 0.2], [-1.0, 0.4]])
    cmd = pure_pursuit_command(behind, 0.2, lookahead_m=0.5)
    assert cmd[0] == 0.0 and cmd[2] > 0


def test_limiter_velocity_and_acceleration() -> None:
    wheeled = load_embodiment("wheeled")
    lim = VelocityLimiter(wheeled)
    dt = 0.2
    out = lim(np.array([5.0, 1.0, -9.0]), dt)
    assert out[1] == 0.0, "diff drive has no lateral velocity"
    assert out[0] == pytest.approx(wheeled.max_linear_accel_mps2 * dt)
    assert out[2] == pytest.approx(-wheeled.max_angular_accel_radps2 * dt)
    for _ in range(100):
        out = lim(np.array([5.0, 0.0, -9.0]), dt)
    assert out[0] == pytest.approx(wheeled.max_linear_mps)
    assert out[2] == pytest.approx(-wheeled.max_angular_radps)
    assert lim(np.array([-1.0, 0.0, 0.0]), 10.0)[0] == 0.0, "no reverse by default"
    with pytest.raises(S2EError, match="finite"):
        lim(np.array([np.nan, 0.0, 0.0]), dt)


def test_limiter_holonomic_keeps_lateral() -> None:
    go2 = load_embodiment("go2")
    lim = VelocityLimiter(go2)
    for _ in range(50):
        out = lim(np.array([0.0, 0.4, 0.0]), 0.2)
    assert out[1] == pytest.approx(min(0.4, go2.max_lateral_mps))
