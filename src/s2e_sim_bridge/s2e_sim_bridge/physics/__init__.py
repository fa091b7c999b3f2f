"""MuJoCo physics of NavBench-GS: robot bodies, contacts with the static world and pedestrians."""

from s2e_sim_bridge.physics.boxes import boxes_in_world, merge_occupied_cells
from s2e_sim_bridge.physics.sim import (
    NavPhysics,
    PhysicsConfig,
    PhysicsError,
    StepResult,
    build_mjcf,
)

__all__ = [
    "NavPhysics",
    "PhysicsConfig",
    "PhysicsError",
    "StepResult",
    "boxes_in_world",
    "build_mjcf",
    "merge_occupied_cells",
]
