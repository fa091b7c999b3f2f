"""ROS 2 name resolution and the mangling rmw_cyclonedds applies to DDS topic names.

ROS 2 names (topics, services, namespaces) follow the rules of the ROS 2 design article "Topic
and Service name mapping to DDS": tokens of ``[A-Za-z0-9_]`` that do not start with a digit,
joined by ``/``; no empty token, no trailing ``/``. A name is

* absolute (``/cmd_vel``), used as is;
* private (``~`` or ``~/waypoints``), resolved under the node's fully qualified name
  (``/<namespace>/<node>/waypoints``);
* relative (``odom``), resolved under the node's namespace.

The fully qualified name becomes a DDS topic by prefixing the kind (``/cmd_vel`` ->
``rt/cmd_vel``); service requests and replies travel on ``rq/<service>Request`` and
``rr/<service>Reply``. Substitutions (``{node}``) are not supported.
"""

from __future__ import annotations

import re

from s2e_policy.ros.dds.errors import DdsError

TOPIC_PREFIX = "rt"
"""DDS topic prefix of ROS 2 topics."""

SERVICE_REQUEST_PREFIX = "rq"
"""DDS topic prefix of ROS 2 service requests (suffix :data:`SERVICE_REQUEST_SUFFIX`)."""

SERVICE_REPLY_PREFIX = "rr"
"""DDS topic prefix of ROS 2 service replies (suffix :data:`SERVICE_REPLY_SUFFIX`)."""

SERVICE_REQUEST_SUFFIX = "Request"
SERVICE_REPLY_SUFFIX = "Reply"

PRIVATE_PREFIX = "~"
"""First token of a private name, replaced by the node's fully qualified name."""

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_tokens(tokens: list[str], what: str, original: str) -> None:
    for token in tokens:
        if not _TOKEN.fullmatch(token):
            raise DdsError(
                f"{what} {original!r}: token {token!r} is invalid; expected tokens of letters, "
                "digits and '_' that do not start with a digit, separated by single '/'"
            )


def validate_node_name(name: str) -> str:
    """Return ``name`` if it is a valid ROS 2 node name (one token); else :class:`DdsError`."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise DdsError(
            f"node name {name!r} is invalid; expected letters, digits and '_', "
            "not starting with a digit"
        )
    return name


def validate_namespace(namespace: str) -> str:
    """Normalise a node namespace to absolute form (``""``/``"/"`` -> ``"/"``, ``"a"`` -> ``"/a"``).

    Raises:
        DdsError: a token is invalid, or the namespace ends with ``/`` (other than ``"/"``).
    """
    if namespace in ("", "/"):
        return "/"
    absolute = namespace if namespace.startswith("/") else "/" + namespace
    if absolute.endswith("/"):
        raise DdsError(f"namespace {namespace!r} must not end with '/'")
    _check_tokens(absolute[1:].split("/"), "namespace", namespace)
    return absolute


def resolve_name(name: str, node_name: str, namespace: str = "/") -> str:
    """Resolve a ROS 2 topic or service name to its fully qualified form.

    Args:
        name: absolute (``/cmd_vel``), private (``~/waypoints``) or relative (``odom``) name.
        node_name: the node's name (private names resolve under it).
        namespace: the node's namespace (relative names resolve under it).

    Returns:
        The fully qualified name, e.g. ``/robot1/policy/waypoints``.

    Raises:
        DdsError: an empty name, a trailing or doubled ``/``, a token that is not
            ``[A-Za-z_][A-Za-z0-9_]*``, ``~`` anywhere but first, or an invalid node/namespace.
    """
    validate_node_name(node_name)
    namespace = validate_namespace(namespace)
    if not isinstance(name, str) or not name:
        raise DdsError(f"topic name {name!r} is invalid; expected a non-empty string")
    node_fqn = namespace.rstrip("/") + "/" + node_name
    if name == PRIVATE_PREFIX:
        return node_fqn
    if name.startswith(PRIVATE_PREFIX + "/"):
        resolved = node_fqn + name[len(PRIVATE_PREFIX) :]
    elif name.startswith("/"):
        resolved = name
    else:
        resolved = namespace.rstrip("/") + "/" + name
    if resolved.endswith("/"):
        raise DdsError(f"topic name {name!r} must not end with '/'")
    _check_tokens(resolved[1:].split("/"), "topic name", name)
    return resolved


def dds_topic_name(fully_qualified_name: str) -> str:
    """DDS topic of a ROS 2 topic: ``/cmd_vel`` -> ``rt/cmd_vel``.

    Raises:
        DdsError: the name is not fully qualified (see :func:`resolve_name`).
    """
    if not fully_qualified_name.startswith("/"):
        raise DdsError(
            f"topic name {fully_qualified_name!r} is not fully qualified; resolve it first"
        )
    return TOPIC_PREFIX + fully_qualified_name


def dds_service_topic_names(fully_qualified_name: str) -> tuple[str, str]:
    """DDS request and reply topics of a ROS 2 service: ``/reset`` -> ``rq/resetRequest``, ...

    Raises:
        DdsError: the name is not fully qualified (see :func:`resolve_name`).
    """
    if not fully_qualified_name.startswith("/"):
        raise DdsError(
            f"service name {fully_qualified_name!r} is not fully qualified; resolve it first"
        )
    return (
        SERVICE_REQUEST_PREFIX + fully_qualified_name + SERVICE_REQUEST_SUFFIX,
        SERVICE_REPLY_PREFIX + fully_qualified_name + SERVICE_REPLY_SUFFIX,
    )
