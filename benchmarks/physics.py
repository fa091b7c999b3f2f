"""Physics, crowd and geodesic costs of NavBench-GS on one core.

Run: ``.venv/bin/python benchmarks/physics.py [--boxes 2000] [--seconds 3]``.

Prints:
- raw ``mujoco.mj_step`` calls per second for a planar robot among ~2,000 box obstacles, and
  substeps per second through :meth:`NavPhysics.step` (lag/acceleration filter, deadbeat
  tracking, contact events; the policy-period API used by NavBench-GS) for a robot driving
  random commands through the obstacle field;
- on the default generated street with the ``pedestrian`` task's crowd (12 agents): CPU ms
  per 0.2 s policy step of :meth:`NavPhysics.step` (pedestrian capsules moving) and of
  :meth:`SocialForceCrowd.step`;
- seconds per :func:`geodesic_field` on the street (the per-reset and per-episode-sample
  cost) and for the scipy reference search (:func:`grid_distances_reference`).

Times are thread CPU times (``time.thread_time``), so other processes on a shared machine
inflate them less than wall-clock times.
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

from s2e_policy.embodiment import load_embodiment
from s2e_sim_bridge.pedestrians.social_force import SocialForceCrowd
from s2e_sim_bridge.physics import NavPhysics
from s2e_sim_bridge.scene import generate_street_scene
from s2e_sim_bridge.world import OccupancyMap, build_occupancy, geodesic_field
from s2e_sim_bridge.world.geodesics import grid_distances_reference

RESOLUTION_M = 0.05
MAP_SIZE_M = 40.0
POLICY_DT_S = 0.2
OBSTACLE_CELLS = 4  # each obstacle is a 4 x 4 cell (0.2 m) block
SEED = 0
NUM_PEDESTRIANS = 12  # the pedestrian task's crowd
STREET_STEPS = 200
WARMUP_STEPS = 5  # loads the compiled kernels
STREET_SPEED_MPS = 1.0
STREET_TURN_RADPS = 0.6
GEODESIC_GOALS = 5


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
    street_costs(args.embodiment, rng)



def street_costs(embodiment: str, rng: np.random.Generator) -> None:
    """Print physics and crowd CPU ms per policy step and geodesic seconds on the street."""
    scene, _ = generate_street_scene(SEED)
    occupancy = build_occupancy(scene)
    emb = load_embodiment(embodiment)
    radius = emb.footprint_radius_m
    free = np.argwhere(occupancy.traversable(radius))
    start = occupancy.cell_to_world(free[rng.integers(len(free))])
    crowd = SocialForceCrowd(occupancy, occupancy.bounds_m, NUM_PEDESTRIANS, rng)
    sim = NavPhysics(occupancy, emb, num_pedestrians=NUM_PEDESTRIANS,
                     floor_z_m=scene.info.floor_height_m)
    sim.reset((start[0], start[1], 0.0), crowd.state.positions)
    crowd_s = physics_s = 0.0
    for k in range(WARMUP_STEPS + STREET_STEPS):
        t0 = time.thread_time()
        crowd.step(POLICY_DT_S, robot_xy=sim.pose()[:2], robot_radius=radius)
        t1 = time.thread_time()
        sim.step((STREET_SPEED_MPS, 0.0, STREET_TURN_RADPS * np.sin(k / 10)), POLICY_DT_S,
                 crowd.state.positions)
        t2 = time.thread_time()
        if k >= WARMUP_STEPS:
            crowd_s += t1 - t0
            physics_s += t2 - t1
    print(f"street, {NUM_PEDESTRIANS} pedestrians: NavPhysics.step "
          f"{physics_s / STREET_STEPS * 1e3:.3f} ms, SocialForceCrowd.step "
          f"{crowd_s / STREET_STEPS * 1e3:.3f} ms per {POLICY_DT_S} s step "
          f"({sim.static_contact_count} static, {sim.pedestrian_contact_count} pedestrian "
          f"contact events)")
    goals = occupancy.cell_to_world(free[rng.choice(len(free), GEODESIC_GOALS, replace=False)])
    geodesic_field(occupancy, goals[0], radius)  # loads the compiled kernel
    fast, reference = [], []
    for goal in goals:
        t0 = time.thread_time()
        geodesic_field(occupancy, goal, radius)
        t1 = time.thread_time()
        grid_distances_reference(occupancy.traversable(radius), occupancy.world_to_cell(goal))
        reference.append(time.thread_time() - t1)
        fast.append(t1 - t0)
    print(f"geodesic_field on {occupancy.shape[0]} x {occupancy.shape[1]} cells: "
          f"{np.median(fast):.3f} s (scipy reference search {np.median(reference):.3f} s), "
          f"median of {GEODESIC_GOALS} goals")


if __name__ == "__main__":
    main()
