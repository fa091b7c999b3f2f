"""ROS 2 services over DDS, as rmw_cyclonedds_cpp carries them.

A service ``/sim/reset`` of type ``std_srvs/srv/Trigger`` is two topics: requests on
``rq/sim/resetRequest`` (type ``std_srvs::srv::dds_::Trigger_Request_``) and replies on
``rr/sim/resetReply`` (``std_srvs::srv::dds_::Trigger_Response_``). Each sample starts with the
request header (:data:`~s2e_policy.ros.dds.messages.SERVICE_HEADER_FIELDS`: the client's id and
the call's sequence number), which the service copies into its reply so the client can pick
its own replies out of the shared reply topic. A ROS 2 client (``ros2 service call``) can
call a :class:`DdsService`, and a :class:`DdsClient` can call a ROS 2 service.

Both are made by :meth:`DdsNode.service <s2e_policy.ros.dds.node.DdsNode.service>` and
:meth:`DdsNode.client <s2e_policy.ros.dds.node.DdsNode.client>`. Handlers run inside
``DdsNode.spin_once``; :meth:`DdsClient.call` blocks the caller until the reply arrives.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cyclonedds.core import WaitSet
from cyclonedds.idl import IdlStruct

from s2e_policy.ros.dds.errors import DdsError
from s2e_policy.ros.dds.messages import idl_class, service_message_types, service_wire_classes

if TYPE_CHECKING:
    from s2e_policy.ros.dds.node import DdsPublisher, DdsSubscription

NS_PER_S = 1_000_000_000
"""Nanoseconds per second (DDS durations are integer nanoseconds)."""


def _to_wire(wire_type: type[IdlStruct], msg: IdlStruct, client_guid: int, sequence: int) -> Any:
    """Prefix a request/response message with the request header."""
    fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    return wire_type(client_guid=client_guid, sequence_number=sequence, **fields)


def _from_wire(msg_type: type[IdlStruct], wire: Any) -> Any:
    """Strip the request header from a wire sample."""
    fields = {f.name: getattr(wire, f.name) for f in dataclasses.fields(msg_type)}
    return msg_type(**fields)


class DdsService:
    """Server of one ROS 2 service: ``handler(request) -> response`` runs in ``spin_once``.

    Attributes:
        name: fully qualified service name.
        srv_type: ROS 2 service type (``std_srvs/srv/Trigger``).
        request_type: IDL class of the requests the handler receives.
        response_type: IDL class of the responses it must return.
    """

    def __init__(
        self, name: str, srv_type: str, handler: Callable[[Any], Any],
        reply_publisher: DdsPublisher[Any],
    ) -> None:
        self.name = name
        self.srv_type = srv_type
        request_msgtype, response_msgtype = service_message_types(srv_type)
        self.request_type = idl_class(request_msgtype)
        self.response_type = idl_class(response_msgtype)
        self._handler = handler
        self._reply_wire = service_wire_classes(srv_type)[1]
        self._replies = reply_publisher

    def on_request(self, wire_request: Any) -> None:
        """Answer one request sample (the subscription callback of ``rq/<name>Request``).

        Raises:
            DdsError: the handler returned something other than a :attr:`response_type`.
        """
        response = self._handler(_from_wire(self.request_type, wire_request))
        if not isinstance(response, self.response_type):
            raise DdsError(
                f"service {self.name}: handler returned {type(response).__name__}; expected "
                f"a {self.srv_type} response ({self.response_type.__name__})"
            )
        self._replies.publish(_to_wire(
            self._reply_wire, response, wire_request.client_guid, wire_request.sequence_number
        ))


class DdsClient:
    """Client of one ROS 2 service.

    Attributes:
        name: fully qualified service name.
        srv_type: ROS 2 service type.
        request_type: IDL class of the requests :meth:`call` takes.
        response_type: IDL class of the responses it returns.
        client_guid: this client's id in the request header (its request writer's handle,
            as rmw_cyclonedds_cpp uses).
    """

    def __init__(
        self, name: str, srv_type: str, request_publisher: DdsPublisher[Any],
        reply_subscription: DdsSubscription[Any], waitset: WaitSet, client_guid: int,
    ) -> None:
        self.name = name
        self.srv_type = srv_type
        request_msgtype, response_msgtype = service_message_types(srv_type)
        self.request_type = idl_class(request_msgtype)
        self.response_type = idl_class(response_msgtype)
        self.client_guid = client_guid
        self._request_wire = service_wire_classes(srv_type)[0]
        self._requests = request_publisher
        self._replies = reply_subscription
        self._waitset = waitset
        self._sequence = 0

    def service_is_ready(self) -> bool:
        """Whether a service answers: its request reader and reply writer have matched."""
        return self._requests.subscription_count > 0 and self._replies.publisher_count > 0

    def wait_for_service(self, timeout_s: float) -> bool:
        """Block until :meth:`service_is_ready`; ``False`` on timeout."""
        return self._requests.wait_for_subscribers(1, timeout_s) and \
            self._replies.wait_for_publishers(1, timeout_s)

    def call(self, request: Any, timeout_s: float) -> Any:
        """Send ``request`` and block until its response arrives.

        Args:
            request: an instance of :attr:`request_type`.
            timeout_s: longest wait for the reply, seconds.

        Returns:
            The :attr:`response_type` instance the service sent.

        Raises:
            DdsError: wrong request type, or no reply within ``timeout_s`` (names the service
                and whether any service was matched).
        """
        if not isinstance(request, self.request_type):
            raise DdsError(
                f"client of {self.name}: expected a {self.srv_type} request "
                f"({self.request_type.__name__}), got {type(request).__name__}"
            )
        self._sequence += 1
        sequence = self._sequence
        self._requests.publish(_to_wire(self._request_wire, request, self.client_guid, sequence))
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            self._waitset.wait(int(remaining * NS_PER_S))
            for reply in self._replies.take():
                # The reply topic is shared by all clients of the service: keep ours only.
                if reply.client_guid == self.client_guid and reply.sequence_number == sequence:
                    return _from_wire(self.response_type, reply)
        state = "matched" if self.service_is_ready() else "not matched (is it running?)"
        raise DdsError(
            f"client of {self.name}: no reply within {timeout_s} s; the service is {state}"
        )
