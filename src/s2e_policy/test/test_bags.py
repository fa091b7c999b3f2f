import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from s2e_policy.bags import (
    BagError,
    BagTopic,
    iter_images,
    list_topics,
    read_odometry,
)
from s2e_policy.errors import S2EError

FIXTURE_TOPICS = [
    BagTopic("/camera/camera_info", "sensor_msgs/msg/CameraInfo", 95),
    BagTopic("/camera/image_raw", "sensor_msgs/msg/Image", 95),
    BagTopic("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", 95),
    BagTopic("/odom", "nav_msgs/msg/Odometry", 236),
    BagTopic("/tf", "tf2_msgs/msg/TFMessage", 236),
]


def test_list_topics_of_fixture(mcap_bag):
    assert list_topics(mcap_bag) == FIXTURE_TOPICS
    assert list_topics(mcap_bag / "euroc_cam1_mcap.mcap") == FIXTURE_TOPICS


def test_sqlite3_copy_has_the_chosen_topics(sqlite_bag):
    assert list(sqlite_bag.glob("*.db3"))
    assert [t.name for t in list_topics(sqlite_bag)] == [
        "/camera/image_raw",
        "/camera/image_raw/compressed",
        "/odom",
    ]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_raw_frames_match_gnm_frames(storage, mcap_bag, sqlite_bag, fixtures_dir):
    bag = mcap_bag if storage == "mcap" else sqlite_bag
    frames = list(iter_images(bag, "/camera/image_raw"))
    assert len(frames) == 95
    assert [f.index for f in frames] == list(range(95))
    stamps = np.array([f.stamp_ns for f in frames])
    assert stamps[0] == 1403715273262142976
    np.testing.assert_allclose(np.diff(stamps), 50_000_000, atol=200)
    first = frames[0].rgb
    assert first.shape == (240, 376, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first[:, :, 0], first[:, :, 2])  # mono8 replicated
    with Image.open(fixtures_dir / "gnm" / "euroc_cam1" / "10.jpg") as jpg:
        gnm_frame = np.asarray(jpg.convert("RGB")).astype(int)
    assert np.abs(frames[10].rgb.astype(int) - gnm_frame).mean() < 3  # same frame, via JPEG


def test_compressed_frames_match_raw(mcap_bag):
    raw = iter_images(mcap_bag, "/camera/image_raw")
    compressed = iter_images(mcap_bag, "/camera/image_raw/compressed")
    for (a, b), _ in zip(zip(raw, compressed, strict=True), range(5), strict=False):
        assert a.stamp_ns == b.stamp_ns
        assert np.abs(a.rgb.astype(int) - b.rgb).mean() < 3


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_read_odometry(storage, mcap_bag, sqlite_bag):
    track = read_odometry(mcap_bag if storage == "mcap" else sqlite_bag, "/odom")
    assert track.poses.shape == (236, 3) and track.velocities.shape == (236, 2)
    np.testing.assert_array_equal(track.indices, np.arange(236))
    np.testing.assert_allclose(np.diff(track.stamps_ns), 20_000_000)
    np.testing.assert_allclose(track.poses[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(track.velocities[:, 0], 0.5)  # README: constant 0.5 m/s
    length = np.sum(np.linalg.norm(np.diff(track.poses[:, :2], axis=0), axis=1))
    assert length == pytest.approx(2.35, abs=0.01)


def test_missing_topic_lists_the_bags_topics(mcap_bag):
    with pytest.raises(BagError, match="'/scan'") as info:
        next(iter_images(mcap_bag, "/scan"))
    for topic in FIXTURE_TOPICS:
        assert topic.name in str(info.value)
    with pytest.raises(S2EError, match="/nope"):
        read_odometry(mcap_bag, "/nope")


def test_wrong_topic_type(mcap_bag):
    with pytest.raises(BagError, match="nav_msgs/msg/Odometry"):
        next(iter_images(mcap_bag, "/odom"))


def test_missing_path_and_non_bag(tmp_path):
    with pytest.raises(BagError, match="no such file"):
        list_topics(tmp_path / "absent")
    with pytest.raises(BagError, match=r"metadata\.yaml"):
        list_topics(tmp_path)


def test_truncated_mcap(mcap_bag, tmp_path):
    broken = tmp_path / "truncated"
    broken.mkdir()
    shutil.copy(mcap_bag / "metadata.yaml", broken)
    data = (mcap_bag / "euroc_cam1_mcap.mcap").read_bytes()
    (broken / "euroc_cam1_mcap.mcap").write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="corrupt or truncated"):
        list_topics(broken)


def test_corrupt_sqlite3(sqlite_bag, tmp_path):
    broken = tmp_path / "corrupt"
    shutil.copytree(sqlite_bag, broken)
    db3 = next(broken.glob("*.db3"))
    db3.write_bytes(b"not a database" * 100)
    with pytest.raises(BagError, match=str(broken)):
        read_odometry(broken, "/odom")


def test_on_error_skips_undecodable_frames(mcap_bag, tmp_path):
    corrupt_index = 3
    # Rewrite the compressed topic with one message's JPEG bytes replaced by garbage.
    dst = tmp_path / "garbage_frame"
    with AnyReader([mcap_bag]) as reader, Writer(
        dst, version=9, storage_plugin=StoragePlugin.MCAP
    ) as writer:
        (conn,) = [c for c in reader.connections if c.topic == "/camera/image_raw/compressed"]
        out = writer.add_connection(
            conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest
        )
        for i, (_c, stamp, raw) in enumerate(reader.messages(connections=[conn])):
            msg = reader.deserialize(raw, conn.msgtype)
            if i == corrupt_index:
                msg.data = np.frombuffer(b"garbage!" * 8, dtype=np.uint8)
            writer.write(out, stamp, reader.typestore.serialize_cdr(msg, conn.msgtype))
    with pytest.raises(S2EError, match=r"message 3.*CompressedImage"):
        list(iter_images(dst, "/camera/image_raw/compressed"))
    skipped = []
    frames = list(
        iter_images(dst, conn.topic, on_error=lambda i, err: skipped.append((i, str(err))))
    )
    assert len(frames) == 94
    assert [i for i, _ in skipped] == [corrupt_index]
    assert corrupt_index not in [f.index for f in frames]


def test_runtime_modules_do_not_import_torch_or_training():
    code = (
        "import sys, s2e_policy.bags, s2e_policy.msgconv, s2e_policy.preprocess, "
        "s2e_policy.geometry; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 's2e_training')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unstamped_images_use_receive_time(tmp_path):
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    path = tmp_path / "unstamped"
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection("/image", "sensor_msgs/msg/Image", typestore=store)
        for i, receive_ns in enumerate([1_000, 2_000]):
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
            )
            msg = types["sensor_msgs/msg/Image"](
                header=header, height=1, width=1, encoding="rgb8", is_bigendian=0, step=3,
                data=np.array([i, 2, 3], dtype=np.uint8),
            )
            writer.write(conn, receive_ns, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    frames = list(iter_images(path, "/image"))
    assert [f.stamp_ns for f in frames] == [1_000, 2_000]
    np.testing.assert_array_equal(frames[1].rgb.reshape(3), [1, 2, 3])
