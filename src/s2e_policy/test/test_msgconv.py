import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from rosbags.typesys import Stores, get_typestore

from s2e_policy.errors import S2EError
from s2e_policy.geometry import quaternion_from_yaw
from s2e_policy.msgconv import (
    SUPPORTED_ENCODINGS,
    compressed_image_to_rgb,
    image_to_rgb,
    odometry_to_state,
    raw_image_to_rgb,
    stamp_to_ns,
)

TS = get_typestore(Stores.ROS2_HUMBLE)
Time = TS.types["builtin_interfaces/msg/Time"]
Header = TS.types["std_msgs/msg/Header"]
ImageMsg = TS.types["sensor_msgs/msg/Image"]
CompressedImageMsg = TS.types["sensor_msgs/msg/CompressedImage"]
Odometry = TS.types["nav_msgs/msg/Odometry"]
Pose = TS.types["geometry_msgs/msg/Pose"]
PoseWithCovariance = TS.types["geometry_msgs/msg/PoseWithCovariance"]
Twist = TS.types["geometry_msgs/msg/Twist"]
TwistWithCovariance = TS.types["geometry_msgs/msg/TwistWithCovariance"]
Point = TS.types["geometry_msgs/msg/Point"]
Quaternion = TS.types["geometry_msgs/msg/Quaternion"]
Vector3 = TS.types["geometry_msgs/msg/Vector3"]

HEADER = Header(stamp=Time(sec=12, nanosec=345), frame_id="camera")
H, W = 3, 4
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)  # the expected picture
ALPHA = RNG.integers(0, 256, size=(H, W, 1), dtype=np.uint8)
PAD = 5  # bytes of padding per row


def image_msg(encoding, pixels, *, bigendian=False, pad=PAD):
    rows = pixels.reshape(H, -1).view(np.uint8).reshape(H, -1)
    padded = np.concatenate([rows, np.full((H, pad), 0xEE, dtype=np.uint8)], axis=1)
    return ImageMsg(
        header=HEADER, height=H, width=W, encoding=encoding, is_bigendian=int(bigendian),
        step=padded.shape[1], data=padded.reshape(-1).copy(),
    )


def test_rgb8_with_row_padding():
    np.testing.assert_array_equal(raw_image_to_rgb(image_msg("rgb8", RGB)), RGB)


def test_bgr8():
    np.testing.assert_array_equal(image_to_rgb(image_msg("bgr8", RGB[:, :, ::-1].copy())), RGB)


def test_rgba8_and_bgra8_drop_alpha():
    rgba = np.concatenate([RGB, ALPHA], axis=2)
    bgra = np.concatenate([RGB[:, :, ::-1], ALPHA], axis=2)
    np.testing.assert_array_equal(image_to_rgb(image_msg("rgba8", rgba)), RGB)
    np.testing.assert_array_equal(image_to_rgb(image_msg("bgra8", bgra)), RGB)


def test_mono8_is_replicated():
    grey = RGB[:, :, :1].copy()
    out = image_to_rgb(image_msg("mono8", grey))
    np.testing.assert_array_equal(out, np.repeat(grey, 3, axis=2))


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_keeps_high_byte(bigendian):
    values = RNG.integers(0, 65536, size=(H, W), dtype=np.uint16)
    stored = values.astype(">u2" if bigendian else "<u2")
    out = image_to_rgb(image_msg("mono16", stored, bigendian=bigendian))
    expected = (values >> 8).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], expected)


def test_unknown_encoding_names_supported_ones():
    msg = image_msg("yuv422", RGB[:, :, :2].copy())
    with pytest.raises(S2EError, match="yuv422") as info:
        image_to_rgb(msg)
    for encoding in SUPPORTED_ENCODINGS:
        assert encoding in str(info.value)


def test_short_data_and_small_step_are_rejected():
    msg = image_msg("rgb8", RGB)
    msg.data = msg.data[:-20]
    with pytest.raises(S2EError, match="data has"):
        image_to_rgb(msg)
    msg = image_msg("rgb8", RGB)
    msg.step = W * 3 - 1
    with pytest.raises(S2EError, match="step"):
        image_to_rgb(msg)


def test_duck_typed_rclpy_style_message():
    msg = SimpleNamespace(
        height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3, data=RGB.tobytes()
    )
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


def encode(picture, fmt, **options):
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format=fmt, **options)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def test_compressed_png_is_lossless_and_jpeg_close():
    big = np.kron(RGB, np.ones((8, 8, 1), dtype=np.uint8))  # blocky so JPEG stays close
    png = CompressedImageMsg(header=HEADER, format="png", data=encode(big, "PNG"))
    np.testing.assert_array_equal(image_to_rgb(png), big)
    jpeg_bytes = encode(big, "JPEG", quality=95, subsampling=0)
    jpeg = CompressedImageMsg(header=HEADER, format="jpeg", data=jpeg_bytes)
    out = compressed_image_to_rgb(jpeg)
    assert out.shape == big.shape
    assert np.abs(out.astype(int) - big).mean() < 4


def test_corrupt_compressed_image():
    msg = CompressedImageMsg(header=HEADER, format="jpeg", data=np.arange(50, dtype=np.uint8))
    with pytest.raises(S2EError, match="CompressedImage"):
        image_to_rgb(msg)


def odometry(x=1.5, y=-2.0, yaw=0.8, vx=0.4, wz=-0.1):
    w, qx, qy, qz = quaternion_from_yaw(yaw)
    pose = Pose(position=Point(x=x, y=y, z=0.0), orientation=Quaternion(x=qx, y=qy, z=qz, w=w))
    twist = Twist(linear=Vector3(x=vx, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=wz))
    return Odometry(
        header=Header(stamp=Time(sec=3, nanosec=500), frame_id="odom"),
        child_frame_id="base_link",
        pose=PoseWithCovariance(pose=pose, covariance=np.zeros(36)),
        twist=TwistWithCovariance(twist=twist, covariance=np.zeros(36)),
    )


def test_odometry_to_state():
    state = odometry_to_state(odometry())
    assert state.stamp_ns == 3_000_000_500
    assert (state.x, state.y, state.vx, state.wz) == (1.5, -2.0, 0.4, -0.1)
    assert state.yaw == pytest.approx(0.8)
    assert stamp_to_ns(HEADER.stamp) == 12_000_000_345


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"x": math.nan}, "pose.pose.position.x"),
        ({"vx": math.inf}, "twist.twist.linear.x"),
        ({"wz": -math.inf}, "twist.twist.angular.z"),
    ],
)
def test_non_finite_odometry_names_the_field(kwargs, field):
    with pytest.raises(S2EError, match=field.replace(".", r"\.")):
        odometry_to_state(odometry(**kwargs))
