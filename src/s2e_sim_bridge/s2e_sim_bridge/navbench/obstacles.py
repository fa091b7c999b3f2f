"""Episode obstacles: generated boxes standing on the shortest path, as Gaussians and cells.

Obstacles are Gaussians like the rest of the scene, so the camera sees them and the collision
world gets them through the same rasterisation (:mod:`s2e_sim_bridge.world.occupancy`).
"""

from __future__ import annotations

from collections.abc import Sequence

from s2e_sim_bridge.navbench.episodes import ObstacleOccupancy, ObstacleSpec
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.street import box_object
from s2e_sim_bridge.scene.transform import merge_scenes
from s2e_sim_bridge.world.occupancy import (
    OccupancyConfig,
    OccupancyMap,
    rasterise_footprints,
    select_obstacle_gaussians,
)

# Surface sampling of obstacle boxes (m between neighbouring Gaussians).
OBSTACLE_SPACING_M = 0.05


def obstacle_scene(specs: Sequence[ObstacleSpec], floor_z_m: float) -> GaussianScene:
    """Gaussians of all ``specs`` boxes, standing on the floor (world frame)."""
    boxes = [
        box_object(centre_xy=(o.x, o.y), z0=floor_z_m, size=o.size, yaw=o.yaw, rgb=o.rgb,
                   spacing_m=OBSTACLE_SPACING_M, seed=i)
        for i, o in enumerate(specs)
    ]
    return merge_scenes(boxes)


def with_obstacles(occupancy: OccupancyMap, specs: Sequence[ObstacleSpec], floor_z_m: float,
                   config: OccupancyConfig, scene: GaussianScene | None = None) -> OccupancyMap:
    """``occupancy`` with the footprints of the ``specs`` boxes added (a new map).

    ``scene``: the specs' :func:`obstacle_scene`, when the caller has built it already.
    """
    if not specs:
        return occupancy
    boxes = obstacle_scene(specs, floor_z_m) if scene is None else scene
    means_xy, cov_xy = select_obstacle_gaussians(boxes, floor_z_m, config)
    added = rasterise_footprints(means_xy, cov_xy, occupancy.origin_xy_m,
                                 occupancy.resolution_m, occupancy.shape,
                                 config.footprint_sigmas)
    return occupancy.with_occupied(added)


def obstacle_occupancy_fn(floor_z_m: float, config: OccupancyConfig) -> ObstacleOccupancy:
    """``f(occupancy, specs) -> OccupancyMap`` for :func:`episodes.sample_episodes`."""
    return lambda occupancy, specs: with_obstacles(occupancy, specs, floor_z_m, config)


__all__ = ["obstacle_occupancy_fn", "obstacle_scene", "with_obstacles"]
