"""The NavBench-GS episode simulator: scene + obstacles + crowd + physics + camera.

Plain Python over numpy (no ROS, no gymnasium): the ``s2e navbench`` runner, the gymnasium
environment and the ROS bridge node all drive this one core. World frame: z up, metres,
radians; the robot's odometry is its true world pose (``odom`` == world in the simulator).

One control step (``1 / control_rate_hz`` seconds) advances the crowd, then the physics
(several fixed substeps, with the pedestrians' capsules following the crowd), then renders
the camera at the new pose.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from s2e_policy.embodiment import Embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench.episodes import Episode, ObstacleSpec
from s2e_sim_bridge.navbench.metrics import EpisodeRecord
from s2e_sim_bridge.navbench.obstacles import obstacle_scene, with_obstacles
from s2e_sim_bridge.navbench.tasks import TaskConfig
from s2e_sim_bridge.pedestrians.bodies import build_template, pose_bodies, sample_palettes
from s2e_sim_bridge.pedestrians.social_force import SocialForceConfig, SocialForceCrowd
from s2e_sim_bridge.physics.sim import NavPhysics, PhysicsConfig
from s2e_sim_bridge.render import camera_from_pose, intrinsics_from_fov, render, rgb_to_uint8
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.world.geodesics import GeodesicField, geodesic_field
from s2e_sim_bridge.world.occupancy import OccupancyConfig, OccupancyMap, build_occupancy

# Pedestrians do not spawn within these distances (m) of the robot's start and the goal.
PEDESTRIAN_KEEP_OUT_START_M = 2.0
PEDESTRIAN_KEEP_OUT_GOAL_M = 1.0


@dataclass(frozen=True)
class SimConfig:
    """Rates, camera and sub-model settings of the simulator.

    Attributes:
        control_rate_hz: policy / camera rate (the paper's policy acts at 5 Hz).
        render_width_px: rendered image width.
        render_height_px: rendered image height; None keeps the embodiment camera's aspect
            ratio (the runtime's preprocessing crops it exactly as on the robot). The
            horizontal field of view is the embodiment's either way.
        render: render camera images (policies that only use privileged state can skip it).
        backend: renderer backend (``cpu`` or ``cuda``).
        render_lod_px: level-of-detail threshold of the ``cpu`` renderer (pixels): far parts
            of the scene are drawn as merged proxy Gaussians whose voxels project to at most
            this many pixels (``render``'s ``lod_px``). With the default 1 px, a drive down
            the generated street renders at 29 dB PSNR (64x64) / 37 dB (128x128) against the
            exact images, drawing 3.5x / 1.6x fewer rows at 2.1x / 1.25x the frame rate
            (``benchmarks/render.py``); 0 renders exactly. The ``cuda`` backend ignores it.
        sky_rgb: colour behind the scene (what the camera sees where no Gaussian is).
        occupancy: collision-world settings.
        physics: MuJoCo settings.
        crowd: social-force settings.
    """

    control_rate_hz: float = 5.0
    render_width_px: int = 128
    render_height_px: int | None = None
    render: bool = True
    backend: str = "cpu"
    render_lod_px: float = 1.0
    sky_rgb: tuple[float, float, float] = (0.62, 0.74, 0.88)
    occupancy: OccupancyConfig = field(default_factory=OccupancyConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    crowd: SocialForceConfig = field(default_factory=SocialForceConfig)

    @property
    def control_period_s(self) -> float:
        """Seconds per control step."""
        return 1.0 / self.control_rate_hz


@dataclass
class Observation:
    """What the robot and (privileged) the evaluator see after a reset or a step.

    Attributes:
        time_s: simulation time since the episode start.
        rgb: ``(H, W, 3)`` uint8 camera image, or None when rendering is off.
        pose: ``(3,)`` world / odometry ``(x, y, yaw)``.
        velocity: ``(3,)`` measured body velocity ``(vx, vy, wz)`` in base_link.
        goal_xy: ``(2,)`` world goal.
        pedestrians_xy: ``(P, 2)`` world pedestrian positions (privileged).
        geodesic_to_goal_m: geodesic distance to the goal (privileged).
    """

    time_s: float
    rgb: np.ndarray | None
    pose: np.ndarray
    velocity: np.ndarray
    goal_xy: np.ndarray
    pedestrians_xy: np.ndarray
    geodesic_to_goal_m: float


@dataclass
class StepInfo:
    """Outcome of one control step."""

    done: bool
    termination: str | None
    static_collisions: int
    pedestrian_collisions: int
    distance_to_goal_m: float


@dataclass(frozen=True)
class EpisodeWorld:
    """What a reset derives from an episode's content alone (and the sim's fixed settings).

    Attributes:
        obstacles: Gaussians of the episode's obstacle boxes (None without obstacles).
        occupancy: the collision world with the obstacles' footprints added (the scene's
            own map, shared, without obstacles).
        goal_field: geodesic distance to the goal for the robot's footprint radius.
        physics: the MuJoCo model of ``occupancy`` with the episode's pedestrian capsules;
            :meth:`NavPhysics.reset` starts each run of it from scratch.
    """

    obstacles: GaussianScene | None
    occupancy: OccupancyMap
    goal_field: GeodesicField
    physics: NavPhysics


def episode_world_key(episode: Episode) -> bytes:
    """Cache key of the fields an :class:`EpisodeWorld` depends on: goal, obstacles, crowd size.

    The pickled bytes of ``(goal, obstacles, num_pedestrians)``: they carry every digit, the
    sign of zeros and the scalar types, so two episodes share a key only when those fields
    are the same values of the same types (a ``float32`` goal and its ``float64`` value get
    different keys). The start, time limit, pedestrian seed and id do not enter it.
    """
    return pickle.dumps((episode.goal, episode.obstacles, episode.num_pedestrians),
                        protocol=pickle.HIGHEST_PROTOCOL)


class NavBenchSim:
    """Runs NavBench-GS episodes of one scene for one embodiment.

    Args:
        scene: the static scene (with ``scene.info``: floor height, navigable bounds).
        embodiment: the robot.
        config: rates, camera and sub-model settings.
        episode_cache_size: how many episodes' :class:`EpisodeWorld` (obstacle Gaussians,
            occupancy with obstacles, goal geodesic field, MuJoCo physics) to keep, least
            recently reset evicted first, so that resetting an episode again skips building
            them: most of a reset's time (on the default 100k-Gaussian street a pooled
            gymnasium reset drops from about 46 ms to 7 ms). Results are bit-identical to a
            fresh reset: the crowd and the pedestrians' palettes are still drawn from the
            episode's seed at each reset, and the reused physics is reset from scratch. A
            cached episode's objects (``occupancy``, ``goal_field``, ``physics``,
            ``obstacles``) are shared by its runs: read them, do not modify them. Memory:
            mostly one float64 per occupancy cell for the geodesic field plus, with
            obstacles, a bool and a float32 per cell for the occupancy and the obstacles'
            Gaussians, and the MuJoCo model; about 10 MB per ``obstacle_pedestrian`` episode
            on the generated streets (measured over 200 resets). 0 (the default) caches
            nothing, for runs that reset each episode once; the gymnasium environment, which
            redraws a fixed pool, passes its share of ``EnvConfig.episode_cache_size``.

    Raises:
        S2EError: if the scene has no info or ``episode_cache_size`` is negative.
    """

    def __init__(self, scene: GaussianScene, embodiment: Embodiment,
                 config: SimConfig | None = None, *, episode_cache_size: int = 0) -> None:
        if scene.info is None:
            raise S2EError("NavBench-GS needs a scene with info (floor height, navigable "
                           "bounds): load it with load_scene() or generate it")
        if (isinstance(episode_cache_size, bool)
                or not isinstance(episode_cache_size, int | np.integer)
                or episode_cache_size < 0):
            raise S2EError(f"NavBenchSim: episode_cache_size must be an integer >= 0 (0: no "
                           f"cache), got {episode_cache_size!r}")
        self._episode_cache_size = int(episode_cache_size)
        self._episode_worlds: OrderedDict[bytes, EpisodeWorld] = OrderedDict()
        # the physics of episodes without obstacles, by pedestrian count
        self._shared_physics: dict[int, NavPhysics] = {}
        self.scene = scene
        self.embodiment = embodiment
        self.config = config or SimConfig()
        self.base_occupancy: OccupancyMap = build_occupancy(scene, config=self.config.occupancy)
        cam = embodiment.camera
        self.width_px = int(self.config.render_width_px)
        self.height_px = (
            max(1, round(self.width_px * cam.image_height_px / cam.image_width_px))
            if self.config.render_height_px is None else int(self.config.render_height_px))
        self.K = intrinsics_from_fov(self.width_px, self.height_px, cam.hfov_deg)
        self._template = build_template()
        self.render_images = self.config.render
        # Expected depth (H, W) float32 metres of the latest camera image (None before one).
        self.last_depth_m: np.ndarray | None = None
        self.episode: Episode | None = None

    @property
    def episode_cache_size(self) -> int:
        """Most episodes the episode cache holds (0: none; see the class docstring)."""
        return self._episode_cache_size

    # ------------------------------------------------------------------ episode
    def occupancy_with(self, obstacles: tuple[ObstacleSpec, ...] | list[ObstacleSpec],
                       scene: GaussianScene | None = None) -> OccupancyMap:
        """The collision world with an episode's obstacles added.

        ``scene``: their :func:`obstacle_scene`, when already built.
        """
        return with_obstacles(self.base_occupancy, obstacles, self.scene.info.floor_height_m,
                              self.config.occupancy, scene)

    def episode_world(self, episode: Episode) -> EpisodeWorld:
        """The obstacles, collision world, goal field and physics of ``episode``.

        Served from the episode cache when ``episode_cache_size`` > 0 and an episode with
        the same :func:`episode_world_key` was reset recently (then marked most recently
        used), otherwise built (and cached, evicting the least recently used entry when
        full). The physics is returned as last used: :meth:`reset` resets it. Episodes
        without obstacles share one physics per pedestrian count, cached or not: their
        collision world is the scene's own, and building the MuJoCo model was a third of
        such an episode's build (7 of 21 ms on the default street).
        """
        key = episode_world_key(episode) if self.episode_cache_size else None
        world = self._episode_worlds.get(key) if key is not None else None
        if world is not None:
            self._episode_worlds.move_to_end(key)
            return world
        cfg = self.config
        obstacles = (obstacle_scene(episode.obstacles, self.scene.info.floor_height_m)
                     if episode.obstacles else None)
        occupancy = self.occupancy_with(episode.obstacles, obstacles)
        goal_field = geodesic_field(occupancy, np.asarray(episode.goal, dtype=np.float64),
                                    self.embodiment.footprint_radius_m)
        # Without obstacles the collision world is the scene's own, so the MuJoCo model
        # depends only on the pedestrian count: such episodes share one (reset() resets it)
        shared = occupancy is self.base_occupancy
        physics = self._shared_physics.get(episode.num_pedestrians) if shared else None
        if physics is None:
            physics_cfg = dataclasses.replace(cfg.physics,
                                              pedestrian_radius_m=cfg.crowd.agent_radius_m)
            physics = NavPhysics(occupancy, self.embodiment, physics_cfg,
                                 num_pedestrians=episode.num_pedestrians,
                                 floor_z_m=self.scene.info.floor_height_m)
            if shared:
                self._shared_physics[episode.num_pedestrians] = physics
        world = EpisodeWorld(obstacles, occupancy, goal_field, physics)
        if key is not None:
            self._episode_worlds[key] = world
            while len(self._episode_worlds) > self.episode_cache_size:
                self._episode_worlds.popitem(last=False)
        return world

    def cached_episodes(self) -> int:
        """How many episodes' :class:`EpisodeWorld` the episode cache holds."""
        return len(self._episode_worlds)

    def reset(self, episode: Episode, task: TaskConfig) -> Observation:
        """Start ``episode`` of ``task``: obstacles, crowd and robot at the start pose.

        The episode's obstacles, collision world, goal field and physics come from
        :meth:`episode_world` (cached when ``episode_cache_size`` > 0); the crowd and its
        palettes are drawn afresh from ``episode.pedestrian_seed``.
        """
        cfg = self.config
        world = self.episode_world(episode)
        self.episode, self.task = episode, task
        self.obstacles: GaussianScene | None = world.obstacles
        self.occupancy = world.occupancy
        self.goal_xy = np.asarray(episode.goal, dtype=np.float64)
        self.goal_field: GeodesicField = world.goal_field
        rng = np.random.default_rng(episode.pedestrian_seed)
        keep_out = np.array([[*episode.start[:2], PEDESTRIAN_KEEP_OUT_START_M],
                             [*episode.goal, PEDESTRIAN_KEEP_OUT_GOAL_M]])
        self.crowd = SocialForceCrowd(self.occupancy, self.occupancy.bounds_m,
                                      episode.num_pedestrians, rng, cfg.crowd,
                                      keep_out=keep_out)
        self.palettes = sample_palettes(episode.num_pedestrians, rng)
        self.physics: NavPhysics = world.physics
        self.physics.reset(episode.start, self.crowd.state.positions)
        self.static_collisions = 0
        self.pedestrian_collisions = 0
        self.done = False
        self.termination: str | None = None
        obs = self._observe(0.0)
        self._history = [(0.0, obs.pose.copy(), obs.geodesic_to_goal_m,
                          self._nearest_pedestrian(obs.pose))]
        return obs

    def pedestrian_scene(self) -> GaussianScene | None:
        """Gaussian bodies of the crowd at its current state (None without pedestrians)."""
        s = self.crowd.state
        if len(s) == 0:
            return None
        return pose_bodies(self._template, s.positions, s.headings, s.gait_phase,
                           self.palettes, self.scene.info.floor_height_m)

    def render_camera(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 image of the robot's camera at the current state."""
        position, yaw, pitch, roll = self.physics.camera_pose()
        viewmat = camera_from_pose(*position, yaw, pitch, roll)
        extra = [s for s in (self.obstacles, self.pedestrian_scene()) if s is not None]
        out = render(self.scene, viewmat, self.K, self.width_px, self.height_px,
                     backend=self.config.backend, background=self.config.sky_rgb,
                     extra=extra, lod_px=self.config.render_lod_px)
        self.last_depth_m = out.depth
        return rgb_to_uint8(out.rgb)

    def _nearest_pedestrian(self, pose: np.ndarray) -> float:
        s = self.crowd.state
        if len(s) == 0:
            return float("inf")
        return float(np.min(np.linalg.norm(s.positions - pose[:2], axis=1)))

    def _observe(self, time_s: float) -> Observation:
        pose = self.physics.pose()
        return Observation(
            time_s=time_s,
            rgb=self.render_camera() if self.render_images else None,
            pose=pose,
            velocity=self.physics.body_velocity(),
            goal_xy=self.goal_xy.copy(),
            pedestrians_xy=self.crowd.state.positions.copy(),
            geodesic_to_goal_m=float(self.goal_field.distance_at(pose[:2])),
        )

    # ------------------------------------------------------------------ stepping
    def step(self, cmd: np.ndarray | tuple[float, float, float]) -> tuple[Observation, StepInfo]:
        """Apply a body-frame velocity command ``(vx, vy, wz)`` for one control period."""
        if self.episode is None:
            raise S2EError("NavBenchSim.step() called before reset()")
        if self.done:
            raise S2EError(f"episode {self.episode.episode_id} is over ({self.termination}); "
                           "call reset()")
        dt = self.config.control_period_s
        robot_xy = self.physics.pose()[:2]
        self.crowd.step(dt, robot_xy=robot_xy, robot_radius=self.embodiment.footprint_radius_m)
        result = self.physics.step(cmd, dt, self.crowd.state.positions)
        self.static_collisions += result.static_contact_events
        self.pedestrian_collisions += result.pedestrian_contact_events
        obs = self._observe(result.time_s)
        self._history.append((result.time_s, obs.pose.copy(), obs.geodesic_to_goal_m,
                              self._nearest_pedestrian(obs.pose)))
        distance = float(np.linalg.norm(obs.pose[:2] - self.goal_xy))
        task = self.task
        collided = result.static_contact_events + result.pedestrian_contact_events > 0
        if distance <= task.goal_radius_m:
            self.termination = "success"
        elif collided and task.terminate_on_collision:
            self.termination = "collision"
        elif result.time_s >= self.episode.time_limit_s - 1e-9:
            self.termination = "timeout"
        elif self._stuck(result.time_s):
            self.termination = "stuck"
        self.done = self.termination is not None
        return obs, StepInfo(done=self.done, termination=self.termination,
                             static_collisions=result.static_contact_events,
                             pedestrian_collisions=result.pedestrian_contact_events,
                             distance_to_goal_m=distance)

    def _stuck(self, time_s: float) -> bool:
        window = self.task.stuck_window_s
        if time_s < window:
            return False
        times = np.array([h[0] for h in self._history])
        i = int(np.searchsorted(times, time_s - window + 1e-9))
        recent = np.array([h[1][:2] for h in self._history[i:]])
        return float(np.max(np.linalg.norm(recent - recent[-1], axis=1))) \
            < self.task.stuck_distance_m

    def record(self) -> EpisodeRecord:
        """What the episode recorded so far, for :func:`metrics.episode_metrics`."""
        if self.episode is None:
            raise S2EError("NavBenchSim.record() called before reset()")
        times, poses, geo, peds = zip(*self._history, strict=True)
        return EpisodeRecord(
            episode_id=self.episode.episode_id,
            task=self.task.name,
            times_s=np.asarray(times),
            poses=np.asarray(poses),
            geodesic_to_goal_m=np.asarray(geo),
            nearest_pedestrian_m=np.asarray(peds),
            shortest_path_m=self.episode.shortest_path_m,
            static_collisions=self.static_collisions,
            pedestrian_collisions=self.pedestrian_collisions,
            success=self.termination == "success",
            termination=self.termination or "running",
        )
