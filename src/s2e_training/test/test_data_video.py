import pickle

import cv2
import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_training.data import (
    SampleConfig,
    SkipReport,
    make_sample,
    read_gnm_trajectory,
    read_pose_csv,
    read_video_trajectory,
)

FPS = 20.0
N_FRAMES = 40
CONFIG = SampleConfig(
    image_size_px=32, context_frames=3, context_dt_s=0.25, num_waypoints=4,
    waypoint_dt_s=0.25, goal_min_s=0.5, goal_max_s=1.0,
)


@pytest.fixture(scope="module")
def gnm(fixtures_dir):
    return read_gnm_trajectory(fixtures_dir / "gnm" / "euroc_cam1", FPS)


def write_csv(path, rows, header="timestamp,x,y,yaw"):
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def recording(gnm, fixtures_dir, tmp_path_factory):
    """An MJPG AVI of the first 40 GNM frames and a pose CSV from traj_data.pkl."""
    folder = tmp_path_factory.mktemp("video")
    video = folder / "walk.avi"
    first = gnm.frames[0]
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (first.shape[1], first.shape[0])
    )
    assert writer.isOpened()
    for i in range(N_FRAMES):
        writer.write(cv2.cvtColor(gnm.frames[i], cv2.COLOR_RGB2BGR))
    writer.release()
    with open(fixtures_dir / "gnm" / "euroc_cam1" / "traj_data.pkl", "rb") as handle:
        pkl = pickle.load(handle)
    rows = [
        (i / FPS, *pkl["position"][i], pkl["yaw"][i]) for i in range(N_FRAMES)
    ]
    write_csv(folder / "poses.csv", rows)
    return video, folder / "poses.csv"


def test_video_matches_gnm(recording, gnm):
    video, csv_path = recording
    trajectory = read_video_trajectory(video, csv_path)
    assert len(trajectory) == N_FRAMES and trajectory.source == "video"
    np.testing.assert_array_equal(trajectory.frame_ids, np.arange(N_FRAMES))
    np.testing.assert_array_equal(trajectory.frame_stamps_ns, gnm.frame_stamps_ns[:N_FRAMES])
    np.testing.assert_allclose(trajectory.frame_poses, gnm.frame_poses[:N_FRAMES], atol=1e-12)
    assert np.abs(trajectory.frames[12].astype(int) - gnm.frames[12]).mean() < 4
    a = make_sample(trajectory, 15, CONFIG, np.random.default_rng(5))
    b = make_sample(gnm, 15, CONFIG, np.random.default_rng(5))
    np.testing.assert_allclose(a.waypoints, b.waypoints, atol=1e-6)
    np.testing.assert_allclose(a.goal, b.goal, atol=1e-6)


def test_time_offset_drops_frames_outside_poses(recording):
    video, csv_path = recording
    report = SkipReport()
    trajectory = read_video_trajectory(video, csv_path, time_offset_s=0.5, report=report)
    # Frame k is at 0.5 + k / 20 s; poses end at 39 / 20 s, so frames 30..39 fall outside.
    np.testing.assert_array_equal(trajectory.frame_ids, np.arange(30))
    assert [index for _w, index, _r in report.entries] == list(range(30, 40))


def test_truncated_video(recording, tmp_path):
    video, csv_path = recording
    data = video.read_bytes()
    broken = tmp_path / "broken.avi"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(S2EError, match=r"broken\.avi.*(stopped|cannot open)"):
        read_video_trajectory(broken, csv_path)


def test_unreadable_video(tmp_path, recording):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(S2EError, match=r"junk\.mp4"):
        read_video_trajectory(junk, recording[1], fps=FPS)


def test_csv_errors(tmp_path):
    good = [(0.0, 0, 0, 0), (0.1, 1, 0, 0), (0.2, 2, 0, 0), (0.15, 3, 0, 0), (0.3, "nan", 0, 0)]
    path = tmp_path / "poses.csv"
    write_csv(path, good)
    with pytest.raises(S2EError, match=r"poses\.csv: data row 4"):
        read_pose_csv(path)
    report = SkipReport()
    stamps, poses = read_pose_csv(path, skip_bad=True, report=report)
    np.testing.assert_array_equal(stamps, [0, 100_000_000, 200_000_000])
    np.testing.assert_array_equal(poses[:, 0], [0, 1, 2])
    assert sorted(index for _w, index, _r in report.entries) == [3, 4]
    write_csv(path, [*good[:3], (0.15, 3, 0, 0)])
    with pytest.raises(S2EError, match="data row 3 is not increasing"):
        read_pose_csv(path)
    write_csv(path, good[:3], header="time,x,y,theta")
    with pytest.raises(S2EError, match=r"missing column.*timestamp.*yaw"):
        read_pose_csv(path)


def test_inspect_cli_on_video(recording, tmp_path, capsys):
    import argparse

    from s2e_training.data.cli import register

    video, csv_path = recording
    parser = argparse.ArgumentParser(prog="s2e")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "video_sheet.png"
    argv = ["data", "inspect", str(video), "--poses", str(csv_path), "--out", str(out)]
    args = parser.parse_args(argv)
    with pytest.raises(S2EError, match=r"no frame has 2\.5 s of future poses"):
        args.func(args)  # default 10 x 0.25 s waypoints do not fit in 1.95 s
    args = parser.parse_args([*argv, "--num-waypoints", "4", "--tiles", "2"])
    assert args.func(args) == 0
    assert "frames 40, poses 40, duration 1.95 s" in capsys.readouterr().out
    assert out.is_file()
