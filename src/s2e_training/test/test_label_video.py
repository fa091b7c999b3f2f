"""Video labelling against ground truth: a rendered street drive and the real EuRoC clip."""

import argparse
import json
import pickle

import cv2
import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_policy.geometry import poses_world_to_robot, wrap_angle
from s2e_sim_bridge.render import camera_from_pose, intrinsics_from_fov, render
from s2e_sim_bridge.scene import generate_street_scene
from s2e_training.data.cli import register
from s2e_training.data.gnm import read_traj_data
from s2e_training.data.labelling import LabelConfig, label_video, read_calibration
from s2e_training.data.labelling.odometry import estimate_pitch, levelling, planar_step
from s2e_training.data.video import read_pose_file, read_tum_poses

WIDTH, HEIGHT, HFOV_DEG = 320, 240, 90.0
FPS = 5.0
SPEED_MPS = 1.3
CAMERA_HEIGHT_M = 1.2
PITCH_DEG = 8.0
N_GAUSSIANS = 60_000
STRAIGHT, ARC, SPIN, AFTER_CUT = 20, 20, 8, 20
ARC_DEG_PER_FRAME = 2.0
SPIN_DEG_PER_FRAME = -8.0
BLURRED_FRAME = 5
BLUR_KERNEL_PX = 9


def drive_poses():
    """(scene index, x, y, yaw) per frame: straight, left arc, spin in place, cut, straight."""
    step = SPEED_MPS / FPS
    out, x, y, yaw = [], -20.0, -2.5, 0.0
    for k in range(STRAIGHT + ARC):
        out.append((0, x, y, yaw))
        x, y = x + step * np.cos(yaw), y + step * np.sin(yaw)
        if k >= STRAIGHT:
            yaw += np.radians(ARC_DEG_PER_FRAME)
    for _ in range(SPIN):
        out.append((0, x, y, yaw))
        yaw += np.radians(SPIN_DEG_PER_FRAME)
    x, y, yaw = 10.0, 2.5, np.pi
    for _ in range(AFTER_CUT):
        out.append((1, x, y, yaw))
        x, y = x + step * np.cos(yaw), y + step * np.sin(yaw)
    return np.asarray(out)


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """An mp4v video of the drive (one frame blurred) and its ground-truth poses."""
    folder = tmp_path_factory.mktemp("drive")
    scenes = [generate_street_scene(seed, num_gaussians=N_GAUSSIANS)[0] for seed in (0, 1)]
    K = intrinsics_from_fov(WIDTH, HEIGHT, HFOV_DEG)
    poses = drive_poses()
    video = folder / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for k, (scene, x, y, yaw) in enumerate(poses):
        view = camera_from_pose(x, y, CAMERA_HEIGHT_M, yaw, np.radians(PITCH_DEG))
        rgb = render(scenes[int(scene)], view, K, WIDTH, HEIGHT).rgb
        bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        if k == BLURRED_FRAME:
            bgr = cv2.blur(bgr, (BLUR_KERNEL_PX, BLUR_KERNEL_PX))
        writer.write(bgr)
    writer.release()
    return video, poses


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="s2e")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def labelled(drive, tmp_path_factory):
    video, _poses = drive
    out = tmp_path_factory.mktemp("labels")
    argv = ["data", "label-video", str(video), str(video), "--out", str(out), "--fps", str(FPS),
            "--hfov-deg", str(HFOV_DEG), "--speed-prior-mps", str(SPEED_MPS),
            "--speed-prior-mps", str(2 * SPEED_MPS), "--no-progress"]
    assert run_cli(argv) == 0
    return out, json.loads((out / "labels_report.json").read_text())


def segment_errors(out, row, truth):
    """ADE (m) and final heading error (deg) of one segment against the ground truth."""
    first = row["first_frame"]
    gt = truth[first:first + row["frames"], 1:]
    gt_local = poses_world_to_robot(gt, gt[0])
    position, yaw = read_traj_data(out / row["folder"] / "traj_data.pkl")
    ade = float(np.mean(np.linalg.norm(position - gt_local[:, :2], axis=1)))
    heading = abs(float(np.degrees(wrap_angle((yaw[-1] - yaw[0]) - gt_local[-1, 2]))))
    scale = float(np.sum(position * gt_local[:, :2]) / np.sum(position * position))
    aligned = float(np.mean(np.linalg.norm(scale * position - gt_local[:, :2], axis=1)))
    print(f"{row['folder']}: least-squares scale {scale:.3f}, ADE after alignment "
          f"{aligned:.3f} m")
    return ade, heading


MAX_ADE_FRACTION = 0.06
"""ADE bound as a fraction of the segment's path length (a broken VO is off by metres)."""

MAX_HEADING_ERROR_DEG = 6.0
"""Final heading bound: the arc turns 40 deg; no rotation or a mirrored yaw is off by >= 28."""
MAX_PITCH_ERROR_DEG = 4.0


def test_batch_names_and_per_video_speeds(labelled):
    out, report = labelled
    first, second = report["videos"]
    assert [row["frames"] for row in first["segments"]] == [
        row["frames"] for row in second["segments"]
    ]
    for a, b in zip(first["segments"], second["segments"], strict=True):
        assert b["path_length_m"] == pytest.approx(2 * a["path_length_m"], rel=1e-3)
        assert a["folder"] != b["folder"] and (out / b["folder"] / "traj_data.pkl").is_file()


def test_rendered_drive_matches_ground_truth(labelled, drive):
    out, report = labelled
    _video, truth = drive
    summary = report["videos"][0]
    rows = summary["segments"]
    counts = summary["step_status_counts"]
    assert counts["motion blur"] == 1
    assert counts["pure rotation"] >= SPIN - 2
    starts = [row["first_frame"] for row in rows]
    spin = range(STRAIGHT + ARC + 1, STRAIGHT + ARC + SPIN)
    for row in rows:
        covered = range(row["first_frame"], row["first_frame"] + row["frames"])
        assert not set(covered) & set(spin), "pure-rotation frames must not be kept"
        assert not (row["first_frame"] < STRAIGHT + ARC + SPIN < covered[-1]), "cut inside"
        assert BLURRED_FRAME not in covered
    assert any(s < STRAIGHT + ARC for s in starts) and any(s >= STRAIGHT + ARC + SPIN
                                                          for s in starts)
    for row in rows:
        ade, heading = segment_errors(out, row, truth)
        print(f"{row['folder']}: frames {row['first_frame']}+{row['frames']}, ADE {ade:.3f} m "
              f"over {row['path_length_m']:.2f} m, heading error {heading:.2f} deg, pitch "
              f"{row['pitch_deg']} deg, confidence {row['confidence']}")
        assert ade < MAX_ADE_FRACTION * row["path_length_m"]
        assert heading < MAX_HEADING_ERROR_DEG
        assert abs(row["pitch_deg"] - PITCH_DEG) < MAX_PITCH_ERROR_DEG
        assert 0 < row["confidence"] <= 1
    for name in ("labels_report.md", "labels_trajectories.png", "labels_contact_sheet.png"):
        assert (out / name).stat().st_size > 0
    sheet = cv2.imread(str(out / "labels_contact_sheet.png"))
    orange = np.abs(sheet.astype(int) - (0, 165, 255)).sum(axis=2) < 40
    assert orange.sum() > 100  # predicted paths drawn into the frames


EUROC_FPS = 20.0
EUROC_FRAMES = 95
MAX_STATIC_YAW_DEG = 1.0
"""The EuRoC clip's camera does not move (V1_01 before take-off): VO yaw must stay below."""


@pytest.fixture(scope="module")
def euroc(fixtures_dir, tmp_path_factory):
    """The EuRoC frames as an MJPG video, a calibration YAML and the /odom yaw per frame."""
    folder = tmp_path_factory.mktemp("euroc")
    gnm = fixtures_dir / "gnm" / "euroc_cam1"
    first = cv2.imread(str(gnm / "0.jpg"))
    video = folder / "euroc.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), EUROC_FPS,
                             (first.shape[1], first.shape[0]))
    for i in range(EUROC_FRAMES):
        writer.write(cv2.imread(str(gnm / f"{i}.jpg")))
    writer.release()
    from rosbags.highlevel import AnyReader

    with AnyReader([fixtures_dir / "bags" / "euroc_cam1_mcap"]) as reader:
        connection = next(c for c in reader.connections if c.topic == "/camera/camera_info")
        _conn, _stamp, raw = next(reader.messages(connections=[connection]))
        info = reader.deserialize(raw, connection.msgtype)
    calibration = folder / "cam1.yaml"
    calibration.write_text(
        f"image_width: {info.width}\nimage_height: {info.height}\n"
        f"camera_matrix: {{rows: 3, cols: 3, data: {[float(v) for v in info.k]}}}\n"
        f"distortion_model: {info.distortion_model}\n"
        f"distortion_coefficients: {{rows: 1, cols: {len(info.d)}, "
        f"data: {[float(v) for v in info.d]}}}\n"
    )
    with open(gnm / "traj_data.pkl", "rb") as handle:
        odom_yaw = np.unwrap(pickle.load(handle)["yaw"])
    return video, calibration, odom_yaw


def test_euroc_yaw_against_gyro_odometry(euroc, tmp_path):
    video, calibration, odom_yaw = euroc
    config = LabelConfig(label_fps=EUROC_FPS)
    labels = label_video(video, tmp_path, config, calibration=calibration, progress=False)
    assert labels.camera.source == str(calibration)
    steps = [m for m in labels.motions if m is not None]
    assert len(steps) == EUROC_FRAMES - 1
    pitch, _source = estimate_pitch(steps)
    level = levelling(pitch)
    vo_yaw = np.concatenate([[0.0], np.cumsum([planar_step(m, level)[1] for m in steps])])
    odom = odom_yaw - odom_yaw[0]
    error_deg = np.degrees(np.abs(vo_yaw - odom))
    print(f"EuRoC: VO yaw {np.degrees(vo_yaw[-1]):.2f} deg, /odom yaw {np.degrees(odom[-1]):.2f}"
          f" deg over 4.7 s; max |VO - odom| {error_deg.max():.2f} deg")
    # The camera is static: every step is tiny parallax, nothing is kept as training data.
    assert labels.status_counts().get("tiny parallax", 0) >= EUROC_FRAMES - 3
    assert labels.segments == []
    assert np.degrees(np.abs(vo_yaw)).max() < MAX_STATIC_YAW_DEG
    # /odom's yaw is the integrated gyro (bias included): the VO's error equals that drift.
    assert error_deg[-1] == pytest.approx(abs(np.degrees(odom[-1])), abs=MAX_STATIC_YAW_DEG)


def test_external_poses_tum_and_csv(drive, tmp_path):
    video, truth = drive
    times = np.arange(len(truth)) / FPS
    lines = ["# t tx ty tz qx qy qz qw"]
    for t, (_s, x, y, yaw) in zip(times, truth, strict=True):
        lines.append(f"{t} {x} {y} 0.5 0 0 {np.sin(yaw / 2)} {np.cos(yaw / 2)}")
    tum = tmp_path / "poses.txt"
    tum.write_text("\n".join(lines) + "\n")
    stamps, poses = read_tum_poses(tum)
    np.testing.assert_allclose(poses[:, :2], truth[:, 1:3], atol=1e-9)
    np.testing.assert_allclose(wrap_angle(poses[:, 2] - truth[:, 3]), 0.0, atol=1e-9)
    assert np.all(np.diff(stamps) > 0)
    # The same motion seen as an OpenCV camera: forward = +z, left = -x.
    cam = tmp_path / "camera.tum"
    cam.write_text("0 0 0 0 0 0 0 1\n1 -1 0 2 0 0.3826834 0 0.9238795\n")
    _stamps, cam_poses = read_pose_file(cam, tum_frame="camera")
    np.testing.assert_allclose(cam_poses[1], [2.0, 1.0, -np.pi / 4], atol=1e-6)
    labels = label_video(video, tmp_path / "out", LabelConfig(), poses_file=tum, progress=False)
    assert labels.pose_source == "external pose file"
    first = labels.segments[0]
    position, yaw = read_traj_data(first.folder / "traj_data.pkl")
    expected = truth[first.first_frame:first.first_frame + first.frames, 1:3]
    np.testing.assert_allclose(position, expected - expected[0], atol=1e-6)


def test_scale_from_odometry_csv(drive, tmp_path):
    video, truth = drive
    covered = STRAIGHT + ARC  # the CSV ends before the spin: later frames are not labelled
    rows = ["timestamp,x,y,yaw"] + [
        f"{k / FPS},{2 * x},{2 * y},{yaw}" for k, (_s, x, y, yaw) in enumerate(truth[:covered])
    ]
    csv = tmp_path / "gps.csv"
    csv.write_text("\n".join(rows) + "\n")
    labels = label_video(video, tmp_path / "out", LabelConfig(), scale_file=csv, progress=False)
    assert labels.status_counts()["outside the pose/scale file's time range"] == (
        len(truth) - covered
    )
    assert all(s.first_frame + s.frames <= covered for s in labels.segments)
    for segment in labels.segments:
        # Step lengths come from the (doubled) odometry, not from the speed prior.
        expected = 2 * SPEED_MPS / FPS * (segment.frames - 1)
        assert segment.path_length_m == pytest.approx(expected, rel=1e-3)


def test_bad_inputs_do_not_stop_the_batch(drive, tmp_path, capsys):
    video, _truth = drive
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    late = tmp_path / "late.csv"
    late.write_text("timestamp,x,y,yaw\n100,0,0,0\n101,1,0,0\n")
    out = tmp_path / "out"
    argv = ["data", "label-video", str(empty), str(video), "--out", str(out), "--scale-from",
            str(late), "--scale-from", str(late), "--no-progress"]
    assert run_cli(argv) == 1
    text = capsys.readouterr().out
    assert "empty.mp4: FAILED" in text and "drive.mp4: FAILED" in text
    assert "expected overlapping times" in text
    report = json.loads((out / "labels_report.json").read_text())
    assert [("error" in v) for v in report["videos"]] == [True, True]
    with pytest.raises(S2EError, match="--fps 50: expected at most"):
        label_video(video, tmp_path / "o2", LabelConfig(label_fps=50.0), progress=False)
    bad = tmp_path / "cal.yaml"
    bad.write_text("image_width: 320\nimage_height: 240\n")
    with pytest.raises(S2EError, match=r"missing key.*camera_matrix"):
        read_calibration(bad)
    with pytest.raises(S2EError, match="unknown key"):
        LabelConfig.from_dict({"min_inlier": 3})
    tum = tmp_path / "bad.txt"
    tum.write_text("0 1 2 3\n")
    with pytest.raises(S2EError, match="line 1: expected 8 finite numbers"):
        read_tum_poses(tum)
