"""Agents of NavBench-GS: the privileged ``expert``, the blind ``straight`` and ONNX policies.

- ``expert``: follows the geodesic shortest path to the goal (planned on the episode's
  collision world, obstacles included) with pure pursuit at the embodiment's nominal speed,
  and yields to pedestrians ahead. It reads privileged state, so it is an upper bound.
- ``straight``: turns towards the goal and drives at it, ignoring everything: a lower bound.
- a path ending in ``.onnx``: :class:`OnnxAgent` runs the exported policy through the onboard
  runtime (:class:`s2e_policy.runtime.Pilot`: frame buffer, navigator, safety core), fed with
  the simulated camera frames, odometry pose and goal at their sim timestamps, exactly as
  the ROS policy node feeds it on a robot.

Agents implement ``reset(sim, obs)`` and ``act(obs) -> (vx, vy, wz)``; ``needs_images``
tells the runner whether to render the camera for them.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Protocol

import numpy as np

from s2e_policy.controller import VelocityLimiter, pure_pursuit_command
from s2e_policy.errors import S2EError
from s2e_policy.geometry import world_to_robot
from s2e_policy.runtime import (
    NavigatorConfig,
    Pilot,
    PilotOutput,
    PolicyRuntime,
    SafetyConfig,
)
from s2e_policy.runtime.frames import NS_PER_S
from s2e_sim_bridge.navbench.sim import NavBenchSim, Observation
from s2e_sim_bridge.world.geodesics import geodesic_field

# Expert: pursued point distance (m), slow-down distance to the goal (m), pedestrian
# yielding cone half-angle (rad) and distances (m) where it slows and where it stops.
EXPERT_LOOKAHEAD_M = 1.0
EXPERT_GOAL_SLOWDOWN_M = 1.5
YIELD_CONE_RAD = math.radians(50.0)
YIELD_SLOW_M = 2.5
YIELD_STOP_M = 1.2
# The expert plans with this much clearance beyond the footprint radius (m), falling back
# to the bare radius where a passage is narrower.
EXPERT_CLEARANCE_M = 0.25
# A diff-drive expert turns on the spot while the pursued point is further off its heading.
EXPERT_TURN_IN_PLACE_RAD = math.radians(45.0)
# Path resampling step for the pursued trajectory (m).
PATH_STEP_M = 0.25
# Straight: heading error (rad) above which it turns on the spot.
STRAIGHT_TURN_IN_PLACE_RAD = math.radians(30.0)
# ONNX agent: the runtime's goal-reached stop, as a fraction of the task's success radius
# (the simulator ends the episode at that radius first; the stop is only a backstop).
ONNX_GOAL_TOLERANCE_FRACTION = 0.5
ONNX_SUFFIX = ".onnx"


class NavAgent(Protocol):
    """What the NavBench-GS runner drives."""

    name: str
    needs_images: bool

    def reset(self, sim: NavBenchSim, obs: Observation) -> None:
        """Called at the start of each episode."""
        ...

    def act(self, obs: Observation) -> np.ndarray:
        """Body-frame command ``(vx, vy, wz)`` for the next control period."""
        ...


def _resample_polyline(path: np.ndarray, step_m: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, cum[-1], step_m)
    return np.stack([np.interp(s, cum, path[:, 0]), np.interp(s, cum, path[:, 1])], axis=1)


class ExpertAgent:
    """Geodesic path follower with pedestrian yielding (privileged)."""

    name = "expert"
    needs_images = False

    def reset(self, sim: NavBenchSim, obs: Observation) -> None:
        """Plan the path to the goal on the episode's collision world (with a margin)."""
        self.sim = sim
        self.limiter = VelocityLimiter(sim.embodiment)
        field = sim.goal_field
        try:
            field = geodesic_field(sim.occupancy, obs.goal_xy,
                                   sim.embodiment.footprint_radius_m + EXPERT_CLEARANCE_M)
            path = field.path_from(obs.pose[:2])
        except S2EError:  # start, goal or a passage too tight for the margin
            path = sim.goal_field.path_from(obs.pose[:2])
        self.path = _resample_polyline(path, PATH_STEP_M)
        self.path = np.vstack([self.path, obs.goal_xy])

    def act(self, obs: Observation) -> np.ndarray:
        """Pure pursuit along the planned path; slow down and stop for pedestrians ahead."""
        e = self.sim.embodiment
        dt = self.sim.config.control_period_s
        # Progress: drop path points already passed (closest point and before).
        closest = int(np.argmin(np.linalg.norm(self.path - obs.pose[:2], axis=1)))
        ahead = self.path[closest + 1:] if closest + 1 < len(self.path) else self.path[-1:]
        local = world_to_robot(ahead, obs.pose)
        speed = e.nominal_speed_mps
        to_goal = float(np.linalg.norm(obs.goal_xy - obs.pose[:2]))
        speed *= min(1.0, max(0.3, to_goal / EXPERT_GOAL_SLOWDOWN_M))
        if len(obs.pedestrians_xy):
            rel = world_to_robot(obs.pedestrians_xy, obs.pose)
            dist = np.linalg.norm(rel, axis=1)
            ahead_mask = (rel[:, 0] > 0) & (np.abs(np.arctan2(rel[:, 1], rel[:, 0]))
                                             < YIELD_CONE_RAD)
            if ahead_mask.any():
                nearest = float(dist[ahead_mask].min()) - e.footprint_radius_m
                speed *= float(np.clip((nearest - YIELD_STOP_M) / (YIELD_SLOW_M - YIELD_STOP_M),
                                       0.0, 1.0))
        # Pursue at the chosen speed: space the waypoints by speed * dt.
        n = max(2, int(np.ceil(EXPERT_LOOKAHEAD_M * 2 / max(speed * dt, 1e-3))))
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(
            np.diff(np.vstack([np.zeros(2), local]), axis=0), axis=1))])
        s = np.minimum(np.arange(1, n + 1) * max(speed * dt, 1e-3), cum[-1])
        pts = np.vstack([np.zeros(2), local])
        traj = np.stack([np.interp(s, cum, pts[:, 0]), np.interp(s, cum, pts[:, 1])], axis=1)
        target = traj[min(len(traj) - 1, int(EXPERT_LOOKAHEAD_M / max(speed * dt, 1e-3)))]
        bearing = math.atan2(target[1], target[0])
        if speed < 1e-3:
            command = np.zeros(3)
        elif abs(bearing) > EXPERT_TURN_IN_PLACE_RAD and not e.is_holonomic:
            command = np.array([0.0, 0.0, math.copysign(e.max_angular_radps, bearing)])
        else:
            command = pure_pursuit_command(traj, dt, EXPERT_LOOKAHEAD_M, e.is_holonomic)
        return self.limiter(command, dt)


class StraightAgent:
    """Turns toward the goal and drives straight at it (blind lower bound)."""

    name = "straight"
    needs_images = False

    def reset(self, sim: NavBenchSim, obs: Observation) -> None:
        """Nothing to plan: keep the simulator for its rates and limits."""
        self.sim = sim
        self.limiter = VelocityLimiter(sim.embodiment)

    def act(self, obs: Observation) -> np.ndarray:
        """Turn towards the goal (in place when far off), then drive at it."""
        e = self.sim.embodiment
        dt = self.sim.config.control_period_s
        goal = world_to_robot(obs.goal_xy[None], obs.pose)[0]
        bearing = math.atan2(goal[1], goal[0])
        wz = float(np.clip(bearing / dt, -e.max_angular_radps, e.max_angular_radps))
        vx = 0.0 if abs(bearing) > STRAIGHT_TURN_IN_PLACE_RAD else e.nominal_speed_mps
        return self.limiter(np.array([vx, 0.0, wz]), dt)


class OnnxAgent:
    """An exported ONNX policy in the loop, through the onboard runtime.

    Each control step feeds the camera frame, the odometry pose (the simulator's true pose)
    and the goal, stamped with the simulation time, into a :class:`~s2e_policy.runtime.Pilot`
    and returns its command: zero (with reasons in :attr:`last`) until the context frames
    span the contract's window, the policy's limited command afterwards.

    The camera renders at ``SimConfig.render_width_px`` and the runtime centre-crops and
    resizes every frame to the contract's image size, so any width works; a width whose
    rendered height equals the contract's image size (e.g. 128 px for a 4:3 camera and the
    96 px ``small`` preset) needs no resampling at all.

    Args:
        path: the ``.onnx`` file.
        providers: ONNX Runtime execution providers (default: TensorRT -> CUDA -> CPU).
        navigator: controller and mode-selection settings.
        safety: watchdog settings; its goal tolerance is capped per episode at
            :data:`ONNX_GOAL_TOLERANCE_FRACTION` of the task's success radius.

    Raises:
        S2EError: the file is missing, not a policy, or breaks its contract.
    """

    needs_images = True

    def __init__(self, path: str | Path, providers: list[str] | None = None,
                 navigator: NavigatorConfig | None = None,
                 safety: SafetyConfig | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.runtime = PolicyRuntime.from_file(self.path, providers=providers)
        self.navigator_config = navigator
        self.safety_config = safety or SafetyConfig()
        self.last: PilotOutput | None = None

    def reset(self, sim: NavBenchSim, obs: Observation) -> None:
        """A fresh pilot (empty frame buffer, no e-stop) for the episode; feed the first frame.

        Raises:
            S2EError: the simulator renders no images, or its camera rate is too low to
                fill the policy's context (frames farther apart than the buffer tolerates).
        """
        contract = self.runtime.contract
        tolerance = min(self.safety_config.goal_tolerance_m,
                        ONNX_GOAL_TOLERANCE_FRACTION * sim.task.goal_radius_m)
        safety = dataclasses.replace(self.safety_config, goal_tolerance_m=tolerance)
        self.pilot = Pilot(self.runtime, sim.embodiment, self.navigator_config, safety)
        frame_gap_s = sim.config.control_period_s
        if frame_gap_s / 2.0 > self.pilot.frames.tolerance_s:
            raise S2EError(
                f"{self.path}: the simulator's camera runs at {sim.config.control_rate_hz:g} "
                f"Hz, slower than the policy's {contract.frame_rate_hz:g} Hz context; raise "
                "SimConfig.control_rate_hz"
            )
        self.last = None
        self._observe(obs)

    def act(self, obs: Observation) -> np.ndarray:
        """Feed the new observation and return the pilot's command ``(vx, vy, wz)``."""
        now_ns = self._observe(obs)
        self.last = self.pilot.step(now_ns)
        return self.last.command

    def _observe(self, obs: Observation) -> int:
        if obs.rgb is None:
            raise S2EError(f"{self.name}: the ONNX agent needs camera images; the simulator "
                           "renders none (SimConfig.render is off)")
        now_ns = round(obs.time_s * NS_PER_S)
        self.pilot.on_image(now_ns, obs.rgb)
        self.pilot.on_odometry(now_ns, obs.pose)
        self.pilot.on_goal(now_ns, obs.goal_xy)
        return now_ns


BUILTIN_AGENTS = {"expert": ExpertAgent, "straight": StraightAgent}


def make_agent(name_or_path: str | Path) -> NavAgent:
    """A built-in agent (``expert`` | ``straight``), or an :class:`OnnxAgent` for ``*.onnx``.

    Raises:
        S2EError: an unknown name, or an ONNX file that cannot be loaded as a policy.
    """
    text = str(name_or_path)
    if text.lower().endswith(ONNX_SUFFIX):
        return OnnxAgent(Path(text))
    if text not in BUILTIN_AGENTS:
        raise S2EError(f"unknown policy {text!r}; expected one of {sorted(BUILTIN_AGENTS)} or "
                       "an .onnx file")
    return BUILTIN_AGENTS[text]()
