"""From (time, odometry pose, goal, context frames) to a velocity command and its reasons.

:class:`Navigator` is the policy-facing half of the onboard loop:

1. goal handling: the goal position in the odometry frame is expressed in the robot frame
   (REP-103, x forward, y left) -> distance, bearing and the policy's goal encoding
   (:func:`s2e_policy.geometry.encode_goal`);
2. inference with :class:`~s2e_policy.runtime.session.PolicyRuntime`;
3. mode selection: the highest score, or, with ``mode_switch_margin`` > 0, the previous
   mode is kept until another mode's logit beats it by that margin (no flip-flopping
   between two near-equal modes);
4. trajectory of the chosen mode: as predicted (``traj_m``), or rescaled to the
   embodiment's nominal speed (``speed="nominal"``: the contract's
   ``trajectory_at_speed`` on ``traj_norm``);
5. controller: the paper's ``direct`` (``v = dx/dt``, ``w = atan2(dy, dx)/dt``) or
   ``pure_pursuit`` (:mod:`s2e_policy.controller`), then the embodiment's velocity and
   acceleration limits (:class:`~s2e_policy.controller.VelocityLimiter`).

A goal further off the heading than ``turn_in_place_bearing_rad`` (e.g. behind the robot,
where forward anchors cannot reach it) makes the robot turn on the spot towards it at
``bearing / waypoint_dt_s`` (limited) instead of following a mode. Non-finite policy outputs
give a non-finite command, which :class:`~s2e_policy.runtime.safety.SafetyCore` replaces by
zero; the limiter never sees it. Times are integer nanoseconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from s2e_policy.controller import (
    CONTROLLERS,
    VelocityLimiter,
    direct_command,
    pure_pursuit_command,
)
from s2e_policy.embodiment import Embodiment
from s2e_policy.errors import S2EError
from s2e_policy.geometry import encode_goal, world_to_robot
from s2e_policy.runtime.frames import NS_PER_S
from s2e_policy.runtime.session import PolicyPrediction, PolicyRuntime

SPEED_SOURCES = ("predicted", "nominal")
"""Where the chosen trajectory's speed comes from: the policy's speed head or the robot's."""

DEFAULT_LOOKAHEAD_M = 1.0
"""Pure-pursuit lookahead distance along the chosen trajectory (m)."""

DEFAULT_TURN_IN_PLACE_BEARING_RAD = math.radians(45.0)
"""Goals further off the heading than this are turned towards on the spot (rad).

45 degrees is where the NavBench-GS expert (whose rollouts train the shipped policy) turns on
the spot, so the policy sees goals in the bearing range it was trained on. Measured on the
shipped policy (README, "Shipped policy"): 45 degrees with pure pursuit doubled the success
rate on `empty` against 120 degrees with the direct controller.
"""

DEFAULT_CONTROLLER = "pure_pursuit"
"""Default waypoint follower (the paper's ``direct`` is one option away; see the README)."""


@dataclass(frozen=True)
class NavigatorConfig:
    """How the navigator chooses a mode and turns it into a command.

    Attributes:
        controller: ``direct`` (the paper) or ``pure_pursuit``.
        lookahead_m: pure-pursuit lookahead (m).
        speed: ``predicted`` (the mode's predicted speed) or ``nominal`` (rescale the
            mode's normalised trajectory to the embodiment's ``nominal_speed_mps``).
        mode_switch_margin: logit margin another mode needs over the previous choice to
            replace it (0: always the highest score).
        turn_in_place_bearing_rad: goal bearing beyond which the robot turns on the spot
            (``None``: always follow the policy).
        allow_reverse: let the limiter pass negative forward speeds.
    """

    controller: str = DEFAULT_CONTROLLER
    lookahead_m: float = DEFAULT_LOOKAHEAD_M
    speed: str = "predicted"
    mode_switch_margin: float = 0.0
    turn_in_place_bearing_rad: float | None = DEFAULT_TURN_IN_PLACE_BEARING_RAD
    allow_reverse: bool = False

    def __post_init__(self) -> None:
        if self.controller not in CONTROLLERS:
            raise S2EError(f"NavigatorConfig.controller: expected one of {CONTROLLERS}, got "
                           f"{self.controller!r}")
        if self.speed not in SPEED_SOURCES:
            raise S2EError(f"NavigatorConfig.speed: expected one of {SPEED_SOURCES}, got "
                           f"{self.speed!r}")
        if not math.isfinite(self.lookahead_m) or self.lookahead_m <= 0:
            raise S2EError(f"NavigatorConfig.lookahead_m: expected > 0, got {self.lookahead_m}")
        if not math.isfinite(self.mode_switch_margin) or self.mode_switch_margin < 0:
            raise S2EError(f"NavigatorConfig.mode_switch_margin: expected >= 0, got "
                           f"{self.mode_switch_margin}")
        bearing = self.turn_in_place_bearing_rad
        if bearing is not None and not 0 < bearing <= math.pi:
            raise S2EError(f"NavigatorConfig.turn_in_place_bearing_rad: expected a value in "
                           f"(0, pi] or None, got {bearing}")


@dataclass(frozen=True)
class GoalInRobot:
    """The goal seen from the robot at the decision instant.

    Attributes:
        xy: float64 ``(2,)`` goal position in base_link (x forward, y left), metres.
        distance_m: distance to the goal (m).
        bearing_rad: ``atan2(y, x)`` of the goal (rad, counter-clockwise; 0 at zero distance).
        encoding: float32 ``(3,)`` the policy's goal input.
    """

    xy: np.ndarray
    distance_m: float
    bearing_rad: float
    encoding: np.ndarray


def goal_in_robot(pose: np.ndarray, goal: np.ndarray) -> GoalInRobot:
    """Express an odometry-frame goal in the robot frame.

    Args:
        pose: ``(3,)`` robot ``(x, y, yaw)`` in the odometry frame (m, m, rad).
        goal: ``(2,)`` goal ``(x, y)`` or ``(3,)`` goal pose in the same frame (its yaw is
            not used: the policy reaches positions).

    Raises:
        S2EError: wrong shapes or non-finite values (naming ``pose`` or ``goal``).
    """
    pose = np.asarray(pose, dtype=np.float64)
    goal = np.asarray(goal, dtype=np.float64)
    if pose.shape != (3,) or not np.isfinite(pose).all():
        raise S2EError(f"odometry pose: expected 3 finite values (x m, y m, yaw rad), "
                       f"got {pose.tolist()}")
    if goal.shape not in ((2,), (3,)) or not np.isfinite(goal).all():
        raise S2EError(f"goal: expected 2 or 3 finite values (x m, y m[, yaw rad]) in the "
                       f"odometry frame, got {goal.tolist()}")
    xy = world_to_robot(goal[:2], pose)
    distance = float(math.hypot(xy[0], xy[1]))
    bearing = float(math.atan2(xy[1], xy[0]))
    return GoalInRobot(xy, distance, bearing, encode_goal(xy))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities ``(K,)`` float64 from logits ``(K,)`` (max-subtracted for stability)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - np.max(z))
    return z / np.sum(z)


@dataclass(frozen=True)
class Decision:
    """One navigator step.

    Attributes:
        stamp_ns: decision time (nanoseconds).
        command: float64 ``(3,)`` ``(vx m/s, vy m/s, wz rad/s)`` after the limiter;
            non-finite when the policy's outputs were (the safety core zeroes it).
        behaviour: ``policy`` (followed the chosen mode) or ``turn_to_goal``.
        goal: the goal in the robot frame.
        mode: index of the chosen mode.
        waypoints: float64 ``(W, 3)`` the chosen mode's ``(x m, y m, heading rad)`` in
            base_link at the decision instant (as followed: rescaled with ``speed="nominal"``).
        modes: float64 ``(K, W, 3)`` every mode, same frame and scaling.
        probabilities: float64 ``(K,)`` mode probabilities (softmax of the scores).
        speed_mps: speed of the followed trajectory (m/s).
        inference_s: wall time of the ONNX inference (s).
        total_s: wall time of the whole step, inference included (s).
    """

    stamp_ns: int
    command: np.ndarray
    behaviour: str
    goal: GoalInRobot
    mode: int
    waypoints: np.ndarray
    modes: np.ndarray
    probabilities: np.ndarray
    speed_mps: float
    inference_s: float
    total_s: float


class Navigator:
    """Goal handling, inference, mode selection and the controller of one robot.

    Args:
        runtime: the loaded policy.
        embodiment: the robot (limits, nominal speed, whether it moves sideways).
        config: controller and mode-selection settings.
    """

    def __init__(self, runtime: PolicyRuntime, embodiment: Embodiment,
                 config: NavigatorConfig | None = None) -> None:
        self.runtime = runtime
        self.contract = runtime.contract
        self.embodiment = embodiment
        self.config = config or NavigatorConfig()
        self.limiter = VelocityLimiter(embodiment, allow_reverse=self.config.allow_reverse)
        self._previous_mode: int | None = None
        self._last_ns: int | None = None

    def stop(self) -> None:
        """The base was sent a zero command: resume from rest, forget the previous mode."""
        self.limiter.reset()
        self._previous_mode = None
        self._last_ns = None

    def select_mode(self, scores: np.ndarray) -> int:
        """Index of the mode to follow given logits ``(K,)`` (see ``mode_switch_margin``)."""
        best = int(np.argmax(scores))
        previous = self._previous_mode
        if previous is not None and self.config.mode_switch_margin > 0 \
                and scores[best] - scores[previous] <= self.config.mode_switch_margin:
            return previous
        return best

    def trajectories(self, prediction: PolicyPrediction) -> tuple[np.ndarray, np.ndarray]:
        """Every mode as followed: ``(K, W, 3)`` float64 and the speeds ``(K,)`` (m/s)."""
        traj = prediction.traj_m[0].astype(np.float64)
        speeds = prediction.speed_mps[0].astype(np.float64)
        if self.config.speed == "nominal":
            nominal = self.embodiment.nominal_speed_mps
            traj = traj.copy()
            traj[..., :2] = self.contract.trajectory_at_speed(prediction.traj_norm[0], nominal)
            speeds = np.full_like(speeds, nominal)
        return traj, speeds

    def decide(self, now_ns: int, pose: np.ndarray, goal: np.ndarray, context: np.ndarray
               ) -> Decision:
        """Run the policy and turn its chosen mode into a limited command.

        Args:
            now_ns: decision time (nanoseconds); the limiter's time step is the time since
                the previous decision (the contract's frame period for the first one).
            pose: ``(3,)`` robot ``(x, y, yaw)`` in the odometry frame.
            goal: ``(2,)`` or ``(3,)`` goal in the odometry frame.
            context: float32 ``(T, 3, S, S)`` from the frame buffer.

        Raises:
            S2EError: non-finite pose or goal, or a context of the wrong shape.
        """
        start = time.perf_counter()
        target = goal_in_robot(pose, goal)
        prediction = self.runtime.run(context, target.encoding)
        scores = prediction.scores[0]
        modes, speeds = self.trajectories(prediction)
        finite = bool(np.isfinite(scores).all() and np.isfinite(modes).all()
                      and np.isfinite(speeds).all())
        mode = self.select_mode(scores) if finite else int(np.argmax(np.nan_to_num(scores)))
        waypoints = modes[mode]
        dt_s = self.contract.waypoint_dt_s
        turn = self.config.turn_in_place_bearing_rad
        behaviour = "policy"
        if turn is not None and abs(target.bearing_rad) > turn:
            behaviour = "turn_to_goal"
            raw = np.array([0.0, 0.0, target.bearing_rad / dt_s])
        elif self.config.controller == "direct":
            raw = direct_command(waypoints, dt_s)
        else:
            raw = pure_pursuit_command(waypoints, dt_s, self.config.lookahead_m,
                                       self.embodiment.is_holonomic)
        step_s = (self.contract.frame_period_s if self._last_ns is None
                  else max(0, now_ns - self._last_ns) / NS_PER_S)
        if finite:
            command = self.limiter(raw, step_s)
            self._previous_mode = mode
            self._last_ns = int(now_ns)
        else:
            command = np.full(3, np.nan)
        return Decision(
            stamp_ns=int(now_ns), command=command, behaviour=behaviour, goal=target, mode=mode,
            waypoints=waypoints, modes=modes, probabilities=softmax(np.nan_to_num(scores)),
            speed_mps=float(speeds[mode]), inference_s=prediction.latency_s,
            total_s=time.perf_counter() - start,
        )
