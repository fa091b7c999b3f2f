"""Read rosbag2 recordings (sqlite3 or MCAP storage) without ROS, using ``rosbags``.

Used by the dataset adapters (training) and by bag replay (runtime), so it depends on numpy,
Pillow and ``rosbags`` only. Everything streams: images are decoded one message at a time.

Timestamps are the messages' ``header.stamp`` in integer nanoseconds; a message whose header
stamp is zero (a driver that does not stamp) falls back to the bag's receive time.

Errors: a missing path, an unreadable/truncated bag, a missing topic (the message lists the
bag's topics), a topic of the wrong type, or a message that fails to deserialise all raise
:class:`BagError` (an :class:`~s2e_policy.errors.S2EError`). Readers that can use what comes
before a corrupt region (bag replay with partial results) pass ``on_truncated``: the read then
ends at the last good message and the error is handed to that callback instead
(:func:`read_odometry`; an image stream simply raises where the damage starts).

Writing: :func:`copy_bag` copies a bag to another storage back-end, optionally merging new
messages (:class:`BagMessage`, built from :func:`message_type` classes) into the copy.
"""

from __future__ import annotations

import heapq
import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from s2e_policy.errors import S2EError
from s2e_policy.msgconv import image_to_rgb, odometry_to_state, stamp_to_ns

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
"""Message types :func:`iter_images` accepts."""

ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
"""Message type :func:`read_odometry` accepts."""

STORAGE_PLUGINS = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
"""Storage back-ends :func:`copy_bag` writes."""

BAG_WRITER_VERSION = 9
"""rosbag2 metadata version written by :func:`copy_bag` (Iron and later; Humble reads 8)."""

FALLBACK_TYPESTORE = Stores.ROS2_HUMBLE
"""Message definitions used for bags that do not embed theirs (older sqlite3 bags)."""

# What the storage layers raise on truncated or corrupt data.
_READ_ERRORS = (
    AnyReaderError,
    ReaderError,
    sqlite3.DatabaseError,
    struct.error,
    EOFError,
    OSError,
    KeyError,
    IndexError,
    ValueError,
    OverflowError,  # a corrupt MCAP record length
)


class BagError(S2EError):
    """A rosbag2 recording could not be read as asked (names the bag and topic)."""


@dataclass(frozen=True)
class BagTopic:
    """One topic of a bag: ``name``, ROS 2 ``msgtype`` (``pkg/msg/Type``) and message ``count``."""

    name: str
    msgtype: str
    count: int


class ImageFrame(NamedTuple):
    """One decoded image message.

    Attributes:
        index: position of the message on its topic (0-based, in bag order).
        stamp_ns: header stamp (or receive time when unstamped), nanoseconds.
        rgb: uint8 ``(H, W, 3)`` RGB frame.
    """

    index: int
    stamp_ns: int
    rgb: np.ndarray


class BagMessage(NamedTuple):
    """A new message for :func:`copy_bag` to add to the copy.

    Attributes:
        topic: topic name (one message type per topic).
        msgtype: ROS 2 type name (``pkg/msg/Type``) from the :data:`FALLBACK_TYPESTORE`.
        stamp_ns: receive time written to the bag, nanoseconds.
        msg: message object built from :func:`message_type` classes.
    """

    topic: str
    msgtype: str
    stamp_ns: int
    msg: Any


@dataclass(frozen=True)
class OdometryTrack:
    """All odometry messages of one topic, in bag order.

    Attributes:
        stamps_ns: int64 ``(N,)`` header stamps, nanoseconds.
        poses: float64 ``(N, 3)`` ``(x, y, yaw)`` in the odometry frame (metres, radians).
        velocities: float64 ``(N, 2)`` ``(vx m/s, wz rad/s)`` in the robot frame.
        indices: int64 ``(N,)`` message index on the topic (differs from ``arange`` when
            bad messages were skipped).
    """

    stamps_ns: np.ndarray
    poses: np.ndarray
    velocities: np.ndarray
    indices: np.ndarray


def _bag_dir(path: Path) -> Path:
    """The rosbag2 directory for ``path`` (a bag folder, or a storage file inside one)."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"rosbag2 {path}: no such file or directory")
    if path.is_file() and (path.parent / "metadata.yaml").is_file():
        return path.parent
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"rosbag2 {path}: expected a bag folder with metadata.yaml")
    return path


@lru_cache(maxsize=1)
def _fallback_typestore() -> Typestore:
    """Typestore for bags without embedded definitions (built once: it is slow to make)."""
    return get_typestore(FALLBACK_TYPESTORE)


def message_type(msgtype: str) -> type:
    """The message class of ``msgtype`` (``pkg/msg/Type``) in :data:`FALLBACK_TYPESTORE`.

    Raises:
        BagError: the type is not in the store.
    """
    types = _fallback_typestore().types
    if msgtype not in types:
        raise BagError(f"message type {msgtype!r}: not in the {FALLBACK_TYPESTORE.name} "
                       "message definitions")
    return types[msgtype]


@contextmanager
def _open(path: Path) -> Iterator[AnyReader]:
    """Open a bag with ``rosbags`` and translate its errors to :class:`BagError`."""
    bag = _bag_dir(path)
    reader = AnyReader([bag], default_typestore=_fallback_typestore())
    try:
        reader.open()
    except _READ_ERRORS as exc:
        raise BagError(f"rosbag2 {bag}: cannot be opened (corrupt or truncated?): {exc}") from exc
    try:
        yield reader
    finally:
        reader.close()


def list_topics(path: Path) -> list[BagTopic]:
    """Topics of the bag at ``path``, sorted by name, with message types and counts."""
    with _open(path) as reader:
        return _topics(reader)


def _topics(reader: AnyReader) -> list[BagTopic]:
    counts: dict[tuple[str, str], int] = {}
    for conn in reader.connections:
        key = (conn.topic, conn.msgtype)
        counts[key] = counts.get(key, 0) + int(conn.msgcount)
    return [BagTopic(name, msgtype, count) for (name, msgtype), count in sorted(counts.items())]


def _connections(
    reader: AnyReader, path: Path, topic: str, msgtypes: tuple[str, ...] | None
) -> list:
    """Connections of ``topic`` (of one of ``msgtypes``; any type when ``None``)."""
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        listing = ", ".join(f"{t.name} ({t.msgtype})" for t in _topics(reader)) or "none"
        raise BagError(f"rosbag2 {path}: no topic {topic!r}; the bag has: {listing}")
    wrong = sorted({c.msgtype for c in conns} - set(msgtypes or ()))
    if msgtypes is not None and wrong:
        raise BagError(
            f"rosbag2 {path}: topic {topic!r} has type {', '.join(wrong)}; "
            f"expected {' or '.join(msgtypes)}"
        )
    return conns


def _iter_messages(
    reader: AnyReader,
    path: Path,
    topic: str,
    conns: list,
    on_truncated: Callable[[BagError], None] | None = None,
) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(index, receive_time_ns, raw_bytes)``; storage errors become :class:`BagError`.

    With ``on_truncated`` a storage error ends the iteration and is passed to it instead.
    """
    messages = reader.messages(connections=conns)
    index = 0
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except _READ_ERRORS as exc:
            error = BagError(
                f"rosbag2 {path}: reading topic {topic!r} failed after {index} messages "
                f"(corrupt or truncated bag?): {exc}"
            )
            if on_truncated is None:
                raise error from exc
            on_truncated(error)
            return
        conn, receive_ns, raw = item
        yield index, int(receive_ns), (conn, raw)
        index += 1


def _decode(
    reader: AnyReader, path: Path, topic: str, index: int, conn: Any, raw: bytes
) -> Any:
    """Deserialise one message; errors name the bag, topic and message index."""
    try:
        return reader.deserialize(raw, conn.msgtype)
    except _READ_ERRORS as exc:
        raise BagError(
            f"rosbag2 {path}: message {index} on {topic!r} cannot be deserialised as "
            f"{conn.msgtype}: {exc}"
        ) from exc


def _convert(path: Path, topic: str, index: int, convert: Callable[[Any], Any], msg: Any) -> Any:
    """Apply a :mod:`s2e_policy.msgconv` converter, prefixing errors with bag/topic/index."""
    try:
        return convert(msg)
    except BagError:
        raise
    except S2EError as exc:
        raise S2EError(f"rosbag2 {path}: topic {topic!r} message {index}: {exc}") from exc


def iter_images(
    path: Path,
    topic: str,
    *,
    on_error: Callable[[int, S2EError], None] | None = None,
) -> Iterator[ImageFrame]:
    """Stream the decoded frames of an image topic (raw ``Image`` or ``CompressedImage``).

    Args:
        path: bag folder (or its storage file).
        topic: image topic name.
        on_error: if given, a message that cannot be deserialised or decoded is passed to
            ``on_error(index, error)`` and skipped; if ``None`` the error is raised.

    Yields:
        :class:`ImageFrame` per message, in bag order; ``rgb`` is uint8 ``(H, W, 3)``.

    Raises:
        BagError: missing topic (lists the bag's topics), wrong type, unreadable bag.
        S2EError: undecodable frame when ``on_error`` is ``None`` (names topic and index).
    """
    with _open(path) as reader:
        conns = _connections(reader, path, topic, IMAGE_TYPES)
        for index, receive_ns, (conn, raw) in _iter_messages(reader, path, topic, conns):
            try:
                msg = _decode(reader, path, topic, index, conn, raw)
                stamp = stamp_to_ns(msg.header.stamp) or receive_ns
                rgb = _convert(path, topic, index, image_to_rgb, msg)
            except S2EError as exc:
                if on_error is None:
                    raise
                on_error(index, exc)
                continue
            yield ImageFrame(index=index, stamp_ns=stamp, rgb=rgb)


def read_odometry(
    path: Path,
    topic: str,
    *,
    on_error: Callable[[int, S2EError], None] | None = None,
    on_truncated: Callable[[BagError], None] | None = None,
) -> OdometryTrack:
    """Read every ``nav_msgs/Odometry`` message of ``topic`` (small: kept in memory).

    Args:
        path: bag folder (or its storage file).
        topic: odometry topic name.
        on_error: if given, a message with NaN/inf fields (or that fails to deserialise) is
            passed to ``on_error(index, error)`` and skipped; otherwise the error is raised.
        on_truncated: if given, a storage error ends the track at the last good message and
            is passed to ``on_truncated(error)``; if ``None`` it is raised.

    Returns:
        :class:`OdometryTrack` in bag order (monotonicity is the caller's check).
    """
    stamps: list[int] = []
    rows: list[tuple[float, float, float, float, float]] = []
    indices: list[int] = []
    with _open(path) as reader:
        conns = _connections(reader, path, topic, (ODOMETRY_TYPE,))
        for index, _receive_ns, (conn, raw) in _iter_messages(reader, path, topic, conns,
                                                              on_truncated):
            try:
                msg = _decode(reader, path, topic, index, conn, raw)
                state = _convert(path, topic, index, odometry_to_state, msg)
            except S2EError as exc:
                if on_error is None:
                    raise
                on_error(index, exc)
                continue
            stamps.append(state.stamp_ns)
            rows.append((state.x, state.y, state.yaw, state.vx, state.wz))
            indices.append(index)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return OdometryTrack(
        stamps_ns=np.asarray(stamps, dtype=np.int64),
        poses=table[:, :3].copy(),
        velocities=table[:, 3:].copy(),
        indices=np.asarray(indices, dtype=np.int64),
    )


def topic_frame_id(path: Path, topic: str) -> str:
    """``header.frame_id`` of the first message of ``topic`` (``""`` when it has none).

    Raises:
        BagError: missing topic (lists the bag's topics), unreadable or empty topic.
    """
    with _open(path) as reader:
        conns = _connections(reader, path, topic, None)
        for index, _receive_ns, (conn, raw) in _iter_messages(reader, path, topic, conns):
            msg = _decode(reader, path, topic, index, conn, raw)
            header = getattr(msg, "header", None)
            return str(header.frame_id) if header is not None else ""
    raise BagError(f"rosbag2 {path}: topic {topic!r} has no messages")


def copy_bag(
    src: Path,
    dst: Path,
    *,
    storage: str = "sqlite3",
    topics: list[str] | None = None,
    version: int = BAG_WRITER_VERSION,
    extra: Iterable[BagMessage] = (),
) -> int:
    """Copy a bag into a new bag with another storage back-end (e.g. MCAP -> sqlite3).

    Messages are copied as serialised bytes with their message definitions and receive times,
    so the copy deserialises to the same messages. ``extra`` messages are serialised with the
    :data:`FALLBACK_TYPESTORE` definitions and merged in by receive time.

    Args:
        src: source bag folder (or storage file).
        dst: new bag folder; must not exist.
        storage: ``"sqlite3"`` or ``"mcap"``.
        topics: topics to copy (default all); a missing one raises :class:`BagError`.
        version: rosbag2 metadata version of the copy (8 or 9).
        extra: new messages to add (their topics must not be among the copied ones).

    Returns:
        Number of messages written (copied plus added).
    """
    if storage not in STORAGE_PLUGINS:
        raise BagError(
            f"copy_bag storage {storage!r}: expected one of {', '.join(STORAGE_PLUGINS)}"
        )
    count = 0
    added = sorted(extra, key=lambda m: m.stamp_ns)
    typestore = _fallback_typestore()
    with _open(src) as reader:
        wanted = topics if topics is not None else sorted({c.topic for c in reader.connections})
        conns = [c for t in wanted for c in _connections(reader, src, t, None)]
        clash = sorted({m.topic for m in added} & set(wanted))
        if clash:
            raise BagError(f"copy_bag {dst}: new messages on {clash} would mix with the copied "
                           "topics of the same name")
        try:
            with Writer(dst, version=version, storage_plugin=STORAGE_PLUGINS[storage]) as writer:
                out = {
                    conn.id: writer.add_connection(
                        conn.topic,
                        conn.msgtype,
                        msgdef=conn.msgdef.data,
                        rihs01=conn.digest,
                    )
                    for conn in conns
                }
                new: dict[str, Any] = {}
                for m in added:
                    if m.topic not in new:
                        message_type(m.msgtype)
                        new[m.topic] = writer.add_connection(m.topic, m.msgtype,
                                                             typestore=typestore)
                copied = ((receive_ns, out[conn.id], raw) for _index, receive_ns, (conn, raw)
                          in _iter_messages(reader, src, ", ".join(wanted), conns))
                fresh = ((m.stamp_ns, new[m.topic], typestore.serialize_cdr(m.msg, m.msgtype))
                         for m in added)
                for receive_ns, conn_out, raw in heapq.merge(copied, fresh, key=lambda r: r[0]):
                    writer.write(conn_out, receive_ns, raw)
                    count += 1
        except WriterError as exc:
            raise BagError(f"rosbag2 {dst}: cannot write the copy: {exc}") from exc
    return count
