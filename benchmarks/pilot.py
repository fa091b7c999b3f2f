"""Onboard loop overhead: what the Pilot adds to each step beyond the ONNX call.

Feeds the shipped policy's Pilot (:class:`s2e_policy.runtime.Pilot`, wheeled embodiment) a
128x96 camera frame, odometry and a goal at the contract's frame rate and times feeding plus
``step`` minus the decision's own ``inference_s``. Other processes only ever add time, so the
figure is the best of several blocks' medians (as ``timeit`` takes the minimum). Goal: well
under a millisecond per step (the preprocessing, frame buffer, navigator and safety core).

Usage: python benchmarks/pilot.py [--blocks 6] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from s2e_policy.embodiment import load_embodiment
from s2e_policy.models import shipped_policy_path
from s2e_policy.runtime import Pilot, PolicyRuntime

GOAL_MS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="steps per block")
    args = parser.parse_args()
    runtime = PolicyRuntime.from_file(shipped_policy_path())
    pilot = Pilot(runtime, load_embodiment("wheeled"))
    period_ns = round(1e9 / runtime.contract.frame_rate_hz)
    frame = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    goal = np.array([10.0, 3.0])
    block_medians, inference = [], []
    for block in range(args.blocks):
        overheads = []
        for step in range(args.steps):
            now = (block * args.steps + step) * period_ns
            start = time.perf_counter()
            pilot.on_image(now, frame)
            pilot.on_odometry(now, np.zeros(3))
            pilot.on_goal(now, goal)
            out = pilot.step(now)
            elapsed = time.perf_counter() - start
            if out.decision is not None:
                overheads.append(elapsed - out.decision.inference_s)
                inference.append(out.decision.inference_s)
        block_medians.append(float(np.median(overheads)))
    best_ms = min(block_medians) * 1e3
    print(f"shipped policy, 128x96 frame -> {runtime.contract.image_size} px input")
    print(f"ONNX inference per step (median): {np.median(inference) * 1e3:.2f} ms")
    print(f"pilot overhead outside inference (best block median): {best_ms:.3f} ms; "
          f"goal < {GOAL_MS:.1f} ms: {'met' if best_ms < GOAL_MS else 'not met'}")


if __name__ == "__main__":
    main()
