"""The whole onboard loop in one object: inputs in, a safe command (and why) out.

:class:`Pilot` owns a :class:`~s2e_policy.runtime.frames.FrameBuffer`, a
:class:`~s2e_policy.runtime.navigator.Navigator` and a
:class:`~s2e_policy.runtime.safety.SafetyCore` and fixes their order, so the ROS policy node
and the NavBench-GS ONNX agent run the same loop:

1. inputs arrive as they come (``on_image``, ``on_odometry``, ``on_goal``, ``on_estop``);
2. ``step(now_ns)``: when the safety core forbids motion (e-stop, stale or missing inputs,
   non-finite odometry/goal) or the frame context is incomplete, the policy is not run and
   the command is zero; otherwise the navigator decides and the safety core filters its
   command (NaN guard, goal reached, velocity envelope);
3. whenever the command sent is zero the navigator is told, so motion resumes from rest.

Times are integer nanoseconds on one clock; poses are ``(x m, y m, yaw rad)`` in the
odometry frame; commands are base_link ``(vx m/s, vy m/s, wz rad/s)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2e_policy.embodiment import Embodiment
from s2e_policy.errors import S2EError
from s2e_policy.runtime.frames import FrameBuffer
from s2e_policy.runtime.navigator import Decision, Navigator, NavigatorConfig, goal_in_robot
from s2e_policy.runtime.safety import SafeCommand, SafetyConfig, SafetyCore, StopReason
from s2e_policy.runtime.session import PolicyRuntime


@dataclass(frozen=True)
class PilotOutput:
    """One step of the loop.

    Attributes:
        command: float64 ``(3,)`` the command to send (``safe.command``).
        safe: the safety core's verdict (reasons for a zero command, clipping).
        decision: the navigator's decision, or ``None`` when the policy was not run.
    """

    command: np.ndarray
    safe: SafeCommand
    decision: Decision | None


class Pilot:
    """Frame buffer + navigator + safety core, in the one order that is safe.

    Args:
        runtime: the loaded policy.
        embodiment: the robot.
        navigator: navigator settings.
        safety: safety settings.
        frame_tolerance_s: the frame buffer's tolerance (``None``: its default).
    """

    def __init__(self, runtime: PolicyRuntime, embodiment: Embodiment,
                 navigator: NavigatorConfig | None = None, safety: SafetyConfig | None = None,
                 frame_tolerance_s: float | None = None) -> None:
        self.frames = FrameBuffer.for_contract(runtime.contract, frame_tolerance_s)
        self.navigator = Navigator(runtime, embodiment, navigator)
        self.safety = SafetyCore(embodiment, safety)
        self.pose: np.ndarray | None = None
        self.goal: np.ndarray | None = None

    def on_image(self, stamp_ns: int, rgb: np.ndarray) -> bool:
        """A camera frame (uint8 ``(H, W, 3)`` RGB); ``False`` if dropped as out of order."""
        stored = self.frames.push(stamp_ns, rgb)
        if stored:
            self.safety.note_image(stamp_ns)
        return stored

    def on_odometry(self, stamp_ns: int, pose: np.ndarray) -> bool:
        """An odometry pose ``(3,)``; a non-finite one is refused (``False``) and stops."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (3,):
            raise S2EError(f"odometry pose: expected (x m, y m, yaw rad), got shape {pose.shape}")
        if self.safety.note_odometry(stamp_ns, pose):
            self.pose = pose.copy()
            return True
        return False

    def on_goal(self, stamp_ns: int, goal: np.ndarray) -> bool:
        """A goal ``(2,)`` or ``(3,)`` in the odometry frame; non-finite is refused (``False``)."""
        goal = np.asarray(goal, dtype=np.float64)
        if goal.shape not in ((2,), (3,)):
            raise S2EError(f"goal: expected (x m, y m[, yaw rad]) in the odometry frame, got "
                           f"shape {goal.shape}")
        if self.safety.note_goal(stamp_ns, goal):
            self.goal = goal.copy()
            return True
        return False

    def on_estop(self, pressed: bool) -> None:
        """The e-stop input (latching; see :meth:`SafetyCore.reset_estop`)."""
        self.safety.set_estop(pressed)

    def reset_estop(self) -> bool:
        """Release a latched e-stop (refused while the button is still pressed)."""
        return self.safety.reset_estop()

    def step(self, now_ns: int) -> PilotOutput:
        """The command to send at ``now_ns``."""
        blocked = self.safety.blocking_reasons(now_ns)
        if blocked:
            return self._stop(now_ns, ())
        # Past the watchdog, a finite pose and goal exist.
        assert self.pose is not None and self.goal is not None
        context = self.frames.context()
        if context is None:
            reasons = (StopReason.CONTEXT_INCOMPLETE,)
            if goal_in_robot(self.pose, self.goal).distance_m \
                    <= self.safety.config.goal_tolerance_m:
                reasons = (StopReason.GOAL_REACHED, *reasons)
            return self._stop(now_ns, reasons)
        decision = self.navigator.decide(now_ns, self.pose, self.goal, context)
        safe = self.safety.filter(now_ns, decision.command, decision.goal.distance_m)
        if safe.stopped:
            self.navigator.stop()
        return PilotOutput(safe.command, safe, decision)

    def _stop(self, now_ns: int, reasons: tuple[StopReason, ...]) -> PilotOutput:
        """Zero command without running the policy; the navigator restarts from rest."""
        safe = self.safety.zero(now_ns, reasons)
        self.navigator.stop()
        return PilotOutput(safe.command, safe, None)
