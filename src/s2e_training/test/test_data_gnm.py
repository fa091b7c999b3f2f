import dataclasses
import pickle
import shutil

import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench.gnm_format import write_gnm
from s2e_training.data import (
    SampleConfig,
    SkipReport,
    make_sample,
    read_gnm_dataset,
    read_gnm_trajectory,
    sample_indices,
)
from s2e_training.data.gnm import read_traj_data

RATE_HZ = 20.0  # EuRoC cam1 frame rate
CONFIG = SampleConfig(
    image_size_px=32,
    context_frames=4,
    context_dt_s=0.1,  # every 2nd frame at 20 Hz
    num_waypoints=5,
    waypoint_dt_s=0.25,  # every 5th frame
    goal_min_s=1.0,
    goal_max_s=3.0,
    frame_tolerance_s=0.01,  # frames are exactly 50 ms apart
)


@pytest.fixture(scope="module")
def gnm_dir(fixtures_dir):
    return fixtures_dir / "gnm" / "euroc_cam1"


@pytest.fixture(scope="module")
def traj_data(gnm_dir):
    with open(gnm_dir / "traj_data.pkl", "rb") as handle:
        return pickle.load(handle)


@pytest.fixture(scope="module")
def trajectory(gnm_dir):
    return read_gnm_trajectory(gnm_dir, RATE_HZ)


def hand_waypoints(traj_data, index, stride, count):
    """Waypoints written out by hand: future pkl poses rotated into frame `index`."""
    x0, y0 = traj_data["position"][index]
    yaw0 = traj_data["yaw"][index]
    rows = []
    for k in range(1, count + 1):
        x, y = traj_data["position"][index + k * stride]
        dx, dy = x - x0, y - y0
        forward = np.cos(yaw0) * dx + np.sin(yaw0) * dy
        left = -np.sin(yaw0) * dx + np.cos(yaw0) * dy
        heading = np.arctan2(np.sin(traj_data["yaw"][index + k * stride] - yaw0),
                             np.cos(traj_data["yaw"][index + k * stride] - yaw0))
        rows.append((forward, left, heading))
    return np.array(rows)


def test_reads_fixture(trajectory, traj_data):
    assert len(trajectory) == 95
    assert trajectory.duration_s == pytest.approx(94 / RATE_HZ)
    np.testing.assert_array_equal(trajectory.frame_ids, np.arange(95))
    np.testing.assert_allclose(trajectory.frame_poses[:, :2], traj_data["position"], atol=1e-12)
    np.testing.assert_allclose(trajectory.frame_poses[:, 2], traj_data["yaw"], atol=1e-12)
    frame = trajectory.frames[7]
    assert frame.shape == (240, 376, 3) and frame.dtype == np.uint8


@pytest.mark.parametrize("index", [6, 30, 64])
def test_waypoints_equal_hand_computed(trajectory, traj_data, index):
    sample = make_sample(trajectory, index, CONFIG, np.random.default_rng(0))
    expected = hand_waypoints(traj_data, index, stride=5, count=CONFIG.num_waypoints)
    np.testing.assert_allclose(sample.waypoints, expected, atol=1e-6)
    path = np.concatenate([[[0.0, 0.0]], expected[:, :2]])
    speed = np.linalg.norm(np.diff(path, axis=0), axis=1).sum() / CONFIG.waypoint_horizon_s
    assert sample.speed == pytest.approx(speed, rel=1e-6)
    assert sample.speed == pytest.approx(0.5, abs=0.01)  # README: constant 0.5 m/s


def test_context_and_goal(trajectory, traj_data):
    index = 40
    sample = make_sample(trajectory, index, CONFIG, np.random.default_rng(3))
    assert sample.context.shape == (4, 3, 32, 32) and sample.context.dtype == np.float32
    np.testing.assert_array_equal(
        sample.context[0], make_sample(trajectory, 34, CONFIG, np.random.default_rng(0)).context[-1]
    )  # oldest context frame of 40 is 40 - 3 * 2 = 34
    assert (sample.source, sample.frame_index, sample.stamp_ns) == ("gnm", 40, 2_000_000_000)
    # The goal lies 1-3 s (20-60 frames) ahead along the path: at 0.5 m/s, 0.5-1.5 m away.
    distance = sample.goal[0] * 200.0
    assert 0.5 - 1e-3 <= distance <= 1.5 + 1e-3
    assert sample.goal[1] ** 2 + sample.goal[2] ** 2 == pytest.approx(1.0, abs=1e-6)


def test_sample_indices(trajectory):
    indices = sample_indices(trajectory, CONFIG)
    # context needs 6 frames of history; the waypoint horizon (1.25 s = 25 frames) exceeds
    # goal_min (1 s), so the last current frame is 94 - 25.
    np.testing.assert_array_equal(indices, np.arange(6, 95 - 25))
    loose = dataclasses.replace(CONFIG, frame_tolerance_s=0.05)
    assert sample_indices(trajectory, loose)[0] == 5  # oldest frame 50 ms off: tolerated


def test_writer_round_trip(trajectory, tmp_path):
    """The project's one GNM writer (the simulator's) and this reader agree."""
    frames = [trajectory.frames[i] for i in range(10)]
    poses = trajectory.frame_poses[:10]
    assert write_gnm(tmp_path / "copy", frames, poses) == 10
    copy = read_gnm_trajectory(tmp_path / "copy", RATE_HZ)
    np.testing.assert_allclose(copy.frame_poses, poses)
    assert np.abs(copy.frames[3].astype(int) - frames[3]).mean() < 2


def make_copy(gnm_dir, dst, n=30):
    dst.mkdir(parents=True)
    for i in range(n):
        shutil.copy(gnm_dir / f"{i}.jpg", dst / f"{i}.jpg")
    with open(gnm_dir / "traj_data.pkl", "rb") as handle:
        data = pickle.load(handle)
    data = {"position": data["position"][:n].copy(), "yaw": data["yaw"][:n].copy()}
    with open(dst / "traj_data.pkl", "wb") as handle:
        pickle.dump(data, handle)
    return data


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"position": np.zeros((5, 2))}, "missing key.*yaw"),
        ({"position": np.zeros((5, 3)), "yaw": np.zeros(5)}, r"'position'.*\(N, 2\)"),
        ({"position": np.zeros((5, 2)), "yaw": np.zeros(4)}, r"'yaw'.*\(5,\)"),
        ([1, 2, 3], "expected a dict"),
    ],
)
def test_bad_pickles(tmp_path, content, match):
    (tmp_path / "traj_data.pkl").write_bytes(pickle.dumps(content))
    with pytest.raises(S2EError, match=match) as info:
        read_gnm_trajectory(tmp_path, RATE_HZ)
    assert "traj_data.pkl" in str(info.value)


def test_pickle_with_code_is_refused(tmp_path):
    (tmp_path / "traj_data.pkl").write_bytes(pickle.dumps({"position": shutil.rmtree}))
    with pytest.raises(S2EError, match="refusing"):
        read_traj_data(tmp_path / "traj_data.pkl")


def test_nan_pose_and_corrupt_frame(gnm_dir, tmp_path):
    folder = tmp_path / "bad"
    data = make_copy(gnm_dir, folder)
    data["yaw"][4] = np.nan
    with open(folder / "traj_data.pkl", "wb") as handle:
        pickle.dump(data, handle)
    (folder / "9.jpg").write_bytes(b"\x00garbage" * 20)
    with pytest.raises(S2EError, match=r"traj_data\.pkl.*frame 4.*non-finite"):
        read_gnm_trajectory(folder, RATE_HZ)
    report = SkipReport()
    trajectory = read_gnm_trajectory(folder, RATE_HZ, skip_bad=True, report=report)
    assert len(trajectory) == 28
    assert [index for _where, index, _reason in report.entries] == [4, 9]
    assert report.entries[1][0].endswith("9.jpg")
    assert 4 not in trajectory.frame_ids and 9 not in trajectory.frame_ids
    assert trajectory.frame_stamps_ns[4] == 5 * 50_000_000  # frame 5 keeps its own time


def test_missing_frame_file(gnm_dir, tmp_path):
    folder = tmp_path / "missing"
    make_copy(gnm_dir, folder)
    (folder / "12.jpg").unlink()
    with pytest.raises(S2EError, match=r"12\.jpg.*missing frame file"):
        read_gnm_trajectory(folder, RATE_HZ)


def test_folder_of_folders_with_skip(gnm_dir, tmp_path):
    make_copy(gnm_dir, tmp_path / "a_good")
    make_copy(gnm_dir, tmp_path / "b_broken")
    (tmp_path / "b_broken" / "traj_data.pkl").write_bytes(b"not a pickle")
    (tmp_path / "notes").mkdir()  # no traj_data.pkl: ignored
    with pytest.raises(S2EError, match="b_broken"):
        read_gnm_dataset(tmp_path, RATE_HZ)
    report = SkipReport()
    trajectories = read_gnm_dataset(tmp_path, RATE_HZ, skip_bad=True, report=report)
    assert [t.trajectory_id.split("/")[-1] for t in trajectories] == ["a_good"]
    assert report.counts() == {str(tmp_path / "b_broken"): 1}
    assert "b_broken" in report.summary()


def test_not_a_gnm_folder(tmp_path):
    with pytest.raises(S2EError, match="GNM dataset"):
        read_gnm_dataset(tmp_path, RATE_HZ)


def test_yaw_column_vector_is_accepted(gnm_dir, tmp_path):
    folder = tmp_path / "column"
    data = make_copy(gnm_dir, folder, n=5)
    with open(folder / "traj_data.pkl", "wb") as handle:
        pickle.dump({"position": data["position"], "yaw": data["yaw"][:, None]}, handle)
    np.testing.assert_allclose(read_gnm_trajectory(folder, RATE_HZ).poses[:, 2], data["yaw"])
