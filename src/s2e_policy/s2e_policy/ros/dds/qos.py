"""QoS profiles of the ROS 2 topics the nodes use, expressed as Cyclone DDS QoS.

Each profile mirrors the ROS 2 profile of the same name (``rclcpp``/``rclpy``), so a reader or
writer made here matches one made by a ROS 2 node with rmw_cyclonedds_cpp on the same topic:

========================  ===========  ======  ===============  ==============================
profile                   reliability  depth   durability       ROS 2 counterpart
========================  ===========  ======  ===============  ==============================
:data:`DEFAULT_QOS`       reliable     10      volatile         ``rclcpp::QoS(10)`` (default)
:data:`SENSOR_DATA_QOS`   best effort  5       volatile         ``rclcpp::SensorDataQoS()``
:data:`TF_QOS`            reliable     100     volatile         ``tf2_ros::DynamicBroadcasterQoS``
:data:`TF_STATIC_QOS`     reliable     1       transient local  ``tf2_ros::StaticBroadcasterQoS``
:data:`CLOCK_QOS`         best effort  1       volatile         ``rclcpp::ClockQoS()``
:data:`SERVICES_QOS`      reliable     10      volatile         ``rclcpp::ServicesQoS()``
========================  ===========  ======  ===============  ==============================

History is always keep-last. Payloads are XCDR1 (plain CDR), the only data representation
rmw_cyclonedds_cpp uses. Compatibility follows DDS request/offer rules: a reliable writer
serves best-effort and reliable readers; a best-effort writer serves best-effort readers only.
"""

from __future__ import annotations

from dataclasses import dataclass

from cyclonedds.qos import Policy, Qos
from cyclonedds.util import duration

from s2e_policy.ros.dds.errors import DdsError


@dataclass(frozen=True)
class QosProfile:
    """A ROS 2 QoS profile (keep-last history).

    Attributes:
        reliable: reliable delivery (``True``) or best effort (``False``).
        depth: keep-last history depth, samples (>= 1).
        transient_local: late-joining readers get the last ``depth`` samples (latched topics,
            e.g. ``/tf_static``); otherwise volatile.
    """

    reliable: bool
    depth: int
    transient_local: bool = False

    def __post_init__(self) -> None:
        if int(self.depth) < 1:
            raise DdsError(f"QosProfile.depth is {self.depth}; expected a keep-last depth >= 1")

    def to_dds(self) -> Qos:
        """The Cyclone DDS QoS of this profile, for readers and writers alike."""
        reliability = (
            # rmw_cyclonedds_cpp lets a reliable writer block indefinitely on full resources;
            # with keep-last history a write replaces the oldest sample instead of blocking.
            Policy.Reliability.Reliable(duration(infinite=True))
            if self.reliable
            else Policy.Reliability.BestEffort
        )
        durability = (
            Policy.Durability.TransientLocal if self.transient_local else Policy.Durability.Volatile
        )
        return Qos(
            reliability,
            durability,
            Policy.History.KeepLast(int(self.depth)),
            Policy.DataRepresentation(use_cdrv0_representation=True),
        )


DEFAULT_QOS = QosProfile(reliable=True, depth=10)
"""ROS 2 default for topics: reliable, keep-last 10, volatile."""

SENSOR_DATA_QOS = QosProfile(reliable=False, depth=5)
"""ROS 2 sensor data (images, scans): best effort, keep-last 5, volatile."""

TF_QOS = QosProfile(reliable=True, depth=100)
"""``/tf``: reliable, keep-last 100, volatile (tf2_ros broadcaster and listener)."""

TF_STATIC_QOS = QosProfile(reliable=True, depth=1, transient_local=True)
"""``/tf_static``: reliable, keep-last 1, transient local (latched)."""

CLOCK_QOS = QosProfile(reliable=False, depth=1)
"""``/clock``: best effort, keep-last 1, volatile (what ``use_sim_time`` nodes subscribe with)."""

SERVICES_QOS = QosProfile(reliable=True, depth=10)
"""Request and reply topics of services: reliable, keep-last 10, volatile."""

PROFILES: dict[str, QosProfile] = {
    "default": DEFAULT_QOS,
    "sensor_data": SENSOR_DATA_QOS,
    "tf": TF_QOS,
    "tf_static": TF_STATIC_QOS,
    "clock": CLOCK_QOS,
    "services": SERVICES_QOS,
}
"""The profiles by name (command-line and config spelling)."""


def qos_profile(name: str) -> QosProfile:
    """Look a profile up by name (a key of :data:`PROFILES`).

    Raises:
        DdsError: unknown name (lists the known ones).
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise DdsError(
            f"QoS profile {name!r} is unknown; expected one of {', '.join(PROFILES)}"
        ) from None
