"""The DDS adapter's :class:`~s2e_policy.ros.msgbuild.MessageFactory`: IDL classes, int bytes.

Node cores build their outgoing messages with :mod:`s2e_policy.ros.msgbuild`; with this
factory the results are IDL samples that :meth:`DdsPublisher.publish
<s2e_policy.ros.dds.node.DdsPublisher.publish>` sends as-is.
"""

from __future__ import annotations

from s2e_policy.ros.dds.messages import idl_class
from s2e_policy.ros.msgbuild import MessageFactory

DDS_MESSAGES = MessageFactory(lookup=idl_class, byte=int)
"""Message factory of the DDS adapter (``byte`` fields are ints in IDL samples)."""
