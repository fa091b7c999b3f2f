"""The error type of the Cyclone DDS adapter."""

from __future__ import annotations

from s2e_policy.errors import S2EError


class DdsError(S2EError):
    """Bad use of the DDS adapter: names the topic, message type or setting and what was expected.

    Examples: an invalid ROS 2 topic name, a message type the adapter has no definition for, a
    sample of the wrong type handed to a publisher, a domain id out of range.
    """
