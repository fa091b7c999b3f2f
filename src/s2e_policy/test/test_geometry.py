import math

import numpy as np
import pytest
import transforms3d.euler
from hypothesis import given, settings
from hypothesis import strategies as st

from s2e_policy.errors import S2EError
from s2e_policy.geometry import (
    encode_goal,
    interpolate_poses,
    poses_world_to_robot,
    quaternion_from_yaw,
    robot_to_world,
    world_to_robot,
    wrap_angle,
    yaw_from_quaternion,
)

finite = st.floats(-50.0, 50.0, allow_nan=False)
angle = st.floats(-math.pi + 1e-6, math.pi - 1e-6)


@pytest.mark.parametrize("yaw", [0.0, 0.3, -1.2, math.pi / 2, 3.0, -3.0])
def test_yaw_round_trip(yaw):
    assert yaw_from_quaternion(*quaternion_from_yaw(yaw)) == pytest.approx(yaw, abs=1e-12)


def test_yaw_of_tilted_robot_ignores_roll_and_pitch():
    quat = transforms3d.euler.euler2quat(0.2, -0.15, 1.1, axes="sxyz")  # roll, pitch, yaw
    assert yaw_from_quaternion(*quat) == pytest.approx(1.1, abs=1e-12)


def test_yaw_of_unnormalised_quaternion():
    w, x, y, z = quaternion_from_yaw(0.7)
    assert yaw_from_quaternion(2 * w, 2 * x, 2 * y, 2 * z) == pytest.approx(0.7)


@pytest.mark.parametrize("quat", [(0, 0, 0, 0), (math.nan, 0, 0, 1), (1, math.inf, 0, 0)])
def test_yaw_rejects_bad_quaternion(quat):
    with pytest.raises(S2EError, match="quaternion"):
        yaw_from_quaternion(*quat)


def test_world_to_robot_rep103_axes():
    robot = np.array([1.0, 2.0, math.pi / 2])  # facing world +y
    ahead, left = world_to_robot(np.array([[1.0, 3.0], [0.0, 2.0]]), robot)
    np.testing.assert_allclose(ahead, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(left, [0.0, 1.0], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(finite, finite, angle, finite, finite)
def test_robot_to_world_inverts_world_to_robot(rx, ry, ryaw, px, py):
    robot = np.array([rx, ry, ryaw])
    point = np.array([px, py])
    np.testing.assert_allclose(
        robot_to_world(world_to_robot(point, robot), robot), point, atol=1e-9
    )


def test_poses_world_to_robot_wraps_heading():
    robot = np.array([0.0, 0.0, 3.0])
    pose = poses_world_to_robot(np.array([0.0, 0.0, -3.0]), robot)
    assert pose[2] == pytest.approx(2 * math.pi - 6.0)


def test_wrap_angle_range():
    angles = np.linspace(-20, 20, 101)
    wrapped = wrap_angle(angles)
    assert np.all(wrapped >= -math.pi) and np.all(wrapped < math.pi)
    np.testing.assert_allclose(np.sin(wrapped), np.sin(angles), atol=1e-12)


def test_interpolate_poses_linear_and_across_pi():
    stamps = np.array([0, 1_000_000_000], dtype=np.int64)
    poses = np.array([[0.0, 0.0, 3.1], [2.0, -4.0, -3.1]])
    mid = interpolate_poses(stamps, poses, np.array([500_000_000]))[0]
    np.testing.assert_allclose(mid[:2], [1.0, -2.0])
    assert abs(abs(mid[2]) - math.pi) < 1e-9  # the short way round, not through 0


def test_interpolate_poses_rejects_bad_input():
    stamps = np.array([0, 10], dtype=np.int64)
    poses = np.zeros((2, 3))
    with pytest.raises(S2EError, match="outside"):
        interpolate_poses(stamps, poses, np.array([11]))
    with pytest.raises(S2EError, match="increasing"):
        interpolate_poses(np.array([0, 0]), poses, np.array([0]))


def test_encode_goal_values():
    np.testing.assert_allclose(encode_goal(np.array([3.0, 4.0])), [5 / 200, 0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(encode_goal(np.array([0.0, 0.0])), [0.1 / 200, 1.0, 0.0])
    np.testing.assert_allclose(encode_goal(np.array([0.0, -300.0])), [1.0, 0.0, -1.0], atol=1e-7)
    assert encode_goal(np.array([1.0, 1.0])).dtype == np.float32


def test_encode_goal_rejects_nan():
    with pytest.raises(S2EError, match="goal_xy_robot"):
        encode_goal(np.array([math.nan, 1.0]))
