"""The safety core between the policy and the base: plain Python, no ROS.

It decides when the robot must get a zero command, and says why
(:class:`StopReason`), so the ROS node can publish the reasons on ``/diagnostics``:

* watchdog: no image / odometry / goal yet, or the latest one is further than its timeout
  from now (in either direction: a clock that jumped back does not keep stale inputs alive);
* NaN guard: a non-finite odometry pose or goal is refused (and stops the robot until a
  finite one arrives); a non-finite command is never passed on;
* latched e-stop: once pressed it stays engaged until :meth:`SafetyCore.reset_estop` is
  called with the button released;
* goal reached: within ``goal_tolerance_m`` of the goal the robot stops;
* limits: every command leaving the core is clipped to the embodiment's velocity envelope
  (``max_linear_mps``, ``max_lateral_mps`` (0 for diff drive), ``max_angular_radps``).

A zero command is applied at once, not ramped by acceleration limits: stopping wins. The
caller (:class:`~s2e_policy.runtime.pilot.Pilot`) tells the navigator so that motion resumes
from rest. Times are integer nanoseconds on one clock (ROS time or sim time); commands are
body-frame ``(vx m/s, vy m/s, wz rad/s)`` in base_link.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from s2e_policy.embodiment import Embodiment
from s2e_policy.errors import S2EError
from s2e_policy.runtime.frames import NS_PER_S


class StopReason(str, enum.Enum):
    """Why the command is zero (several can hold at once)."""

    ESTOP = "e_stop"
    NO_IMAGE = "no_image"
    STALE_IMAGE = "stale_image"
    NO_ODOMETRY = "no_odometry"
    STALE_ODOMETRY = "stale_odometry"
    NON_FINITE_ODOMETRY = "non_finite_odometry"
    NO_GOAL = "no_goal"
    STALE_GOAL = "stale_goal"
    NON_FINITE_GOAL = "non_finite_goal"
    CONTEXT_INCOMPLETE = "context_incomplete"
    NON_FINITE_COMMAND = "non_finite_command"
    GOAL_REACHED = "goal_reached"


@dataclass(frozen=True)
class SafetyConfig:
    """Timeouts and tolerances of the safety core (units in the names).

    Attributes:
        image_timeout_s: the newest camera frame may be at most this old.
        odometry_timeout_s: the newest odometry may be at most this old.
        goal_timeout_s: the goal may be at most this old, or ``None`` (a goal stays valid
            until replaced: goals are sent once).
        goal_tolerance_m: stop when the robot is this close to the goal.
    """

    image_timeout_s: float = 0.5
    odometry_timeout_s: float = 0.5
    goal_timeout_s: float | None = None
    goal_tolerance_m: float = 0.3

    def __post_init__(self) -> None:
        for name in ("image_timeout_s", "odometry_timeout_s", "goal_timeout_s",
                     "goal_tolerance_m"):
            value = getattr(self, name)
            if value is None and name == "goal_timeout_s":
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise S2EError(f"SafetyConfig.{name}: expected a finite number > 0, "
                               f"got {value!r}")


@dataclass(frozen=True)
class SafeCommand:
    """What leaves the safety core.

    Attributes:
        command: float64 ``(3,)`` ``(vx, vy, wz)`` to send (zeros when ``reasons``).
        reasons: why the command is zero (empty when the policy's command goes through).
        clipped: the command was reduced to fit the velocity envelope.
    """

    command: np.ndarray
    reasons: tuple[StopReason, ...]
    clipped: bool = False

    @property
    def stopped(self) -> bool:
        """Whether the command was replaced by zero."""
        return bool(self.reasons)


class SafetyCore:
    """Watchdog, NaN guard, latched e-stop, goal-reached stop and velocity envelope.

    Args:
        embodiment: the robot (velocity limits and whether it moves sideways).
        config: timeouts and tolerances.
    """

    def __init__(self, embodiment: Embodiment, config: SafetyConfig | None = None) -> None:
        self.embodiment = embodiment
        self.config = config or SafetyConfig()
        e = embodiment
        lateral = e.max_lateral_mps if e.is_holonomic else 0.0
        self._envelope = np.array([e.max_linear_mps, lateral, e.max_angular_radps])
        self._last_ns: dict[str, int | None] = {"image": None, "odometry": None, "goal": None}
        self._non_finite: set[StopReason] = set()
        self.estop_pressed = False
        self.estop_latched = False

    # ------------------------------------------------------------------ inputs
    def note_image(self, stamp_ns: int) -> None:
        """A camera frame stamped ``stamp_ns`` arrived."""
        self._note("image", stamp_ns)

    def note_odometry(self, stamp_ns: int, pose: np.ndarray) -> bool:
        """An odometry pose ``(x, y, yaw)`` arrived; returns ``False`` (and stops) if non-finite.

        A non-finite pose does not refresh the watchdog and holds
        :attr:`StopReason.NON_FINITE_ODOMETRY` until a finite pose arrives.
        """
        return self._note_finite("odometry", stamp_ns, pose, StopReason.NON_FINITE_ODOMETRY)

    def note_goal(self, stamp_ns: int, goal: np.ndarray) -> bool:
        """A goal (odometry frame) arrived; returns ``False`` (and stops) if non-finite."""
        return self._note_finite("goal", stamp_ns, goal, StopReason.NON_FINITE_GOAL)

    def set_estop(self, pressed: bool) -> None:
        """The e-stop input's state; pressing latches the stop until :meth:`reset_estop`."""
        self.estop_pressed = bool(pressed)
        if self.estop_pressed:
            self.estop_latched = True

    def reset_estop(self) -> bool:
        """Release the latched e-stop; refused (returns ``False``) while still pressed."""
        if self.estop_pressed:
            return False
        self.estop_latched = False
        return True

    def _note(self, source: str, stamp_ns: int) -> None:
        self._last_ns[source] = int(stamp_ns)

    def _note_finite(self, source: str, stamp_ns: int, values: np.ndarray,
                     reason: StopReason) -> bool:
        if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
            self._non_finite.add(reason)
            return False
        self._non_finite.discard(reason)
        self._note(source, stamp_ns)
        return True

    # ------------------------------------------------------------------ decisions
    def blocking_reasons(self, now_ns: int) -> tuple[StopReason, ...]:
        """Reasons that forbid motion at ``now_ns`` before the policy is even run."""
        cfg = self.config
        reasons: list[StopReason] = []
        if self.estop_latched:
            reasons.append(StopReason.ESTOP)
        checks = (("image", cfg.image_timeout_s, StopReason.NO_IMAGE, StopReason.STALE_IMAGE),
                  ("odometry", cfg.odometry_timeout_s, StopReason.NO_ODOMETRY,
                   StopReason.STALE_ODOMETRY),
                  ("goal", cfg.goal_timeout_s, StopReason.NO_GOAL, StopReason.STALE_GOAL))
        for source, timeout_s, never, stale in checks:
            last = self._last_ns[source]
            if last is None:
                reasons.append(never)
            elif timeout_s is not None and abs(now_ns - last) > round(timeout_s * NS_PER_S):
                reasons.append(stale)
        reasons.extend(r for r in StopReason if r in self._non_finite)
        return tuple(reasons)

    def filter(self, now_ns: int, command: np.ndarray, goal_distance_m: float,
               extra: tuple[StopReason, ...] = ()) -> SafeCommand:
        """The command to send at ``now_ns``.

        Args:
            now_ns: current time, nanoseconds.
            command: ``(3,)`` ``(vx, vy, wz)`` proposed by the navigator (may be non-finite).
            goal_distance_m: distance from the robot to the goal (m).
            extra: reasons found by the caller (e.g. an incomplete frame context).

        Returns:
            Zeros with the reasons when anything forbids motion, else ``command`` clipped
            to the velocity envelope.
        """
        reasons = [*self.blocking_reasons(now_ns), *extra]
        cmd = np.asarray(command, dtype=np.float64).reshape(3)
        if not np.isfinite(cmd).all():
            reasons.append(StopReason.NON_FINITE_COMMAND)
        if not math.isfinite(goal_distance_m) or goal_distance_m <= self.config.goal_tolerance_m:
            if math.isfinite(goal_distance_m):
                reasons.append(StopReason.GOAL_REACHED)
            elif StopReason.NON_FINITE_GOAL not in reasons:
                reasons.append(StopReason.NON_FINITE_GOAL)
        if reasons:
            return SafeCommand(np.zeros(3), tuple(dict.fromkeys(reasons)))
        limited = np.clip(cmd, -self._envelope, self._envelope)
        return SafeCommand(limited, (), clipped=bool(np.any(limited != cmd)))

    def zero(self, now_ns: int, extra: tuple[StopReason, ...] = ()) -> SafeCommand:
        """A zero command with every reason that holds at ``now_ns`` (plus ``extra``)."""
        reasons = tuple(dict.fromkeys(self.blocking_reasons(now_ns) + tuple(extra)))
        return SafeCommand(np.zeros(3), reasons)
