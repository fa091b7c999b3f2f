"""Navigator: goal handling, mode selection, controllers and limits, against hand computation.

The policy is :func:`onnx_models.goal_seeker`: 7 straight rays at headings
``[-1.2, -0.8, -0.4, 0, 0.4, 0.8, 1.2]`` rad, moving at 1 m/s with waypoints 0.25 s apart;
the ray nearest the goal bearing scores highest.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.runtime import Navigator, NavigatorConfig, PolicyRuntime, goal_in_robot

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_models as om

S = 1_000_000_000
LONG_NS = 10 * S  # a step long enough that the acceleration limits do not bind
CONTEXT = np.full((3, 3, 16, 16), 0.5, np.float32)
ORIGIN = np.zeros(3)
HEADINGS = np.linspace(-1.2, 1.2, 7)
DT = 0.25
# The paper's controller, with turning on the spot only for goals far behind.
PAPER = NavigatorConfig(controller="direct", turn_in_place_bearing_rad=math.radians(120.0))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> PolicyRuntime:
    path = om.save(om.goal_seeker(speed_mps=1.0), tmp_path_factory.mktemp("nav") / "seek.onnx")
    return PolicyRuntime.from_file(path)


def settled(nav: Navigator, goal, pose=ORIGIN):
    """The decision once the acceleration limits no longer bind."""
    nav.decide(0, pose, goal, CONTEXT)
    return nav.decide(LONG_NS, pose, goal, CONTEXT)


def test_goal_in_robot_frame() -> None:
    pose = np.array([1.0, 2.0, math.pi / 2])  # facing +y
    g = goal_in_robot(pose, np.array([1.0, 5.0, 0.3]))  # 3 m straight ahead
    np.testing.assert_allclose(g.xy, [3.0, 0.0], atol=1e-12)
    assert g.distance_m == pytest.approx(3.0) and g.bearing_rad == pytest.approx(0.0)
    np.testing.assert_allclose(g.encoding, [3.0 / 200, 1.0, 0.0], atol=1e-7)
    behind = goal_in_robot(pose, np.array([0.0, 1.0]))  # robot frame (-1, +1): behind, left
    assert behind.bearing_rad == pytest.approx(3 * math.pi / 4)
    at = goal_in_robot(pose, pose[:2])  # zero distance: bearing defined as 0, d clipped
    assert at.distance_m == 0.0 and at.bearing_rad == 0.0
    np.testing.assert_allclose(at.encoding, [0.1 / 200, 1.0, 0.0], atol=1e-7)


def test_non_finite_or_misshapen_pose_and_goal_raise(runtime) -> None:
    nav = Navigator(runtime, load_embodiment("wheeled"), PAPER)
    with pytest.raises(S2EError, match="odometry pose"):
        nav.decide(0, np.array([0.0, np.nan, 0.0]), np.array([1.0, 0.0]), CONTEXT)
    with pytest.raises(S2EError, match="goal"):
        nav.decide(0, ORIGIN, np.array([np.inf, 0.0]), CONTEXT)
    with pytest.raises(S2EError, match="goal"):
        nav.decide(0, ORIGIN, np.zeros(4), CONTEXT)


def test_direct_controller_follows_highest_mode(runtime) -> None:
    nav = Navigator(runtime, load_embodiment("wheeled"), PAPER)
    goal = 5.0 * np.array([math.cos(0.4), math.sin(0.4)])
    d = settled(nav, goal)
    assert d.mode == 4 and d.behaviour == "policy"
    assert d.probabilities.shape == (7,) and d.probabilities.sum() == pytest.approx(1.0)
    assert int(np.argmax(d.probabilities)) == 4
    assert d.modes.shape == (7, 5, 3)
    np.testing.assert_allclose(d.waypoints[0], [DT * math.cos(0.4), DT * math.sin(0.4), 0.4],
                               atol=1e-6)
    # The paper's controller: v = dx / dt, w = atan2(dy, dx) / dt.
    np.testing.assert_allclose(d.command, [math.cos(0.4), 0.0, 0.4 / DT], atol=1e-6)
    assert d.speed_mps == pytest.approx(1.0)
    assert 0 < d.inference_s <= d.total_s


def test_velocity_and_acceleration_limits(runtime) -> None:
    wheeled = load_embodiment("wheeled")  # 1.5 m/s^2, 3 rad/s^2, 2 rad/s
    nav = Navigator(runtime, wheeled, PAPER)
    goal = 5.0 * np.array([math.cos(0.8), math.sin(0.8)])  # ray 5: w = 0.8 / 0.25 = 3.2
    first = nav.decide(0, ORIGIN, goal, CONTEXT)  # first step: one frame period from rest
    np.testing.assert_allclose(first.command, [1.5 * DT, 0.0, 3.0 * DT], atol=1e-9)
    second = nav.decide(S // 4, ORIGIN, goal, CONTEXT)
    # v reaches its target cos(0.8) < 2 * 1.5 * DT; w is still ramping.
    np.testing.assert_allclose(second.command, [math.cos(0.8), 0.0, 2 * 3.0 * DT], atol=1e-6)
    later = nav.decide(LONG_NS, ORIGIN, goal, CONTEXT)
    np.testing.assert_allclose(later.command, [math.cos(0.8), 0.0, 2.0], atol=1e-6)
    nav.stop()  # after a zero command the ramp starts from rest again
    np.testing.assert_allclose(nav.decide(LONG_NS + S // 4, ORIGIN, goal, CONTEXT).command,
                               first.command, atol=1e-9)


def test_nominal_speed_rescales_the_chosen_mode(runtime) -> None:
    wheeled = load_embodiment("wheeled")
    nav = Navigator(runtime, wheeled, NavigatorConfig(speed="nominal"))
    d = settled(nav, np.array([5.0, 0.0]))
    v = wheeled.nominal_speed_mps
    assert d.mode == 3 and d.speed_mps == pytest.approx(v)
    np.testing.assert_allclose(d.waypoints[:, 0], v * DT * np.arange(1, 6), atol=1e-6)
    np.testing.assert_allclose(d.command, [v, 0.0, 0.0], atol=1e-6)


def test_pure_pursuit_on_a_ray(runtime) -> None:
    lookahead = 0.75
    nav = Navigator(runtime, load_embodiment("wheeled"),
                    NavigatorConfig(controller="pure_pursuit", lookahead_m=lookahead))
    d = settled(nav, 5.0 * np.array([math.cos(-0.4), math.sin(-0.4)]))
    assert d.mode == 2
    # Pursued point at the lookahead on the ray: curvature 2 sin(h) / L at the ray's speed.
    np.testing.assert_allclose(d.command, [1.0, 0.0, 2.0 * math.sin(-0.4) / lookahead],
                               atol=1e-6)


def test_mode_switch_margin_prevents_flip_flopping(runtime) -> None:
    wheeled = load_embodiment("wheeled")
    near_4 = np.array([math.cos(0.21), math.sin(0.21)]) * 5.0  # ray 4 (0.4) barely ahead
    near_3 = np.array([math.cos(0.19), math.sin(0.19)]) * 5.0  # ray 3 (0.0) barely ahead
    plain = Navigator(runtime, wheeled)
    assert [plain.decide(i * S, ORIGIN, g, CONTEXT).mode
            for i, g in enumerate([near_4, near_3, near_4])] == [4, 3, 4]
    sticky = Navigator(runtime, wheeled, NavigatorConfig(mode_switch_margin=0.5))
    assert [sticky.decide(i * S, ORIGIN, g, CONTEXT).mode
            for i, g in enumerate([near_4, near_3, near_4])] == [4, 4, 4]
    # A clearly better mode still wins.
    far = np.array([math.cos(-0.4), math.sin(-0.4)]) * 5.0
    assert sticky.decide(3 * S, ORIGIN, far, CONTEXT).mode == 2


def test_goal_behind_turns_in_place_towards_it(runtime) -> None:
    nav = Navigator(runtime, load_embodiment("wheeled"))
    d = settled(nav, np.array([-3.0, 0.5]))
    assert d.behaviour == "turn_to_goal" and d.goal.bearing_rad > 2.0
    np.testing.assert_allclose(d.command, [0.0, 0.0, 2.0])  # bearing / dt, limited to 2 rad/s
    right = settled(Navigator(runtime, load_embodiment("wheeled")), np.array([-3.0, -0.5]))
    np.testing.assert_allclose(right.command, [0.0, 0.0, -2.0])
    policy_only = Navigator(runtime, load_embodiment("wheeled"),
                            NavigatorConfig(turn_in_place_bearing_rad=None))
    assert settled(policy_only, np.array([-3.0, 0.5])).behaviour == "policy"


def test_non_finite_outputs_give_a_non_finite_command(tmp_path: Path) -> None:
    contract = om.make_contract()
    _, traj = om.ray_fan(7, 5, 1.2)
    speed = np.ones(7)
    speed[3] = np.nan
    path = om.save(om.build_policy(contract, traj, speed, score_bias=np.eye(7)[3]),
                   tmp_path / "nan.onnx")
    nav = Navigator(PolicyRuntime.from_file(path), load_embodiment("wheeled"))
    d = nav.decide(0, ORIGIN, np.array([5.0, 0.0]), CONTEXT)
    assert not np.any(np.isfinite(d.command))
    np.testing.assert_array_equal(nav.limiter.last, np.zeros(3))  # limiter untouched


def test_defaults_pursue_and_turn_beyond_45_degrees(runtime) -> None:
    wheeled = load_embodiment("wheeled")
    nav = Navigator(runtime, wheeled)
    assert nav.config.controller == "pure_pursuit"
    ahead = settled(nav, 5.0 * np.array([math.cos(0.4), math.sin(0.4)]))
    assert ahead.behaviour == "policy" and ahead.mode == 4
    off = settled(Navigator(runtime, wheeled), 5.0 * np.array([math.cos(0.9), math.sin(0.9)]))
    assert off.behaviour == "turn_to_goal" and off.command[0] == 0.0 and off.command[2] > 0


def test_invalid_navigator_config() -> None:
    with pytest.raises(S2EError, match="controller"):
        NavigatorConfig(controller="mpc")
    with pytest.raises(S2EError, match="speed"):
        NavigatorConfig(speed="fast")
    with pytest.raises(S2EError, match="mode_switch_margin"):
        NavigatorConfig(mode_switch_margin=-1.0)
    with pytest.raises(S2EError, match="turn_in_place_bearing_rad"):
        NavigatorConfig(turn_in_place_bearing_rad=4.0)
