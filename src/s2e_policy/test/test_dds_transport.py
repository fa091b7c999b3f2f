"""The DDS adapter on a real Cyclone DDS domain: loopback only, a random domain id per test.

``CYCLONEDDS_URI`` restricts every participant (this process and the child processes) to
127.0.0.1 with unicast discovery, so the tests neither need multicast nor see other traffic.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from cyclonedds.domain import DomainParticipant
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from s2e_policy.ros.dds import (
    CLOCK_QOS,
    CONFIG_ENV,
    DEFAULT_QOS,
    SENSOR_DATA_QOS,
    TF_QOS,
    TF_STATIC_QOS,
    TYPESTORE,
    DdsError,
    DdsNode,
    QosProfile,
    idl_class,
    loopback_config_xml,
    to_idl,
)
from s2e_policy.ros.dds.node import MAX_DOMAIN_ID

MATCH_TIMEOUT_S = 10.0
RECEIVE_TIMEOUT_S = 10.0
NO_MATCH_WAIT_S = 0.5
CHILD_TIMEOUT_S = 20.0
PAPER_IMAGE_SHAPE = (256, 256, 3)
LARGE_IMAGE_SHAPE = (480, 640, 3)

_domain_ids = random.Random(os.getpid() ^ time.time_ns()).sample(range(1, MAX_DOMAIN_ID), 50)

Twist = idl_class("geometry_msgs/msg/Twist")
Vector3 = idl_class("geometry_msgs/msg/Vector3")


@pytest.fixture(scope="module", autouse=True)
def loopback_only() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_ENV, loopback_config_xml())
        yield


@pytest.fixture
def domain_id() -> int:
    return _domain_ids.pop()


def _twist(i: int) -> Any:
    return Twist(linear=Vector3(0.1 * i, 0.0, 0.0), angular=Vector3(0.0, 0.0, -0.05 * i))


def _image(shape: tuple[int, int, int], seed: int) -> Any:
    types = TYPESTORE.types
    height, width, channels = shape
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return to_idl(types["sensor_msgs/msg/Image"](
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=seed, nanosec=500),
            frame_id="camera_optical_frame",
        ),
        height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * channels,
        data=pixels.reshape(-1),
    ))


def _content(msgtype: str) -> Any:
    """A non-default message of the parametrised types."""
    if msgtype == "sensor_msgs/msg/Image":
        return _image(PAPER_IMAGE_SHAPE, seed=3)
    header = idl_class("std_msgs/msg/Header")
    time_msg = idl_class("builtin_interfaces/msg/Time")
    if msgtype == "rosgraph_msgs/msg/Clock":
        return idl_class(msgtype)(clock=time_msg(sec=12, nanosec=34))
    transform = idl_class("geometry_msgs/msg/TransformStamped")(
        header=header(stamp=time_msg(sec=1, nanosec=2), frame_id="odom"),
        child_frame_id="base_link",
    )
    transform.transform.translation.x = 1.5
    transform.transform.rotation.z, transform.transform.rotation.w = 0.6, 0.8
    return idl_class(msgtype)(transforms=[transform, transform])


def test_publish_subscribe_in_process(domain_id: int) -> None:
    received: list[Any] = []
    with DdsNode("talker", domain_id=domain_id) as talker, \
            DdsNode("listener", domain_id=domain_id) as listener:
        publisher = talker.publisher("/cmd_vel", Twist)
        subscription = listener.subscription("cmd_vel", "geometry_msgs/msg/Twist", received.append)
        polled = listener.subscription("/cmd_vel", Twist)  # same topic, no callback: polled
        assert publisher.dds_topic == subscription.dds_topic == "rt/cmd_vel"
        assert publisher.wait_for_subscribers(2, MATCH_TIMEOUT_S)
        assert subscription.wait_for_publishers(1, MATCH_TIMEOUT_S)
        for i in range(3):
            publisher.publish(_twist(i))
        assert listener.spin_until(lambda: len(received) == 3, RECEIVE_TIMEOUT_S)
        assert received == [_twist(i) for i in range(3)]
        assert polled.take() == [_twist(i) for i in range(3)]
        assert polled.take() == []


@pytest.mark.parametrize(
    ("topic", "msgtype", "qos"),
    [
        ("/tf", "tf2_msgs/msg/TFMessage", TF_QOS),
        ("/clock", "rosgraph_msgs/msg/Clock", CLOCK_QOS),
        ("image", "sensor_msgs/msg/Image", SENSOR_DATA_QOS),
    ],
)
def test_qos_profiles_deliver(domain_id: int, topic: str, msgtype: str, qos: QosProfile) -> None:
    message = _content(msgtype)
    with DdsNode("a", domain_id=domain_id) as a, DdsNode("b", domain_id=domain_id) as b:
        publisher = a.publisher(topic, msgtype, qos)
        subscription = b.subscription(topic, msgtype, qos=qos)
        assert publisher.wait_for_subscribers(1, MATCH_TIMEOUT_S)
        assert subscription.wait_for_publishers(1, MATCH_TIMEOUT_S)
        publisher.publish(message)
        got: list[Any] = []
        assert b.spin_until(lambda: bool(got.extend(subscription.take()) or got),
                            RECEIVE_TIMEOUT_S)
        assert got == [message]


def test_incompatible_qos_does_not_match(domain_id: int) -> None:
    """A best-effort writer serves best-effort readers only (DDS request/offer rules)."""
    with DdsNode("camera", domain_id=domain_id) as camera, \
            DdsNode("policy", domain_id=domain_id) as policy:
        publisher = camera.publisher("image", "sensor_msgs/msg/Image", SENSOR_DATA_QOS)
        compatible = policy.subscription("/image", "sensor_msgs/msg/Image", qos=SENSOR_DATA_QOS)
        assert compatible.wait_for_publishers(1, MATCH_TIMEOUT_S)
        strict = policy.subscription("/image", "sensor_msgs/msg/Image", qos=DEFAULT_QOS)
        assert not strict.wait_for_publishers(1, NO_MATCH_WAIT_S)
        assert publisher.subscription_count == 1


def test_transient_local_reaches_late_subscriber(domain_id: int) -> None:
    static = _content("tf2_msgs/msg/TFMessage")
    with DdsNode("broadcaster", domain_id=domain_id) as broadcaster:
        publisher = broadcaster.publisher("/tf_static", "tf2_msgs/msg/TFMessage", TF_STATIC_QOS)
        publisher.publish(static)
        with DdsNode("late", domain_id=domain_id) as late:
            subscription = late.subscription("/tf_static", "tf2_msgs/msg/TFMessage",
                                             qos=TF_STATIC_QOS)
            got: list[Any] = []
            assert late.spin_until(lambda: bool(got.extend(subscription.take()) or got),
                                   RECEIVE_TIMEOUT_S)
            assert got == [static]


def test_private_topic_is_mangled_on_the_wire(domain_id: int) -> None:
    """A plain Cyclone DDS reader on ``rt/robot1/policy/waypoints`` gets the Path."""
    path_type = idl_class("nav_msgs/msg/Path")
    path = path_type(poses=[idl_class("geometry_msgs/msg/PoseStamped")()] * 3)
    path.header.frame_id = "odom"
    with DdsNode("policy", namespace="/robot1", domain_id=domain_id) as node:
        publisher = node.publisher("~/waypoints", path_type)
        assert publisher.topic == "/robot1/policy/waypoints"
        participant = DomainParticipant(domain_id)
        reader = DataReader(participant, Topic(participant, "rt/robot1/policy/waypoints",
                                               path_type))
        assert publisher.wait_for_subscribers(1, MATCH_TIMEOUT_S)
        publisher.publish(path)
        deadline = time.monotonic() + RECEIVE_TIMEOUT_S
        got: list[Any] = []
        while not got and time.monotonic() < deadline:
            got = reader.take()
            time.sleep(0.01)
        assert got == [path]
        del reader
        participant.__del__()


def test_bad_use_raises_dds_error(domain_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DdsError, match="domain_id"):
        DdsNode("n", domain_id=MAX_DOMAIN_ID + 1)
    monkeypatch.setenv("ROS_DOMAIN_ID", "seven")
    with pytest.raises(DdsError, match="ROS_DOMAIN_ID"):
        DdsNode("n")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    node = DdsNode("n")
    assert node.domain_id == domain_id
    publisher = node.publisher("/cmd_vel", Twist)
    with pytest.raises(DdsError, match="used here with type geometry_msgs/msg/Twist; got geo"):
        node.subscription("/cmd_vel", "geometry_msgs/msg/TwistStamped")
    with pytest.raises(DdsError, match="expected a geometry_msgs/msg/Twist sample"):
        publisher.publish(Vector3())
    bad = _twist(1)
    bad.linear.x = "fast"
    with pytest.raises(DdsError, match="could not send"):
        publisher.publish(bad)
    with pytest.raises(DdsError, match="token"):
        node.publisher("/cmd vel", Twist)
    node.close()
    node.close()
    with pytest.raises(DdsError, match="closed"):
        node.publisher("/cmd_vel", Twist)


def _relay(
    domain_id: int, src: str, dst: str, msgtype: str, qos: str, count: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "s2e_policy.ros.dds.relay", src, dst, msgtype, "--qos", qos,
         "--count", str(count), "--timeout-s", str(CHILD_TIMEOUT_S),
         "--domain-id", str(domain_id)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(child: subprocess.Popen[str]) -> str:
    """Wait for a relay to exit (it stops after its --count); kill it if it does not."""
    try:
        return child.communicate(timeout=CHILD_TIMEOUT_S)[0]
    except subprocess.TimeoutExpired:
        child.kill()
        return child.communicate()[0]


def _receive(node: DdsNode, subscription: Any, count: int) -> list[Any]:
    """Spin ``node`` until ``subscription`` has ``count`` samples (or the timeout)."""
    got: list[Any] = []

    def done() -> bool:
        got.extend(subscription.take())
        return len(got) >= count

    node.spin_until(done, RECEIVE_TIMEOUT_S)
    return got


def test_two_processes_twist_and_image(domain_id: int) -> None:
    """Another process relays Twist and Image samples back; they arrive unchanged."""
    twists = [_twist(i) for i in range(5)]
    images = [_image(LARGE_IMAGE_SHAPE, seed) for seed in range(2)]
    sensor_images = [_image(PAPER_IMAGE_SHAPE, seed) for seed in range(10, 13)]
    children = [
        _relay(domain_id, "/cmd_vel", "/cmd_vel_echo", "geometry_msgs/msg/Twist", "default",
               len(twists)),
        _relay(domain_id, "/image", "/image_echo", "sensor_msgs/msg/Image", "default",
               len(images)),
        _relay(domain_id, "/camera", "/camera_echo", "sensor_msgs/msg/Image", "sensor_data",
               len(sensor_images)),
    ]
    try:
        with DdsNode("tester", domain_id=domain_id) as node:
            links = [
                (node.publisher("/cmd_vel", Twist), node.subscription("/cmd_vel_echo", Twist)),
                (node.publisher("/image", "sensor_msgs/msg/Image"),
                 node.subscription("/image_echo", "sensor_msgs/msg/Image")),
                (node.publisher("/camera", "sensor_msgs/msg/Image", SENSOR_DATA_QOS),
                 node.subscription("/camera_echo", "sensor_msgs/msg/Image",
                                   qos=SENSOR_DATA_QOS)),
            ]
            for publisher, subscription in links:
                assert publisher.wait_for_subscribers(1, MATCH_TIMEOUT_S)
                assert subscription.wait_for_publishers(1, MATCH_TIMEOUT_S)
            (twist_out, twist_back), (image_out, image_back), (camera_out, camera_back) = links
            for twist in twists:
                twist_out.publish(twist)
            assert _receive(node, twist_back, len(twists)) == twists
            for image in images:
                image_out.publish(image)
            assert _receive(node, image_back, len(images)) == images
            # Best effort: one image in flight at a time, as a camera at a sane rate would be.
            # (Discovery has long settled after the reliable rounds, so none is dropped.)
            for image in sensor_images:
                camera_out.publish(image)
                assert _receive(node, camera_back, 1) == [image]
    finally:
        outputs = [_finish(child) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], outputs


SPIN_SLICE_S = 0.05


def _spin_while_not(node: DdsNode, stop: threading.Event) -> None:
    while not stop.is_set():
        node.spin_once(SPIN_SLICE_S)


def test_services_round_trip_between_nodes(domain_id: int) -> None:
    """Trigger and SetBool services on rq/.../rr/... topics; handlers run in spin_once."""
    calls: list[Any] = []
    trigger_response = idl_class("std_srvs/srv/Trigger_Response")
    set_bool_response = idl_class("std_srvs/srv/SetBool_Response")

    def reset(request: Any) -> Any:
        calls.append(request)
        return trigger_response(success=True, message=f"episode {len(calls)} reset")

    def e_stop(request: Any) -> Any:
        return set_bool_response(success=request.data, message="latched" if request.data else "")

    stop = threading.Event()
    with DdsNode("bridge", namespace="/sim", domain_id=domain_id) as server, \
            DdsNode("evaluator", domain_id=domain_id) as caller:
        service = server.service("~/reset", "std_srvs/srv/Trigger", reset)
        server.service("/e_stop", "std_srvs/srv/SetBool", e_stop)
        assert service.name == "/sim/bridge/reset"
        spinner = threading.Thread(target=_spin_while_not, args=(server, stop))
        spinner.start()
        try:
            client = caller.client("/sim/bridge/reset", "std_srvs/srv/Trigger")
            other = caller.client("/sim/bridge/reset", "std_srvs/srv/Trigger")
            set_bool = caller.client("/e_stop", "std_srvs/srv/SetBool")
            for each in (client, other, set_bool):
                assert each.wait_for_service(MATCH_TIMEOUT_S)
            assert client.call(client.request_type(), RECEIVE_TIMEOUT_S) == trigger_response(
                success=True, message="episode 1 reset")
            # Replies are routed by client id: the second client gets its own answer.
            assert other.call(other.request_type(), RECEIVE_TIMEOUT_S).message == "episode 2 reset"
            assert client.call(client.request_type(), RECEIVE_TIMEOUT_S).message == \
                "episode 3 reset"
            latched = set_bool.call(set_bool.request_type(data=True), RECEIVE_TIMEOUT_S)
            assert (latched.success, latched.message) == (True, "latched")
            with pytest.raises(DdsError, match="expected a std_srvs/srv/SetBool request"):
                set_bool.call(client.request_type(), RECEIVE_TIMEOUT_S)
        finally:
            stop.set()
            spinner.join()
    assert len(calls) == 3


def test_service_errors(domain_id: int) -> None:
    with DdsNode("lonely", domain_id=domain_id) as node:
        client = node.client("/nobody", "std_srvs/srv/Empty")
        assert not client.service_is_ready()
        with pytest.raises(DdsError, match=r"no reply within 0\.2 s; the service is not matched"):
            client.call(client.request_type(), 0.2)
        with pytest.raises(DdsError, match="std_srvs/srv/Trigger"):
            node.client("/x", "std_srvs/srv/Nope")
        node.service("/broken", "std_srvs/srv/Trigger", lambda request: "not a response")
        broken = node.client("/broken", "std_srvs/srv/Trigger")
        assert broken.wait_for_service(MATCH_TIMEOUT_S)
        call_errors: list[DdsError] = []

        def call() -> None:
            try:
                broken.call(broken.request_type(), 1.0)
            except DdsError as exc:
                call_errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        try:
            with pytest.raises(DdsError, match="handler returned str; expected a std_srvs/srv"):
                node.spin_until(lambda: False, RECEIVE_TIMEOUT_S)
        finally:
            caller.join()
        assert len(call_errors) == 1 and "no reply" in str(call_errors[0])
