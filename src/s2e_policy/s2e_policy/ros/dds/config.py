"""Cyclone DDS configuration (``CYCLONEDDS_URI``) for the networks the adapter runs on.

Cyclone DDS reads its configuration from the ``CYCLONEDDS_URI`` environment variable when a
process first joins a domain; the value may be a file URI or the XML itself. ROS 2 nodes with
rmw_cyclonedds_cpp read the same variable, so one XML serves both ends of a link.

* Default (variable unset): the first multicast-capable interface, multicast discovery.
* :func:`loopback_config_xml`: loopback only, unicast discovery to ``127.0.0.1``; for tests
  and containers, where multicast is often unavailable, and to keep tests off the network.
* :func:`cyclonedds_config_xml` with ``peers``: unicast discovery across hosts (a GPU server
  and a robot on networks that drop multicast, e.g. Wi-Fi or VPNs).
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from s2e_policy.ros.dds.errors import DdsError

CONFIG_ENV = "CYCLONEDDS_URI"
"""Environment variable Cyclone DDS reads its configuration from."""

LOOPBACK_ADDRESS = "127.0.0.1"
"""IPv4 loopback address (the interface and the only discovery peer of the loopback config)."""

LOOPBACK_MAX_MESSAGE_BYTES = 65_500
"""Largest RTPS message (and fragment) on loopback, whose MTU is 64 KiB; Cyclone's defaults
(14,720-byte messages of 1,344-byte fragments) suit Ethernet and Wi-Fi."""

FRAGMENT_HEADROOM_BYTES = 500
"""Bytes of a message left for the RTPS header and submessage headers around one fragment."""

LOOPBACK_WRITER_BUFFER_BYTES = 8 * 1024 * 1024
"""Unacknowledged bytes a reliable writer may hold before it throttles (Cyclone's ``WhcHigh``,
default 500 kB, less than one 640x480 RGB image)."""

MAX_AUTO_PARTICIPANT_INDEX = 30
"""Participants per host and domain reachable by unicast discovery (each index is a UDP port
pair that discovery probes on every peer)."""


def cyclonedds_config_xml(
    *,
    interface_address: str | None = None,
    peers: Sequence[str] = (),
    allow_multicast: bool = True,
    max_message_bytes: int | None = None,
    writer_buffer_bytes: int | None = None,
) -> str:
    """Cyclone DDS XML for any domain id, to put in ``CYCLONEDDS_URI``.

    Args:
        interface_address: IP address (or interface name) of the network interface to use;
            ``None`` lets Cyclone DDS choose.
        peers: hosts (IP or name) to send unicast discovery to; with ``allow_multicast=False``
            only participants on these hosts are discovered.
        allow_multicast: use multicast for discovery and data.
        max_message_bytes: largest RTPS message, bytes (fragments are
            :data:`FRAGMENT_HEADROOM_BYTES` smaller; must fit the path MTU unless IP
            fragmentation is acceptable); ``None`` keeps Cyclone's default.
        writer_buffer_bytes: unacknowledged bytes per reliable writer before it throttles;
            ``None`` keeps Cyclone's default.

    Raises:
        DdsError: multicast disabled but no peers given (nothing could be discovered).
    """
    if not allow_multicast and not peers:
        raise DdsError("cyclonedds_config_xml: allow_multicast=False needs at least one peer")
    general = ""
    if interface_address is not None:
        general += (
            f"<Interfaces><NetworkInterface address={quoteattr(interface_address)}/>"
            "</Interfaces>"
        )
    general += f"<AllowMulticast>{'true' if allow_multicast else 'false'}</AllowMulticast>"
    if max_message_bytes is not None:
        general += (
            f"<MaxMessageSize>{int(max_message_bytes)}B</MaxMessageSize>"
            f"<FragmentSize>{int(max_message_bytes) - FRAGMENT_HEADROOM_BYTES}B</FragmentSize>"
        )
    internal = ""
    if writer_buffer_bytes is not None:
        internal = f"<Watermarks><WhcHigh>{int(writer_buffer_bytes)}B</WhcHigh></Watermarks>"
    discovery = ""
    if peers:
        peer_xml = "".join(f"<Peer address={quoteattr(peer)}/>" for peer in peers)
        discovery = (
            "<ParticipantIndex>auto</ParticipantIndex>"
            f"<MaxAutoParticipantIndex>{MAX_AUTO_PARTICIPANT_INDEX}</MaxAutoParticipantIndex>"
            f"<Peers>{peer_xml}</Peers>"
        )
    return (
        '<CycloneDDS><Domain Id="any">'
        f"<General>{general}</General>"
        f"<Internal>{internal}</Internal>"
        f"<Discovery>{discovery}</Discovery>"
        "</Domain></CycloneDDS>"
    )


def loopback_config_xml() -> str:
    """Cyclone DDS XML that keeps all traffic on loopback (no multicast, peer ``127.0.0.1``).

    Messages use the loopback MTU and reliable writers may buffer several camera images.
    """
    return cyclonedds_config_xml(
        interface_address=LOOPBACK_ADDRESS,
        peers=(LOOPBACK_ADDRESS,),
        allow_multicast=False,
        max_message_bytes=LOOPBACK_MAX_MESSAGE_BYTES,
        writer_buffer_bytes=LOOPBACK_WRITER_BUFFER_BYTES,
    )
