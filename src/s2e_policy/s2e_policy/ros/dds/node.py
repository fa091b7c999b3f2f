"""A ROS 2 node's topics and services over Cyclone DDS, without a ROS install.

:class:`DdsNode` is the transport the node cores use on machines without ROS: it creates
publishers, subscriptions, service servers and clients with ROS 2 names (resolved and mangled
as rmw_cyclonedds_cpp does), ROS 2 type names and ROS 2 QoS profiles, so a ROS 2 system running
rmw_cyclonedds_cpp on the same ``ROS_DOMAIN_ID`` sees them as ordinary ROS topics and services.

Threading follows rclpy's single-threaded executor: subscription callbacks and service
handlers run only inside :meth:`DdsNode.spin_once` (in the caller's thread). A subscription
made without a callback is polled with :meth:`DdsSubscription.take` instead. A node is not
thread-safe: spin it from one thread (a :class:`~s2e_policy.ros.dds.services.DdsClient` call
may block another thread while a different node serves the request).

Transport settings (interfaces, unicast peers, multicast) come from Cyclone DDS's own
configuration, the ``CYCLONEDDS_URI`` environment variable, exactly as for a ROS 2 node; see
:mod:`s2e_policy.ros.dds.config`. Node discovery information (``ros_discovery_info``) is not
published: ROS 2 tools still list the topics, but not this node's name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cyclonedds.core import (
    DDSException,
    InstanceState,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from s2e_policy.ros.dds.errors import DdsError
from s2e_policy.ros.dds.messages import idl_class, ros_msgtype, service_wire_classes
from s2e_policy.ros.dds.names import (
    dds_service_topic_names,
    dds_topic_name,
    resolve_name,
    validate_namespace,
    validate_node_name,
)
from s2e_policy.ros.dds.qos import DEFAULT_QOS, SERVICES_QOS, QosProfile
from s2e_policy.ros.dds.services import DdsClient, DdsService

DOMAIN_ID_ENV = "ROS_DOMAIN_ID"
"""Environment variable holding the default domain id, as in ROS 2."""

DEFAULT_DOMAIN_ID = 0
"""Domain id when neither the argument nor :data:`DOMAIN_ID_ENV` sets one (ROS 2 default)."""

MAX_DOMAIN_ID = 232
"""Largest domain id whose RTPS ports fit in 16 bits with Cyclone's default port mapping."""

NS_PER_S = 1_000_000_000
"""Nanoseconds per second (DDS durations are integer nanoseconds)."""

MATCH_POLL_INTERVAL_S = 0.01
"""Polling period of :meth:`DdsPublisher.wait_for_subscribers` and friends, seconds."""

UINT64_MASK = (1 << 64) - 1
"""Bits of an unsigned 64-bit integer (the request header's client id)."""

MsgType = type[IdlStruct] | str
"""A message type: an IDL class from :func:`~s2e_policy.ros.dds.messages.idl_class` or its ROS
2 name (``geometry_msgs/msg/Twist``)."""

SampleT = TypeVar("SampleT", bound=IdlStruct)

_UNREAD_SAMPLES = SampleState.NotRead | ViewState.Any | InstanceState.Any


def _resolve_type(msg_type: MsgType) -> type[IdlStruct]:
    if isinstance(msg_type, str):
        return idl_class(msg_type)
    ros_msgtype(msg_type)  # raises DdsError for classes the adapter did not make
    return msg_type


def _domain_id(domain_id: int | None) -> int:
    if domain_id is None:
        text = os.environ.get(DOMAIN_ID_ENV, "").strip()
        if not text:
            return DEFAULT_DOMAIN_ID
        try:
            domain_id = int(text)
        except ValueError:
            raise DdsError(
                f"environment variable {DOMAIN_ID_ENV}={text!r}; expected an integer "
                f"0..{MAX_DOMAIN_ID}"
            ) from None
    if not 0 <= int(domain_id) <= MAX_DOMAIN_ID:
        raise DdsError(f"domain_id {domain_id}; expected an integer 0..{MAX_DOMAIN_ID}")
    return int(domain_id)


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(MATCH_POLL_INTERVAL_S)
    return True


class DdsPublisher(Generic[SampleT]):
    """Writer of one ROS 2 topic; made by :meth:`DdsNode.publisher`.

    Attributes:
        topic: fully qualified ROS 2 topic name (``/cmd_vel``).
        dds_topic: DDS topic name (``rt/cmd_vel``).
        msg_type: IDL class of the samples.
        type_name: ROS 2 type name of the samples (for messages).
        qos: the QoS profile.
    """

    def __init__(
        self, topic: str, dds_topic: Topic, msg_type: type[SampleT], type_name: str,
        qos: QosProfile, writer: DataWriter,
    ) -> None:
        self.topic = topic
        self.dds_topic = dds_topic.name
        self.msg_type = msg_type
        self.type_name = type_name
        self.qos = qos
        self._writer = writer

    def publish(self, msg: SampleT) -> None:
        """Send one sample to all matched subscriptions.

        Args:
            msg: an instance of :attr:`msg_type` (convert a ``rosbags`` message with
                :func:`~s2e_policy.ros.dds.messages.to_idl`).

        Raises:
            DdsError: ``msg`` is of another type, or a field does not fit its ROS type (names
                the topic and the problem).
        """
        if not isinstance(msg, self.msg_type):
            raise DdsError(
                f"publisher of {self.topic}: expected a {self.type_name} sample, "
                f"got {type(msg).__name__}"
            )
        try:
            self._writer.write(msg)
        except Exception as exc:  # cyclonedds raises a bare Exception for unencodable fields
            raise DdsError(
                f"publisher of {self.topic}: could not send {self.type_name}: {exc}"
            ) from exc

    @property
    def subscription_count(self) -> int:
        """Number of matched subscriptions (readers), in this process or elsewhere."""
        return len(self._writer.get_matched_subscriptions())

    def wait_for_subscribers(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until at least ``count`` subscriptions have matched; ``False`` on timeout."""
        return _wait_until(lambda: self.subscription_count >= count, timeout_s)

    def wait_for_acknowledgments(self, timeout_s: float) -> bool:
        """Block until every reliable subscription acknowledged all samples; ``False`` on timeout.

        Call before closing a node whose last samples must arrive (best-effort subscriptions
        never acknowledge and are not waited for).
        """
        return bool(self._writer.wait_for_acks(max(0, int(timeout_s * NS_PER_S))))


class DdsSubscription(Generic[SampleT]):
    """Reader of one ROS 2 topic; made by :meth:`DdsNode.subscription`.

    Attributes:
        topic: fully qualified ROS 2 topic name.
        dds_topic: DDS topic name (``rt/...``).
        msg_type: IDL class of the samples.
        qos: the QoS profile (its depth bounds how many unread samples are kept).
        callback: called with each sample by :meth:`DdsNode.spin_once`, or ``None`` (poll
            with :meth:`take`).
        condition: DDS read condition that triggers while unread samples are queued.
    """

    def __init__(
        self, topic: str, dds_topic: Topic, msg_type: type[SampleT], qos: QosProfile,
        reader: DataReader, callback: Callable[[SampleT], Any] | None,
    ) -> None:
        self.topic = topic
        self.dds_topic = dds_topic.name
        self.msg_type = msg_type
        self.qos = qos
        self.callback = callback
        self._reader = reader
        self.condition = ReadCondition(reader, _UNREAD_SAMPLES)

    def take(self) -> list[SampleT]:
        """Remove and return the samples received so far (oldest first; at most ``qos.depth``).

        Samples are IDL instances of :attr:`msg_type`; disposal notices are dropped.
        """
        samples = self._reader.take(N=self.qos.depth)
        return [sample for sample in samples if isinstance(sample, self.msg_type)]

    @property
    def publisher_count(self) -> int:
        """Number of matched publishers (writers), in this process or elsewhere."""
        return len(self._reader.get_matched_publications())

    def wait_for_publishers(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until at least ``count`` publishers have matched; ``False`` on timeout."""
        return _wait_until(lambda: self.publisher_count >= count, timeout_s)


class DdsNode:
    """One ROS 2 node's publishers and subscriptions on a DDS domain.

    Args:
        name: node name (a ROS 2 name token); private topics (``~/x``) resolve under it.
        namespace: node namespace (``/`` or ``/robot1``); relative topics resolve under it.
        domain_id: DDS domain, 0..:data:`MAX_DOMAIN_ID`; default ``$ROS_DOMAIN_ID`` or 0.

    Raises:
        DdsError: invalid name, namespace or domain id.

    Use as a context manager, or call :meth:`close`, to leave the domain.
    """

    def __init__(self, name: str, *, namespace: str = "/", domain_id: int | None = None) -> None:
        self.name = validate_node_name(name)
        self.namespace = validate_namespace(namespace)
        self.domain_id = _domain_id(domain_id)
        try:
            self._participant = DomainParticipant(self.domain_id)
        except DDSException as exc:
            raise DdsError(
                f"could not join DDS domain {self.domain_id} (check CYCLONEDDS_URI): {exc}"
            ) from exc
        self._waitset = WaitSet(self._participant)
        self._topics: dict[str, tuple[Topic, str]] = {}  # DDS name -> (topic, type name)
        self._publishers: list[DdsPublisher[Any]] = []
        self._subscriptions: list[DdsSubscription[Any]] = []
        self._client_waitsets: list[WaitSet] = []
        self._closed = False

    @property
    def fully_qualified_name(self) -> str:
        """``/<namespace>/<name>``."""
        return self.namespace.rstrip("/") + "/" + self.name

    def resolve_topic_name(self, topic: str) -> str:
        """Fully qualified ROS 2 name of ``topic`` for this node (see :mod:`.names`)."""
        return resolve_name(topic, self.name, self.namespace)

    def _dds_topic(
        self, dds_name: str, cls: type[IdlStruct], type_name: str, ros_name: str
    ) -> Topic:
        self._check_open()
        if dds_name in self._topics:
            existing, existing_type_name = self._topics[dds_name]
            if existing.data_type is not cls:
                raise DdsError(
                    f"{ros_name} is already used here with type {existing_type_name}; "
                    f"got {type_name}"
                )
            return existing
        dds_topic = Topic(self._participant, dds_name, cls)
        self._topics[dds_name] = (dds_topic, type_name)
        return dds_topic

    def _publisher(
        self, ros_name: str, dds_name: str, cls: type[IdlStruct], type_name: str, qos: QosProfile
    ) -> DdsPublisher[Any]:
        dds_topic = self._dds_topic(dds_name, cls, type_name, ros_name)
        writer = DataWriter(self._participant, dds_topic, qos=qos.to_dds())
        publisher = DdsPublisher(ros_name, dds_topic, cls, type_name, qos, writer)
        self._publishers.append(publisher)
        return publisher

    def _subscription(
        self, ros_name: str, dds_name: str, cls: type[IdlStruct], type_name: str,
        qos: QosProfile, callback: Callable[[Any], Any] | None,
    ) -> DdsSubscription[Any]:
        dds_topic = self._dds_topic(dds_name, cls, type_name, ros_name)
        reader = DataReader(self._participant, dds_topic, qos=qos.to_dds())
        subscription = DdsSubscription(ros_name, dds_topic, cls, qos, reader, callback)
        if callback is not None:
            self._waitset.attach(subscription.condition)
        self._subscriptions.append(subscription)
        return subscription

    def publisher(
        self, topic: str, msg_type: MsgType, qos: QosProfile = DEFAULT_QOS
    ) -> DdsPublisher[Any]:
        """Create a publisher.

        Args:
            topic: ROS 2 topic name (absolute, relative or private ``~/...``).
            msg_type: IDL class or ROS 2 type name (``sensor_msgs/msg/Image``).
            qos: QoS profile (:mod:`s2e_policy.ros.dds.qos`).

        Raises:
            DdsError: invalid topic name, unknown type, or the topic is used here with
                another type.
        """
        fqn = self.resolve_topic_name(topic)
        cls = _resolve_type(msg_type)
        return self._publisher(fqn, dds_topic_name(fqn), cls, ros_msgtype(cls), qos)

    def subscription(
        self,
        topic: str,
        msg_type: MsgType,
        callback: Callable[[Any], Any] | None = None,
        qos: QosProfile = DEFAULT_QOS,
    ) -> DdsSubscription[Any]:
        """Create a subscription.

        Args:
            topic: ROS 2 topic name (absolute, relative or private ``~/...``).
            msg_type: IDL class or ROS 2 type name.
            callback: called with each received IDL sample during :meth:`spin_once`; ``None``
                to poll with :meth:`DdsSubscription.take`.
            qos: QoS profile (:mod:`s2e_policy.ros.dds.qos`).

        Raises:
            DdsError: invalid topic name, unknown type, or the topic is used here with
                another type.
        """
        fqn = self.resolve_topic_name(topic)
        cls = _resolve_type(msg_type)
        return self._subscription(fqn, dds_topic_name(fqn), cls, ros_msgtype(cls), qos, callback)

    def service(
        self, name: str, srv_type: str, handler: Callable[[Any], Any],
        qos: QosProfile = SERVICES_QOS,
    ) -> DdsService:
        """Serve a ROS 2 service; ``handler(request) -> response`` runs in :meth:`spin_once`.

        Args:
            name: service name (absolute, relative or private), e.g. ``/sim/reset``.
            srv_type: one of :data:`~s2e_policy.ros.dds.messages.SERVICE_TYPES`.
            handler: takes an ``idl_class(srv_type + "_Request")`` sample and returns an
                ``idl_class(srv_type + "_Response")`` sample.
            qos: QoS of the request and reply topics.

        Raises:
            DdsError: invalid name or unknown service type.
        """
        fqn = self.resolve_topic_name(name)
        request_topic, reply_topic = dds_service_topic_names(fqn)
        request_wire, reply_wire = service_wire_classes(srv_type)
        replies = self._publisher(fqn, reply_topic, reply_wire, f"{srv_type} reply", qos)
        server = DdsService(fqn, srv_type, handler, replies)
        self._subscription(
            fqn, request_topic, request_wire, f"{srv_type} request", qos, server.on_request
        )
        return server

    def client(self, name: str, srv_type: str, qos: QosProfile = SERVICES_QOS) -> DdsClient:
        """Create a client of a ROS 2 service (see :class:`DdsClient`).

        Raises:
            DdsError: invalid name or unknown service type.
        """
        fqn = self.resolve_topic_name(name)
        request_topic, reply_topic = dds_service_topic_names(fqn)
        request_wire, reply_wire = service_wire_classes(srv_type)
        requests = self._publisher(fqn, request_topic, request_wire, f"{srv_type} request", qos)
        replies = self._subscription(fqn, reply_topic, reply_wire, f"{srv_type} reply", qos, None)
        waitset = WaitSet(self._participant)
        waitset.attach(replies.condition)
        self._client_waitsets.append(waitset)
        # The writer's instance handle, as rmw_cyclonedds_cpp uses (cyclonedds returns it signed).
        client_guid = requests._writer.instance_handle & UINT64_MASK
        return DdsClient(fqn, srv_type, requests, replies, waitset, client_guid)

    def spin_once(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for data, then run the callbacks of all received samples.

        Returns:
            Number of callbacks run (0 after a timeout).
        """
        self._check_open()
        self._waitset.wait(max(0, int(timeout_s * NS_PER_S)))
        dispatched = 0
        for subscription in self._subscriptions:
            if subscription.callback is None:
                continue
            for sample in subscription.take():
                subscription.callback(sample)
                dispatched += 1
        return dispatched

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until ``done()`` is true; ``False`` if ``timeout_s`` passed first.

        ``done`` is checked before the first wait and after every wake-up (data arrived), so it
        should depend on received data; for outside conditions loop over :meth:`spin_once`
        with a short timeout.
        """
        deadline = time.monotonic() + timeout_s
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.spin_once(remaining)
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise DdsError(f"DDS node {self.fully_qualified_name} is closed")

    def close(self) -> None:
        """Delete the node's readers, writers and topics and leave the domain (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for subscription in self._subscriptions:
            if subscription.callback is not None:
                self._waitset.detach(subscription.condition)
        for waitset in self._client_waitsets:
            waitset.__del__()  # detaches its reply condition
        # cyclonedds keeps every entity alive in a registry until its __del__ deletes it.
        entities: list[Any] = [s.condition for s in self._subscriptions]
        entities += [s._reader for s in self._subscriptions]
        entities += [p._writer for p in self._publishers]
        entities += [topic for topic, _ in self._topics.values()]
        entities += [self._waitset, self._participant]
        for entity in entities:
            entity.__del__()
        self._subscriptions.clear()
        self._client_waitsets.clear()
        self._publishers.clear()
        self._topics.clear()

    def __enter__(self) -> DdsNode:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
