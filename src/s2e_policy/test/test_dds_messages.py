"""The DDS adapter's IDL types against the rosbags CDR serialiser, byte for byte.

For every message type the nodes use, an IDL sample built field by field (not through the
adapter's converters) must serialise to exactly ``typestore.serialize_cdr`` of the rosbags
message with the same content: strings (incl. non-ASCII UTF-8), empty and non-empty
sequences, fixed arrays, nested messages and large image data.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from s2e_policy.msgconv import image_to_rgb, odometry_to_state
from s2e_policy.ros.dds import (
    MESSAGE_TYPES,
    SERVICE_TYPES,
    TYPESTORE,
    DdsError,
    dds_typename,
    from_idl,
    idl_class,
    ros_msgtype,
    service_message_types,
    service_wire_classes,
    to_idl,
)

SEEDS = (0, 1, 2)
UNICODE_TEXT = ("base_link", "cämera_ø/光学", "", "odom ✓")
INT_RANGES = {
    # rosbags packs ROS `byte` as a signed char, the IDL octet is unsigned: 0..127 agree.
    "int8": (-(2**7), 2**7 - 1), "uint8": (0, 2**8 - 1), "byte": (0, 2**7 - 1),
    "char": (0, 2**8 - 1), "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}
NUMPY_DTYPES = {
    "bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "byte": np.uint8, "char": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}
LARGE_IMAGE_SHAPE = (480, 640, 3)


def _base_value(base: str, rng: np.random.Generator) -> Any:
    if base == "string":
        return str(rng.choice(UNICODE_TEXT))
    if base == "bool":
        return bool(rng.integers(2))
    if base in INT_RANGES:
        low, high = INT_RANGES[base]
        return int(rng.integers(low, high, endpoint=True, dtype=np.int64 if low < 0 else np.uint64))
    value = float(rng.normal(scale=100.0))
    return float(np.float32(value)) if base == "float32" else value


def _rosbags_message(msgtype: str, rng: np.random.Generator, seq_len: int | None) -> Any:
    """A rosbags message with random content; sequences get ``seq_len`` (None: random 1..3)."""
    _, fields = TYPESTORE.fielddefs[msgtype]
    values = {}
    for name, (kind, detail) in fields:
        values[name] = _field_value(kind, detail, rng, seq_len)
    return TYPESTORE.types[msgtype](**values)


def _field_value(kind: int, detail: Any, rng: np.random.Generator, seq_len: int | None) -> Any:
    if kind == 1:  # base type
        return _base_value(detail[0], rng)
    if kind == 2:  # nested message
        return _rosbags_message(detail, rng, seq_len)
    (element_kind, element_detail), length = detail
    if kind == 4:  # sequence
        length = int(rng.integers(1, 4)) if seq_len is None else seq_len
    items = [_field_value(element_kind, element_detail, rng, seq_len) for _ in range(length)]
    if element_kind == 1 and element_detail[0] != "string":
        return np.array(items, dtype=NUMPY_DTYPES[element_detail[0]])
    return items


def _idl_mirror(msg: Any) -> Any:
    """Build the IDL sample of a rosbags message field by field (independent of to_idl)."""
    cls = idl_class(msg.__msgtype__)
    values = {}
    for field in dataclasses.fields(cls):
        value = getattr(msg, field.name)
        if isinstance(value, np.ndarray):
            value = value.tobytes() if value.dtype == np.uint8 else value.tolist()
        elif isinstance(value, list):
            value = [_idl_mirror(v) if hasattr(v, "__msgtype__") else v for v in value]
        elif hasattr(value, "__msgtype__"):
            value = _idl_mirror(value)
        values[field.name] = value
    return cls(**values)


def _cdr(msg: Any) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(msg, msg.__msgtype__))


def _large_image() -> Any:
    types = TYPESTORE.types
    height, width, channels = LARGE_IMAGE_SHAPE
    pixels = np.random.default_rng(7).integers(0, 256, LARGE_IMAGE_SHAPE, dtype=np.uint8)
    return types["sensor_msgs/msg/Image"](
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=1_700_000_000, nanosec=123_456_789),
            frame_id="camera_optical_frame",
        ),
        height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * channels,
        data=pixels.reshape(-1),
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("msgtype", MESSAGE_TYPES)
def test_idl_bytes_equal_rosbags_cdr(msgtype: str, seed: int) -> None:
    msg = _rosbags_message(msgtype, np.random.default_rng(seed), seq_len=None)
    sample = _idl_mirror(msg)
    assert sample.serialize() == _cdr(msg)


@pytest.mark.parametrize("msgtype", MESSAGE_TYPES)
def test_idl_bytes_equal_rosbags_cdr_with_empty_sequences(msgtype: str) -> None:
    msg = _rosbags_message(msgtype, np.random.default_rng(3), seq_len=0)
    assert _idl_mirror(msg).serialize() == _cdr(msg)


def test_large_image_bytes_and_round_trip() -> None:
    msg = _large_image()
    expected = _cdr(msg)
    assert len(expected) > int(np.prod(LARGE_IMAGE_SHAPE))
    assert _idl_mirror(msg).serialize() == expected
    sample = to_idl(msg)
    assert isinstance(sample.data, bytes)
    assert sample.serialize() == expected
    back = from_idl(sample)
    np.testing.assert_array_equal(back.data, msg.data)
    assert _cdr(back) == expected


def test_unicode_frame_id_is_utf8_on_the_wire() -> None:
    types = TYPESTORE.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=5, nanosec=6), frame_id="kamera_ø_光"
    )
    sample = to_idl(header)
    payload = sample.serialize()
    assert payload == _cdr(header)
    encoded = "kamera_ø_光".encode()
    # CDR string: uint32 length incl. NUL, UTF-8 bytes, NUL.
    assert payload[12:16] == (len(encoded) + 1).to_bytes(4, "little")
    assert payload[16 : 16 + len(encoded)] == encoded
    assert from_idl(sample).frame_id == "kamera_ø_光"


@pytest.mark.parametrize("msgtype", MESSAGE_TYPES)
def test_round_trip_rosbags_idl_rosbags(msgtype: str) -> None:
    msg = _rosbags_message(msgtype, np.random.default_rng(11), seq_len=2)
    sample = to_idl(msg)
    assert type(sample) is idl_class(msgtype)
    assert ros_msgtype(sample) == msgtype
    assert sample == _idl_mirror(msg)
    assert type(sample).deserialize(sample.serialize()) == sample
    back = from_idl(sample)
    assert back.__msgtype__ == msgtype
    assert _cdr(back) == _cdr(msg)


@pytest.mark.parametrize("msgtype", MESSAGE_TYPES)
def test_dds_type_names_follow_rmw_cyclonedds(msgtype: str) -> None:
    package, _, name = msgtype.split("/")
    expected = f"{package}::msg::dds_::{name}_"
    assert dds_typename(msgtype) == expected
    assert idl_class(msgtype).__idl_typename__ == expected
    # Field order is the .msg order.
    assert [f.name for f in dataclasses.fields(idl_class(msgtype))] == [
        name for name, _ in TYPESTORE.fielddefs[msgtype][1]
    ]


def test_known_wire_bytes_of_twist_and_bool() -> None:
    """Hand-written CDR, independent of both libraries."""
    vector3, twist = idl_class("geometry_msgs/msg/Vector3"), idl_class("geometry_msgs/msg/Twist")
    payload = twist(linear=vector3(1.0, 2.0, 3.0), angular=vector3(0.0, 0.0, -0.5)).serialize()
    expected = b"\x00\x01\x00\x00" + np.array([1, 2, 3, 0, 0, -0.5], "<f8").tobytes()
    assert payload == expected
    assert idl_class("std_msgs/msg/Bool")(data=True).serialize() == b"\x00\x01\x00\x00\x01"


def test_header_string_then_doubles_aligns_to_eight_bytes() -> None:
    """PoseStamped: the doubles after frame_id start at an 8-byte boundary of the body."""
    types = TYPESTORE.types
    msg = _rosbags_message("geometry_msgs/msg/PoseStamped", np.random.default_rng(5), seq_len=0)
    msg.header.frame_id = "map"  # body: 8 (stamp) + 4 (len) + 4 ("map\0") = 16, aligned
    odd = dataclasses.replace(msg, header=types["std_msgs/msg/Header"](
        stamp=msg.header.stamp, frame_id="odom"))  # 8 + 4 + 5 = 17 -> 7 padding bytes
    payload = to_idl(odd).serialize()
    assert payload == _cdr(odd)
    assert payload[4 + 17 : 4 + 24] == b"\x00" * 7
    assert len(to_idl(msg).serialize()) == len(payload) - 8


def test_msgconv_accepts_idl_samples() -> None:
    image = _large_image()
    np.testing.assert_array_equal(image_to_rgb(to_idl(image)), image_to_rgb(image))
    compressed_type = TYPESTORE.types["sensor_msgs/msg/CompressedImage"]
    compressed = dataclasses.replace(
        _rosbags_message("sensor_msgs/msg/CompressedImage", np.random.default_rng(1), 0),
        format="png", data=np.frombuffer(_png_bytes(), dtype=np.uint8),
    )
    assert isinstance(compressed, compressed_type)
    np.testing.assert_array_equal(image_to_rgb(to_idl(compressed)), image_to_rgb(compressed))
    odom = _rosbags_message("nav_msgs/msg/Odometry", np.random.default_rng(2), seq_len=0)
    odom.pose.pose.orientation = TYPESTORE.types["geometry_msgs/msg/Quaternion"](
        x=0.0, y=0.0, z=0.6, w=0.8
    )
    assert odometry_to_state(to_idl(odom)) == odometry_to_state(odom)


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_unknown_and_invalid_types_raise_dds_error() -> None:
    with pytest.raises(DdsError, match="no definition"):
        idl_class("nope_msgs/msg/Missing")
    with pytest.raises(DdsError, match="package/msg/Name"):
        dds_typename("Twist")
    with pytest.raises(DdsError, match="rosbags message"):
        to_idl(object())
    with pytest.raises(DdsError, match="not a ROS message type"):
        from_idl(object())  # type: ignore[arg-type]


def test_idl_classes_default_construct_like_ros() -> None:
    twist = idl_class("geometry_msgs/msg/Twist")(
        linear=idl_class("geometry_msgs/msg/Vector3")(x=0.5)
    )
    assert (twist.linear.x, twist.linear.y, twist.angular.z) == (0.5, 0.0, 0.0)
    assert idl_class("geometry_msgs/msg/Quaternion")().w == 1.0
    info = idl_class("sensor_msgs/msg/CameraInfo")()
    assert (info.d, info.k, info.header.frame_id) == ([], [0.0] * 9, "")
    assert idl_class("sensor_msgs/msg/Image")().data == b""
    # Each default is a fresh object, never shared between instances.
    first, second = idl_class("nav_msgs/msg/Path")(), idl_class("nav_msgs/msg/Path")()
    first.poses.append(idl_class("geometry_msgs/msg/PoseStamped")())
    assert second.poses == []
    # Defaults serialise like rosbags messages built with the same values.
    types = TYPESTORE.types
    pose = types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
        orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
    )
    assert idl_class("geometry_msgs/msg/Pose")().serialize() == _cdr(pose)


@pytest.mark.parametrize("srvtype", SERVICE_TYPES)
def test_service_wire_bytes_are_header_then_rosbags_cdr(srvtype: str) -> None:
    """rmw_cyclonedds_cpp: uint64 client id, int64 sequence number, then the message body."""
    client_guid, sequence = 0x0123_4567_89AB_CDEF, 42
    header = struct.pack("<Qq", client_guid, sequence)
    for msgtype, wire_type in zip(service_message_types(srvtype), service_wire_classes(srvtype),
                                  strict=True):
        msg = _rosbags_message(msgtype, np.random.default_rng(9), seq_len=None)
        fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(idl_class(msgtype))}
        wire = wire_type(client_guid=client_guid, sequence_number=sequence, **fields)
        assert wire.serialize() == _cdr(msg)[:4] + header + _cdr(msg)[4:]
        name = msgtype.split("/")[2]  # Trigger_Request
        assert wire_type.__idl_typename__ == f"std_srvs::srv::dds_::{name}_"
