"""Unit tests of the labelling pieces: frame picking, segment splitting, pitch and track."""

import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_training.data.labelling import LabelConfig
from s2e_training.data.labelling.camera import camera_for_video, default_camera
from s2e_training.data.labelling.odometry import (
    STEP_LOST,
    STEP_OK,
    STEP_PURE_ROTATION,
    StepMotion,
    estimate_pitch,
    ground_track,
)
from s2e_training.data.labelling.quality import (
    DROP_TOO_SHORT,
    STEP_BLUR,
    Segment,
    split_segments,
)
from s2e_training.data.labelling.stream import select_frames


def rot_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def camera_step(pitch, forward_m, left_m, dyaw):
    """The StepMotion a camera pitched down by ``pitch`` sees for a planar body motion."""
    # Level camera -> pitched camera: x_p = Rx(pitch) x_l (pitch down about camera x).
    to_pitched = rot_x(pitch)
    displacement = to_pitched @ np.array([-left_m, 0.0, forward_m])
    # Turning left by dyaw about the level camera's -y axis: R_prev->cur in level frame.
    level_rotation = rot_y(-dyaw)  # current axes seen from the previous level frame
    rotation = to_pitched @ level_rotation.T @ to_pitched.T
    norm = np.linalg.norm(displacement)
    direction = displacement / norm if norm else np.zeros(3)
    status = STEP_OK if norm else STEP_PURE_ROTATION
    return StepMotion(status, rotation, direction, 100, 1.0, 90, 5.0)


def test_pitch_and_ground_track_recover_a_planar_drive():
    pitch = np.radians(12.0)
    yaw_rate = np.radians(3.0)
    steps = [camera_step(pitch, 0.26, 0.0, yaw_rate) for _ in range(30)]
    estimated, source = estimate_pitch(steps)
    assert source == "translation"
    assert np.degrees(estimated) == pytest.approx(12.0, abs=1e-6)
    poses = ground_track(steps, np.full(30, 0.26), estimated)
    expected = np.zeros((31, 3))
    for k in range(30):
        x, y, yaw = expected[k]
        expected[k + 1] = (x + 0.26 * np.cos(yaw), y + 0.26 * np.sin(yaw), yaw + yaw_rate)
    np.testing.assert_allclose(poses, expected, atol=1e-9)
    # A level assumption on the same pitched steps bends the track: pitch matters.
    assert not np.allclose(ground_track(steps, np.full(30, 0.26), 0.0), expected, atol=1e-3)
    spins = [camera_step(pitch, 0.0, 0.0, yaw_rate) for _ in range(5)]
    estimated, source = estimate_pitch(spins)
    assert source == "rotation" and np.degrees(estimated) == pytest.approx(12.0, abs=1e-6)


def test_split_segments_reasons():
    statuses = [STEP_OK] * 12 + [STEP_BLUR] + [STEP_OK] * 3 + [STEP_LOST] + [STEP_OK] * 11
    kept, dropped = split_segments(statuses, min_frames=10)
    assert kept == [Segment(0, 12), Segment(16, 28)]
    assert (Segment(12, 13), STEP_BLUR) in dropped  # the blurred frame alone
    assert (Segment(13, 16), DROP_TOO_SHORT) in dropped
    assert sum(len(s) for s in kept) + sum(len(s) for s, _ in dropped) == len(statuses)


def test_select_frames_uses_timestamps():
    regular = np.arange(61) / 30.0
    np.testing.assert_array_equal(select_frames(regular, 5.0), np.arange(0, 61, 6))
    # Variable rate: 30 fps, then 10 fps; picks follow the clock, not the frame count.
    times = np.concatenate([np.arange(30) / 30.0, 1.0 + np.arange(10) / 10.0])
    picks = select_frames(times, 5.0)
    np.testing.assert_allclose(times[picks], np.arange(0, 1.95, 0.2), atol=0.02)
    with pytest.raises(S2EError, match="--fps 60: expected at most"):
        select_frames(regular, 60.0)


def test_camera_defaults_and_calibration_scaling(tmp_path):
    camera = default_camera(640, 360, 90.0)
    assert camera.K[0, 0] == pytest.approx(320.0) and camera.K[1, 2] == pytest.approx(180.0)
    calibration = tmp_path / "cam.yaml"
    calibration.write_text(
        "image_width: 1280\nimage_height: 720\n"
        "camera_matrix: {rows: 3, cols: 3, data: [900, 0, 640, 0, 900, 360, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0.1, 0, 0, 0, 0]}\n"
    )
    scaled = camera_for_video(640, 360, calibration, 70.0)
    assert scaled.K[0, 0] == pytest.approx(450.0) and scaled.distortion[0] == 0.1
    with pytest.raises(S2EError, match="different aspect ratio"):
        camera_for_video(640, 480, calibration, 70.0)
    with pytest.raises(S2EError, match="default_hfov_deg"):
        LabelConfig(default_hfov_deg=200.0)
