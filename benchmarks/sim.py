"""NavBench-GS simulation speed: env-steps/s and where the time goes.

Prints, from one run on this machine:
- env-steps/s of the gymnasium env with camera rendering at the NavBench-GS issue's sizes,
  64x64 and 128x128 (``--sizes`` picks others, e.g. ``64x48`` for the wheeled robot's 4:3
  camera), for 1 env in process, 4 envs in one process (sync vector env), 4 async envs
  (``make_vector_env``'s default: one group of envs per core, the first stepped in this
  process and the other in a worker, each on its share of the cores) and 4 envs in a
  process each (``num_workers=4``, the layout of gymnasium's ``AsyncVectorEnv``);
- the share of the single env's step time spent rendering, in MuJoCo physics, in the
  pedestrian crowd, and in everything else (observation preprocessing, rewards, geodesics);
- the time of a reset that builds its episode's world (obstacles, collision world, goal
  geodesic field, MuJoCo model) and of one served from the episode cache, for the
  ``pedestrian`` and ``obstacle_pedestrian`` tasks (median over ``--resets`` episodes; 0
  skips it).

Each size runs twice, with the renderer's level of detail off (exact images) and on
(``SimConfig.render_lod_px``, ``--lod-px``, default the simulator's own default), and a third
line gives the on/off ratio of each speed. The two settings' envs exist side by side and are
stepped in alternating chunks of ``CHUNK_STEPS``, so both see the same machine load.
``--lod-px 0`` runs the exact renderer only.

Task ``pedestrian`` (12 pedestrians) on the default generated street (100k Gaussians).
Usage: python benchmarks/sim.py [--steps 200] [--sizes 64x64 128x128] [--lod-px 1]
[--resets 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from s2e_sim_bridge.envs import EnvConfig, NavBenchEnv, make_vector_env
from s2e_sim_bridge.navbench.sim import SimConfig
from s2e_sim_bridge.scene import generate_street_scene, save_scene

SPEED_MPS = 1.0
TURN_GAIN = 1.5  # rad/s per rad of goal bearing
MAX_TURN_RADPS = 1.0


def goal_seeking_command(goal: np.ndarray) -> np.ndarray:
    """Drive at the goal from the observation's goal encoding (what ``straight`` does).

    Args:
        goal: ``(..., 3)`` ``[d / d_max, cos(bearing), sin(bearing)]`` (robot frame).

    Returns:
        ``(..., 3)`` float32 ``(vx, vy, wz)``: full speed when the goal is ahead, slower
        while turning towards it. A fixed command would park the robot against a facade for
        half the run, where the renderer sees only a few near Gaussians.
    """
    bearing = np.arctan2(goal[..., 2], goal[..., 1])
    vx = SPEED_MPS * np.maximum(np.cos(bearing), 0.0)
    wz = np.clip(TURN_GAIN * bearing, -MAX_TURN_RADPS, MAX_TURN_RADPS)
    return np.stack([vx, np.zeros_like(vx), wz], axis=-1).astype(np.float32)
WARMUP_STEPS = 5
NUM_ENVS = 4
CHUNK_STEPS = 10  # steps on one LOD setting before the other gets a turn
DEFAULT_SIZES = ("64x64", "128x128")
RESET_TASKS = ("pedestrian", "obstacle_pedestrian")


def _size(text: str) -> tuple[int, int]:
    """``WxH`` -> ``(width, height)`` pixels."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"image size {text!r}: expected WxH, e.g. 64x64") from None
    return width, height


def _config(size: tuple[int, int], lod_px: float) -> EnvConfig:
    width, height = size
    return EnvConfig(task="pedestrian", image_size_px=min(width, height), episode_pool_size=4,
                     sim=SimConfig(render_width_px=width, render_height_px=height,
                                   render_lod_px=lod_px))


def _instrument(env: NavBenchEnv, totals: dict) -> None:
    """Time the renderer, the physics and the crowd of the episode in progress.

    The simulator outlives episodes (its ``render_camera`` is wrapped once); physics and
    crowd are new objects each episode.
    """
    for label, obj, name in (("render", env.sim, "render_camera"),
                             ("physics", env.sim.physics, "step"),
                             ("crowd", env.sim.crowd, "step")):
        original = getattr(obj, name)
        if getattr(original, "timed_label", None) == label:
            continue  # already timed

        def timed(*args, _original=original, _label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_label] += time.perf_counter() - t0

        timed.timed_label = label
        setattr(obj, name, timed)


def single_env(scene, size: tuple[int, int], steps: int,
               settings: list[float]) -> list[tuple[float, dict]]:
    """Steps/s of one env and the time shares of its parts, per LOD setting.

    One env per setting, all on the same seeds (the goal-seeking command drives them along the
    same path), stepped in alternating chunks of ``CHUNK_STEPS`` so that they share the load.
    """
    envs = [NavBenchEnv(scene, _config(size, lod_px), seed=0) for lod_px in settings]
    totals: list[dict] = [defaultdict(float) for _ in settings]
    observations = []
    for env, total in zip(envs, totals, strict=True):
        obs, _ = env.reset(seed=0)
        for _ in range(WARMUP_STEPS):  # numba compilation and caches
            obs, *_ = env.step(goal_seeking_command(obs["goal"]))
        obs, _ = env.reset(seed=1)
        observations.append(obs)
        _instrument(env, total)
    elapsed = [0.0] * len(settings)
    for chunk in _chunks(steps):
        for k, env in enumerate(envs):
            t0 = time.perf_counter()
            for _ in range(chunk):
                obs, _, terminated, truncated, _ = env.step(
                    goal_seeking_command(observations[k]["goal"]))
                if terminated or truncated:
                    obs, _ = env.reset()
                    _instrument(env, totals[k])
                observations[k] = obs
            elapsed[k] += time.perf_counter() - t0
    results = []
    for total, seconds in zip(totals, elapsed, strict=True):
        shares = {k: v / seconds for k, v in total.items()}
        shares["other"] = max(0.0, 1.0 - sum(shares.values()))
        results.append((steps / seconds, shares))
    return results


def _chunks(steps: int) -> list[int]:
    """``steps`` cut into chunks of at most ``CHUNK_STEPS``."""
    return [min(CHUNK_STEPS, steps - start) for start in range(0, steps, CHUNK_STEPS)]


def vector_env(path: Path, size: tuple[int, int], steps: int, n: int,
               asynchronous: bool, settings: list[float],
               num_workers: int | None = None) -> list[float]:
    """Total env-steps/s of ``n`` envs (async subprocesses or sync in this process) per setting.

    Async envs run in ``num_workers`` processes (``make_vector_env``'s default: one per
    core). The settings' vector envs are stepped in alternating chunks of ``CHUNK_STEPS``.
    """
    venvs = []
    try:
        for lod_px in settings:
            venvs.append(make_vector_env(n, asynchronous=asynchronous, scene=path,
                                         config=_config(size, lod_px),
                                         num_workers=num_workers))
        observations = []
        for venv in venvs:
            obs, _ = venv.reset(seed=0)
            for _ in range(WARMUP_STEPS):
                obs, *_ = venv.step(goal_seeking_command(obs["goal"]))
            observations.append(obs)
        elapsed = [0.0] * len(venvs)
        for chunk in _chunks(steps):
            for k, venv in enumerate(venvs):
                t0 = time.perf_counter()
                for _ in range(chunk):  # finished sub-envs reset themselves
                    observations[k], *_ = venv.step(goal_seeking_command(
                        observations[k]["goal"]))
                elapsed[k] += time.perf_counter() - t0
        return [n * steps / seconds for seconds in elapsed]
    finally:
        for venv in venvs:
            venv.close()


def reset_times(scene, size: tuple[int, int], lod_px: float,
                episodes: int) -> dict[str, tuple[float, float]]:
    """Median milliseconds of a building and of a cached reset, per task of ``RESET_TASKS``.

    One env per task holds a pool of ``episodes`` episodes and caches all of them; each is
    reset twice through ``options``: the first reset builds its world, the second is served
    from the cache. A throwaway env compiles everything first.
    """
    times = {}
    for task in RESET_TASKS:
        cfg = dataclasses.replace(_config(size, lod_px), task=task, episode_pool_size=episodes,
                                  episode_cache_size=episodes)
        NavBenchEnv(scene, dataclasses.replace(cfg, episode_pool_size=1), seed=1).reset(seed=0)
        env = NavBenchEnv(scene, cfg, seed=0)
        passes: list[list[float]] = [[], []]
        for timings in passes:
            for index, episode in env.pool:
                t0 = time.perf_counter()
                env.reset(options={"episode": episode, "scene_index": index})
                timings.append(1e3 * (time.perf_counter() - t0))
        times[task] = (float(np.median(passes[0])), float(np.median(passes[1])))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per case")
    parser.add_argument("--sizes", type=_size, nargs="+", default=[_size(s) for s in
                        DEFAULT_SIZES], help="camera image sizes WxH (default 64x64 128x128)")
    parser.add_argument("--lod-px", type=float, default=SimConfig().render_lod_px,
                        help="renderer level-of-detail threshold compared with the exact "
                             "renderer (pixels; 0 runs the exact renderer only)")
    parser.add_argument("--resets", type=int, default=8,
                        help="episodes per task whose building and cached resets are timed "
                             "(at the first size; 0 skips)")
    args = parser.parse_args()
    settings = [0.0] + ([args.lod_px] if args.lod_px > 0.0 else [])
    scene, _ = generate_street_scene(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "street.ply"
        save_scene(scene, path)
        print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, "
              f"scene: {len(scene)} Gaussians, task: pedestrian")
        print(f"{'image':>9} {'LOD':>6} {'1 env':>7} {'4 sync':>7} {'4 async':>8} "
              f"{'4 procs':>8} {'render':>7} {'physics':>8} {'crowd':>6} {'other':>6}   "
              "(env-steps/s; time shares of 1 env)")
        for size in args.sizes:
            label = f"{size[0]}x{size[1]}"
            ones = single_env(scene, size, args.steps, settings)
            syncs = vector_env(path, size, args.steps // 2, NUM_ENVS, False, settings)
            fours = vector_env(path, size, args.steps // 2, NUM_ENVS, True, settings)
            procs = vector_env(path, size, args.steps // 2, NUM_ENVS, True, settings,
                               num_workers=NUM_ENVS)
            for lod_px, (one, shares), sync, four, proc in zip(settings, ones, syncs, fours,
                                                               procs, strict=True):
                lod_label = f"{lod_px:g}px" if lod_px > 0.0 else "off"
                print(f"{label:>9} {lod_label:>6} {one:>7.1f} {sync:>7.1f} {four:>8.1f} "
                      f"{proc:>8.1f} {shares.get('render', 0):>7.0%} "
                      f"{shares.get('physics', 0):>8.0%} {shares.get('crowd', 0):>6.0%} "
                      f"{shares['other']:>6.0%}")
            if len(settings) == 2:
                print(f"{label:>9} {'ratio':>6} {ones[1][0] / ones[0][0]:>6.2f}x "
                      f"{syncs[1] / syncs[0]:>6.2f}x {fours[1] / fours[0]:>7.2f}x "
                      f"{procs[1] / procs[0]:>7.2f}x")
        if args.resets > 0:
            size = args.sizes[0]
            print(f"resets at {size[0]}x{size[1]}, LOD {settings[-1]:g} px (median ms of "
                  f"{args.resets} episodes): task, building its world, from the episode cache")
            for task, (built, cached) in reset_times(scene, size, settings[-1],
                                                     args.resets).items():
                print(f"{task:>22} {built:>8.1f} {cached:>8.1f}")
        print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
