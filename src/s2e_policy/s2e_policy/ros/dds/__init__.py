"""ROS 2 wire adapter over Cyclone DDS: ROS 2 topics without a ROS install.

Speaks what rmw_cyclonedds_cpp speaks: DDS topics ``rt/<fully qualified name>``, type names
``pkg::msg::dds_::Type_``, XCDR1 payloads byte-identical to ``rosbags``' ``serialize_cdr``,
and ROS 2 QoS profiles. A ROS 2 system with ``RMW_IMPLEMENTATION=rmw_cyclonedds_cpp`` on the
same ``ROS_DOMAIN_ID`` exchanges messages with it as with any ROS 2 node.

Needs the ``dds`` extra: ``pip install s2e_policy[dds]`` (``cyclonedds``).

Example::

    from s2e_policy.ros.dds import DdsNode, SENSOR_DATA_QOS, idl_class

    Twist = idl_class("geometry_msgs/msg/Twist")
    Vector3 = idl_class("geometry_msgs/msg/Vector3")
    with DdsNode("policy") as node:
        cmd_vel = node.publisher("/cmd_vel", Twist)
        images = node.subscription("image", "sensor_msgs/msg/Image", on_image, SENSOR_DATA_QOS)
        node.spin_once(timeout_s=0.1)
        cmd_vel.publish(Twist(linear=Vector3(0.5, 0.0, 0.0), angular=Vector3(0.0, 0.0, 0.1)))

Services (:data:`SERVICE_TYPES`, e.g. the sim bridge's reset/skip as ``std_srvs/srv/Trigger``)
travel as rmw_cyclonedds_cpp carries them: ``rq/<name>Request`` and ``rr/<name>Reply`` with a
request header; see :mod:`s2e_policy.ros.dds.services`.
"""

from __future__ import annotations

try:
    import cyclonedds  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from s2e_policy.errors import S2EError

    raise S2EError(
        "s2e_policy.ros.dds needs the cyclonedds package; install it with "
        "`pip install s2e_policy[dds]` (cyclonedds==11.0.1)"
    ) from exc

from s2e_policy.ros.dds.config import CONFIG_ENV, cyclonedds_config_xml, loopback_config_xml
from s2e_policy.ros.dds.errors import DdsError
from s2e_policy.ros.dds.messages import (
    MESSAGE_TYPES,
    SERVICE_TYPES,
    TYPESTORE,
    dds_typename,
    from_idl,
    idl_class,
    ros_msgtype,
    service_message_types,
    service_wire_classes,
    to_idl,
)
from s2e_policy.ros.dds.names import dds_service_topic_names, dds_topic_name, resolve_name
from s2e_policy.ros.dds.node import DdsNode, DdsPublisher, DdsSubscription
from s2e_policy.ros.dds.qos import (
    CLOCK_QOS,
    DEFAULT_QOS,
    PROFILES,
    SENSOR_DATA_QOS,
    SERVICES_QOS,
    TF_QOS,
    TF_STATIC_QOS,
    QosProfile,
    qos_profile,
)
from s2e_policy.ros.dds.services import DdsClient, DdsService

__all__ = [
    "CLOCK_QOS",
    "CONFIG_ENV",
    "DEFAULT_QOS",
    "MESSAGE_TYPES",
    "PROFILES",
    "SENSOR_DATA_QOS",
    "SERVICES_QOS",
    "SERVICE_TYPES",
    "TF_QOS",
    "TF_STATIC_QOS",
    "TYPESTORE",
    "DdsClient",
    "DdsError",
    "DdsNode",
    "DdsPublisher",
    "DdsService",
    "DdsSubscription",
    "QosProfile",
    "cyclonedds_config_xml",
    "dds_service_topic_names",
    "dds_topic_name",
    "dds_typename",
    "from_idl",
    "idl_class",
    "loopback_config_xml",
    "qos_profile",
    "resolve_name",
    "ros_msgtype",
    "service_message_types",
    "service_wire_classes",
    "to_idl",
]
