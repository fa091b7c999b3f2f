"""Bag replay speed: decision instants per second and where the time goes.

Prints, from one run on this machine, for a randomly initialised policy of the ``small``
preset (and optionally ``paper``) exported to ONNX with the contract (``s2e_training.export``;
no checkpoint needed), replayed with ``s2e_policy.replay.replay_bag`` deciding at every camera
frame of a bag (default: the EuRoC fixture, 376x240 at 20 Hz, JPEG and raw topics):

- instants/s through decode + preprocess + inference, i.e. camera frames decoded and decided
  per second of wall time, and the real-time factor for a 10 Hz camera (instants/s / 10;
  > 1 means faster than real time: the goal);
- the share of each stage: decode (reading and deserialising the message, JPEG or raw to RGB),
  preprocess (the frame buffer's resize/normalise and the pilot's bookkeeping), inference
  (ONNX Runtime), and the rest of the navigator (goal handling, mode selection, controller).

Usage: python benchmarks/replay.py [--bag PATH --image-topic T --odom-topic T]
[--presets small] [--repeats 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from s2e_policy.replay import ReplayConfig, replay_bag
from s2e_policy.runtime import PolicyRuntime
from s2e_training.export.onnx_export import build_contract, to_onnx
from s2e_training.model import S2EPolicyNet, build_anchors, preset

FIXTURE_BAG = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "bags" \
    / "euroc_cam1_mcap"
FIXTURE_TOPICS = ("/camera/image_raw/compressed", "/camera/image_raw")
ODOM_TOPIC = "/odom"
CAMERA_RATE_HZ = 10.0
"""The real-time goal: keep up with a camera at this rate, deciding at every frame."""
NETWORK_SEED = 0
DEFAULT_REPEATS = 3


def export_random(name: str, folder: Path) -> Path:
    """A randomly initialised ``name`` preset exported to ``folder/<name>.onnx``."""
    config = preset(name)
    anchors = build_anchors("uniform", config.num_anchors, config.waypoints)
    model = S2EPolicyNet(config, anchors, seed=NETWORK_SEED).eval()
    path = folder / f"{name}.onnx"
    path.write_bytes(to_onnx(model, build_contract(model)).SerializeToString())
    return path


def measure(bag: Path, image_topic: str, odom_topic: str, runtime: PolicyRuntime
            ) -> dict[str, float]:
    """One replay at every frame; seconds per stage and the instant count."""
    config = ReplayConfig(image_topic, odom_topic, decision_rate_hz=float("inf"),
                          worst_instants=0)
    start = time.perf_counter()
    run, = replay_bag(bag, [runtime], config)
    wall = time.perf_counter() - start
    decided = [r for r in run.records if r.mode >= 0]
    stepped = [r for r in run.records if np.isfinite(r.step_s)]
    decode = float(np.sum(run.decode_s))
    inference = float(sum(r.inference_s for r in decided))
    navigator = float(sum(r.decide_s for r in decided)) - inference
    preprocess = float(sum(r.step_s for r in stepped)) - inference - navigator
    loop = decode + preprocess + inference + navigator
    return {"instants": len(run.decode_s), "decisions": len(decided), "wall": wall,
            "loop": loop, "decode": decode, "preprocess": preprocess,
            "inference": inference, "navigator": navigator}


def main() -> None:
    """Parse the arguments, run the measurements, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", type=Path, default=FIXTURE_BAG)
    parser.add_argument("--image-topic", action="append", default=None,
                        help="image topic(s) (default: the fixture's JPEG and raw topics)")
    parser.add_argument("--odom-topic", default=ODOM_TOPIC)
    parser.add_argument("--presets", nargs="+", default=["small"])
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help="replays per case; the fastest is reported")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    topics = args.image_topic or list(FIXTURE_TOPICS)
    print(f"bag {args.bag}; decisions at every frame; best of {args.repeats} replays")
    header = (f"{'preset':8} {'topic':32} {'instants/s':>10} {'x real time @10Hz':>17} "
              f"{'decode':>7} {'preproc':>7} {'infer':>7} {'other':>7} {'infer ms':>8}")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets:
            runtime = PolicyRuntime.from_file(export_random(name, Path(tmp)),
                                              intra_op_threads=args.threads)
            for topic in topics:
                results = [measure(args.bag, topic, args.odom_topic, runtime)
                           for _ in range(args.repeats)]
                best = min(results, key=lambda r: r["loop"])
                rate = best["instants"] / best["loop"]
                shares = [100 * best[k] / best["loop"]
                          for k in ("decode", "preprocess", "inference", "navigator")]
                infer_ms = 1e3 * best["inference"] / max(best["decisions"], 1)
                print(f"{name:8} {topic:32} {rate:10.1f} {rate / CAMERA_RATE_HZ:17.1f} "
                      + " ".join(f"{s:6.1f}%" for s in shares) + f" {infer_ms:8.2f}")
                walls = [r["wall"] for r in results]
                print(f"{'':8} (whole replay incl. reading odometry: median "
                      f"{statistics.median(walls):.2f} s for {best['instants']} frames)")


if __name__ == "__main__":
    main()
