"""Physics throughput: substeps per second for a planar robot among ~2,000 box obstacles.

Run: ``.venv/bin/python benchmarks/physics.py [--boxes 2000] [--seconds 3]``.

Prints two figures on one core: raw ``mujoco.mj_step`` calls per second on the built model,
and substeps per second through :meth:`NavPhysics.step` (lag/acceleration filter, deadbeat
tracking, contact events; the policy-period API used by NavBench-GS), for a robot driving
random commands through the obstacle field.
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

from s2e_policy.embodiment import load_embodiment
from s2e_sim_bridge.physics import NavPhysics
from s2e_sim_bridge.world import OccupancyMap

RESOLUTION_M = 0.05
MAP_SIZE_M = 40.0
POLICY_DT_S = 0.2
OBSTACLE_CELLS = 4  # each obstacle is a 4 x 4 cell (0.2 m) block
SEED = 0


def obstacle_field(num_boxes: int, rng: np.random.Generator) -> OccupancyMap:
    """A square map with ``num_boxes`` separate square blocks (each merges to one box)."""
    cells = int(MAP_SIZE_M / RESOLUTION_M)
    grid = np.zeros((cells, cells), bool)
    pitch = OBSTACLE_CELLS * 2
    slots = np.argwhere(np.ones((cells // pitch, cells // pitch), bool)) * pitch
    for r, c in slots[rng.choice(len(slots), size=num_boxes, replace=False)]:
        grid[r : r + OBSTACLE_CELLS, c : c + OBSTACLE_CELLS] = True
    return OccupancyMap(grid, np.zeros(2), RESOLUTION_M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=2000, help="number of box obstacles")
    parser.add_argument("--seconds", type=float, default=3.0, help="wall time per measurement")
    parser.add_argument("--embodiment", default="go2", help="embodiment name or YAML")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    occupancy = obstacle_field(args.boxes, rng)
    sim = NavPhysics(occupancy, load_embodiment(args.embodiment), num_pedestrians=0)
    radius = sim.embodiment.footprint_radius_m
    free = np.argwhere(occupancy.traversable(radius))
    start = occupancy.cell_to_world(free[rng.integers(len(free))])
    sim.reset((start[0], start[1], 0.0))
    print(
        f"model: {sim.num_static_boxes} static boxes (incl. 4 boundary walls), "
        f"timestep {sim.config.timestep_s * 1e3:g} ms, embodiment {sim.embodiment.name}"
    )

    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        for _ in range(1000):
            mujoco.mj_step(sim.model, sim.data)
        steps += 1000
    raw = steps / (time.perf_counter() - t0)

    sim.reset((start[0], start[1], 0.0))
    substeps = round(POLICY_DT_S / sim.config.timestep_s)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        sim.step(rng.uniform([-0.5, -0.5, -2.0], [2.0, 0.5, 2.0]), POLICY_DT_S)
        steps += substeps
    wrapped = steps / (time.perf_counter() - t0)
    print(f"raw mj_step:        {raw:,.0f} steps/s")
    print(
        f"NavPhysics.step:    {wrapped:,.0f} substeps/s "
        f"({wrapped / substeps:,.0f} policy steps/s of {POLICY_DT_S} s; "
        f"{sim.static_contact_count} contact events in {sim.time_s:.0f} s simulated)"
    )


if __name__ == "__main__":
    main()
