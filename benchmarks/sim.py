"""NavBench-GS simulation speed: env-steps/s and where the time goes.

Prints, from one run on this machine:
- env-steps/s of the gymnasium env with camera rendering at the NavBench-GS issue's sizes,
  64x64 and 128x128 (``--sizes`` picks others, e.g. ``64x48`` for the wheeled robot's 4:3
  camera), for 1 env in process, 4 envs in one process (sync vector env) and 4 envs in
  async subprocesses (``make_vector_env``; each worker gets its share of the cores);
- the share of the single env's step time spent rendering, in MuJoCo physics, in the
  pedestrian crowd, and in everything else (observation preprocessing, rewards, geodesics).

Task ``pedestrian`` (12 pedestrians) on the default generated street (100k Gaussians).
Usage: python benchmarks/sim.py [--steps 200] [--sizes 64x64 128x128]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from s2e_sim_bridge.envs import EnvConfig, NavBenchEnv, make_vector_env
from s2e_sim_bridge.navbench.sim import SimConfig
from s2e_sim_bridge.scene import generate_street_scene, save_scene

COMMAND = np.array([1.0, 0.0, 0.3], dtype=np.float32)
WARMUP_STEPS = 5
NUM_ENVS = 4
DEFAULT_SIZES = ("64x64", "128x128")


def _size(text: str) -> tuple[int, int]:
    """``WxH`` -> ``(width, height)`` pixels."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"image size {text!r}: expected WxH, e.g. 64x64") from None
    return width, height


def _config(size: tuple[int, int]) -> EnvConfig:
    width, height = size
    return EnvConfig(task="pedestrian", image_size_px=min(width, height), episode_pool_size=4,
                     sim=SimConfig(render_width_px=width, render_height_px=height))


def _instrument(env: NavBenchEnv, totals: dict) -> None:
    """Time the renderer, the physics and the crowd of the episode in progress."""
    for label, obj, name in (("render", env.sim, "render_camera"),
                             ("physics", env.sim.physics, "step"),
                             ("crowd", env.sim.crowd, "step")):
        original = getattr(obj, name)

        def timed(*args, _original=original, _label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_label] += time.perf_counter() - t0

        setattr(obj, name, timed)


def single_env(scene, size: tuple[int, int], steps: int) -> tuple[float, dict]:
    """Steps/s of one env and the time shares of its parts."""
    env = NavBenchEnv(scene, _config(size), seed=0)
    env.reset(seed=0)
    for _ in range(WARMUP_STEPS):  # numba compilation and caches
        env.step(COMMAND)
    totals: dict = defaultdict(float)
    env.reset(seed=1)
    _instrument(env, totals)
    t0 = time.perf_counter()
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(COMMAND)
        if terminated or truncated:
            env.reset()
            _instrument(env, totals)
    elapsed = time.perf_counter() - t0
    shares = {k: v / elapsed for k, v in totals.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return steps / elapsed, shares


def vector_env(path: Path, size: tuple[int, int], steps: int, n: int,
               asynchronous: bool) -> float:
    """Total env-steps/s of ``n`` envs (async subprocesses or sync in this process)."""
    venv = make_vector_env(n, asynchronous=asynchronous, scene=path, config=_config(size))
    try:
        venv.reset(seed=0)
        actions = np.tile(COMMAND, (n, 1))
        for _ in range(WARMUP_STEPS):
            venv.step(actions)
        t0 = time.perf_counter()
        for _ in range(steps):
            venv.step(actions)  # finished sub-envs reset themselves
        return n * steps / (time.perf_counter() - t0)
    finally:
        venv.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per case")
    parser.add_argument("--sizes", type=_size, nargs="+", default=[_size(s) for s in
                        DEFAULT_SIZES], help="camera image sizes WxH (default 64x64 128x128)")
    args = parser.parse_args()
    scene, _ = generate_street_scene(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "street.ply"
        save_scene(scene, path)
        print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, "
              f"scene: {len(scene)} Gaussians, task: pedestrian")
        print(f"{'image':>9} {'1 env':>7} {'4 sync':>7} {'4 async':>8} {'render':>7} "
              f"{'physics':>8} {'crowd':>6} {'other':>6}   (env-steps/s; time shares of 1 env)")
        for size in args.sizes:
            one, shares = single_env(scene, size, args.steps)
            sync = vector_env(path, size, args.steps // 2, NUM_ENVS, asynchronous=False)
            four = vector_env(path, size, args.steps // 2, NUM_ENVS, asynchronous=True)
            label = f"{size[0]}x{size[1]}"
            print(f"{label:>9} {one:>7.1f} {sync:>7.1f} {four:>8.1f} "
                  f"{shares.get('render', 0):>7.0%} {shares.get('physics', 0):>8.0%} "
                  f"{shares.get('crowd', 0):>6.0%} {shares['other']:>6.0%}")


if __name__ == "__main__":
    main()
