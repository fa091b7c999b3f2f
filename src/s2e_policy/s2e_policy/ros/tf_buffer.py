"""A small tf2 buffer for ROS-less adapters: the latest transform of every frame, chained.

The rclpy node uses tf2_ros; the DDS adapter feeds ``/tf`` and ``/tf_static``
(``tf2_msgs/TFMessage``, read by attribute names) into :class:`TransformBuffer` and gives
:meth:`TransformBuffer.lookup` to :class:`~s2e_policy.ros.policy_core.PolicyCore`. It keeps
only the newest transform per child frame (no interpolation in time), which is what goal
transformation needs: goals are sparse, and static or slowly moving frames (``map`` ->
``odom``, a camera mount) dominate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import transforms3d.quaternions as tq

from s2e_policy.ros.policy_core import RigidTransform

MAX_TREE_DEPTH = 64
"""Longest parent chain followed (guards against cycles in bad /tf data)."""


def _compose(a: RigidTransform, b: RigidTransform) -> RigidTransform:
    """``a * b``: ``b`` expressed in ``a``'s parent."""
    return RigidTransform(tq.rotate_vector(b.translation, a.rotation_wxyz) + a.translation,
                          tq.qmult(a.rotation_wxyz, b.rotation_wxyz))


def _inverse(a: RigidTransform) -> RigidTransform:
    q = tq.qinverse(a.rotation_wxyz)
    return RigidTransform(-tq.rotate_vector(a.translation, q), q)


_IDENTITY = RigidTransform(np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]))


class TransformBuffer:
    """Latest ``parent -> child`` transforms from ``tf2_msgs/TFMessage`` samples."""

    def __init__(self) -> None:
        self._parent: dict[str, tuple[str, RigidTransform]] = {}

    def on_tf(self, msg: Any) -> None:
        """Store every ``TransformStamped`` of a ``/tf`` or ``/tf_static`` message."""
        for t in msg.transforms:
            child = str(t.child_frame_id).lstrip("/")
            parent = str(t.header.frame_id).lstrip("/")
            if child and parent and child != parent:
                self._parent[child] = (parent, RigidTransform.from_msg(t.transform))

    def _to_root(self, frame: str) -> tuple[str, RigidTransform]:
        """The root of ``frame``'s tree and the pose of ``frame`` in that root."""
        current, pose = frame, _IDENTITY
        for _ in range(MAX_TREE_DEPTH):
            if current not in self._parent:
                break
            current, tf = self._parent[current]
            pose = _compose(tf, pose)
        return current, pose

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> RigidTransform:
        """Pose of ``source_frame`` in ``target_frame`` (latest data; ``stamp_ns`` unused).

        Raises:
            LookupError: the frames are not connected by the transforms received so far.
        """
        target, source = target_frame.lstrip("/"), source_frame.lstrip("/")
        target_root, target_pose = self._to_root(target)
        source_root, source_pose = self._to_root(source)
        if target_root != source_root:
            known = sorted(set(self._parent) | {p for p, _ in self._parent.values()})
            raise LookupError(f"frames {source!r} and {target!r} are not connected "
                              f"(known frames: {known or 'none'})")
        return _compose(_inverse(target_pose), source_pose)
