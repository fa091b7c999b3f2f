import pickle

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from s2e_policy.errors import S2EError
from s2e_policy.geometry import quaternion_from_yaw
from s2e_training.data import (
    SampleConfig,
    SkipReport,
    make_sample,
    read_bag_trajectory,
    read_gnm_trajectory,
    sample_indices,
)

IMAGE = "/camera/image_raw"
COMPRESSED = "/camera/image_raw/compressed"
ODOM = "/odom"
CONFIG = SampleConfig(
    image_size_px=32, context_frames=3, context_dt_s=0.25, num_waypoints=5,
    waypoint_dt_s=0.25, goal_min_s=0.5, goal_max_s=2.0,
)


@pytest.fixture(scope="module")
def gnm(fixtures_dir):
    return read_gnm_trajectory(fixtures_dir / "gnm" / "euroc_cam1", 20.0)


@pytest.fixture(scope="module")
def bag(mcap_bag):
    return read_bag_trajectory(mcap_bag, IMAGE, ODOM)


def test_bag_yaw_at_image_stamps_matches_gnm_pkl(bag, fixtures_dir):
    with open(fixtures_dir / "gnm" / "euroc_cam1" / "traj_data.pkl", "rb") as handle:
        pkl = pickle.load(handle)
    assert len(bag) == 95 and bag.source == "rosbag2"
    assert len(bag.pose_stamps_ns) == 236  # waypoints use the full-rate odometry
    poses = bag.frame_poses
    np.testing.assert_allclose(poses[:, 2], pkl["yaw"], atol=1e-9)
    np.testing.assert_allclose(poses[:, :2], pkl["position"], atol=1e-9)


def test_bag_and_gnm_give_the_same_samples(bag, gnm):
    indices = sample_indices(gnm, CONFIG)
    # Bag stamps jitter by +-128 ns around 50 ms, so its last sample can fall one frame short.
    assert set(sample_indices(bag, CONFIG)) <= set(indices)
    for index in (indices[0], 30, 60):
        a = make_sample(bag, int(index), CONFIG, np.random.default_rng(1))
        b = make_sample(gnm, int(index), CONFIG, np.random.default_rng(1))
        np.testing.assert_allclose(a.waypoints, b.waypoints, atol=1e-5)
        np.testing.assert_allclose(a.goal, b.goal, atol=1e-4)
        assert a.speed == pytest.approx(b.speed, abs=1e-5)
        assert np.abs(a.context - b.context).mean() < 0.02  # raw frames vs their JPEGs


def test_sqlite3_and_mcap_agree(bag, sqlite_bag):
    other = read_bag_trajectory(sqlite_bag, IMAGE, ODOM)
    np.testing.assert_array_equal(other.frame_stamps_ns, bag.frame_stamps_ns)
    np.testing.assert_array_equal(other.poses, bag.poses)
    np.testing.assert_array_equal(other.frames[50], bag.frames[50])


def test_compressed_topic(bag, mcap_bag):
    compressed = read_bag_trajectory(mcap_bag, COMPRESSED, ODOM)
    np.testing.assert_array_equal(compressed.frame_stamps_ns, bag.frame_stamps_ns)
    assert np.abs(compressed.frames[20].astype(int) - bag.frames[20]).mean() < 3


def test_missing_topic_lists_topics(mcap_bag):
    with pytest.raises(S2EError, match=r"'/camera/left'.*/camera/image_raw.*/odom"):
        read_bag_trajectory(mcap_bag, "/camera/left", ODOM)
    with pytest.raises(S2EError, match="'/odometry/filtered'"):
        read_bag_trajectory(mcap_bag, IMAGE, "/odometry/filtered")


TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types


def odom_msg(stamp_ns, x, yaw):
    w, qx, qy, qz = quaternion_from_yaw(yaw)
    stamp = T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    pose = T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=x, y=0.0, z=0.0),
        orientation=T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=w),
    )
    vector = T["geometry_msgs/msg/Vector3"]
    twist = T["geometry_msgs/msg/Twist"](linear=vector(x=1.0, y=0.0, z=0.0), angular=vector(
        x=0.0, y=0.0, z=0.0))
    return T["nav_msgs/msg/Odometry"](
        header=T["std_msgs/msg/Header"](stamp=stamp, frame_id="odom"),
        child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
    )


def image_msg(stamp_ns, value):
    stamp = T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return T["sensor_msgs/msg/Image"](
        header=T["std_msgs/msg/Header"](stamp=stamp, frame_id="camera"),
        height=2, width=2, encoding="mono8", is_bigendian=0, step=2,
        data=np.full(4, value, dtype=np.uint8),
    )


@pytest.fixture(scope="module")
def bad_bag(tmp_path_factory):
    """Odometry at 0.1 s steps with one NaN and one out-of-order message; images at 0.1 s."""
    path = tmp_path_factory.mktemp("bad") / "bag"
    ms = 1_000_000
    odom_stamps = [0, 100, 200, 300, 250, 400, 500]  # message 4 goes back in time
    odom_x = [0.0, 0.1, np.nan, 0.3, 0.25, 0.4, 0.5]  # message 2 is NaN
    image_stamps = [50, 150, 120, 350, 450, 550]  # message 2 goes back; 5 is past the odometry
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        odom = writer.add_connection(ODOM, "nav_msgs/msg/Odometry", typestore=TS)
        image = writer.add_connection(IMAGE, "sensor_msgs/msg/Image", typestore=TS)
        for i, (stamp, x) in enumerate(zip(odom_stamps, odom_x, strict=True)):
            msg = odom_msg(stamp * ms, x, 0.0)
            writer.write(odom, i, TS.serialize_cdr(msg, "nav_msgs/msg/Odometry"))
        for i, stamp in enumerate(image_stamps):
            msg = image_msg(stamp * ms, i)
            writer.write(image, 100 + i, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    return path


def test_nan_odometry_raises(bad_bag):
    with pytest.raises(S2EError, match=r"'/odom' message 2.*pose\.pose\.position\.x"):
        read_bag_trajectory(bad_bag, IMAGE, ODOM)


def test_skip_bad_reports_everything(bad_bag):
    report = SkipReport()
    trajectory = read_bag_trajectory(bad_bag, IMAGE, ODOM, skip_bad=True, report=report)
    skipped = {(where.split(":")[-1], index) for where, index, _ in report.entries}
    assert skipped == {(ODOM, 2), (ODOM, 4), (IMAGE, 2), (IMAGE, 5)}
    np.testing.assert_array_equal(trajectory.frame_ids, [0, 1, 3, 4])
    np.testing.assert_array_equal(trajectory.frame_stamps_ns // 1_000_000, [50, 150, 350, 450])
    np.testing.assert_allclose(trajectory.frame_poses[:, 0], [0.05, 0.15, 0.35, 0.45])
    assert [int(f[0, 0, 0]) for f in trajectory.frames] == [0, 1, 3, 4]


def test_non_monotonic_image_stamps_raise(tmp_path):
    path = tmp_path / "bag"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        odom = writer.add_connection(ODOM, "nav_msgs/msg/Odometry", typestore=TS)
        image = writer.add_connection(IMAGE, "sensor_msgs/msg/Image", typestore=TS)
        for i in range(4):
            msg = odom_msg(i * 100_000_000, 0.1 * i, 0.0)
            writer.write(odom, i, TS.serialize_cdr(msg, "nav_msgs/msg/Odometry"))
        for i, stamp in enumerate([50, 150, 120]):
            msg = image_msg(stamp * 1_000_000, i)
            writer.write(image, 10 + i, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    with pytest.raises(S2EError, match=r"'/camera/image_raw' stamp of message 2"):
        read_bag_trajectory(path, IMAGE, ODOM)
