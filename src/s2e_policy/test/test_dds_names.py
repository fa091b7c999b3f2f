"""ROS 2 name resolution and DDS topic mangling of the DDS adapter (no network)."""

from __future__ import annotations

import pytest

pytest.importorskip("cyclonedds")

from cyclonedds.qos import Policy

from s2e_policy.ros.dds import DdsError, dds_service_topic_names, dds_topic_name, resolve_name
from s2e_policy.ros.dds.config import cyclonedds_config_xml, loopback_config_xml
from s2e_policy.ros.dds.qos import (
    CLOCK_QOS,
    DEFAULT_QOS,
    SENSOR_DATA_QOS,
    TF_STATIC_QOS,
    QosProfile,
    qos_profile,
)


@pytest.mark.parametrize(
    ("name", "node", "namespace", "expected"),
    [
        ("/cmd_vel", "policy", "/", "/cmd_vel"),
        ("/cmd_vel", "policy", "/robot1", "/cmd_vel"),
        ("cmd_vel", "policy", "/", "/cmd_vel"),
        ("odom", "policy", "/robot1", "/robot1/odom"),
        ("camera/image_raw", "bridge", "robot1", "/robot1/camera/image_raw"),
        ("~/waypoints", "policy", "/", "/policy/waypoints"),
        ("~/waypoints", "policy", "/robot1", "/robot1/policy/waypoints"),
        ("~", "policy", "/a/b", "/a/b/policy"),
        ("/_private/x9", "n", "", "/_private/x9"),
    ],
)
def test_resolve_name(name: str, node: str, namespace: str, expected: str) -> None:
    assert resolve_name(name, node, namespace) == expected


@pytest.mark.parametrize(
    ("name", "node", "namespace", "match"),
    [
        ("", "policy", "/", "non-empty"),
        ("/cmd_vel/", "policy", "/", "end with"),
        ("/a//b", "policy", "/", "token ''"),
        ("/9lives", "policy", "/", "token '9lives'"),
        ("cmd-vel", "policy", "/", "token 'cmd-vel'"),
        ("a/~/b", "policy", "/", "token '~'"),
        ("{node}/x", "policy", "/", "token"),
        ("x", "1node", "/", "node name"),
        ("x", "policy", "/ns/", "namespace"),
        ("x", "policy", "/n s", "namespace"),
    ],
)
def test_invalid_names_raise(name: str, node: str, namespace: str, match: str) -> None:
    with pytest.raises(DdsError, match=match):
        resolve_name(name, node, namespace)


def test_dds_topic_and_service_names() -> None:
    assert dds_topic_name("/cmd_vel") == "rt/cmd_vel"
    assert dds_topic_name("/policy/waypoints") == "rt/policy/waypoints"
    assert dds_service_topic_names("/sim/reset") == ("rq/sim/resetRequest", "rr/sim/resetReply")
    with pytest.raises(DdsError, match="fully qualified"):
        dds_topic_name("cmd_vel")
    with pytest.raises(DdsError, match="fully qualified"):
        dds_service_topic_names("reset")


def test_qos_profiles_match_ros2_defaults() -> None:
    assert (DEFAULT_QOS.reliable, DEFAULT_QOS.depth, DEFAULT_QOS.transient_local) == (
        True, 10, False)
    assert (SENSOR_DATA_QOS.reliable, SENSOR_DATA_QOS.depth) == (False, 5)
    assert (CLOCK_QOS.reliable, CLOCK_QOS.depth) == (False, 1)
    assert TF_STATIC_QOS.transient_local
    dds = DEFAULT_QOS.to_dds()
    assert dds[Policy.History] == Policy.History.KeepLast(10)
    assert isinstance(dds[Policy.Reliability], Policy.Reliability.Reliable)
    assert dds[Policy.Durability] == Policy.Durability.Volatile
    # XCDR1 only, as rmw_cyclonedds_cpp writes.
    assert dds[Policy.DataRepresentation] == Policy.DataRepresentation(
        use_cdrv0_representation=True, use_xcdrv2_representation=False
    )
    sensor = SENSOR_DATA_QOS.to_dds()
    assert sensor[Policy.Reliability] == Policy.Reliability.BestEffort
    assert sensor[Policy.History] == Policy.History.KeepLast(5)
    assert TF_STATIC_QOS.to_dds()[Policy.Durability] == Policy.Durability.TransientLocal
    assert qos_profile("sensor_data") is SENSOR_DATA_QOS
    with pytest.raises(DdsError, match="sensor_data"):
        qos_profile("fast")
    with pytest.raises(DdsError, match="depth"):
        QosProfile(reliable=True, depth=0)


def test_config_xml() -> None:
    xml = loopback_config_xml()
    assert '<NetworkInterface address="127.0.0.1"/>' in xml
    assert "<AllowMulticast>false</AllowMulticast>" in xml
    assert '<Peer address="127.0.0.1"/>' in xml
    assert "<FragmentSize>65000B</FragmentSize>" in xml and "<WhcHigh>8388608B</WhcHigh>" in xml
    robot = cyclonedds_config_xml(peers=("192.168.1.20", "robot.local"))
    assert '<Peer address="robot.local"/>' in robot and "<AllowMulticast>true" in robot
    assert "<Peers>" not in cyclonedds_config_xml()
    assert "MaxMessageSize" not in robot and "WhcHigh" not in robot
    with pytest.raises(DdsError, match="peer"):
        cyclonedds_config_xml(allow_multicast=False)
