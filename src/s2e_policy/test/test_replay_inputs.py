"""Bad input for replay: missing topics, encodings, odometry gaps, stamps, damaged bags.

Missing topics, unknown image encodings, odometry gaps longer than the horizon, stamps out of
order, corrupt and truncated bags. The damaged recordings are built from the real EuRoC
fixture with ``copy_bag(extra=...)``: its camera frames and odometry re-published on new
topics with one defect each.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.bags import (
    BagError,
    BagMessage,
    copy_bag,
    iter_images,
    list_topics,
    message_type,
    read_odometry,
)
from s2e_policy.errors import S2EError
from s2e_policy.geometry import quaternion_from_yaw
from s2e_policy.replay.loop import ODOMETRY_GAP, ReplayConfig, replay_bag
from s2e_policy.runtime import PolicyRuntime

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_models as om

NS = 1_000_000_000
CONTRACT = om.make_contract()  # 3 frames at 4 Hz, 5 waypoints 0.25 s apart
HORIZON_NS = round(CONTRACT.waypoints * CONTRACT.waypoint_dt_s * NS)
GAP_START_S, GAP_END_S = 1.5, 3.0  # odometry removed in between (1.5 s > the 1.25 s horizon)
SWAPPED_FRAME = 30  # header stamps of frames 30 and 31 exchanged
EVERY_FRAME = math.inf


def _msg(msgtype: str, **kw: object) -> object:
    return message_type(msgtype)(**kw)


def _header(stamp_ns: int, frame_id: str) -> object:
    return _msg("std_msgs/msg/Header", frame_id=frame_id,
                stamp=_msg("builtin_interfaces/msg/Time", sec=stamp_ns // NS,
                           nanosec=stamp_ns % NS))


def _odometry(stamp_ns: int, pose: np.ndarray, velocity: np.ndarray) -> object:
    w, x, y, z = quaternion_from_yaw(float(pose[2]))
    vec = "geometry_msgs/msg/Vector3"
    pose_msg = _msg("geometry_msgs/msg/Pose",
                    position=_msg("geometry_msgs/msg/Point", x=pose[0], y=pose[1], z=0.0),
                    orientation=_msg("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w))
    twist = _msg("geometry_msgs/msg/Twist", linear=_msg(vec, x=velocity[0], y=0.0, z=0.0),
                 angular=_msg(vec, x=0.0, y=0.0, z=velocity[1]))
    return _msg("nav_msgs/msg/Odometry", header=_header(stamp_ns, "odom"),
                child_frame_id="base_link",
                pose=_msg("geometry_msgs/msg/PoseWithCovariance", pose=pose_msg,
                          covariance=np.zeros(36)),
                twist=_msg("geometry_msgs/msg/TwistWithCovariance", twist=twist,
                           covariance=np.zeros(36)))


def _image(stamp_ns: int, rgb: np.ndarray, encoding: str) -> object:
    h, w, _ = rgb.shape
    return _msg("sensor_msgs/msg/Image", header=_header(stamp_ns, "camera"), height=h,
                width=w, encoding=encoding, is_bigendian=0, step=3 * w,
                data=rgb.reshape(-1).copy())


@pytest.fixture(scope="module")
def damaged_bag(mcap_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's /odom plus /odom_gap, /odom_shuffled, /cam_shuffled and /cam_yuv."""
    odom = read_odometry(mcap_bag, "/odom")
    frames = list(iter_images(mcap_bag, "/camera/image_raw"))
    t0 = int(odom.stamps_ns[0])
    extra = []
    rel = (odom.stamps_ns - t0) / NS
    for i, (t, pose, vel) in enumerate(zip(odom.stamps_ns, odom.poses, odom.velocities,
                                           strict=True)):
        if not GAP_START_S < rel[i] < GAP_END_S:
            extra.append(BagMessage("/odom_gap", "nav_msgs/msg/Odometry", int(t),
                                    _odometry(int(t), pose, vel)))
        j = {100: 101, 101: 100}.get(i, i)  # messages 100 and 101 carry each other's stamps
        extra.append(BagMessage("/odom_shuffled", "nav_msgs/msg/Odometry", int(t),
                                _odometry(int(odom.stamps_ns[j]), pose, vel)))
    for i, frame in enumerate(frames):
        j = {SWAPPED_FRAME: SWAPPED_FRAME + 1, SWAPPED_FRAME + 1: SWAPPED_FRAME}.get(i, i)
        small = np.ascontiguousarray(frame.rgb[::4, ::4])
        extra.append(BagMessage("/cam_shuffled", "sensor_msgs/msg/Image", frame.stamp_ns,
                                _image(frames[j].stamp_ns, small, "rgb8")))
        if i < 3:
            extra.append(BagMessage("/cam_yuv", "sensor_msgs/msg/Image", frame.stamp_ns,
                                    _image(frame.stamp_ns, small, "yuv422")))
    dst = tmp_path_factory.mktemp("damaged") / "bag"
    copy_bag(mcap_bag, dst, storage="mcap", topics=["/odom"], extra=extra)
    return dst


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> PolicyRuntime:
    path = tmp_path_factory.mktemp("inputs_model") / "seeker.onnx"
    return PolicyRuntime.from_file(om.save(om.goal_seeker(CONTRACT, speed_mps=0.5), path))


def test_missing_topic_lists_the_bag_topics(mcap_bag: Path, runtime: PolicyRuntime) -> None:
    with pytest.raises(BagError) as info:
        replay_bag(mcap_bag, [runtime], ReplayConfig("/camera/missing", "/odom"))
    message = str(info.value)
    assert "'/camera/missing'" in message
    assert "/camera/image_raw (sensor_msgs/msg/Image, 95)" in message
    assert "/odom (nav_msgs/msg/Odometry, 236)" in message
    with pytest.raises(BagError, match="topic '/camera/image_raw' has type"):
        replay_bag(mcap_bag, [runtime], ReplayConfig("/odom", "/camera/image_raw"))


def test_unknown_image_encoding_names_it(damaged_bag: Path, runtime: PolicyRuntime) -> None:
    with pytest.raises(S2EError, match="encoding 'yuv422' is not supported; expected one of "
                                       "rgb8"):
        replay_bag(damaged_bag, [runtime], ReplayConfig("/cam_yuv", "/odom"))


def test_odometry_gap_longer_than_the_horizon_skips_and_counts(
        damaged_bag: Path, runtime: PolicyRuntime) -> None:
    run, = replay_bag(damaged_bag, [runtime], ReplayConfig("/cam_shuffled", "/odom_gap",
                                                           decision_rate_hz=EVERY_FRAME))
    counts = run.status_counts()
    gap = (run.motion.start_ns + round(GAP_START_S * NS), run.motion.start_ns
           + round(GAP_END_S * NS))
    # inside the gap the pilot's watchdog stops (stale odometry); just before it, or early in
    # it, the policy runs but the logged future crosses the gap
    assert counts["stale_odometry"] > 0 and counts[ODOMETRY_GAP] > 0
    assert run.summary()["status_counts"][ODOMETRY_GAP] == counts[ODOMETRY_GAP]
    for r in run.records:
        crosses = r.stamp_ns < gap[1] and r.stamp_ns + HORIZON_NS > gap[0]
        if r.status == "evaluated":
            assert not crosses
        if r.status == ODOMETRY_GAP:
            assert crosses
    # a tolerance above the gap evaluates them
    run2, = replay_bag(damaged_bag, [runtime], ReplayConfig(
        "/cam_shuffled", "/odom_gap", decision_rate_hz=EVERY_FRAME, max_odometry_gap_s=2.0))
    assert ODOMETRY_GAP not in run2.status_counts()
    assert len(run2.evaluated) == len(run.evaluated) + counts[ODOMETRY_GAP]


def test_stamps_out_of_order_are_dropped_and_counted(damaged_bag: Path,
                                                     runtime: PolicyRuntime) -> None:
    run, = replay_bag(damaged_bag, [runtime], ReplayConfig("/cam_shuffled", "/odom_shuffled",
                                                           decision_rate_hz=EVERY_FRAME))
    summary = run.summary()
    assert summary["odometry_dropped_out_of_order"] == 1
    assert summary["status_counts"]["image_out_of_order"] == 1
    assert len(run.records) == 95 and len(run.evaluated) > 50


def test_corrupt_bag_errors_or_keeps_partial_results(mcap_bag: Path, tmp_path: Path,
                                                     runtime: PolicyRuntime) -> None:
    bag = tmp_path / "corrupt"
    shutil.copytree(mcap_bag, bag)
    storage = bag / "euroc_cam1_mcap.mcap"
    storage.chmod(0o644)
    size = storage.stat().st_size
    with storage.open("r+b") as f:  # overwrite a stretch in the middle of the data
        f.seek(size // 2)
        f.write(b"\xff" * (size // 50))
    config = ReplayConfig("/camera/image_raw", "/odom", decision_rate_hz=EVERY_FRAME)
    with pytest.raises(BagError, match="corrupt or truncated"):
        replay_bag(bag, [runtime], config)
    partial = ReplayConfig("/camera/image_raw", "/odom", decision_rate_hz=EVERY_FRAME,
                           keep_partial=True)
    run, = replay_bag(bag, [runtime], partial)
    assert run.partial_error is not None and "corrupt or truncated" in run.partial_error
    assert 10 < len(run.records) < 95 and run.evaluated
    assert run.summary()["partial"] is True


def test_truncated_bag_is_refused_clearly(mcap_bag: Path, tmp_path: Path,
                                          runtime: PolicyRuntime) -> None:
    bag = tmp_path / "truncated"
    shutil.copytree(mcap_bag, bag)
    storage = bag / "euroc_cam1_mcap.mcap"
    storage.chmod(0o644)
    with storage.open("r+b") as f:
        f.truncate(storage.stat().st_size // 2)
    with pytest.raises(BagError, match="cannot be opened"):
        replay_bag(bag, [runtime], ReplayConfig("/camera/image_raw", "/odom"))


def test_copy_with_extra_messages_keeps_the_originals(damaged_bag: Path) -> None:
    topics = {t.name: t for t in list_topics(damaged_bag)}
    assert topics["/odom"].count == 236 and topics["/cam_shuffled"].count == 95
    assert topics["/odom_gap"].count < 236 and topics["/cam_yuv"].count == 3
    with pytest.raises(BagError, match="would mix"):
        copy_bag(damaged_bag, damaged_bag.parent / "clash", topics=["/odom"],
                 extra=[BagMessage("/odom", "nav_msgs/msg/Odometry", 0, None)])
