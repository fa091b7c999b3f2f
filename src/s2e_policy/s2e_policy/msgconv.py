"""ROS message -> numpy converters, written against attribute names only.

The same functions accept rclpy messages (``sensor_msgs.msg.Image``...) and the message
classes of the ``rosbags`` library, so bag replay, tests and the live node share one code
path. Nothing here imports ROS.

Supported messages:

* ``sensor_msgs/Image`` with encodings :data:`SUPPORTED_ENCODINGS`; ``step`` (row padding)
  and ``is_bigendian`` are honoured.
* ``sensor_msgs/CompressedImage`` holding JPEG or PNG (decoded with Pillow).
* ``nav_msgs/Odometry`` -> :class:`OdomState`.
"""

from __future__ import annotations

import io
import math
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from s2e_policy.errors import S2EError
from s2e_policy.geometry import yaw_from_quaternion

NS_PER_S = 1_000_000_000
"""Nanoseconds per second."""

MONO16_TO_MONO8_SHIFT = 8
"""mono16 frames are reduced to 8 bits by keeping the high byte (``value >> 8``)."""

# encoding -> (channels, bytes per channel, channel order of the stored pixel)
_ENCODINGS: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "rgba8": (4, 1, "rgba"),
    "bgra8": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"),
    "mono16": (1, 2, "mono"),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
"""``sensor_msgs/Image`` encodings :func:`image_to_rgb` converts."""


class OdomState(NamedTuple):
    """Planar state of one ``nav_msgs/Odometry`` message.

    Attributes:
        stamp_ns: header stamp, nanoseconds (int).
        x: position x in the message's ``header.frame_id`` frame, metres.
        y: position y, metres.
        yaw: heading about +z, radians in ``[-pi, pi]``.
        vx: forward velocity in ``child_frame_id`` (base_link), m/s.
        wz: yaw rate, rad/s.
    """

    stamp_ns: int
    x: float
    y: float
    yaw: float
    vx: float
    wz: float


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (attributes ``sec``, ``nanosec``) -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def _message_bytes(data: Any) -> np.ndarray:
    """The ``data`` field of an image message as a flat uint8 array (no copy when possible)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    # rclpy exposes uint8[] as array.array('B') or a list of ints.
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def raw_image_to_rgb(msg: Any) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` to an RGB frame.

    Colour encodings are reordered to RGB and alpha is dropped; ``mono8`` is replicated to three
    channels; ``mono16`` keeps its high byte (``>> 8``), then is replicated.

    Args:
        msg: object with ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``,
            ``data`` (rclpy or rosbags ``sensor_msgs/Image``).

    Returns:
        uint8 ``(height, width, 3)`` RGB (a new array).

    Raises:
        S2EError: unsupported encoding (names the supported ones), or a ``step``/``data`` size
            that does not fit ``height x width``.
    """
    encoding = str(msg.encoding).lower()
    if encoding not in _ENCODINGS:
        raise S2EError(
            f"sensor_msgs/Image encoding {msg.encoding!r} is not supported; "
            f"expected one of {', '.join(SUPPORTED_ENCODINGS)}"
        )
    channels, depth, order = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * depth
    if height <= 0 or width <= 0:
        raise S2EError(f"sensor_msgs/Image: expected positive height/width, got {height}x{width}")
    if step < row_bytes:
        raise S2EError(
            f"sensor_msgs/Image step {step} is smaller than width * bytes per pixel = {row_bytes}"
        )
    buffer = _message_bytes(msg.data)
    if buffer.size < step * (height - 1) + row_bytes:
        raise S2EError(
            f"sensor_msgs/Image data has {buffer.size} bytes; expected at least "
            f"{step * (height - 1) + row_bytes} for {height} rows of step {step}"
        )
    # Rows may be padded to `step`: view the buffer row by row, then drop the padding.
    padded = np.lib.stride_tricks.as_strided(
        buffer, shape=(height, row_bytes), strides=(step, 1), writeable=False
    )
    if depth == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        pixels16 = np.ascontiguousarray(padded).view(dtype).reshape(height, width, channels)
        pixels = (pixels16 >> MONO16_TO_MONO8_SHIFT).astype(np.uint8)
    else:
        pixels = padded.reshape(height, width, channels)
    if order == "mono":
        return np.repeat(pixels, 3, axis=2)
    if order in ("bgr", "bgra"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def compressed_image_to_rgb(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG, any Pillow mode) to RGB.

    Args:
        msg: object with ``format`` and ``data`` (rclpy or rosbags ``CompressedImage``).

    Returns:
        uint8 ``(H, W, 3)`` RGB.

    Raises:
        S2EError: the bytes are not a decodable JPEG/PNG (names the message's ``format``).
    """
    buffer = _message_bytes(msg.data)
    try:
        with Image.open(io.BytesIO(buffer.tobytes())) as decoded:
            if decoded.format not in ("JPEG", "PNG"):
                raise S2EError(
                    f"sensor_msgs/CompressedImage (format {msg.format!r}) holds "
                    f"{decoded.format}; expected JPEG or PNG"
                )
            return np.asarray(decoded.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise S2EError(
            f"sensor_msgs/CompressedImage (format {msg.format!r}, {buffer.size} bytes) "
            f"could not be decoded as JPEG/PNG: {exc}"
        ) from exc


def image_to_rgb(msg: Any) -> np.ndarray:
    """Convert either image message type to uint8 ``(H, W, 3)`` RGB.

    ``sensor_msgs/CompressedImage`` is recognised by its ``format`` attribute (it has no
    ``encoding``); everything else goes through :func:`raw_image_to_rgb`.
    """
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_image_to_rgb(msg)
    return raw_image_to_rgb(msg)


def odometry_to_state(msg: Any) -> OdomState:
    """Convert a ``nav_msgs/Odometry`` to its planar :class:`OdomState`.

    Raises:
        S2EError: any used field is NaN/inf (names the field), or the orientation quaternion
            is zero.
    """
    pose = msg.pose.pose
    twist = msg.twist.twist
    fields = {
        "pose.pose.position.x": pose.position.x,
        "pose.pose.position.y": pose.position.y,
        "pose.pose.orientation.w": pose.orientation.w,
        "pose.pose.orientation.x": pose.orientation.x,
        "pose.pose.orientation.y": pose.orientation.y,
        "pose.pose.orientation.z": pose.orientation.z,
        "twist.twist.linear.x": twist.linear.x,
        "twist.twist.angular.z": twist.angular.z,
    }
    for name, value in fields.items():
        if not math.isfinite(float(value)):
            raise S2EError(f"nav_msgs/Odometry field {name} is {value}; expected a finite number")
    orientation = pose.orientation
    return OdomState(
        stamp_ns=stamp_to_ns(msg.header.stamp),
        x=float(pose.position.x),
        y=float(pose.position.y),
        yaw=yaw_from_quaternion(orientation.w, orientation.x, orientation.y, orientation.z),
        vx=float(twist.linear.x),
        wz=float(twist.angular.z),
    )
