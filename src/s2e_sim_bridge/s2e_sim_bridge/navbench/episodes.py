"""Seeded NavBench-GS episodes and episode-set files.

An episode set is a JSON file, so that runs of different policies are compared on exactly
the same start/goal pairs, obstacles and crowds. It names the scene it was sampled on (name
and a fingerprint of its Gaussians) and refuses to run on another.

Episode set file (``version`` 1)::

    {"version": 1, "scene": {"name": "street_s0", "fingerprint": "sha256..."},
     "task": {"name": "obstacle", ...TaskConfig fields...},
     "embodiment": "wheeled", "seed": 0,
     "episodes": [{"episode_id": "obstacle-000", "start": [x, y, yaw], "goal": [x, y],
                   "shortest_path_m": 17.3, "time_limit_s": 52.0,
                   "obstacles": [{"x": .., "y": .., "yaw": .., "size": [sx, sy, sz],
                                  "rgb": [r, g, b]}],
                   "num_pedestrians": 0, "pedestrian_seed": 123}, ...]}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench.tasks import TaskConfig
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.world.geodesics import geodesic_field, polyline_length_m
from s2e_sim_bridge.world.occupancy import OccupancyMap

EPISODE_SET_VERSION = 1
# Start and goal keep this much clearance beyond the robot radius (m).
SPAWN_MARGIN_M = 0.15
# Obstacles are kept this far (m) from the start and the goal.
OBSTACLE_KEEP_CLEAR_M = 2.5
# The start heading is the direction of the first path segment plus up to this (rad).
START_YAW_JITTER_RAD = np.pi / 4
MAX_TRIES = 200
# Give up after this many consecutive starts without any goal in the distance range.
MAX_FRUITLESS_STARTS = 25


@dataclass(frozen=True)
class ObstacleSpec:
    """A generated box obstacle: footprint centre, heading, size (along, across, up), colour."""

    x: float
    y: float
    yaw: float
    size: tuple[float, float, float]
    rgb: tuple[float, float, float]


# f(occupancy, obstacles) -> the occupancy with the obstacles' footprints added.
ObstacleOccupancy = Callable[[OccupancyMap, Sequence[ObstacleSpec]], OccupancyMap]


@dataclass(frozen=True)
class Episode:
    """One start/goal pair with its obstacles and crowd seed (world frame, metres, radians)."""

    episode_id: str
    start: tuple[float, float, float]
    goal: tuple[float, float]
    shortest_path_m: float
    time_limit_s: float
    obstacles: tuple[ObstacleSpec, ...] = ()
    num_pedestrians: int = 0
    pedestrian_seed: int = 0


@dataclass
class EpisodeSet:
    """Episodes of one task on one scene for one embodiment."""

    scene_name: str
    scene_fingerprint: str
    task: TaskConfig
    embodiment: str
    seed: int
    episodes: list[Episode] = field(default_factory=list)

    def to_json(self) -> dict:
        """The file form (see the module docstring)."""
        return {
            "version": EPISODE_SET_VERSION,
            "scene": {"name": self.scene_name, "fingerprint": self.scene_fingerprint},
            "task": dataclasses.asdict(self.task),
            "embodiment": self.embodiment,
            "seed": self.seed,
            "episodes": [dataclasses.asdict(e) for e in self.episodes],
        }

    def save(self, path: str | Path) -> Path:
        """Write the episode set as JSON (atomically: temp file then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EpisodeSet:
        """Read and validate an episode-set file (errors name the file and the field)."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise S2EError(f"{path}: episode file not found") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise S2EError(f"{path}: not a JSON episode file ({exc})") from exc
        try:
            if raw.get("version") != EPISODE_SET_VERSION:
                raise S2EError(f"{path}: version {raw.get('version')!r}, expected "
                               f"{EPISODE_SET_VERSION}")
            task_fields = dict(raw["task"])
            for key in ("obstacle_path_fraction", "obstacle_size_m", "obstacle_height_m"):
                task_fields[key] = tuple(task_fields[key])
            task = TaskConfig(**task_fields)
            episodes = []
            for i, e in enumerate(raw["episodes"]):
                obstacles = tuple(ObstacleSpec(o["x"], o["y"], o["yaw"], tuple(o["size"]),
                                               tuple(o["rgb"])) for o in e["obstacles"])
                ep = Episode(
                    episode_id=str(e["episode_id"]),
                    start=tuple(float(v) for v in e["start"]),
                    goal=tuple(float(v) for v in e["goal"]),
                    shortest_path_m=float(e["shortest_path_m"]),
                    time_limit_s=float(e["time_limit_s"]),
                    obstacles=obstacles,
                    num_pedestrians=int(e["num_pedestrians"]),
                    pedestrian_seed=int(e["pedestrian_seed"]),
                )
                if len(ep.start) != 3 or len(ep.goal) != 2 or not np.all(
                        np.isfinite([*ep.start, *ep.goal])):
                    raise S2EError(f"{path}: episodes[{i}] start must be 3 and goal 2 finite "
                                   "numbers")
                episodes.append(ep)
            return cls(scene_name=raw["scene"]["name"],
                       scene_fingerprint=raw["scene"]["fingerprint"], task=task,
                       embodiment=str(raw["embodiment"]), seed=int(raw["seed"]),
                       episodes=episodes)
        except KeyError as exc:
            raise S2EError(f"{path}: missing field {exc.args[0]!r} in episode file") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, S2EError):
                raise
            raise S2EError(f"{path}: malformed episode file ({exc})") from exc

    def check_scene(self, scene_name: str, fingerprint: str, source: str = "") -> None:
        """Refuse to run these episodes on a scene they were not sampled on."""
        if fingerprint != self.scene_fingerprint:
            raise S2EError(
                f"episode set {source or ''} was sampled on scene {self.scene_name!r} "
                f"(fingerprint {self.scene_fingerprint[:12]}), not on {scene_name!r} "
                f"(fingerprint {fingerprint[:12]}); sample new episodes for this scene")


def scene_fingerprint(scene: GaussianScene) -> str:
    """SHA-256 over the scene's Gaussian arrays (identifies a scene independent of its path)."""
    h = hashlib.sha256()
    for arr in (scene.means, scene.quats, scene.scales, scene.opacities, scene.sh):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _start_cells(occupancy: OccupancyMap, radius_m: float) -> np.ndarray:
    """``(M, 2)`` world xy of cells in the largest free component for the robot disc."""
    from scipy import ndimage

    free = occupancy.distance_m > radius_m + SPAWN_MARGIN_M
    labels, count = ndimage.label(free, structure=np.ones((3, 3), bool))
    if count == 0:
        raise S2EError("the scene has no free space for the robot: check the navigable bounds "
                       "and the occupancy height band")
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return occupancy.cell_to_world(np.argwhere(labels == largest))


def _path_point(path: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Point and unit tangent at arc length ``s`` along a ``(M, 2)`` polyline."""
    seg = np.diff(path, axis=0)
    lengths = np.linalg.norm(seg, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    i = int(np.clip(np.searchsorted(cum, s) - 1, 0, len(seg) - 1))
    t = (s - cum[i]) / max(lengths[i], 1e-9)
    return path[i] + t * seg[i], seg[i] / max(lengths[i], 1e-9)


def sample_episodes(
    occupancy: OccupancyMap,
    task: TaskConfig,
    num_episodes: int,
    seed: int,
    robot_radius_m: float,
    nominal_speed_mps: float,
    obstacle_occupancy: ObstacleOccupancy,
) -> list[Episode]:
    """Sample ``num_episodes`` episodes of ``task`` on a scene's occupancy map.

    Args:
        occupancy: the scene's collision world without episode obstacles.
        task: the task config (distance range, obstacles, pedestrians).
        num_episodes: how many.
        seed: the only source of randomness: the same seed gives the same episodes.
        robot_radius_m: footprint radius of the embodiment.
        nominal_speed_mps: the embodiment's cruise speed (for the time limit).
        obstacle_occupancy: ``f(occupancy, obstacles) -> OccupancyMap`` adding obstacles'
            footprints (so the reachability check uses the same rasterisation as the run).

    Raises:
        S2EError: when no start/goal pair in the distance range exists.
    """
    rng = np.random.default_rng(seed)
    cells = _start_cells(occupancy, robot_radius_m)
    episodes: list[Episode] = []
    tries = fruitless = 0
    while len(episodes) < num_episodes:
        tries += 1
        if tries > MAX_TRIES * max(1, num_episodes) or fruitless >= MAX_FRUITLESS_STARTS:
            raise S2EError(
                f"could not sample {num_episodes} {task.name} episodes with a shortest path of "
                f"{task.min_geodesic_m}-{task.max_geodesic_m} m on this scene (got "
                f"{len(episodes)}); widen the distance range or use a larger scene")
        start_xy = cells[rng.integers(len(cells))]
        # Only goals within the distance range matter: the search stops beyond it.
        from_start = geodesic_field(occupancy, start_xy, robot_radius_m,
                                    max_distance_m=task.max_geodesic_m)
        d = from_start.distance_at(cells)
        ok = (d >= task.min_geodesic_m) & (d <= task.max_geodesic_m)
        if not ok.any():
            fruitless += 1
            continue
        fruitless = 0
        goal_xy = cells[rng.choice(np.flatnonzero(ok))]
        to_goal = geodesic_field(occupancy, goal_xy, robot_radius_m)
        path = to_goal.path_from(start_xy)
        placed = _place_obstacles(occupancy, task, path, rng, robot_radius_m,
                                  obstacle_occupancy, start_xy, goal_xy)
        if placed is None:
            continue
        obstacles, blocked = placed
        length = polyline_length_m(path)
        if obstacles:
            try:
                length = geodesic_field(blocked, goal_xy, robot_radius_m) \
                    .shortest_path_length_m(start_xy)
            except S2EError:
                continue
        heading = path[1] - path[0]
        yaw = float(np.arctan2(heading[1], heading[0])
                    + rng.uniform(-START_YAW_JITTER_RAD, START_YAW_JITTER_RAD))
        yaw = float(np.arctan2(np.sin(yaw), np.cos(yaw)))
        episodes.append(Episode(
            episode_id=f"{task.name}-{len(episodes):03d}",
            start=(float(start_xy[0]), float(start_xy[1]), yaw),
            goal=(float(goal_xy[0]), float(goal_xy[1])),
            shortest_path_m=float(length),
            time_limit_s=float(task.time_limit_s(length, nominal_speed_mps)),
            obstacles=tuple(obstacles),
            num_pedestrians=task.num_pedestrians,
            pedestrian_seed=int(rng.integers(2**31 - 1)),
        ))
    return episodes


def _place_obstacles(occupancy: OccupancyMap, task: TaskConfig, path: np.ndarray,
                     rng: np.random.Generator, radius: float,
                     obstacle_occupancy: ObstacleOccupancy, start_xy: np.ndarray,
                     goal_xy: np.ndarray) -> tuple[list[ObstacleSpec], OccupancyMap] | None:
    """Obstacles on the shortest path that leave the goal reachable, or None if impossible.

    Returns the obstacles and the collision world with them (``occupancy`` when none).
    """
    if task.num_obstacles == 0:
        return [], occupancy
    total = polyline_length_m(path)
    lo, hi = task.obstacle_path_fraction
    for _ in range(MAX_TRIES // 10):
        obstacles = []
        for s in np.sort(rng.uniform(lo * total, hi * total, task.num_obstacles)):
            centre, tangent = _path_point(path, s)
            normal = np.array([-tangent[1], tangent[0]])
            size_xy = rng.uniform(*task.obstacle_size_m, 2)
            centre = centre + normal * rng.normal(0.0, 0.15)
            if min(np.linalg.norm(centre - start_xy), np.linalg.norm(centre - goal_xy)) \
                    < OBSTACLE_KEEP_CLEAR_M:
                continue
            obstacles.append(ObstacleSpec(
                x=float(centre[0]), y=float(centre[1]),
                yaw=float(rng.uniform(-np.pi, np.pi)),
                size=(float(size_xy[0]), float(size_xy[1]),
                      float(rng.uniform(*task.obstacle_height_m))),
                rgb=tuple(float(c) for c in rng.uniform(0.15, 0.9, 3)),
            ))
        if len(obstacles) < task.num_obstacles:
            continue
        blocked = obstacle_occupancy(occupancy, obstacles)
        if not (blocked.is_free(start_xy, radius) and blocked.is_free(goal_xy, radius)):
            continue
        reach = blocked.reachable_from(start_xy, radius)
        row, col = blocked.world_to_cell(goal_xy)
        if reach[row, col]:
            return obstacles, blocked
    return None
