"""SafetyCore: one test per safety function, each checking the reason it reports."""

from __future__ import annotations

import numpy as np
import pytest

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.runtime import SafetyConfig, SafetyCore, StopReason

S = 1_000_000_000  # nanoseconds per second
POSE = np.array([0.0, 0.0, 0.0])
GOAL = np.array([5.0, 0.0])
GO = np.array([1.0, 0.0, 0.5])


def ready_core(name: str = "wheeled", **config) -> SafetyCore:
    core = SafetyCore(load_embodiment(name), SafetyConfig(**config))
    core.note_image(0)
    core.note_odometry(0, POSE)
    core.note_goal(0, GOAL)
    return core


def test_all_inputs_fresh_lets_the_command_through() -> None:
    out = ready_core().filter(0, GO, goal_distance_m=5.0)
    assert out.reasons == () and not out.stopped and not out.clipped
    np.testing.assert_array_equal(out.command, GO)


def test_missing_inputs_stop() -> None:
    core = SafetyCore(load_embodiment("wheeled"))
    out = core.filter(0, GO, 5.0)
    assert out.reasons == (StopReason.NO_IMAGE, StopReason.NO_ODOMETRY, StopReason.NO_GOAL)
    np.testing.assert_array_equal(out.command, np.zeros(3))


def test_stale_image_and_odometry_watchdog() -> None:
    core = ready_core(image_timeout_s=0.5, odometry_timeout_s=0.2)
    assert core.filter(int(0.2 * S), GO, 5.0).reasons == ()
    assert core.filter(int(0.3 * S), GO, 5.0).reasons == (StopReason.STALE_ODOMETRY,)
    assert core.filter(int(0.6 * S), GO, 5.0).reasons == (StopReason.STALE_IMAGE,
                                                          StopReason.STALE_ODOMETRY)
    core.note_image(int(0.6 * S))
    core.note_odometry(int(0.6 * S), POSE)
    assert core.filter(int(0.6 * S), GO, 5.0).reasons == ()


def test_stale_goal_watchdog_only_when_configured() -> None:
    assert ready_core().filter(100 * S, GO, 5.0).reasons == (StopReason.STALE_IMAGE,
                                                             StopReason.STALE_ODOMETRY)
    core = ready_core(goal_timeout_s=2.0)
    core.note_image(3 * S)
    core.note_odometry(3 * S, POSE)
    assert core.filter(3 * S, GO, 5.0).reasons == (StopReason.STALE_GOAL,)


def test_non_finite_odometry_and_goal_are_refused_and_stop_until_finite() -> None:
    core = ready_core()
    assert not core.note_odometry(S // 10, np.array([np.nan, 0.0, 0.0]))
    assert core.filter(S // 10, GO, 5.0).reasons == (StopReason.NON_FINITE_ODOMETRY,)
    assert core.note_odometry(S // 5, POSE)
    assert not core.note_goal(S // 5, np.array([np.inf, 1.0]))
    assert core.filter(S // 5, GO, 5.0).reasons == (StopReason.NON_FINITE_GOAL,)
    assert core.note_goal(S // 5, GOAL)
    assert core.filter(S // 5, GO, 5.0).reasons == ()


def test_non_finite_command_is_never_passed_on() -> None:
    out = ready_core().filter(0, np.array([np.nan, 0.0, 0.1]), 5.0)
    assert out.reasons == (StopReason.NON_FINITE_COMMAND,)
    np.testing.assert_array_equal(out.command, np.zeros(3))


def test_estop_latches_until_explicit_reset_with_button_released() -> None:
    core = ready_core()
    core.set_estop(True)
    assert core.filter(0, GO, 5.0).reasons == (StopReason.ESTOP,)
    assert not core.reset_estop()  # still pressed: refused
    core.set_estop(False)
    assert core.filter(0, GO, 5.0).reasons == (StopReason.ESTOP,)  # latched
    assert core.reset_estop()
    assert core.filter(0, GO, 5.0).reasons == ()


def test_goal_reached_stops() -> None:
    core = ready_core(goal_tolerance_m=0.4)
    assert core.filter(0, GO, 0.41).reasons == ()
    out = core.filter(0, GO, 0.39)
    assert out.reasons == (StopReason.GOAL_REACHED,)
    np.testing.assert_array_equal(out.command, np.zeros(3))
    assert core.filter(0, GO, float("nan")).reasons == (StopReason.NON_FINITE_GOAL,)


def test_velocity_envelope_per_embodiment() -> None:
    wheeled = ready_core("wheeled").filter(0, np.array([3.0, 0.5, -4.0]), 5.0)
    assert wheeled.clipped and wheeled.reasons == ()
    np.testing.assert_array_equal(wheeled.command, [2.0, 0.0, -2.0])  # no sideways motion
    go2 = ready_core("go2").filter(0, np.array([-3.0, 1.5, 0.5]), 5.0)
    np.testing.assert_array_equal(go2.command, [-2.0, 1.0, 0.5])


def test_invalid_config() -> None:
    with pytest.raises(S2EError, match=r"SafetyConfig\.image_timeout_s"):
        SafetyConfig(image_timeout_s=0.0)
    with pytest.raises(S2EError, match="goal_tolerance_m"):
        SafetyConfig(goal_tolerance_m=float("nan"))


def test_clock_jumping_back_does_not_keep_old_inputs_alive() -> None:
    core = SafetyCore(load_embodiment("wheeled"))
    core.note_image(100 * S)
    core.note_odometry(100 * S, POSE)
    core.note_goal(100 * S, GOAL)
    assert core.filter(100 * S, GO, 5.0).reasons == ()
    # The clock restarts at 0 (new simulation): inputs stamped 100 s are not fresh.
    assert core.filter(0, GO, 5.0).reasons == (StopReason.STALE_IMAGE,
                                               StopReason.STALE_ODOMETRY)
    core.note_image(0)
    core.note_odometry(0, POSE)
    assert core.filter(0, GO, 5.0).reasons == ()
