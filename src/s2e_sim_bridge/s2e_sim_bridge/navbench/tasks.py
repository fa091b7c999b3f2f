"""The four NavBench-GS tasks of the S2E paper, as configs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from s2e_policy.errors import S2EError


@dataclass(frozen=True)
class TaskConfig:
    """What an episode of a task contains and when it ends.

    Attributes:
        name: task name.
        num_obstacles: static objects inserted on the shortest path per episode.
        num_pedestrians: social-force pedestrians per episode.
        min_geodesic_m: shortest start-goal path length, lower bound (m).
        max_geodesic_m: upper bound (m).
        goal_radius_m: success when the robot centre is this close to the goal (m).
        time_limit_factor: time limit = ``max(min_time_limit_s, factor * l / nominal speed)``.
        min_time_limit_s: lower bound of the time limit (s).
        terminate_on_collision: end the episode (as a failure) at the first collision;
            otherwise collisions are counted and the episode goes on (the paper's metric).
        obstacle_path_fraction: obstacles are centred on the shortest path between these
            fractions of its length.
        obstacle_size_m: ``(min, max)`` footprint edge of generated obstacles (m).
        obstacle_height_m: ``(min, max)`` height of generated obstacles (m).
        personal_space_m: radius for the personal-space compliance metric (m).
        stuck_window_s: the episode ends as ``stuck`` when the robot moved less than
            ``stuck_distance_m`` during this window (s).
        stuck_distance_m: see ``stuck_window_s``.
    """

    name: str
    num_obstacles: int = 0
    num_pedestrians: int = 0
    min_geodesic_m: float = 10.0
    max_geodesic_m: float = 30.0
    goal_radius_m: float = 1.0
    time_limit_factor: float = 3.0
    min_time_limit_s: float = 30.0
    terminate_on_collision: bool = False
    obstacle_path_fraction: tuple[float, float] = (0.3, 0.75)
    obstacle_size_m: tuple[float, float] = (0.4, 0.9)
    obstacle_height_m: tuple[float, float] = (0.5, 1.2)
    personal_space_m: float = 1.0
    stuck_window_s: float = 20.0
    stuck_distance_m: float = 0.3

    def __post_init__(self) -> None:
        if self.num_obstacles < 0 or self.num_pedestrians < 0:
            raise S2EError(f"task {self.name}: obstacle and pedestrian counts must be >= 0")
        if not 0 < self.min_geodesic_m <= self.max_geodesic_m:
            raise S2EError(
                f"task {self.name}: need 0 < min_geodesic_m <= max_geodesic_m, got "
                f"{self.min_geodesic_m}, {self.max_geodesic_m}")
        if self.goal_radius_m <= 0:
            raise S2EError(f"task {self.name}: goal_radius_m must be > 0")

    def time_limit_s(self, shortest_path_m: float, nominal_speed_mps: float) -> float:
        """Time limit (s) of an episode whose shortest path is ``shortest_path_m``."""
        return max(self.min_time_limit_s,
                   self.time_limit_factor * shortest_path_m / nominal_speed_mps)


TASKS: dict[str, TaskConfig] = {
    "empty": TaskConfig("empty"),
    "obstacle": TaskConfig("obstacle", num_obstacles=3),
    "pedestrian": TaskConfig("pedestrian", num_pedestrians=12),
    "obstacle_pedestrian": TaskConfig("obstacle_pedestrian", num_obstacles=3,
                                      num_pedestrians=12),
}


def get_task(name: str, **overrides: object) -> TaskConfig:
    """The named task's config with field overrides (unknown names raise :class:`S2EError`)."""
    if name not in TASKS:
        raise S2EError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    known = {f.name for f in dataclasses.fields(TaskConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise S2EError(f"task {name}: unknown setting(s) {unknown}; known: {sorted(known)}")
    return dataclasses.replace(TASKS[name], **overrides)
