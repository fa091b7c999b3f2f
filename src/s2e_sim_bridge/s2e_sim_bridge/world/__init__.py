"""Collision world of a NavBench-GS scene: occupancy grid, distance and geodesic fields, plots.

Typical use::

    occupancy = build_occupancy(scene)                # scene.info gives floor and bounds
    field = geodesic_field(occupancy, goal_xy, radius_m=0.35)
    path = field.path_from(start_xy)                  # expert path, (M, 2) world metres
    plot_map(occupancy, "map.png", trajectories=[path], starts=[start_xy], goals=[goal_xy])

``plot_map`` lives in :mod:`s2e_sim_bridge.world.plot` (imports matplotlib only when used).
"""

from s2e_sim_bridge.world.geodesics import GeodesicField, geodesic_field, polyline_length_m
from s2e_sim_bridge.world.occupancy import (
    OccupancyConfig,
    OccupancyError,
    OccupancyMap,
    build_occupancy,
)

__all__ = [
    "GeodesicField",
    "OccupancyConfig",
    "OccupancyError",
    "OccupancyMap",
    "build_occupancy",
    "geodesic_field",
    "polyline_length_m",
]
