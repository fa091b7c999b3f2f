"""Replay metrics and logged-motion queries on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2e_policy.bags import OdometryTrack
from s2e_policy.errors import S2EError
from s2e_policy.replay.logged import LoggedMotion, ReplayInputError
from s2e_policy.replay.metrics import (
    MetricsConfig,
    aggregate,
    direction,
    displacement_errors,
    instant_metrics,
)

NS = 1_000_000_000
CONFIG = MetricsConfig(straight_bearing_rad=math.radians(10.0), still_distance_m=0.1)


def _track(stamps_s: list[float], poses: np.ndarray, velocities: np.ndarray) -> OdometryTrack:
    stamps = np.round(np.asarray(stamps_s) * NS).astype(np.int64)
    return OdometryTrack(stamps, np.asarray(poses, float), np.asarray(velocities, float),
                         np.arange(len(stamps)))


def _arc_motion(speed: float, yaw_rate: float, yaw0: float, n: int = 101,
                dt: float = 0.02) -> LoggedMotion:
    """Constant speed and yaw rate from (1, 2, yaw0): exact poses on a circle."""
    t = np.arange(n) * dt
    yaw = yaw0 + yaw_rate * t
    if yaw_rate == 0:
        x = 1 + speed * t * np.cos(yaw0)
        y = 2 + speed * t * np.sin(yaw0)
    else:
        r = speed / yaw_rate
        x = 1 + r * (np.sin(yaw) - np.sin(yaw0))
        y = 2 - r * (np.cos(yaw) - np.cos(yaw0))
    poses = np.stack([x, y, np.angle(np.exp(1j * yaw))], -1)
    vel = np.tile([speed, yaw_rate], (n, 1))
    return LoggedMotion.from_track(_track(list(t), poses, vel), "test")


def test_displacement_errors_by_hand() -> None:
    truth = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    modes = np.array([[[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]],     # exact
                      [[1.0, 3.0, 0.0], [2.0, 4.0, 0.0]],     # 3 and 4 m off
                      [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])    # standing still
    ade, fde = displacement_errors(modes, truth)
    np.testing.assert_allclose(ade, [0.0, 3.5, 1.5])
    np.testing.assert_allclose(fde, [0.0, 4.0, 2.0])
    m = instant_metrics(modes, 1, truth, np.array([0.3, 0.0, 0.1]), np.array([0.5, 0.2]),
                        CONFIG)
    assert (m.ade_m, m.fde_m, m.min_ade_m, m.min_fde_m) == (3.5, 4.0, 0.0, 0.0)
    assert m.direction_predicted == "left" and m.direction_logged == "straight"
    assert m.cmd_vx_error_mps == pytest.approx(-0.2)
    assert m.cmd_wz_error_radps == pytest.approx(-0.1)
    with pytest.raises(S2EError, match="expected modes"):
        displacement_errors(modes[:, :1], truth)


def test_heading_error_wraps_around_pi() -> None:
    truth = np.array([[1.0, 0.0, math.pi - 0.1]])
    modes = np.array([[[1.0, 0.0, -math.pi + 0.1]]])
    m = instant_metrics(modes, 0, truth, np.zeros(3), np.zeros(2), CONFIG)
    assert m.heading_error_rad == pytest.approx(0.2)


@pytest.mark.parametrize(("xy", "expected"), [
    ((1.0, 0.0), "straight"), ((1.0, 0.17), "straight"), ((1.0, 0.18), "left"),
    ((1.0, -0.5), "right"), ((0.05, 0.05), "straight"), ((-1.0, 0.01), "left"),
])
def test_direction_classes(xy: tuple[float, float], expected: str) -> None:
    assert direction(np.array(xy), CONFIG) == expected


def test_aggregate_confusion_and_abs_velocity_errors() -> None:
    modes = np.array([[[1.0, 1.0, 0.0]]])
    left = np.array([[1.0, 1.0, 0.0]])
    right = np.array([[1.0, -1.0, 0.0]])
    ms = [instant_metrics(modes, 0, left, np.array([1.0, 0, 0]), np.array([0.5, 0]), CONFIG),
          instant_metrics(modes, 0, right, np.array([0.0, 0, 0]), np.array([0.5, 0]), CONFIG)]
    out = aggregate(ms, np.array([0.001, 0.003]), np.array([0.002, 0.004]))
    assert out["evaluated"] == 2 and out["direction_agreement"] == 0.5
    assert out["direction_confusion"]["left"]["left"] == 1
    assert out["direction_confusion"]["right"]["left"] == 1
    assert out["cmd_vx_abs_error_mps"]["mean"] == pytest.approx(0.5)
    assert out["cmd_vx_abs_error_mps"]["bias"] == pytest.approx(0.0)
    assert out["fde_m"]["max"] == pytest.approx(2.0)
    assert out["inference_ms"]["mean"] == pytest.approx(2.0)
    empty = aggregate([], np.array([]), np.array([]))
    assert empty["evaluated"] == 0 and math.isnan(empty["ade_m"]["mean"])


@pytest.mark.parametrize("yaw_rate", [0.0, 0.8])
def test_future_in_robot_on_exact_arcs(yaw_rate: float) -> None:
    speed, yaw0, dt = 0.5, 2.5, 0.25
    motion = _arc_motion(speed, yaw_rate, yaw0)
    future = motion.future_in_robot(int(0.4 * NS), 4, dt)
    tau = np.arange(1, 5) * dt
    if yaw_rate == 0:
        expected = np.stack([speed * tau, 0 * tau, 0 * tau], -1)
        np.testing.assert_allclose(future, expected, atol=1e-9)
    else:
        # on a circle of radius r: (r sin(w tau), r (1 - cos(w tau))), heading w tau;
        # linear interpolation between 50 Hz samples is within a chord sagitta (< 1 mm)
        r = speed / yaw_rate
        expected = np.stack([r * np.sin(yaw_rate * tau), r * (1 - np.cos(yaw_rate * tau)),
                             yaw_rate * tau], -1)
        np.testing.assert_allclose(future, expected, atol=1e-3)
    np.testing.assert_allclose(motion.mean_velocity(int(0.4 * NS), int(0.65 * NS)),
                               [speed, yaw_rate])


def test_mean_velocity_integrates_the_twist() -> None:
    track = _track([0.0, 1.0, 2.0], np.zeros((3, 3)), [[0.0, 0.0], [1.0, 2.0], [1.0, 2.0]])
    motion = LoggedMotion.from_track(track, "test")
    # vx ramps 0 -> 1 over [0, 1] then stays: mean over [0.5, 1.5] = (0.75*0.5 + 1*0.5) / 1
    np.testing.assert_allclose(motion.mean_velocity(NS // 2, 3 * NS // 2), [0.875, 1.75])
    np.testing.assert_allclose(motion.mean_velocity(NS // 2, NS // 2), [0.5, 1.0])


def test_largest_gap_and_out_of_order_stamps() -> None:
    stamps = [0.0, 0.1, 0.2, 0.15, 1.7, 1.8]
    poses = np.zeros((6, 3))
    motion = LoggedMotion.from_track(_track(stamps, poses, np.zeros((6, 2))), "test")
    assert motion.dropped_out_of_order == 1 and len(motion.stamps_ns) == 5
    assert motion.largest_gap_s(0, int(0.1 * NS)) == pytest.approx(0.1)
    assert motion.largest_gap_s(int(0.1 * NS), int(0.3 * NS)) == pytest.approx(1.5)
    assert motion.largest_gap_s(int(1.0 * NS), int(1.1 * NS)) == pytest.approx(1.5)
    assert motion.covers(0, int(1.8 * NS)) and not motion.covers(0, int(1.9 * NS))


def test_too_little_odometry_is_refused() -> None:
    track = _track([1.0, 0.5], np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ReplayInputError, match="1 usable odometry messages; expected at least 2"):
        LoggedMotion.from_track(track, "bag.mcap topic '/odom'")


def test_metrics_config_validates() -> None:
    with pytest.raises(S2EError, match="straight_bearing_rad"):
        MetricsConfig(straight_bearing_rad=0.0)
    with pytest.raises(S2EError, match="still_distance_m"):
        MetricsConfig(still_distance_m=-1.0)
