"""Social-force pedestrian crowds (Helbing & Molnar 1995), vectorised over agents.

Every quantity lives in the world frame of NavBench-GS (z up, metres, seconds); a crowd is a
set of ``N`` disc-shaped agents on the floor plane. Each agent walks towards its current
waypoint at a preferred speed and is pushed away from other agents, from the robot, and from
static obstacles (through the distance field of the occupancy map). Waypoints are sampled on
free space with a clear line of sight, so agents never need to walk through walls.

The update is a semi-implicit Euler step of

    a_i = (v0_i e_i - v_i) / tau
          + sum_j c A_p exp((r_i + r_j - d_ij) / B_p) max(cos phi_ij, 0) t_ij   (sidestep)
          + sum_j [A_p exp((r_i + r_j - d_ij) / B_p) w(phi_ij)
                   + k max(r_i + r_j - d_ij, 0)] n_ij                       (agents, robot)
          + A_o exp((r_i - d_i^obs) / B_o) grad d_i^obs                   (obstacles)

where ``t_ij`` is ``n_ij`` turned +90 deg (agents sidestep to their right), and with the
anisotropy weight ``w(phi) = lam + (1 - lam) (1 + cos phi) / 2`` (agents react more
to what is in front of them). Defaults follow Helbing & Molnar's and later crowd-simulation
calibrations, expressed as accelerations (per unit mass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np

from s2e_policy.errors import S2EError
from s2e_sim_bridge.world.occupancy import OccupancyMap


class FreeSpace(Protocol):
    """What the crowd needs from the collision world (``world.OccupancyMap`` provides it)."""

    def distance_to_obstacle(self, xy: np.ndarray) -> np.ndarray:
        """Distance (m) from each point ``xy (N, 2)`` to the nearest occupied cell, ``(N,)``."""
        ...

    def is_free(self, xy: np.ndarray, radius: float) -> np.ndarray:
        """Whether a disc of ``radius`` m at each point ``xy (N, 2)`` is collision-free."""
        ...


@dataclass(frozen=True)
class SocialForceConfig:
    """Parameters of the social-force model (SI units; forces are per unit mass)."""

    relaxation_time_s: float = 0.5
    max_substep_s: float = 0.02
    preferred_speed_mean_mps: float = 1.34
    preferred_speed_std_mps: float = 0.26
    preferred_speed_min_mps: float = 0.5
    max_speed_factor: float = 1.3
    agent_radius_m: float = 0.25
    agent_strength_mps2: float = 2.1
    agent_range_m: float = 0.3
    robot_strength_mps2: float = 4.0
    robot_range_m: float = 0.7
    anisotropy: float = 0.35
    contact_stiffness_mps2_per_m: float = 1200.0
    evasion_factor: float = 0.6
    obstacle_strength_mps2: float = 10.0
    obstacle_range_m: float = 0.2
    waypoint_reached_m: float = 0.5
    waypoint_min_distance_m: float = 3.0
    waypoint_max_distance_m: float = 15.0
    line_of_sight_step_m: float = 0.1
    gradient_step_m: float = 0.05
    spawn_clearance_m: float = 0.1
    step_length_m: float = 0.7
    max_sampling_tries: int = 200


@dataclass
class CrowdState:
    """State of ``N`` pedestrians in the world frame.

    Attributes:
        positions: ``(N, 2)`` float64 xy (m).
        velocities: ``(N, 2)`` float64 (m/s).
        waypoints: ``(N, 2)`` float64 current walking targets (m).
        preferred_speeds: ``(N,)`` float64 (m/s).
        radii: ``(N,)`` float64 body radii (m).
        gait_phase: ``(N,)`` float64 in radians, advanced by pi per step length walked (for
            the leg swing of the rendered bodies).
    """

    positions: np.ndarray
    velocities: np.ndarray
    waypoints: np.ndarray
    preferred_speeds: np.ndarray
    radii: np.ndarray
    gait_phase: np.ndarray

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def headings(self) -> np.ndarray:
        """``(N,)`` yaw (rad) of each agent: its velocity direction, or towards its waypoint."""
        speed = np.linalg.norm(self.velocities, axis=1)
        to_goal = self.waypoints - self.positions
        direction = np.where((speed > 1e-3)[:, None], self.velocities, to_goal)
        return np.arctan2(direction[:, 1], direction[:, 0])


class SocialForceCrowd:
    """A crowd of social-force pedestrians walking between sampled waypoints on free space.

    Args:
        free_space: the collision world (distance field and free-space test).
        bounds: ``((xmin, ymin), (xmax, ymax))`` region (m) where agents and waypoints live.
        num_agents: crowd size.
        rng: the only source of randomness (seeded by the caller for reproducible episodes).
        config: model parameters.
        keep_out: optional ``(M, 3)`` discs ``(x, y, radius)`` where agents may not spawn
            (e.g. around the robot's start and the goal).
    """

    def __init__(
        self,
        free_space: FreeSpace,
        bounds: tuple[tuple[float, float], tuple[float, float]],
        num_agents: int,
        rng: np.random.Generator,
        config: SocialForceConfig | None = None,
        keep_out: np.ndarray | None = None,
    ) -> None:
        if num_agents < 0:
            raise S2EError(f"pedestrians: num_agents must be >= 0, got {num_agents}")
        self.free_space = free_space
        self.config = config or SocialForceConfig()
        self.bounds = np.asarray(bounds, dtype=np.float64).reshape(2, 2)
        self.rng = rng
        # Use the compiled kernels on an OccupancyMap (the numpy path is their reference).
        self.compiled = True
        self.keep_out = np.zeros((0, 3)) if keep_out is None else np.ascontiguousarray(
            keep_out, dtype=np.float64)
        if self.keep_out.ndim != 2 or self.keep_out.shape[1] != 3:
            raise S2EError(f"pedestrians: keep_out must be (M, 3) discs (x, y, radius), got "
                           f"shape {self.keep_out.shape}")
        cfg = self.config
        radii = np.full(num_agents, cfg.agent_radius_m)
        positions = self._sample_free_points(num_agents, cfg.agent_radius_m, avoid_others=True)
        speeds = np.maximum(
            rng.normal(cfg.preferred_speed_mean_mps, cfg.preferred_speed_std_mps, num_agents),
            cfg.preferred_speed_min_mps,
        )
        self.state = CrowdState(
            positions=positions,
            velocities=np.zeros((num_agents, 2)),
            waypoints=positions.copy(),
            preferred_speeds=speeds,
            radii=radii,
            gait_phase=rng.uniform(0.0, 2.0 * np.pi, num_agents),
        )
        for i in range(num_agents):
            self.state.waypoints[i] = self._sample_waypoint(positions[i])

    # -- sampling -----------------------------------------------------------------------
    def _clear(self, xy: np.ndarray, radius: float) -> np.ndarray:
        """``(M,)`` bool: discs at ``xy (M, 2)`` lie in bounds, free space and outside keep-outs."""
        lo, hi = self.bounds
        ok = np.all((xy >= lo + radius) & (xy <= hi - radius), axis=1)
        ok &= self.free_space.is_free(xy, radius + self.config.spawn_clearance_m)
        if len(self.keep_out):
            d = np.linalg.norm(xy[:, None, :] - self.keep_out[None, :, :2], axis=2)
            ok &= np.all(d > self.keep_out[None, :, 2] + radius, axis=1)
        return ok

    def _sample_free_points(self, n: int, radius: float, avoid_others: bool) -> np.ndarray:
        """``(n, 2)`` points on free space, at least two radii apart when ``avoid_others``."""
        lo, hi = self.bounds
        points: list[np.ndarray] = []
        for _ in range(self.config.max_sampling_tries):
            if len(points) == n:
                break
            candidates = self.rng.uniform(lo, hi, size=(4 * n + 8, 2))
            for c in candidates[self._clear(candidates, radius)]:
                if avoid_others and points and np.min(
                        np.linalg.norm(np.asarray(points) - c, axis=1)) < 2.0 * radius:
                    continue
                points.append(c)
                if len(points) == n:
                    break
        if len(points) < n:
            raise S2EError(
                f"pedestrians: found free space for only {len(points)} of {n} agents in bounds "
                f"{self.bounds.tolist()}; lower the crowd size or check the occupancy map"
            )
        return np.asarray(points, dtype=np.float64).reshape(n, 2)

    def line_of_sight(self, a: np.ndarray, b: np.ndarray, radius: float) -> bool:
        """Whether a disc of ``radius`` can slide from ``a (2,)`` to ``b (2,)`` without contact."""
        length = float(np.linalg.norm(b - a))
        steps = max(2, int(np.ceil(length / self.config.line_of_sight_step_m)) + 1)
        samples = a + np.linspace(0.0, 1.0, steps)[:, None] * (b - a)
        return bool(np.all(self.free_space.is_free(samples, radius)))

    def _sample_waypoint(self, origin: np.ndarray) -> np.ndarray:
        """A free point in line of sight of ``origin`` at a walking distance; else ``origin``."""
        cfg = self.config
        for _ in range(cfg.max_sampling_tries):
            angle = self.rng.uniform(-np.pi, np.pi)
            dist = self.rng.uniform(cfg.waypoint_min_distance_m, cfg.waypoint_max_distance_m)
            target = origin + dist * np.array([np.cos(angle), np.sin(angle)])
            if self._waypoint_ok(origin, target):
                return target
        return origin.copy()

    def _waypoint_ok(self, origin: np.ndarray, target: np.ndarray) -> bool:
        """Whether ``target (2,)`` is clear (:meth:`_clear`) and in line of sight of ``origin``.

        On an :class:`OccupancyMap` (and ``compiled``) one numba call makes both checks with
        the same samples and cell lookups as the numpy methods, so the answer is the same.
        """
        cfg = self.config
        radius = cfg.agent_radius_m
        if not (isinstance(self.free_space, OccupancyMap) and self.compiled):
            return bool(self._clear(target[None], radius)[0]) and self.line_of_sight(
                origin, target, radius)
        occ = self.free_space
        length = float(np.linalg.norm(target - origin))
        steps = max(2, int(np.ceil(length / cfg.line_of_sight_step_m)) + 1)
        return bool(_waypoint_ok_kernel(
            np.asarray(origin, np.float64), np.asarray(target, np.float64), radius,
            radius + cfg.spawn_clearance_m, self.bounds, self.keep_out, steps,
            occ.distance_m, occ.origin_xy_m, float(occ.resolution_m)))

    # -- dynamics -----------------------------------------------------------------------
    def _obstacle_gradient(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance to obstacles ``(N,)`` and its gradient ``(N, 2)`` by central differences."""
        h = self.config.gradient_step_m
        offsets = np.array([[h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]])
        probe = (xy[:, None, :] + offsets[None]).reshape(-1, 2)
        d = self.free_space.distance_to_obstacle(probe).reshape(-1, 4)
        grad = np.stack([(d[:, 0] - d[:, 1]), (d[:, 2] - d[:, 3])], axis=1) / (2.0 * h)
        return self.free_space.distance_to_obstacle(xy), grad

    def accelerations(self, robot_xy: np.ndarray | None = None,
                      robot_radius: float = 0.0) -> np.ndarray:
        """Social-force accelerations ``(N, 2)`` (m/s^2) of the current state."""
        cfg = self.config
        s = self.state
        n = len(s)
        if n == 0:
            return np.zeros((0, 2))
        to_goal = s.waypoints - s.positions
        dist_goal = np.linalg.norm(to_goal, axis=1, keepdims=True)
        desired = np.where(dist_goal > 1e-6, to_goal / np.maximum(dist_goal, 1e-6), 0.0)
        acc = (s.preferred_speeds[:, None] * desired - s.velocities) / cfg.relaxation_time_s

        # Other agents, and the robot as one more (non-reacting) agent.
        others_xy, others_r = s.positions, s.radii
        strength = np.full(n, cfg.agent_strength_mps2)
        reach = np.full(n, cfg.agent_range_m)
        if robot_xy is not None:  # people give a robot a wider berth than each other
            others_xy = np.vstack([others_xy, np.asarray(robot_xy, float).reshape(1, 2)])
            others_r = np.append(others_r, robot_radius)
            strength = np.append(strength, cfg.robot_strength_mps2)
            reach = np.append(reach, cfg.robot_range_m)
        diff = s.positions[:, None, :] - others_xy[None, :, :]          # (N, M, 2) from j to i
        dist = np.linalg.norm(diff, axis=2)
        self_mask = np.zeros_like(dist, dtype=bool)
        self_mask[np.arange(n), np.arange(n)] = True
        safe = np.where(self_mask, 1.0, np.maximum(dist, 1e-6))
        normal = diff / safe[..., None]
        magnitude = strength[None, :] * np.exp(
            (s.radii[:, None] + others_r[None, :] - dist) / reach[None, :])
        heading = np.where(
            (np.linalg.norm(s.velocities, axis=1) > 1e-3)[:, None], s.velocities, desired)
        heading = heading / np.maximum(np.linalg.norm(heading, axis=1, keepdims=True), 1e-6)
        cos_phi = -np.einsum("nmk,nk->nm", normal, heading)          # other in front -> 1
        weight = cfg.anisotropy + (1.0 - cfg.anisotropy) * 0.5 * (1.0 + cos_phi)
        # Body compression (Helbing, Farkas & Vicsek 2000) once discs overlap.
        overlap = np.maximum(s.radii[:, None] + others_r[None, :] - dist, 0.0)
        push = np.where(self_mask, 0.0,
                        magnitude * weight + cfg.contact_stiffness_mps2_per_m * overlap)
        acc += np.einsum("nm,nmk->nk", push, normal)
        # Sidestep to the right of whoever is ahead (breaks the head-on deadlock of the
        # pure radial model): the normal rotated by +90 deg, scaled by how frontal it is.
        tangent = np.stack([-normal[..., 1], normal[..., 0]], axis=-1)
        side = np.where(self_mask, 0.0,
                        cfg.evasion_factor * magnitude * np.clip(cos_phi, 0.0, None))
        acc += np.einsum("nm,nmk->nk", side, tangent)

        d_obs, grad = self._obstacle_gradient(s.positions)
        grad_norm = np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-6)
        acc += (cfg.obstacle_strength_mps2
                * np.exp((s.radii - d_obs) / cfg.obstacle_range_m))[:, None] * grad / grad_norm
        return acc

    def step(self, dt: float, robot_xy: np.ndarray | None = None,
             robot_radius: float = 0.0) -> CrowdState:
        """Advance the crowd by ``dt`` seconds (the robot at ``robot_xy (2,)`` repels agents).

        The interval is split into substeps of at most ``max_substep_s`` (the contact term is
        stiff). Agents that reach their waypoint get a new one. A substep that would move an
        agent into an obstacle is cancelled for that agent (its velocity is zeroed), so agents
        never enter occupied space even under strong pushes.

        On an :class:`OccupancyMap` (and ``compiled``), one numba call runs the substeps up to
        the first one after which an agent needs a new waypoint; the waypoint is sampled here
        (the only use of the crowd's ``rng``) and the kernel resumes, so the result is the
        same as substep by substep through the numpy reference (:meth:`accelerations`).
        """
        if not np.isfinite(dt) or dt <= 0:
            raise S2EError(f"pedestrians: dt must be a positive number of seconds, got {dt}")
        substeps = int(np.ceil(dt / self.config.max_substep_s - 1e-9))
        h = dt / substeps
        s = self.state
        if len(s) == 0:
            return s
        if not (isinstance(self.free_space, OccupancyMap) and self.compiled):
            for _ in range(substeps):
                self._substep(h, robot_xy, robot_radius)
            return s
        occ = self.free_space
        robot = np.zeros(4) if robot_xy is None else np.array(
            [*np.asarray(robot_xy, float).reshape(2), robot_radius, 1.0])
        params = self._kernel_params()
        resample = np.zeros(len(s), dtype=np.bool_)
        done = 0
        while done < substeps:
            done += _substeps_kernel(s.positions, s.velocities, s.waypoints, s.preferred_speeds,
                                     s.radii, s.gait_phase, robot, occ.distance_m,
                                     occ.origin_xy_m, float(occ.resolution_m), params, h,
                                     substeps - done, resample)
            self._resample_waypoints(resample)
        return s

    def _kernel_params(self) -> np.ndarray:
        """``(15,)`` float64 :class:`SocialForceConfig` scalars in the kernels' order."""
        c = self.config
        return np.array([c.relaxation_time_s, c.agent_strength_mps2, c.agent_range_m,
                         c.robot_strength_mps2, c.robot_range_m, c.anisotropy,
                         c.contact_stiffness_mps2_per_m, c.evasion_factor,
                         c.obstacle_strength_mps2, c.obstacle_range_m, c.gradient_step_m,
                         c.max_speed_factor, c.agent_radius_m, c.step_length_m,
                         c.waypoint_reached_m])

    def _resample_waypoints(self, agents: np.ndarray) -> None:
        """New waypoints for the agents flagged in ``agents (N,)`` bool, in index order."""
        s = self.state
        for i in np.flatnonzero(agents):
            s.waypoints[i] = self._sample_waypoint(s.positions[i])

    def _substep(self, dt: float, robot_xy: np.ndarray | None, robot_radius: float) -> None:
        """One substep in numpy (the reference of :func:`_substeps_kernel`)."""
        cfg = self.config
        s = self.state
        acc = self.accelerations(robot_xy, robot_radius)
        vel = s.velocities + dt * acc
        speed = np.linalg.norm(vel, axis=1, keepdims=True)
        vmax = (cfg.max_speed_factor * s.preferred_speeds)[:, None]
        vel = np.where(speed > vmax, vel * vmax / np.maximum(speed, 1e-9), vel)
        proposal = s.positions + dt * vel
        ok = self.free_space.is_free(proposal, cfg.agent_radius_m)
        s.positions = np.where(ok[:, None], proposal, s.positions)
        s.velocities = np.where(ok[:, None], vel, 0.0)
        s.gait_phase = np.mod(
            s.gait_phase + np.pi * np.linalg.norm(s.velocities, axis=1) * dt / cfg.step_length_m,
            2.0 * np.pi)
        reached = np.linalg.norm(s.waypoints - s.positions, axis=1) < cfg.waypoint_reached_m
        self._resample_waypoints(reached | ~ok)


@numba.njit(cache=True)
def _lookup(field: np.ndarray, origin: np.ndarray, res: float, x: float,
            y: float) -> float:  # pragma: no cover - compiled
    """Clearance of the cell containing ``(x, y)`` (0 outside the grid)."""
    col = int(np.floor((x - origin[0]) / res))
    row = int(np.floor((y - origin[1]) / res))
    if row < 0 or col < 0 or row >= field.shape[0] or col >= field.shape[1]:
        return 0.0
    return float(field[row, col])


@numba.njit(cache=True)
def _substep_kernel(pos, vel, wp, v0, radii, robot, field, origin, res, p,
                    dt):  # pragma: no cover - compiled
    """One social-force substep in place (the compiled twin of ``accelerations`` + Euler).

    ``robot`` is ``(x, y, radius, present)``; ``p`` packs the :class:`SocialForceConfig`
    scalars in ``SocialForceCrowd._kernel_params`` order. Returns ``(N,)`` bool: the move
    was free.
    """
    (tau, a_p, b_p, a_r, b_r, lam, k, evasion, a_o, b_o, h, vmax_factor,
     agent_r) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10],
                 p[11], p[12])
    n = pos.shape[0]
    acc = np.zeros((n, 2))
    m = n + 1 if robot[3] > 0.5 else n
    for i in range(n):
        gx, gy = wp[i, 0] - pos[i, 0], wp[i, 1] - pos[i, 1]
        gd = np.hypot(gx, gy)
        ex, ey = (gx / gd, gy / gd) if gd > 1e-6 else (0.0, 0.0)
        ax = (v0[i] * ex - vel[i, 0]) / tau
        ay = (v0[i] * ey - vel[i, 1]) / tau
        sp = np.hypot(vel[i, 0], vel[i, 1])
        hx, hy = (vel[i, 0], vel[i, 1]) if sp > 1e-3 else (ex, ey)
        hn = max(np.hypot(hx, hy), 1e-6)
        hx, hy = hx / hn, hy / hn
        for j in range(m):
            if j == i:
                continue
            if j < n:
                ox, oy, orad, strength, reach = pos[j, 0], pos[j, 1], radii[j], a_p, b_p
            else:
                ox, oy, orad, strength, reach = robot[0], robot[1], robot[2], a_r, b_r
            dx, dy = pos[i, 0] - ox, pos[i, 1] - oy
            d = np.hypot(dx, dy)
            safe = max(d, 1e-6)
            nx, ny = dx / safe, dy / safe
            mag = strength * np.exp((radii[i] + orad - d) / reach)
            cos_phi = -(nx * hx + ny * hy)
            weight = lam + (1.0 - lam) * 0.5 * (1.0 + cos_phi)
            push = mag * weight + k * max(radii[i] + orad - d, 0.0)
            side = evasion * mag * max(cos_phi, 0.0)
            ax += push * nx - side * ny
            ay += push * ny + side * nx
        d0 = _lookup(field, origin, res, pos[i, 0], pos[i, 1])
        gxo = (_lookup(field, origin, res, pos[i, 0] + h, pos[i, 1])
               - _lookup(field, origin, res, pos[i, 0] - h, pos[i, 1])) / (2.0 * h)
        gyo = (_lookup(field, origin, res, pos[i, 0], pos[i, 1] + h)
               - _lookup(field, origin, res, pos[i, 0], pos[i, 1] - h)) / (2.0 * h)
        gn = max(np.hypot(gxo, gyo), 1e-6)
        f = a_o * np.exp((radii[i] - d0) / b_o)
        acc[i, 0] = ax + f * gxo / gn
        acc[i, 1] = ay + f * gyo / gn
    ok = np.empty(n, dtype=np.bool_)
    for i in range(n):
        vx = vel[i, 0] + dt * acc[i, 0]
        vy = vel[i, 1] + dt * acc[i, 1]
        sp = np.hypot(vx, vy)
        vmax = vmax_factor * v0[i]
        if sp > vmax:
            vx, vy = vx * vmax / sp, vy * vmax / sp
        px, py = pos[i, 0] + dt * vx, pos[i, 1] + dt * vy
        ok[i] = _lookup(field, origin, res, px, py) > agent_r
        if ok[i]:
            pos[i, 0], pos[i, 1], vel[i, 0], vel[i, 1] = px, py, vx, vy
        else:
            vel[i, 0], vel[i, 1] = 0.0, 0.0
    return ok


@numba.njit(cache=True)
def _substeps_kernel(pos, vel, wp, v0, radii, phase, robot, field, origin, res, p, dt,
                     max_substeps, resample):  # pragma: no cover - compiled
    """Up to ``max_substeps`` substeps in place: dynamics, gait phase, waypoint arrivals.

    Stops after the first substep in which an agent reached its waypoint or was blocked
    (its flag in ``resample (N,)`` bool is set; the caller samples new waypoints before
    resuming). Returns the number of substeps run.
    """
    step_length, reached_m = p[13], p[14]
    n = pos.shape[0]
    for k in range(max_substeps):
        ok = _substep_kernel(pos, vel, wp, v0, radii, robot, field, origin, res, p, dt)
        stop = False
        for i in range(n):
            speed = np.sqrt(vel[i, 0] * vel[i, 0] + vel[i, 1] * vel[i, 1])
            phase[i] = np.mod(phase[i] + np.pi * speed * dt / step_length, 2.0 * np.pi)
            gx, gy = wp[i, 0] - pos[i, 0], wp[i, 1] - pos[i, 1]
            resample[i] = (not ok[i]) or np.sqrt(gx * gx + gy * gy) < reached_m
            stop = stop or resample[i]
        if stop:
            return k + 1
    return max_substeps


@numba.njit(cache=True)
def _waypoint_ok_kernel(origin, target, radius, spawn_radius, bounds, keep_out, steps, field,
                        grid_origin, res):  # pragma: no cover - compiled
    """The compiled twin of ``_clear(target) and line_of_sight(origin, target)``.

    ``target`` ``(2,)`` must lie within ``bounds`` ``(2, 2)`` shrunk by ``radius``, have
    clearance above ``spawn_radius`` and stay outside the ``keep_out`` ``(M, 3)`` discs; the
    ``steps`` samples ``np.linspace(0, 1, steps)`` of origin -> target must have clearance
    above ``radius`` (clearance of a cell from ``field``, 0 off the grid).
    """
    for k in range(2):
        if not (target[k] >= bounds[0, k] + radius and target[k] <= bounds[1, k] - radius):
            return False
    if not _lookup(field, grid_origin, res, target[0], target[1]) > spawn_radius:
        return False
    for j in range(keep_out.shape[0]):
        dx, dy = target[0] - keep_out[j, 0], target[1] - keep_out[j, 1]
        if not np.sqrt(dx * dx + dy * dy) > keep_out[j, 2] + radius:
            return False
    step = 1.0 / (steps - 1)
    ex, ey = target[0] - origin[0], target[1] - origin[1]
    for i in range(steps):
        t = 1.0 if i == steps - 1 else i * step
        if not _lookup(field, grid_origin, res, origin[0] + t * ex, origin[1] + t * ey) > radius:
            return False
    return True
