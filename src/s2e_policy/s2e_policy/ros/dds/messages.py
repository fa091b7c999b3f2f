"""ROS 2 messages as Cyclone DDS IDL types, generated from the ``rosbags`` typestore.

One source of truth: the field lists of the ``rosbags`` ROS 2 Humble typestore (the ``.msg``
definitions, in order) define both the ``rosbags`` message classes and the IDL structs made
here, so the two cannot drift apart. Each IDL struct carries the DDS type name rmw_cyclonedds
uses, ``pkg::msg::dds_::Type_``, and serialises to the same XCDR1 (plain CDR) bytes as
``typestore.serialize_cdr`` (tests check this byte for byte for every type in
:data:`MESSAGE_TYPES`).

Field mapping (ROS -> IDL -> Python value of an IDL sample):

* ``bool`` -> ``boolean`` -> ``bool``; integer and float types -> same-width IDL types ->
  ``int``/``float``; ``byte`` -> ``octet`` (``rosbags`` packs ``byte`` as a signed char, so
  only 0..127 convert both ways); ``char`` -> ``uint8``; ``string`` -> ``string``
  -> ``str`` (UTF-8 on the wire, bounded strings keep their bound).
* ``uint8[]``/``byte[]`` (image data) -> ``sequence<uint8>`` -> ``bytes`` (same CDR layout;
  ``bytes`` avoids a Python int per pixel, see :func:`_build_class`).
* other ``T[]`` -> ``sequence<T>`` -> ``list``; ``T[N]`` -> ``T[N]`` -> ``list`` of ``N``
  (``bytes`` of ``N`` for ``uint8``/``byte``).
* nested messages -> nested IDL structs.

IDL samples have the same attribute names as rclpy and ``rosbags`` messages, so the
attribute-name converters of :mod:`s2e_policy.msgconv` accept them directly.
:func:`to_idl` and :func:`from_idl` convert between IDL samples and ``rosbags`` messages through
their common CDR encoding.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from cyclonedds.idl import IdlMeta, IdlStruct, make_idl_struct
from cyclonedds.idl import types as idl_types
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from s2e_policy.ros.dds.errors import DdsError

TYPESTORE_DISTRO = Stores.ROS2_HUMBLE
"""ROS 2 distribution whose message definitions the adapter speaks (unchanged in Jazzy for
every type of :data:`MESSAGE_TYPES`)."""

EXTRA_MESSAGE_DEFINITIONS: dict[str, str] = {
    # gazebo_ros_pkgs (ROS 2 branch), gazebo_msgs/msg/ModelStates.msg; not in the typestore.
    "gazebo_msgs/msg/ModelStates": (
        "string[] name\ngeometry_msgs/Pose[] pose\ngeometry_msgs/Twist[] twist\n"
    ),
}
"""``.msg`` text of the types the nodes use that the ``rosbags`` typestore lacks."""

EMPTY_STRUCT_FIELD = "uint8 structure_needs_at_least_one_member\n"
"""The member rosidl gives an empty request or response (IDL structs cannot be empty)."""

EXTRA_SERVICE_DEFINITIONS: dict[str, tuple[str, str]] = {
    # std_srvs/srv/*.srv: (request, response) .msg text; empty parts get EMPTY_STRUCT_FIELD.
    "std_srvs/srv/Empty": ("", ""),
    "std_srvs/srv/Trigger": ("", "bool success\nstring message\n"),
    "std_srvs/srv/SetBool": ("bool data\n", "bool success\nstring message\n"),
}
"""Services of the sim bridge (reset / skip an episode) and the policy node (clear e-stop)."""

SERVICE_TYPES: tuple[str, ...] = tuple(EXTRA_SERVICE_DEFINITIONS)
"""Service types :func:`service_wire_classes` knows."""

REQUEST_SUFFIX = "_Request"
RESPONSE_SUFFIX = "_Response"

SERVICE_HEADER_FIELDS: dict[str, Any] = {
    "client_guid": idl_types.uint64,
    "sequence_number": idl_types.int64,
}
"""rmw_cyclonedds_cpp's request header (``cdds_request_header_t``), sent before the request or
response fields: the client's id and the call's sequence number, echoed by the service."""

MESSAGE_TYPES: tuple[str, ...] = (
    "builtin_interfaces/msg/Time",
    "std_msgs/msg/Header",
    "std_msgs/msg/Bool",
    "std_msgs/msg/Empty",
    "geometry_msgs/msg/Vector3",
    "geometry_msgs/msg/Point",
    "geometry_msgs/msg/Quaternion",
    "geometry_msgs/msg/Pose",
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/Twist",
    "geometry_msgs/msg/TwistStamped",
    "geometry_msgs/msg/Transform",
    "geometry_msgs/msg/TransformStamped",
    "geometry_msgs/msg/PoseWithCovariance",
    "geometry_msgs/msg/TwistWithCovariance",
    "nav_msgs/msg/Odometry",
    "nav_msgs/msg/Path",
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/RegionOfInterest",
    "sensor_msgs/msg/CameraInfo",
    "tf2_msgs/msg/TFMessage",
    "rosgraph_msgs/msg/Clock",
    "diagnostic_msgs/msg/KeyValue",
    "diagnostic_msgs/msg/DiagnosticStatus",
    "diagnostic_msgs/msg/DiagnosticArray",
    "gazebo_msgs/msg/ModelStates",
)
"""The ROS 2 message types the policy node and the sim bridge exchange (all tested byte for
byte). :func:`idl_class` also builds any other type of :data:`TYPESTORE`."""

_BASE_TYPES: dict[str, Any] = {
    "bool": bool,
    "byte": idl_types.byte,
    "char": idl_types.uint8,
    "int8": idl_types.int8,
    "uint8": idl_types.uint8,
    "int16": idl_types.int16,
    "uint16": idl_types.uint16,
    "int32": idl_types.int32,
    "uint32": idl_types.uint32,
    "int64": idl_types.int64,
    "uint64": idl_types.uint64,
    "float32": idl_types.float32,
    "float64": idl_types.float64,
}
_OCTET_TYPES = ("uint8", "byte")

NONZERO_FIELD_DEFAULTS: dict[tuple[str, str], Any] = {
    # geometry_msgs/msg/Quaternion.msg: "float64 w 1" (the identity rotation).
    ("geometry_msgs/msg/Quaternion", "w"): 1.0,
}
"""Default values of ``.msg`` files that are not zero (the typestore keeps no defaults)."""


def _make_typestore() -> Typestore:
    store = get_typestore(TYPESTORE_DISTRO)
    for msgtype, text in EXTRA_MESSAGE_DEFINITIONS.items():
        store.register(get_types_from_msg(text, msgtype))
    for srvtype, parts in EXTRA_SERVICE_DEFINITIONS.items():
        for suffix, text in zip((REQUEST_SUFFIX, RESPONSE_SUFFIX), parts, strict=True):
            package, _, name = srvtype.split("/")
            # get_types_from_msg names everything pkg/msg/...: parse, then file under srv.
            parsed_name = f"{package}/msg/{name}{suffix}"
            parsed = get_types_from_msg(text or EMPTY_STRUCT_FIELD, parsed_name)
            store.register({srvtype + suffix: parsed[parsed_name]})
    return store


TYPESTORE: Typestore = _make_typestore()
"""``rosbags`` typestore of :data:`TYPESTORE_DISTRO` plus :data:`EXTRA_MESSAGE_DEFINITIONS` and
the ``_Request``/``_Response`` messages of :data:`EXTRA_SERVICE_DEFINITIONS` (a private
instance: the process-wide stores are not modified)."""

_lock = threading.Lock()
_classes: dict[str, type[IdlStruct]] = {}
_described: dict[str, type[IdlStruct]] = {}
_wire_classes: dict[str, tuple[type[IdlStruct], type[IdlStruct]]] = {}
_msgtypes: dict[type[IdlStruct], str] = {}


def dds_typename(msgtype: str) -> str:
    """DDS type name of a ROS 2 type, as rmw_cyclonedds_cpp spells it.

    ``geometry_msgs/msg/Twist`` -> ``geometry_msgs::msg::dds_::Twist_``.

    Raises:
        DdsError: ``msgtype`` is not of the form ``package/kind/Name``.
    """
    parts = msgtype.split("/") if isinstance(msgtype, str) else []
    if len(parts) != 3 or not all(parts):
        raise DdsError(
            f"message type {msgtype!r} is invalid; expected 'package/msg/Name', "
            "e.g. 'geometry_msgs/msg/Twist'"
        )
    package, kind, name = parts
    return f"{package}::{kind}::dds_::{name}_"


def _is_octet_sequence(kind: int, detail: Any) -> bool:
    """An unbounded ``uint8[]``/``byte[]`` field (sent as ``bytes``)."""
    if kind != Nodetype.SEQUENCE:
        return False
    (element_kind, element_detail), bound = detail
    return element_kind == Nodetype.BASE and element_detail[0] in _OCTET_TYPES and not bound


def _field_type(node: tuple[Any, Any], msgtype: str, field: str, described: bool) -> Any:
    """IDL annotation of one field definition of the typestore.

    ``described``: annotate octet sequences as ``sequence<uint8>`` (for the XTypes type
    description) rather than ``bytes`` (for fast serialisation); see :func:`_build_class`.
    """
    kind, detail = node
    if kind == Nodetype.NAME:
        return _build_class(detail, described)
    if kind == Nodetype.BASE:
        base, bound = detail
        if base == "string":
            return idl_types.bounded_str[bound] if bound else str
        if base in _BASE_TYPES:
            return _BASE_TYPES[base]
        raise DdsError(f"{msgtype}.{field}: ROS type {base!r} is not supported by the DDS adapter")
    if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        if _is_octet_sequence(kind, detail) and not described:
            return bytes
        element, length = detail
        subtype = _field_type(element, msgtype, field, described)
        if kind == Nodetype.ARRAY:
            return idl_types.array[subtype, length]
        return idl_types.sequence[subtype, length] if length else idl_types.sequence[subtype]
    raise DdsError(f"{msgtype}.{field}: field kind {kind!r} is not supported by the DDS adapter")


def _contains_octet_sequence(msgtype: str) -> bool:
    """Whether ``msgtype`` or a message nested in it has an unbounded octet sequence."""
    for _, (kind, detail) in TYPESTORE.fielddefs[msgtype][1]:
        element = detail[0] if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE) else (kind, detail)
        if _is_octet_sequence(kind, detail) or (
            element[0] == Nodetype.NAME and _contains_octet_sequence(element[1])
        ):
            return True
    return False


def _default_factory(node: tuple[Any, Any]) -> Callable[[], Any]:
    """Zero-argument factory of a field's zero value (0, False, "", empty, zero-filled)."""
    kind, detail = node
    if kind == Nodetype.NAME:
        return _build_class(detail)
    if kind == Nodetype.BASE:
        base = detail[0]
        return {"string": str, "bool": bool, "float32": float, "float64": float}.get(base, int)
    if _is_octet_sequence(kind, detail):
        return bytes
    if kind == Nodetype.SEQUENCE:
        return list
    element, length = detail
    if element[0] == Nodetype.BASE and element[1][0] in _OCTET_TYPES:
        return lambda: bytes(length)
    element_factory = _default_factory(element)
    return lambda: [element_factory() for _ in range(length)]


def _build_class(msgtype: str, described: bool = False) -> type[IdlStruct]:
    """Build (once) the IDL class of ``msgtype``.

    Samples hold octet sequences as ``bytes``: ``sequence<uint8>`` would serialise a VGA image
    one Python int at a time (~130 ms instead of ~1 ms). cyclonedds cannot describe a
    ``bytes`` member in XTypes, so classes containing one take their type description (sent
    in discovery) from a ``described=True`` twin that declares ``sequence<uint8>`` like the
    ROS 2 IDL; the CDR layout of both is identical.
    """
    cache = _described if described else _classes
    if msgtype in cache:
        return cache[msgtype]
    if msgtype not in TYPESTORE.fielddefs:
        raise DdsError(
            f"message type {msgtype!r} has no definition in the {TYPESTORE_DISTRO.value} "
            f"typestore; the adapter's types are {', '.join(MESSAGE_TYPES)}"
        )
    _, fields = TYPESTORE.fielddefs[msgtype]
    annotations = {name: _field_type(node, msgtype, name, described) for name, node in fields}
    class_name = msgtype.replace("/", "__")
    if described:
        cls = make_idl_struct(class_name, dds_typename(msgtype), annotations)
        cache[msgtype] = cls
        return cls
    defaults = {name: _default_factory(node) for name, node in fields}
    for (owner, name), value in NONZERO_FIELD_DEFAULTS.items():
        if owner == msgtype:
            defaults[name] = lambda value=value: value
    # cyclonedds.idl.make_idl_struct, plus ROS default values for every field.
    namespace = IdlMeta.__prepare__(class_name, (IdlStruct,), typename=dds_typename(msgtype))
    namespace["__annotations__"].update(annotations)
    for name, factory in defaults.items():
        namespace[name] = dataclasses.field(default_factory=factory)
    cls = dataclasses.dataclass(IdlMeta(class_name, (IdlStruct,), namespace))
    if _contains_octet_sequence(msgtype):
        # Private to cyclonedds 11.0.1 (pinned): the cached XTypes TypeInformation/TypeMapping
        # that Topic() reads through IDL.fill_type_data().
        twin = _build_class(msgtype, described=True).__idl__
        twin.fill_type_data()
        cls.__idl__._xt_data = twin._xt_data
        cls.__idl__._xt_bytedata = twin._xt_bytedata
    cache[msgtype] = cls
    _msgtypes[cls] = msgtype
    return cls


def idl_class(msgtype: str) -> type[IdlStruct]:
    """The IDL struct of a ROS 2 message type (built once, then cached).

    Args:
        msgtype: ROS 2 type name, e.g. ``sensor_msgs/msg/Image``.

    Returns:
        A dataclass (``cyclonedds.idl.IdlStruct``) with the message's fields in ``.msg`` order;
        omitted fields take the ``.msg`` defaults (zero, ``False``, ``""``, empty sequences,
        zero-filled arrays, default nested messages, :data:`NONZERO_FIELD_DEFAULTS`), as rclpy
        messages do:
        ``idl_class('geometry_msgs/msg/Twist')(linear=Vector3(x=0.5))``.

    Raises:
        DdsError: unknown type, or a field type the adapter cannot express (``wstring``).
    """
    with _lock:
        return _build_class(msgtype)


def ros_msgtype(idl: type[IdlStruct] | IdlStruct) -> str:
    """ROS 2 type name (``pkg/msg/Name``) of an IDL class made by :func:`idl_class`, or of a sample.

    Raises:
        DdsError: ``idl`` was not made by :func:`idl_class`.
    """
    cls = idl if isinstance(idl, type) else type(idl)
    try:
        return _msgtypes[cls]
    except KeyError:
        raise DdsError(
            f"{cls.__name__} is not a ROS message type of the DDS adapter; build message "
            "classes with s2e_policy.ros.dds.idl_class('pkg/msg/Name')"
        ) from None


def to_idl(msg: Any) -> IdlStruct:
    """Convert a ``rosbags`` message to the equal IDL sample (through their common CDR bytes).

    Args:
        msg: a message of :data:`TYPESTORE` (has ``__msgtype__``), e.g. from a bag.

    Raises:
        DdsError: ``msg`` is not a ``rosbags`` message, or its type is unknown.
    """
    msgtype = getattr(msg, "__msgtype__", None)
    if not isinstance(msgtype, str):
        raise DdsError(
            f"to_idl: expected a rosbags message (with __msgtype__), got {type(msg).__name__}"
        )
    cls = idl_class(msgtype)
    return cls.deserialize(bytes(TYPESTORE.serialize_cdr(msg, msgtype)))


def from_idl(sample: IdlStruct) -> Any:
    """Convert an IDL sample to the equal ``rosbags`` message (primitive arrays become numpy).

    Raises:
        DdsError: ``sample`` is not an instance of a class made by :func:`idl_class`.
    """
    msgtype = ros_msgtype(sample)
    return TYPESTORE.deserialize_cdr(sample.serialize(), msgtype)


def service_message_types(srvtype: str) -> tuple[str, str]:
    """ROS 2 request and response message types of a service type.

    ``std_srvs/srv/Trigger`` -> (``std_srvs/srv/Trigger_Request``,
    ``std_srvs/srv/Trigger_Response``); build their IDL classes with :func:`idl_class`.

    Raises:
        DdsError: not one of :data:`SERVICE_TYPES`.
    """
    if srvtype not in EXTRA_SERVICE_DEFINITIONS:
        raise DdsError(
            f"service type {srvtype!r} is unknown; expected one of {', '.join(SERVICE_TYPES)}"
        )
    return srvtype + REQUEST_SUFFIX, srvtype + RESPONSE_SUFFIX


def service_wire_classes(srvtype: str) -> tuple[type[IdlStruct], type[IdlStruct]]:
    """IDL classes of a service's request and reply samples on the wire.

    Each has the :data:`SERVICE_HEADER_FIELDS` followed by the request (response) fields, and
    the DDS type name rmw_cyclonedds_cpp gives the request (response):
    ``std_srvs::srv::dds_::Trigger_Request_`` on ``rq/<service>Request`` and
    ``std_srvs::srv::dds_::Trigger_Response_`` on ``rr/<service>Reply``.

    Raises:
        DdsError: unknown service type (see :func:`service_message_types`).
    """
    with _lock:
        if srvtype in _wire_classes:
            return _wire_classes[srvtype]
        wires = []
        for msgtype in service_message_types(srvtype):
            _, fields = TYPESTORE.fielddefs[msgtype]
            annotations = dict(SERVICE_HEADER_FIELDS)
            annotations.update(
                {name: _field_type(node, msgtype, name, False) for name, node in fields}
            )
            wires.append(make_idl_struct(
                msgtype.replace("/", "__") + "__wire", dds_typename(msgtype), annotations
            ))
        _wire_classes[srvtype] = (wires[0], wires[1])
        return _wire_classes[srvtype]
