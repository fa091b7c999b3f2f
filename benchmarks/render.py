"""Renderer benchmark: frames per second of a renderer backend on generated street scenes.

Prints one table row per (scene size, image size): the median and best wall time per frame,
the frames per second over a drive along the street and the CPU time per frame (all threads;
less sensitive to other processes than wall time). With ``--lod-px`` > 0 (default 1 px) each
row shows the exact render (LOD off) and the level-of-detail render side by side, frames
interleaved so both see the same load: their frames per second, the speed-up, the mean rows
(Gaussians plus proxies) projected per frame, and the PSNR of the LOD images against the
exact ones (dB, over all frames). Then the plain-numpy reference rasteriser
(the one the tests compare against) on the same frames at a small size with the speed-up
measured in the same run, and the process's peak resident memory. The load average is
printed because the machine may be shared: compare numbers only between runs at similar load.
``--backend cuda`` times the gsplat backend instead (GPU needed).

``--pedestrians N`` adds a crowd of N walkers along the street, posed as a new scene every
frame inside the timed region (what the simulator does), and prints the per-frame cost of
posing and preparing that crowd (cpu backend) without rasterising it.

Run::

    .venv/bin/python benchmarks/render.py            # 10k / 100k / 1M Gaussians, 64-256 px
    .venv/bin/python benchmarks/render.py --counts 100000 --sizes 128
    .venv/bin/python benchmarks/render.py --lod-px 0     # exact renderer only
    .venv/bin/python benchmarks/render.py --counts 100000 --sizes 64 --pedestrians 12
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from s2e_sim_bridge.pedestrians.bodies import (
    BodyTemplate,
    build_template,
    pose_bodies,
    sample_palettes,
)
from s2e_sim_bridge.render import camera_from_pose, intrinsics_from_fov, render
from s2e_sim_bridge.render.cpu import drawn_rows, prepare_scene
from s2e_sim_bridge.scene import GaussianScene, generate_street_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "s2e_sim_bridge" / "test"))
from render_reference import reference_render

DEFAULT_COUNTS = (10_000, 100_000, 1_000_000)
DEFAULT_SIZES_PX = (64, 128, 256)
HFOV_DEG = 90.0
CAMERA_HEIGHT_M = 0.6
CAMERA_PITCH_DEG = 5.0
DRIVE_START_X_M = -25.0
DRIVE_LENGTH_M = 50.0
LATERAL_SWAY_M = 1.0
YAW_SWAY_DEG = 15.0
REFERENCE_SIZE_PX = 32
REFERENCE_FRAMES = 2
REFERENCE_MAX_GAUSSIANS = 200_000  # the reference holds (W x N) float64 arrays per row
SEED = 0
KIB_PER_MIB = 1024
DEFAULT_LOD_PX = 1.0
CROWD_HALF_WIDTH_M = 3.0  # walkers keep to |y| <= this (the roadway of the generated street)
WALK_SPEED_MPS = 1.3
FRAME_PERIOD_S = 0.2  # the simulator's 5 Hz camera
STEP_LENGTH_M = 0.7  # gait phase advances by pi per step


class Crowd:
    """Walkers along the street, posed as a new scene per frame (the simulator's per-frame work).

    States are drawn up front (not timed); :meth:`scene` poses frame ``i``'s crowd.
    """

    def __init__(self, count: int, frames: int, floor_height_m: float) -> None:
        rng = np.random.default_rng(SEED)
        self.template: BodyTemplate = build_template()
        self.floor_height_m = floor_height_m
        self.palettes = sample_palettes(count, rng)
        start = np.column_stack([
            rng.uniform(DRIVE_START_X_M, DRIVE_START_X_M + DRIVE_LENGTH_M, count),
            rng.uniform(-CROWD_HALF_WIDTH_M, CROWD_HALF_WIDTH_M, count)])
        self.headings = rng.choice([0.0, math.pi], count)  # along the street, both ways
        heading = np.column_stack([np.cos(self.headings), np.sin(self.headings)])
        phase0 = rng.uniform(0.0, 2.0 * math.pi, count)
        walked = WALK_SPEED_MPS * FRAME_PERIOD_S * np.arange(frames)
        self.positions = start[None] + walked[:, None, None] * heading[None]
        self.phases = phase0[None] + math.pi * walked[:, None] / STEP_LENGTH_M

    def scene(self, frame: int) -> GaussianScene:
        """The crowd posed at frame ``frame``: a new scene object, as every simulator frame."""
        return pose_bodies(self.template, self.positions[frame], self.headings,
                           self.phases[frame], self.palettes, self.floor_height_m)

    def overhead_us(self, frames: int) -> float:
        """Microseconds per frame to pose the crowd and prepare it for the cpu backend."""
        start = time.perf_counter()
        for frame in range(frames):
            prepare_scene(self.scene(frame))
        return 1e6 * (time.perf_counter() - start) / frames


def drive_poses(frames: int) -> list[np.ndarray]:
    """View matrices of a camera driving down the street with some sway in y and yaw."""
    poses = []
    for i in range(frames):
        u = i / max(1, frames - 1)
        poses.append(
            camera_from_pose(
                DRIVE_START_X_M + DRIVE_LENGTH_M * u,
                LATERAL_SWAY_M * math.sin(2 * math.pi * u),
                CAMERA_HEIGHT_M,
                math.radians(YAW_SWAY_DEG) * math.sin(4 * math.pi * u),
                math.radians(CAMERA_PITCH_DEG),
            )
        )
    return poses


def _extra(crowd: Crowd | None, frame: int) -> GaussianScene | None:
    return None if crowd is None else crowd.scene(frame)


def time_frames(scene, poses, size: int, backend: str,
                crowd: Crowd | None = None) -> tuple[np.ndarray, float]:
    """Wall seconds per frame and the process's CPU seconds for all frames.

    One warm-up frame (which also compiles the kernels) is rendered first and not counted.
    With a ``crowd``, each frame poses it and draws it with the scene.
    """
    K = intrinsics_from_fov(size, size, HFOV_DEG)
    render(scene, poses[0], K, size, size, backend=backend, extra=_extra(crowd, 0))
    seconds = []
    cpu_start = time.process_time()
    for frame, viewmat in enumerate(poses):
        start = time.perf_counter()
        render(scene, viewmat, K, size, size, backend=backend, extra=_extra(crowd, frame))
        seconds.append(time.perf_counter() - start)
    return np.asarray(seconds), time.process_time() - cpu_start


def compare_lod(scene, poses, size: int, lod_px: float,
                crowd: Crowd | None = None) -> dict[str, float]:
    """Exact vs LOD renders of the same frames, interleaved (cpu backend).

    Returns wall seconds per frame (median) and frames per second of both, the CPU seconds
    per frame of both, the mean projected rows of both and the PSNR (dB) of the LOD images
    against the exact ones (of the mean squared error over all frames; RGB peak 1).
    """
    K = intrinsics_from_fov(size, size, HFOV_DEG)
    for lod in (0.0, lod_px):  # warm-up: compilation and the one-off LOD build
        render(scene, poses[0], K, size, size, lod_px=lod, extra=_extra(crowd, 0))
    wall = {0.0: [], lod_px: []}
    cpu = {0.0: 0.0, lod_px: 0.0}
    squared_errors = []
    for frame, viewmat in enumerate(poses):
        images = {}
        for lod in (0.0, lod_px):
            cpu_start = time.process_time()
            start = time.perf_counter()
            images[lod] = render(scene, viewmat, K, size, size, lod_px=lod,
                                 extra=_extra(crowd, frame)).rgb
            wall[lod].append(time.perf_counter() - start)
            cpu[lod] += time.process_time() - cpu_start
        squared_errors.append(float(np.mean((images[0.0] - images[lod_px]) ** 2)))
    mse = float(np.mean(squared_errors))
    rows = {lod: np.mean([drawn_rows([scene] + ([] if crowd is None else [crowd.scene(f)]),
                                     v, K, size, size, lod_px=lod)
                          for f, v in enumerate(poses)])
            for lod in (0.0, lod_px)}
    return {
        "ms_off": 1e3 * float(np.median(wall[0.0])), "ms_on": 1e3 * float(np.median(wall[lod_px])),
        "fps_off": len(poses) / sum(wall[0.0]), "fps_on": len(poses) / sum(wall[lod_px]),
        "cpu_ms_off": 1e3 * cpu[0.0] / len(poses), "cpu_ms_on": 1e3 * cpu[lod_px] / len(poses),
        "rows_off": float(rows[0.0]), "rows_on": float(rows[lod_px]),
        "psnr_db": 10.0 * math.log10(1.0 / mse) if mse > 0.0 else math.inf,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=list(DEFAULT_COUNTS))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES_PX))
    parser.add_argument("--frames", type=int, default=30, help="frames timed per row")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--no-reference", action="store_true", help="skip the numpy reference")
    parser.add_argument("--lod-px", type=float, default=DEFAULT_LOD_PX,
                        help="level-of-detail threshold (pixels) compared with the exact "
                             "render (cpu backend); 0 times the exact render only")
    parser.add_argument("--pedestrians", type=int, default=0,
                        help="walkers posed and drawn every frame (0: the static scene only)")
    args = parser.parse_args(argv)
    lod = args.lod_px > 0.0 and args.backend == "cpu"

    # (numba's thread count is read after the first render: asking earlier would start the
    # thread pool before the renderer configures it)
    print(
        f"backend={args.backend} cpus={os.cpu_count()} load_avg_1min={os.getloadavg()[0]:.2f} "
        f"frames={args.frames} hfov={HFOV_DEG:g}deg"
        + (f" lod_px={args.lod_px:g} (off | on, frames interleaved)" if lod else "")
    )
    if lod:
        header = (
            f"{'gaussians':>10} {'size':>7} {'ms(med) off':>12} {'on':>7} {'FPS off':>8} "
            f"{'on':>7} {'speed-up':>8} {'cpu-ms off':>11} {'on':>7} {'rows off':>9} "
            f"{'on':>7} {'PSNR dB':>8}"
        )
    else:
        header = (
            f"{'gaussians':>10} {'size':>7} {'ms/frame(med)':>14} {'ms(best)':>9} {'FPS':>7} "
            f"{'cpu-ms/frame':>13}"
        )
    print(header)
    print("-" * len(header))
    poses = drive_poses(args.frames)
    reference_rows = []
    for count in args.counts:
        scene, _ = generate_street_scene(SEED, num_gaussians=count)
        crowd = (Crowd(args.pedestrians, args.frames, scene.info.floor_height_m)
                 if args.pedestrians > 0 else None)
        for size in args.sizes:
            if lod:
                r = compare_lod(scene, poses, size, args.lod_px, crowd)
                print(
                    f"{len(scene):>10} {f'{size}x{size}':>7} {r['ms_off']:>12.2f} "
                    f"{r['ms_on']:>7.2f} {r['fps_off']:>8.1f} {r['fps_on']:>7.1f} "
                    f"{r['fps_on'] / r['fps_off']:>7.2f}x {r['cpu_ms_off']:>11.2f} "
                    f"{r['cpu_ms_on']:>7.2f} {r['rows_off']:>9.0f} {r['rows_on']:>7.0f} "
                    f"{r['psnr_db']:>8.1f}"
                )
                continue
            seconds, cpu_seconds = time_frames(scene, poses, size, args.backend, crowd)
            print(
                f"{len(scene):>10} {f'{size}x{size}':>7} {1e3 * np.median(seconds):>14.2f} "
                f"{1e3 * seconds.min():>9.2f} {len(seconds) / seconds.sum():>7.1f} "
                f"{1e3 * cpu_seconds / len(seconds):>13.2f}"
            )
        if not args.no_reference and len(scene) <= REFERENCE_MAX_GAUSSIANS:
            ref_poses = poses[:: max(1, len(poses) // REFERENCE_FRAMES)][:REFERENCE_FRAMES]
            K = intrinsics_from_fov(REFERENCE_SIZE_PX, REFERENCE_SIZE_PX, HFOV_DEG)
            fast = time_frames(scene, ref_poses, REFERENCE_SIZE_PX, args.backend)[0].sum()
            start = time.perf_counter()
            for viewmat in ref_poses:
                reference_render([scene], viewmat, K, REFERENCE_SIZE_PX, REFERENCE_SIZE_PX)
            slow = time.perf_counter() - start
            reference_rows.append((len(scene), fast, slow))
    for count, fast, slow in reference_rows:
        print(
            f"numpy reference, {count} Gaussians, {REFERENCE_SIZE_PX}x{REFERENCE_SIZE_PX}, "
            f"{REFERENCE_FRAMES} frames: {slow / REFERENCE_FRAMES:.2f} s/frame vs "
            f"{args.backend} {1e3 * fast / REFERENCE_FRAMES:.2f} ms/frame: "
            f"speed-up {slow / fast:.0f}x"
        )
    if crowd is not None and args.backend == "cpu":
        print(f"crowd of {args.pedestrians} ({len(crowd.scene(0))} Gaussians): pose + prepare "
              f"{crowd.overhead_us(args.frames):.1f} us/frame")
    if args.backend == "cpu":
        import numba

        print(f"numba threads {numba.get_num_threads()} ({numba.threading_layer()})")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB
    print(f"peak RSS {peak_mib:.0f} MiB; load_avg_1min at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
