"""NavBench-GS as a gymnasium environment, for RL post-training (RAM + PPO).

Observation (``Dict``), exactly what the policy consumes:

- ``frames``: ``(T, 3, S, S)`` float32 in [0, 1], the last ``T`` camera images at the
  control rate, oldest first, each through :func:`s2e_policy.preprocess.preprocess_image`
  (the one preprocessing the robot runs); the first image is repeated after a reset.
- ``goal``: ``(3,)`` float32 ``[clip(d, 0.1, 200)/200, cos theta, sin theta]`` of the goal
  in the robot frame (:func:`s2e_policy.geometry.encode_goal`).

Action: ``velocity`` - body-frame ``(vx, vy, wz)`` (m/s, m/s, rad/s), or ``waypoints`` -
``(W, 2)`` positions in base_link one control period apart, turned into a command by the
paper's controller (:func:`s2e_policy.controller.direct_command`). Either way the embodiment's
velocity and acceleration limits apply.

Reward: the sum of the paper's terms, each also reported in ``info["reward_terms"]``:
progress (geodesic metres gained), arrival bonus, collision penalty per contact event,
sidewalk centring (on generated streets, which know where their sidewalks are; 0 elsewhere),
social compliance (intrusion into pedestrians' personal space), smoothness (change of
command) and clearance (the robot's edge within a margin of a static obstacle; weight 0 by
default). Privileged state (pose, geodesic distance, pedestrians) is in ``info`` too, and
``info["critic_state"]`` condenses it for an asymmetric critic (:data:`CRITIC_STATE`).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import numba
import numpy as np
from gymnasium import spaces

from s2e_policy.controller import VelocityLimiter, direct_command
from s2e_policy.embodiment import Embodiment, load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.geometry import encode_goal, world_to_robot
from s2e_policy.preprocess import preprocess_image
from s2e_sim_bridge.envs.vector import GroupedAsyncVectorEnv
from s2e_sim_bridge.navbench.episodes import Episode, sample_episodes
from s2e_sim_bridge.navbench.obstacles import obstacle_occupancy_fn
from s2e_sim_bridge.navbench.runner import load_navbench_scene
from s2e_sim_bridge.navbench.sim import NavBenchSim, Observation, SimConfig
from s2e_sim_bridge.navbench.tasks import get_task
from s2e_sim_bridge.scene import GaussianScene

ACTION_TYPES = ("velocity", "waypoints")
SceneArg = GaussianScene | str | Path
STREET_POOL_SEED_STRIDE = 1_000_003
"""Episode-pool seeds of one environment's streets are ``seed + k * stride`` (street ``k``):
street 0 keeps the single-street pool, and the environments of a vector env (seeds
``seed, seed + 1, ...``) never share a pool."""

CRITIC_STATE = ("geodesic_to_goal", "clearance", "nearest_pedestrian", "time")
"""The entries of ``info["critic_state"]``, a ``(4,)`` float32 in [0, 1] of privileged state
the policy does not see, for a critic that may (asymmetric actor-critic): the geodesic
distance to the goal / 50 m, the footprint edge's clearance to static obstacles / 2 m, the
distance from the base to the nearest pedestrian's centre / 5 m (1 without pedestrians), and
the episode's time / its time limit; each clipped to [0, 1]."""
CRITIC_STATE_SCALES = (50.0, 2.0, 5.0)


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward terms (per control step unless stated).

    ``clearance_per_m`` weighs, after each control step, the metres by which the robot's
    footprint edge is closer than ``clearance_margin_m`` to an occupied cell of the
    episode's collision world (its obstacles included): ``w * max(0, margin - (d - r))``
    with ``d`` the distance field at the base and ``r`` the footprint radius. It is 0 by
    default (not one of the paper's terms): a dense warning before the collision penalty,
    which comes once, at the contact.

    ``progress_max_mps`` caps the progress credited per control step at that speed times
    the control period: driving towards the goal faster than it earns no more progress
    reward, while moving away is charged in full. ``None`` (the default) credits all
    progress, so a faster robot earns more per step.

    ``overspeed_per_mps`` weighs, each control step, the m/s by which the commanded speed
    (after the embodiment's limits) exceeds the embodiment's ``nominal_speed_mps``, its
    cruise speed: 0 by default. A waypoint policy commands its speed through the distance
    of its first waypoint, up to the embodiment's maximum.
    """

    progress_per_m: float = 1.0
    arrival: float = 10.0
    collision_per_event: float = -5.0
    sidewalk_centring: float = -0.05
    social_per_m: float = -0.5
    personal_space_m: float = 1.0
    smoothness: float = -0.05
    clearance_per_m: float = 0.0
    clearance_margin_m: float = 0.3
    progress_max_mps: float | None = None
    overspeed_per_mps: float = 0.0

    def __post_init__(self) -> None:
        if not self.clearance_margin_m >= 0.0:
            raise S2EError(f"RewardConfig.clearance_margin_m must be >= 0 m, got "
                           f"{self.clearance_margin_m}")
        if self.progress_max_mps is not None and not self.progress_max_mps > 0.0:
            raise S2EError(f"RewardConfig.progress_max_mps must be > 0 m/s or None (no cap), "
                           f"got {self.progress_max_mps}")


@dataclass(frozen=True)
class EnvConfig:
    """What the environment simulates and how it presents it to the agent.

    Attributes:
        task: NavBench-GS task name.
        embodiment: embodiment name or YAML path.
        scene_seed: seed of the generated street when no scene is given (the first one
            when ``scenes`` > 1).
        scenes: generated streets the environment trains on, seeds ``scene_seed``,
            ``scene_seed + 1``, ...; each reset draws its episode from all of them, so one
            environment sees every street. Only with no scene given.
        context_frames: ``T`` images in the observation.
        image_size_px: ``S`` of the square policy input.
        action_type: ``velocity`` or ``waypoints``.
        num_waypoints: ``W`` for the ``waypoints`` action.
        episode_pool_size: episodes sampled once at construction per scene; resets draw
            from them.
        episode_cache_size: at most this many episodes, in all, whose obstacles, collision
            world, goal field and physics the simulators keep (``NavBenchSim``'s
            ``episode_cache_size``), split between the scenes as evenly as it divides and
            never more than a scene's pool: a cached episode resets several times faster,
            bit-identically. About 10 MB each for ``obstacle_pedestrian`` on the generated
            streets; 0 turns the cache off. With the default 8, a one-street env with a pool
            of up to 8 caches its whole pool; a larger pool, drawn uniformly, hits the
            cache in 8 of every ``pool`` resets.
        sim: simulator settings (rates, render size, backend).
        reward: reward weights.
        terminate_on_collision: ``True`` ends an episode (``terminated``, a failure) at its
            first collision, ``False`` counts collisions and goes on; ``None`` keeps the
            task's own rule (NavBench-GS tasks count and go on, as the paper's metric does).
            RL training often ends episodes at a collision: a robot pressed against an
            obstacle otherwise spends the rest of the episode learning nothing.
    """

    task: str = "empty"
    embodiment: str = "wheeled"
    scene_seed: int = 0
    scenes: int = 1
    context_frames: int = 5
    image_size_px: int = 96
    action_type: str = "velocity"
    num_waypoints: int = 5
    episode_pool_size: int = 16
    episode_cache_size: int = 8
    sim: SimConfig = dataclasses.field(default_factory=SimConfig)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    terminate_on_collision: bool | None = None


def _street_sidewalks(scene: GaussianScene) -> tuple[float, float] | None:
    """``(road_half_width_m, sidewalk_width_m)`` of a generated street, else None."""
    generator = scene.meta.get("generator", {})
    if generator.get("name") != "street":
        return None
    cfg = generator["config"]
    return cfg["road_width_m"] / 2.0, (cfg["width_m"] - cfg["road_width_m"]) / 2.0


class NavBenchEnv(gym.Env):
    """One robot in one NavBench-GS scene (see the module docstring for spaces and rewards).

    Args:
        scene: a scene or scene file, a list of them (each reset draws its episode from all
            of their pools), or None for the generated streets (``scene_seed``, ``scenes``).
        config: environment settings.
        seed: seed of the episode pool (``reset(seed=...)`` seeds the draws from it); the
            pool of street ``k`` is sampled with seed ``seed + k * STREET_POOL_SEED_STRIDE``.

    Attributes:
        sim: the simulator of the current episode's scene.
        sidewalks: its ``(road_half_width_m, sidewalk_width_m)``, or None.
        pool: ``(scene index, episode)`` pairs the resets draw from.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, scene: SceneArg | Sequence[SceneArg] | None = None,
                 config: EnvConfig | None = None, seed: int = 0,
                 render_mode: str | None = None) -> None:
        self.config = cfg = config or EnvConfig()
        if cfg.action_type not in ACTION_TYPES:
            raise S2EError(f"action_type {cfg.action_type!r}; expected one of {ACTION_TYPES}")
        if cfg.scenes < 1:
            raise S2EError(f"EnvConfig.scenes must be >= 1, got {cfg.scenes}")
        if scene is None:
            scenes = [load_navbench_scene(None, cfg.scene_seed + k) for k in range(cfg.scenes)]
        elif cfg.scenes != 1:
            raise S2EError(f"EnvConfig.scenes is {cfg.scenes}, but scenes were given; it "
                           "counts generated streets (scene=None)")
        else:
            given = list(scene) if isinstance(scene, (list, tuple)) else [scene]
            if not given:
                raise S2EError("NavBenchEnv: the list of scenes is empty")
            scenes = [s if isinstance(s, GaussianScene) else load_navbench_scene(s)
                      for s in given]
        self.render_mode = render_mode
        self.embodiment: Embodiment = load_embodiment(cfg.embodiment)
        self.task = get_task(cfg.task)
        if cfg.terminate_on_collision is not None:
            self.task = dataclasses.replace(
                self.task, terminate_on_collision=bool(cfg.terminate_on_collision))
        sim_config = dataclasses.replace(cfg.sim, render=True)
        if cfg.episode_cache_size < 0:
            raise S2EError(f"EnvConfig.episode_cache_size must be >= 0 (0: no cache), got "
                           f"{cfg.episode_cache_size}")
        # Resets redraw the pools' episodes: each scene's sim keeps its share of the cache
        # (the first `cache % scenes` scenes one more), at most its pool.
        share, extra = divmod(cfg.episode_cache_size, len(scenes))
        self._scenes = [(NavBenchSim(s, self.embodiment, sim_config,
                                     episode_cache_size=min(cfg.episode_pool_size,
                                                            share + (k < extra))),
                         _street_sidewalks(s)) for k, s in enumerate(scenes)]
        self.sim, self.sidewalks = self._scenes[0]
        e = self.embodiment
        self.pool: list[tuple[int, Episode]] = [
            (k, episode) for k, (sim, _) in enumerate(self._scenes)
            for episode in sample_episodes(
                sim.base_occupancy, self.task, cfg.episode_pool_size,
                seed + k * STREET_POOL_SEED_STRIDE, e.footprint_radius_m, e.nominal_speed_mps,
                obstacle_occupancy_fn(sim.scene.info.floor_height_m, cfg.sim.occupancy))]
        s, t = cfg.image_size_px, cfg.context_frames
        self.observation_space = spaces.Dict({
            "frames": spaces.Box(0.0, 1.0, (t, 3, s, s), np.float32),
            "goal": spaces.Box(-1.0, 1.0, (3,), np.float32),
        })
        vmax = np.array([e.max_linear_mps, e.max_lateral_mps, e.max_angular_radps], np.float32)
        if cfg.action_type == "velocity":
            self.action_space = spaces.Box(-vmax, vmax, (3,), np.float32)
        else:
            reach = e.max_linear_mps * cfg.sim.control_period_s * cfg.num_waypoints
            self.action_space = spaces.Box(-reach, reach, (cfg.num_waypoints, 2), np.float32)
        self.limiter = VelocityLimiter(e)
        self._frames: deque[np.ndarray] = deque(maxlen=t)

    # ------------------------------------------------------------------ helpers
    def _observation(self, obs: Observation) -> dict[str, np.ndarray]:
        self._frames.append(preprocess_image(obs.rgb, self.config.image_size_px))
        while len(self._frames) < self._frames.maxlen:
            self._frames.appendleft(self._frames[0])
        goal = encode_goal(world_to_robot(obs.goal_xy, obs.pose))
        return {"frames": np.stack(self._frames), "goal": goal}  # float32 (preprocess_image)

    def _info(self, obs: Observation) -> dict:
        return {"pose": obs.pose.copy(), "geodesic_to_goal_m": obs.geodesic_to_goal_m,
                "pedestrians_xy": obs.pedestrians_xy.copy(),
                "episode_id": self.sim.episode.episode_id, "scene_index": self._scene_index,
                "critic_state": self._critic_state(obs)}

    def _clearance_m(self, pose: np.ndarray) -> float:
        """Clearance (m) of the footprint's edge at ``pose`` ``(x, y, yaw)`` (world).

        The distance to the nearest occupied cell of the episode's collision world, obstacles
        included, less the footprint radius (negative when the footprint overlaps one).
        """
        return (float(self.sim.occupancy.distance_to_obstacle(pose[:2]))
                - self.embodiment.footprint_radius_m)

    def _critic_state(self, obs: Observation) -> np.ndarray:
        """``(4,)`` float32 privileged state in [0, 1], the entries of :data:`CRITIC_STATE`."""
        geodesic_scale, clearance_scale, pedestrian_scale = CRITIC_STATE_SCALES
        geodesic = obs.geodesic_to_goal_m if np.isfinite(obs.geodesic_to_goal_m) \
            else geodesic_scale
        nearest = (float(np.min(np.linalg.norm(obs.pedestrians_xy - obs.pose[:2], axis=1)))
                   if len(obs.pedestrians_xy) else pedestrian_scale)
        state = [geodesic / geodesic_scale, self._clearance_m(obs.pose) / clearance_scale,
                 nearest / pedestrian_scale, obs.time_s / self.sim.episode.time_limit_s]
        return np.clip(np.asarray(state, dtype=np.float32), 0.0, 1.0)

    def _sidewalk_term(self, y: float) -> float:
        """0 on a sidewalk's centre line, 1 at its edges or anywhere on the road."""
        if self.sidewalks is None:
            return 0.0
        road_half, width = self.sidewalks
        if abs(y) <= road_half:
            return 1.0
        return min(1.0, abs(abs(y) - (road_half + width / 2.0)) / (width / 2.0))

    def _clearance_intrusion_m(self, pose: np.ndarray) -> float:
        """Metres of the clearance margin the footprint at ``pose`` leaves uncovered.

        ``pose`` is ``(x, y, yaw)`` in the world; the margin is measured from the footprint's
        edge to the episode's static collision world (obstacles included); 0 outside it.
        """
        return max(0.0, self.config.reward.clearance_margin_m - self._clearance_m(pose))

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode: a draw from the pool, or ``options={"episode": Episode}``.

        The given episode runs on scene ``options["scene_index"]`` (default 0).
        """
        super().reset(seed=seed)
        options = options or {}
        if options.get("episode") is not None:
            index, episode = int(options.get("scene_index", 0)), options["episode"]
            if not 0 <= index < len(self._scenes):
                raise S2EError(f"reset: scene_index {index} is not one of this environment's "
                               f"{len(self._scenes)} scenes")
        else:
            index, episode = self.pool[int(self.np_random.integers(len(self.pool)))]
        self._scene_index = index
        self.sim, self.sidewalks = self._scenes[index]
        obs = self.sim.reset(episode, self.task)
        self.limiter.reset()
        self._frames.clear()
        self._last_cmd = np.zeros(3)
        self._last_obs = obs
        return self._observation(obs), self._info(obs)

    def step(self, action):
        """Apply the action for one control period; returns the gymnasium 5-tuple."""
        cfg, dt = self.config, self.config.sim.control_period_s
        action = np.asarray(action, dtype=np.float64)
        if not np.all(np.isfinite(action)):
            raise S2EError(f"NavBenchEnv.step: action must be finite, got {action.tolist()}")
        command = action.reshape(3) if cfg.action_type == "velocity" else direct_command(
            action.reshape(cfg.num_waypoints, 2), dt)
        command = self.limiter(command, dt)
        before = self._last_obs.geodesic_to_goal_m
        obs, step = self.sim.step(command)
        w = cfg.reward
        progress = before - obs.geodesic_to_goal_m
        progress = progress if np.isfinite(progress) else 0.0
        if w.progress_max_mps is not None:
            progress = min(progress, w.progress_max_mps * dt)
        terms = {
            "progress": w.progress_per_m * progress,
            "arrival": w.arrival if step.termination == "success" else 0.0,
            "collision": w.collision_per_event * (step.static_collisions
                                                  + step.pedestrian_collisions),
            "sidewalk_centring": w.sidewalk_centring * self._sidewalk_term(obs.pose[1]),
            "social": w.social_per_m * float(np.sum(np.maximum(
                0.0, w.personal_space_m - np.linalg.norm(obs.pedestrians_xy - obs.pose[:2],
                                                         axis=1)))),
            "smoothness": w.smoothness * float(np.sum((command - self._last_cmd) ** 2)),
            "clearance": w.clearance_per_m * self._clearance_intrusion_m(obs.pose),
            "overspeed": w.overspeed_per_mps * max(
                0.0, math.hypot(command[0], command[1]) - self.embodiment.nominal_speed_mps),
        }
        self._last_cmd, self._last_obs = command, obs
        info = self._info(obs) | {"reward_terms": terms, "termination": step.termination,
                                  "command": command}
        terminated = step.termination in ("success", "collision")
        truncated = step.termination in ("timeout", "stuck")
        return self._observation(obs), float(sum(terms.values())), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The last camera image ``(H, W, 3)`` uint8 (``rgb_array`` mode)."""
        return self._last_obs.rgb if self.render_mode == "rgb_array" else None


ENV_ID = "NavBenchGS-v0"


def make_vector_env(num_envs: int, asynchronous: bool = True,
                    scene: SceneArg | Sequence[SceneArg] | None = None,
                    config: EnvConfig | None = None, seed: int = 0,
                    num_workers: int | None = None) -> gym.vector.VectorEnv:
    """``num_envs`` NavBench-GS environments, in parallel processes when ``asynchronous``.

    Episode pools are seeded ``seed, seed + 1, ...`` so the copies see different episodes.
    Asynchronous envs run in ``num_workers`` groups (default: one per core, at most one per
    env), each stepping its envs in turn (:class:`.GroupedAsyncVectorEnv`; same results as
    the synchronous env). The first group runs in this process while ``num_workers - 1``
    worker processes step the others; every group renders on its share of the cores (see
    :func:`_worker_env`).
    """
    if asynchronous:
        cores = os.cpu_count() or 1
        workers = min(num_envs, cores) if num_workers is None else num_workers
        threads = max(1, cores // max(workers, 1))
        fns = [partial(_worker_env, scene, config, seed + i, threads) for i in range(num_envs)]
        return GroupedAsyncVectorEnv(fns, workers, parent_group=True, parent_threads=threads)
    fns = [partial(NavBenchEnv, scene, config, seed + i) for i in range(num_envs)]
    return gym.vector.SyncVectorEnv(fns)


def _worker_env(scene: SceneArg | Sequence[SceneArg] | None, config: EnvConfig | None,
                seed: int, threads: int) -> NavBenchEnv:
    """An env for a vector-env subprocess whose compiled kernels use ``threads`` threads.

    Subprocesses share the machine's cores: each numba parallel region (the cpu renderer)
    runs on its share, so the workers do not oversubscribe the cores. In the parent (the
    vector env's own group) the thread count is left alone: the vector env lowers it only
    while it steps its group, and the parent renders on all its threads otherwise (e.g.
    the RL runner's held-out evaluation).
    """
    if multiprocessing.parent_process() is not None:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return NavBenchEnv(scene, config, seed=seed)
