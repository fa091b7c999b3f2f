"""Policy inference speed: torch eager vs ONNX Runtime, and the preprocessing share.

Prints, from one run on this machine, for the ``small`` and ``paper`` presets (randomly
initialised networks, uniform anchors; no checkpoint needed) at batch 1 and batch 8:

- ms per policy step (one forward pass of the batch) with torch eager (CPU, inference mode)
  and ONNX Runtime's CPU provider on the fp32 export (``s2e_training.export``): the median
  and the best of the timed repetitions after one warm-up;
- the ratio eager / ONNX Runtime, and whether the goals hold (ONNX Runtime >= 2x faster
  than eager; ``small`` below 20 ms per step at batch 1). Ratios and goals use the best
  times, the least disturbed by other processes on a shared machine;
- the onboard preprocessing (``preprocess_image`` of T frames of a 640x480 camera to the
  preset's input size, and of one frame, which is what a runtime that keeps a frame ring
  buffer pays per step) against ONNX Runtime inference at batch 1.

When a GPU is usable the same rows are added for ONNX Runtime's TensorRT and CUDA providers
and for torch on CUDA; without one those rows are reported as unavailable, nothing fails.

Usage: python benchmarks/policy.py [--quick] [--presets small paper] [--batches 1 8]
[--repeats N]. ``--quick``: 3 repetitions, and the ``paper`` preset at batch 1 only with one
repetition (the paper model takes seconds per step on a small CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import torch

from s2e_policy.preprocess import preprocess_image
from s2e_training.export.onnx_export import build_contract, random_inputs, to_onnx
from s2e_training.export.parity import CPU_PROVIDERS, open_session
from s2e_training.model import S2EPolicyNet, build_anchors, preset

CAMERA_WIDTH_PX = 640
CAMERA_HEIGHT_PX = 480
DEFAULT_PRESETS = ("small", "paper")
DEFAULT_BATCHES = (1, 8)
DEFAULT_REPEATS = 10
QUICK_REPEATS = 3
QUICK_PAPER_REPEATS = 1
WARMUP_RUNS = 1
PREPROCESS_REPEATS = 20
SPEEDUP_GOAL = 2.0
"""ONNX Runtime CPU should be at least this many times faster than torch eager."""
SMALL_STEP_GOAL_MS = 20.0
"""The ``small`` preset should take less than this per step (batch 1, ONNX Runtime CPU)."""
GPU_PROVIDERS = {
    "ort-tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider"),
    "ort-cuda": ("CUDAExecutionProvider",),
}
NETWORK_SEED = 0


def time_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """``(median, best)`` wall time of ``fn()`` in ms over ``repeats`` runs after a warm-up."""
    for _ in range(WARMUP_RUNS):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def torch_step(model: S2EPolicyNet, frames: torch.Tensor, goal: torch.Tensor,
               device: str) -> Callable[[], object]:
    """One eager forward pass on ``device`` (CUDA synchronised so the time is complete)."""
    model = model.to(device)
    frames, goal = frames.to(device), goal.to(device)

    def step() -> object:
        with torch.inference_mode():
            out = model(frames, goal)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return step


def ort_step(session: ort.InferenceSession, frames: np.ndarray, goal: np.ndarray
             ) -> Callable[[], object]:
    """One ONNX Runtime run of the policy graph."""
    feed = {"frames": frames, "goal": goal}
    return lambda: session.run(None, feed)


def gpu_backends(onnx_bytes: bytes) -> dict[str, ort.InferenceSession | str | None]:
    """GPU backend name -> ORT session, ``None`` for torch CUDA, or why it is unavailable."""
    available = ort.get_available_providers()
    backends: dict[str, ort.InferenceSession | str | None] = {}
    for name, providers in GPU_PROVIDERS.items():
        if providers[0] not in available:
            backends[name] = f"{providers[0]} not in this onnxruntime build"
            continue
        try:
            session = open_session(onnx_bytes, providers)
        except Exception as exc:  # a broken GPU setup is reported, not fatal
            backends[name] = f"session failed: {str(exc).splitlines()[0]}"
            continue
        used = session.get_providers()[0]
        backends[name] = (session if used == providers[0]
                          else f"{providers[0]} fell back to {used}")
    backends["torch-cuda"] = None if torch.cuda.is_available() else "torch has no CUDA device"
    return backends


def bench_preset(name: str, batches: tuple[int, ...], repeats: int, rows: list[tuple]) -> None:
    """Time one preset at every batch size; append ``(preset, batch, backend, ms|reason)``."""
    config = preset(name)
    anchors = build_anchors("uniform", config.num_anchors, config.waypoints)
    model = S2EPolicyNet(config, anchors, seed=NETWORK_SEED).eval()
    onnx_bytes = to_onnx(model, build_contract(model)).SerializeToString()
    cpu = open_session(onnx_bytes, CPU_PROVIDERS)
    gpu = gpu_backends(onnx_bytes)
    for batch in batches:
        frames, goal = random_inputs(model, batch, seed=batch)
        np_frames, np_goal = frames.numpy(), goal.numpy()
        rows.append((name, batch, "torch-eager-cpu",
                     time_ms(torch_step(model, frames, goal, "cpu"), repeats)))
        rows.append((name, batch, "ort-cpu", time_ms(ort_step(cpu, np_frames, np_goal),
                                                       repeats)))
        for backend, session in gpu.items():
            if isinstance(session, str):
                rows.append((name, batch, backend, session))
            elif session is None:
                step = torch_step(model, frames, goal, "cuda")
                rows.append((name, batch, backend, time_ms(step, repeats)))
                model.to("cpu")
            else:
                rows.append((name, batch, backend,
                             time_ms(ort_step(session, np_frames, np_goal), repeats)))
        print(f"  {name} batch {batch} done", flush=True)


def preprocess_ms(image_size: int, frames: int) -> float:
    """Best ms of ``preprocess_image`` on ``frames`` random 640x480 RGB camera images."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (CAMERA_HEIGHT_PX, CAMERA_WIDTH_PX, 3), dtype=np.uint8)
              for _ in range(frames)]
    return time_ms(lambda: [preprocess_image(im, image_size) for im in images],
                   PREPROCESS_REPEATS)[1]


def main() -> None:
    """Run the benchmark and print the table and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(DEFAULT_BATCHES))
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help="timed repetitions per row (median and best reported)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_REPEATS} repetitions; paper preset at batch 1 only, once")
    args = parser.parse_args()

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
          f"{ort.__version__} (providers {', '.join(ort.get_available_providers())}); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (timings on a busy "
          "machine are slower)", flush=True)
    rows: list[tuple] = []
    for name in args.presets:
        batches, repeats = tuple(args.batches), args.repeats
        if args.quick:
            repeats = QUICK_REPEATS
            if name == "paper":
                batches, repeats = batches[:1], QUICK_PAPER_REPEATS
        bench_preset(name, batches, repeats, rows)

    print(f"\n{'preset':8s} {'batch':>5s} {'backend':16s} {'median ms':>10s} {'best ms':>10s} "
          f"{'best ms/sample':>15s}")
    for name, batch, backend, value in rows:
        if isinstance(value, str):
            print(f"{name:8s} {batch:5d} {backend:16s} {'n/a':>10s}  ({value})")
        else:
            median, best = value
            print(f"{name:8s} {batch:5d} {backend:16s} {median:10.1f} {best:10.1f} "
                  f"{best / batch:15.2f}")

    timed = {(n, b, k): v[1] for n, b, k, v in rows if not isinstance(v, str)}
    print("\nratios of best times (torch eager CPU / backend; > 1: the backend is faster):")
    for (name, batch, backend), value in timed.items():
        eager = timed[(name, batch, "torch-eager-cpu")]
        if backend != "torch-eager-cpu":
            print(f"  {name} batch {batch}: {backend} {eager / value:.2f}x")
    for name in args.presets:
        for batch in args.batches:
            if (name, batch, "ort-cpu") in timed:
                ratio = timed[(name, batch, "torch-eager-cpu")] / timed[(name, batch, "ort-cpu")]
                verdict = "met" if ratio >= SPEEDUP_GOAL else "NOT met"
                print(f"goal ORT CPU >= {SPEEDUP_GOAL:g}x eager, {name} batch {batch}: "
                      f"{ratio:.2f}x, {verdict}")
    if ("small", 1, "ort-cpu") in timed:
        small = timed[("small", 1, "ort-cpu")]
        verdict = "met" if small < SMALL_STEP_GOAL_MS else "NOT met"
        print(f"goal small < {SMALL_STEP_GOAL_MS:g} ms/step (batch 1, ORT CPU): "
              f"{small:.1f} ms, {verdict}")

    print(f"\npreprocessing ({CAMERA_WIDTH_PX}x{CAMERA_HEIGHT_PX} RGB -> S x S) vs ORT CPU "
          "inference at batch 1:")
    for name in args.presets:
        if (name, 1, "ort-cpu") not in timed:
            continue
        config = preset(name)
        infer = timed[(name, 1, "ort-cpu")]
        all_frames = preprocess_ms(config.image_size, config.context_frames)
        one = preprocess_ms(config.image_size, 1)
        print(f"  {name}: {config.context_frames} frames {all_frames:.2f} ms "
              f"({100 * all_frames / (all_frames + infer):.1f}% of preprocess + inference); "
              f"1 frame (ring buffer) {one:.2f} ms "
              f"({100 * one / (one + infer):.1f}%); inference {infer:.1f} ms")


if __name__ == "__main__":
    main()
