"""The policy node's logic in plain Python: ROS messages in, command/path/diagnostics out.

:class:`PolicyCore` is what both adapters drive (the rclpy lifecycle node
:mod:`s2e_policy.ros.policy_node` and the Cyclone DDS node
:mod:`s2e_policy.ros.dds_policy_node`); it never imports ROS. Messages are read by attribute
names (:mod:`s2e_policy.msgconv`), so rclpy messages, ``rosbags`` messages and DDS samples
all work, and outputs are built with a transport's
:class:`~s2e_policy.ros.msgbuild.MessageFactory`.

Lifecycle (the ROS 2 managed-node states)::

    unconfigured --configure--> inactive --activate--> active
         ^                        |  ^                    |
         +--------cleanup---------+  +----deactivate------+   (deactivate: zero command)

* ``configure`` loads the ONNX file (:class:`~s2e_policy.runtime.PolicyRuntime`, logging
  the execution provider) and the embodiment; on failure it raises and the core stays
  unconfigured;
* ``activate`` starts inference: :meth:`PolicyCore.tick` runs the
  :class:`~s2e_policy.runtime.Pilot` at the contract's rate (the adapter's timer);
* ``deactivate`` returns the zero command to publish and stops ticking.

Faults: stale camera/odometry -> zero within one watchdog period (the safety core);
non-finite odometry -> zero and an ERROR diagnostic; a goal in a frame the transform lookup
cannot resolve -> warning and no motion until a usable goal arrives; e-stop latched until
:meth:`PolicyCore.clear_estop`. Times are integer nanoseconds of the node's clock (sim time
under ``use_sim_time``).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import transforms3d.quaternions as tq

from s2e_policy.embodiment import Embodiment, load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.geometry import yaw_from_quaternion
from s2e_policy.msgconv import image_to_rgb, odometry_to_state, stamp_to_ns
from s2e_policy.ros import msgbuild
from s2e_policy.ros.msgbuild import MessageFactory
from s2e_policy.ros.node_params import PolicyNodeParams
from s2e_policy.runtime import Pilot, PilotOutput, PolicyRuntime, StopReason
from s2e_policy.runtime.frames import NS_PER_S

log = logging.getLogger("s2e_policy.ros")

DIAGNOSTIC_NAME = "s2e policy"
"""``DiagnosticStatus.name`` prefix of the node's status (the node name follows)."""

GOAL_FRAME_UNKNOWN = "goal_frame_unknown"
"""Stop reason (beyond :class:`~s2e_policy.runtime.StopReason`): the goal could not be
transformed into the odometry frame."""

ODOMETRY_FRAME_MISMATCH = "odometry_frame_mismatch"
"""Stop reason: odometry arrived in another frame than ``odom_frame``."""


class LifecycleState(str, enum.Enum):
    """ROS 2 managed-node primary states."""

    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FINALIZED = "finalized"


class LifecycleError(S2EError):
    """A transition that is not allowed from the current state."""


@dataclass(frozen=True)
class RigidTransform:
    """Pose of a source frame in a target frame (what a tf2 lookup returns).

    Attributes:
        translation: ``(3,)`` metres.
        rotation_wxyz: ``(4,)`` unit quaternion ``(w, x, y, z)``.
    """

    translation: np.ndarray
    rotation_wxyz: np.ndarray

    @classmethod
    def from_msg(cls, transform: Any) -> RigidTransform:
        """From a ``geometry_msgs/Transform`` (by attribute names)."""
        t, q = transform.translation, transform.rotation
        return cls(np.array([t.x, t.y, t.z], dtype=np.float64),
                   np.array([q.w, q.x, q.y, q.z], dtype=np.float64))


TransformLookup = Callable[[str, str, int], RigidTransform]
"""``lookup(target_frame, source_frame, stamp_ns)`` -> the source frame's pose in the target
frame; raises ``LookupError`` when it cannot (tf2: ``LookupException`` and friends, which the
rclpy adapter turns into ``LookupError``)."""


def goal_in_frame(goal_msg: Any, target_frame: str, lookup: TransformLookup | None
                  ) -> np.ndarray:
    """A ``geometry_msgs/PoseStamped`` goal as ``(x, y, yaw)`` in ``target_frame``.

    Raises:
        LookupError: the goal's frame is not ``target_frame`` and ``lookup`` cannot relate
            them (or there is no lookup).
    """
    frame = str(goal_msg.header.frame_id).lstrip("/")
    p, q = goal_msg.pose.position, goal_msg.pose.orientation
    position = np.array([p.x, p.y, p.z], dtype=np.float64)
    rotation = np.array([q.w, q.x, q.y, q.z], dtype=np.float64)
    if frame != target_frame.lstrip("/"):
        if lookup is None:
            raise LookupError(f"no transform lookup to bring frame {frame!r} into "
                              f"{target_frame!r}")
        tf = lookup(target_frame, frame, stamp_to_ns(goal_msg.header.stamp))
        position = tq.rotate_vector(position, tf.rotation_wxyz) + tf.translation
        rotation = tq.qmult(tf.rotation_wxyz, rotation)
    yaw = yaw_from_quaternion(*rotation) if np.any(rotation) else 0.0
    return np.array([position[0], position[1], yaw])


@dataclass(frozen=True)
class TickOutput:
    """What to publish after one inference tick.

    Attributes:
        stamp_ns: the tick time.
        cmd_vel: ``Twist`` or ``TwistStamped`` (per ``cmd_vel_stamped``).
        waypoints: ``nav_msgs/Path`` in ``base_frame``, or ``None`` when the policy did not run.
        diagnostics: ``diagnostic_msgs/DiagnosticArray`` when one is due, else ``None``.
        pilot: the pilot's step (command, safety verdict, decision).
    """

    stamp_ns: int
    cmd_vel: Any
    waypoints: Any | None
    diagnostics: Any | None
    pilot: PilotOutput


class PolicyCore:
    """The policy node without ROS: lifecycle, input handling, one tick of the pilot.

    Args:
        params: the node's parameters.
        factory: how the adapter's transport builds messages.
        transform_lookup: frame lookup for goals in frames other than ``odom_frame``
            (the rclpy adapter passes a tf2 buffer lookup; ``None``: only odom-frame goals).
        node_name: used in diagnostics.
        image_converter: image message -> uint8 ``(H, W, 3)`` RGB; raises ``S2EError`` for
            an image it cannot convert (default :func:`s2e_policy.msgconv.image_to_rgb`).
    """

    def __init__(self, params: PolicyNodeParams, factory: MessageFactory,
                 transform_lookup: TransformLookup | None = None,
                 node_name: str = "policy_node",
                 image_converter: Callable[[Any], np.ndarray] = image_to_rgb) -> None:
        self.params = params
        self.factory = factory
        self.transform_lookup = transform_lookup
        self.image_converter = image_converter
        self.node_name = node_name
        self.state = LifecycleState.UNCONFIGURED
        self.runtime: PolicyRuntime | None = None
        self.embodiment: Embodiment | None = None
        self.pilot: Pilot | None = None
        self._last_ns: dict[str, int | None] = {}
        self._faults: dict[str, str] = {}
        self._next_diagnostics_ns: int | None = None
        self.last_output: PilotOutput | None = None

    # ------------------------------------------------------------------ lifecycle
    def _require(self, transition: str, *states: LifecycleState) -> None:
        if self.state not in states:
            raise LifecycleError(f"{self.node_name}: cannot {transition} from state "
                                 f"{self.state.value} (allowed from "
                                 f"{', '.join(s.value for s in states)})")

    def configure(self) -> None:
        """Load the embodiment and the ONNX policy (logs the execution provider).

        Raises:
            S2EError: missing/invalid model or embodiment; the core stays unconfigured.
            LifecycleError: not unconfigured.
        """
        self._require("configure", LifecycleState.UNCONFIGURED)
        p = self.params
        if not p.model_path:
            raise S2EError(f"{self.node_name}: parameter model_path is empty; set it to the "
                           "exported .onnx policy")
        embodiment = load_embodiment(p.embodiment)
        runtime = PolicyRuntime.from_file(p.model_path, providers=p.providers or None,
                                          intra_op_threads=p.intra_op_threads)
        self.embodiment, self.runtime = embodiment, runtime
        self._reset_inputs()
        self.state = LifecycleState.INACTIVE
        log.info("%s: configured %s on %s (embodiment %s, %.3g Hz)", self.node_name,
                 p.model_path, runtime.provider, embodiment.name, self.rate_hz)

    def _reset_inputs(self) -> None:
        assert self.runtime is not None and self.embodiment is not None
        self.pilot = Pilot(self.runtime, self.embodiment, self.params.navigator(),
                           self.params.safety())
        self._last_ns = {"image": None, "odometry": None, "goal": None}
        self._faults = {}
        self._next_diagnostics_ns = None
        self.last_output = None

    def activate(self) -> None:
        """Start inference (the adapter starts its timer at :attr:`rate_hz`)."""
        self._require("activate", LifecycleState.INACTIVE)
        self.state = LifecycleState.ACTIVE
        log.info("%s: active", self.node_name)

    def deactivate(self) -> Any:
        """Stop inference; returns the zero ``cmd_vel`` message to publish at once."""
        self._require("deactivate", LifecycleState.ACTIVE)
        self.state = LifecycleState.INACTIVE
        assert self.pilot is not None
        self.pilot.navigator.stop()
        log.info("%s: inactive (zero velocity sent)", self.node_name)
        return self.cmd_vel_msg(self._latest_stamp_ns(), np.zeros(3))

    def cleanup(self) -> None:
        """Release the policy (back to unconfigured)."""
        self._require("cleanup", LifecycleState.INACTIVE)
        self.runtime = self.embodiment = self.pilot = None
        self.state = LifecycleState.UNCONFIGURED

    def shutdown(self) -> Any | None:
        """Finalize; returns a zero ``cmd_vel`` to publish if the node was active."""
        zero = self.deactivate() if self.state == LifecycleState.ACTIVE else None
        self.runtime = self.embodiment = self.pilot = None
        self.state = LifecycleState.FINALIZED
        return zero

    @property
    def rate_hz(self) -> float:
        """Inference rate: the parameter, or the contract's frame rate when 0."""
        if self.params.inference_rate_hz > 0:
            return self.params.inference_rate_hz
        if self.runtime is None:
            raise LifecycleError(f"{self.node_name}: the rate is known once configured")
        return self.runtime.contract.frame_rate_hz

    @property
    def period_ns(self) -> int:
        """Inference period (nanoseconds)."""
        return round(NS_PER_S / self.rate_hz)

    # ------------------------------------------------------------------ inputs
    def on_image(self, msg: Any) -> None:
        """A ``sensor_msgs/Image`` or ``CompressedImage``; an undecodable one is dropped."""
        if self.pilot is None:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        try:
            rgb = self.image_converter(msg)
        except S2EError as exc:
            self._fault("image", str(exc))
            return
        self._faults.pop("image", None)
        if self.pilot.on_image(stamp, rgb):
            self._last_ns["image"] = stamp

    def on_odometry(self, msg: Any) -> None:
        """A ``nav_msgs/Odometry``; non-finite values stop the robot (ERROR diagnostic)."""
        if self.pilot is None:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        frame = str(msg.header.frame_id).lstrip("/")
        if frame != self.params.odom_frame.lstrip("/"):
            self._fault(ODOMETRY_FRAME_MISMATCH, f"odometry in frame {frame!r}; expected "
                        f"odom_frame {self.params.odom_frame!r}")
            return
        self._faults.pop(ODOMETRY_FRAME_MISMATCH, None)
        try:
            state = odometry_to_state(msg)
        except S2EError as exc:
            self._fault("odometry", str(exc))
            # Refused by the safety core: holds NON_FINITE_ODOMETRY until a finite pose.
            self.pilot.on_odometry(stamp, np.full(3, np.nan))
            return
        self._faults.pop("odometry", None)
        if self.pilot.on_odometry(stamp, np.array([state.x, state.y, state.yaw])):
            self._last_ns["odometry"] = stamp

    def on_goal(self, msg: Any) -> bool:
        """A ``geometry_msgs/PoseStamped`` goal in any frame; ``False`` if it was refused.

        A goal whose frame cannot be transformed into ``odom_frame`` is refused with a
        warning and the robot does not move until a usable goal arrives.
        """
        if self.pilot is None:
            return False
        try:
            goal = goal_in_frame(msg, self.params.odom_frame, self.transform_lookup)
        except LookupError as exc:
            self._fault(GOAL_FRAME_UNKNOWN, f"goal in frame {msg.header.frame_id!r} ignored: "
                        f"{exc}")
            return False
        self._faults.pop(GOAL_FRAME_UNKNOWN, None)
        stamp = stamp_to_ns(msg.header.stamp)
        accepted = self.pilot.on_goal(stamp, goal[:2])
        if accepted:
            self._last_ns["goal"] = stamp
        else:
            self._fault("goal", f"goal {goal.tolist()} is not finite")
        return accepted

    def on_estop(self, msg: Any) -> None:
        """A ``std_msgs/Bool`` e-stop input (``True`` latches the stop)."""
        if self.pilot is not None:
            self.pilot.on_estop(bool(msg.data))

    def clear_estop(self) -> tuple[bool, str]:
        """Release a latched e-stop (the ``~/clear_e_stop`` Trigger service)."""
        if self.pilot is None:
            return False, f"{self.node_name} is {self.state.value}"
        if self.pilot.reset_estop():
            return True, "e-stop cleared"
        return False, "e-stop still pressed: release it first"

    def _fault(self, key: str, message: str) -> None:
        if self._faults.get(key) != message:
            log.warning("%s: %s", self.node_name, message)
        self._faults[key] = message

    # ------------------------------------------------------------------ tick
    def tick(self, now_ns: int) -> TickOutput:
        """Run the pilot once at ``now_ns`` and build the messages to publish.

        Raises:
            LifecycleError: not active.
        """
        self._require("tick", LifecycleState.ACTIVE)
        assert self.pilot is not None
        blocked = [k for k in (GOAL_FRAME_UNKNOWN, ODOMETRY_FRAME_MISMATCH) if k in self._faults]
        if blocked:
            out = PilotOutput(np.zeros(3), self.pilot.safety.zero(now_ns), None)
            self.pilot.navigator.stop()
        else:
            out = self.pilot.step(now_ns)
        self.last_output = out
        cmd = self.cmd_vel_msg(now_ns, out.command)
        waypoints = self._waypoints_msg(now_ns, out) if out.decision is not None else None
        diagnostics = None
        if self._diagnostics_due(now_ns):
            diagnostics = self.diagnostics_msg(now_ns, out, blocked)
            self._next_diagnostics_ns = now_ns + self._diagnostics_period_ns
        return TickOutput(now_ns, cmd, waypoints, diagnostics, out)

    @property
    def _diagnostics_period_ns(self) -> int:
        return round(self.params.diagnostics_period_s * NS_PER_S)

    def _diagnostics_due(self, now_ns: int) -> bool:
        """First tick, period elapsed, or the clock jumped back (a sim restarted)."""
        due = self._next_diagnostics_ns
        return due is None or now_ns >= due or now_ns < due - self._diagnostics_period_ns

    def cmd_vel_msg(self, stamp_ns: int, command: np.ndarray) -> Any:
        """``Twist`` or ``TwistStamped`` (in ``base_frame``) of ``(vx, vy, wz)``."""
        if self.params.cmd_vel_stamped:
            return msgbuild.twist_stamped(self.factory, stamp_ns, self.params.base_frame,
                                          command)
        return msgbuild.twist(self.factory, command)

    def _waypoints_msg(self, stamp_ns: int, out: PilotOutput) -> Any:
        decision = out.decision
        assert decision is not None
        if self.params.waypoint_modes == "chosen":
            poses = np.vstack([np.zeros((1, 3)), decision.waypoints])
        else:
            # Every mode as a branch from the base_link origin: a fan that RViz draws as one
            # Path (origin, mode 0 waypoints, origin, mode 1 waypoints, ...).
            modes = decision.modes
            origin = np.zeros((modes.shape[0], 1, 3))
            poses = np.concatenate([origin, modes], axis=1).reshape(-1, 3)
        return msgbuild.path(self.factory, stamp_ns, self.params.base_frame, poses)

    def _latest_stamp_ns(self) -> int:
        stamps = [s for s in self._last_ns.values() if s is not None]
        return max(stamps) if stamps else 0

    @property
    def input_stamps_ns(self) -> dict[str, int | None]:
        """Stamp of the newest accepted image, odometry and goal (``None``: none yet)."""
        return dict(self._last_ns)

    def input_ages_s(self, now_ns: int) -> dict[str, float]:
        """Age of the newest accepted image, odometry and goal at ``now_ns`` (s; NaN: none)."""
        return {name: (now_ns - stamp) / NS_PER_S if stamp is not None else math.nan
                for name, stamp in self._last_ns.items()}

    def diagnostics_msg(self, now_ns: int, out: PilotOutput, extra_reasons: list[str]) -> Any:
        """``/diagnostics``: latency, provider, input ages, e-stop, mode and stop reasons."""
        assert self.pilot is not None and self.runtime is not None
        reasons = [r.value for r in out.safe.reasons] + extra_reasons
        safety = self.pilot.safety
        values: dict[str, str] = {"state": self.state.value, "provider": self.runtime.provider,
                                  "model": self.params.model_path,
                                  "rate_hz": f"{self.rate_hz:g}",
                                  "e_stop_pressed": str(safety.estop_pressed),
                                  "e_stop_latched": str(safety.estop_latched),
                                  "stop_reasons": ",".join(reasons) or "none",
                                  "command": ",".join(f"{v:.3f}" for v in out.command)}
        for name, age in self.input_ages_s(now_ns).items():
            values[f"{name}_age_s"] = f"{age:.3f}"
        decision = out.decision
        if decision is not None:
            values.update(mode=str(decision.mode), behaviour=decision.behaviour,
                          mode_probability=f"{decision.probabilities[decision.mode]:.3f}",
                          goal_distance_m=f"{decision.goal.distance_m:.2f}",
                          inference_latency_ms=f"{decision.inference_s * 1e3:.2f}",
                          step_latency_ms=f"{decision.total_s * 1e3:.2f}")
        level = "OK"
        message = "following the policy" if decision is not None and not reasons else \
            f"stopped: {', '.join(reasons)}"
        if StopReason.NON_FINITE_ODOMETRY.value in reasons or any(
                k in self._faults for k in ("odometry", "image", ODOMETRY_FRAME_MISMATCH)):
            level = "ERROR"
        elif safety.estop_latched or any(r.startswith(("stale", "no_")) for r in reasons) \
                or extra_reasons:
            level = "WARN"
        if self._faults:
            message += "; " + "; ".join(self._faults.values())
        return msgbuild.diagnostic_array(self.factory, now_ns, level,
                                         f"{DIAGNOSTIC_NAME}: {self.node_name}", message,
                                         self.runtime.provider, values)

