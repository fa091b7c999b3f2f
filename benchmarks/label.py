"""Video labelling benchmark: speed of ``s2e data label-video`` at 640x360 on this CPU.

Renders a street drive at ``--label-fps`` distinct frames per second (each repeated to fill
a ``--video-fps`` video, so decoding costs what a real video costs), encodes it with OpenCV
(mp4v), labels it with the visual odometry and prints: labelled frames per second, video
seconds per wall second (the real-time factor; > 1 is faster than real time), the CPU time,
and the ADE of the kept segments against the rendered ground truth. The load average is
printed because the machine may be shared.

Run::

    .venv/bin/python benchmarks/label.py
    .venv/bin/python benchmarks/label.py --seconds 10
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from s2e_policy.geometry import poses_world_to_robot
from s2e_sim_bridge.render import camera_from_pose, intrinsics_from_fov, render
from s2e_sim_bridge.scene import generate_street_scene
from s2e_training.data.gnm import read_traj_data
from s2e_training.data.labelling import LabelConfig, label_video

WIDTH, HEIGHT = 640, 360
HFOV_DEG = 70.0
CAMERA_HEIGHT_M = 1.2
PITCH_DEG = 8.0
SPEED_MPS = 1.3
TURN_DEG_PER_S = 2.0
START_XY_M = (-20.0, -2.5)
N_GAUSSIANS = 100_000


def render_video(path: Path, seconds: float, label_fps: float, video_fps: int) -> np.ndarray:
    """Write the drive video; returns float64 ``(M, 3)`` ground-truth poses per rendered frame."""
    scene, _info = generate_street_scene(0, num_gaussians=N_GAUSSIANS)
    K = intrinsics_from_fov(WIDTH, HEIGHT, HFOV_DEG)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), video_fps,
                             (WIDTH, HEIGHT))
    repeat = round(video_fps / label_fps)
    poses = []
    x, y = START_XY_M
    yaw = 0.0
    for _ in range(round(seconds * label_fps)):
        poses.append((x, y, yaw))
        view = camera_from_pose(x, y, CAMERA_HEIGHT_M, yaw, np.radians(PITCH_DEG))
        rgb = render(scene, view, K, WIDTH, HEIGHT).rgb
        bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        for _ in range(repeat):
            writer.write(bgr)
        x += SPEED_MPS / label_fps * np.cos(yaw)
        y += SPEED_MPS / label_fps * np.sin(yaw)
        yaw += np.radians(TURN_DEG_PER_S) / label_fps
    writer.release()
    return np.asarray(poses)


def main() -> None:
    """Parse arguments, render, label, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="video length, s")
    parser.add_argument("--label-fps", type=float, default=5.0, help="labelled frames/s")
    parser.add_argument("--video-fps", type=int, default=30, help="video frame rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "drive.mp4"
        truth = render_video(video, args.seconds, args.label_fps, args.video_fps)
        config = LabelConfig(label_fps=args.label_fps, default_hfov_deg=HFOV_DEG)
        start, start_cpu = time.perf_counter(), time.process_time()
        labels = label_video(video, Path(tmp) / "out", config, progress=False)
        wall = time.perf_counter() - start
        cpu = time.process_time() - start_cpu
        print(f"load average {os.getloadavg()[0]:.2f}; {WIDTH}x{HEIGHT}, {args.video_fps} fps "
              f"video of {labels.info.duration_s:.1f} s, labelled at {args.label_fps:g} Hz")
        print(f"labelling wall time {wall:.2f} s: {len(labels.statuses) / wall:.1f} labelled "
              f"frames/s, {labels.info.frames / wall:.1f} video frames/s, real-time factor "
              f"{labels.info.duration_s / wall:.2f}x")
        print(f"CPU time {cpu:.2f} s (all threads; less sensitive to other processes): "
              f"{labels.info.duration_s / cpu:.2f} video seconds per CPU second")
        print(f"step statuses {labels.status_counts()}")
        for segment in labels.segments:
            k = int(np.flatnonzero(labels.frame_numbers == segment.first_frame)[0])
            gt = poses_world_to_robot(truth[k:k + segment.frames], truth[k])
            position, _yaw = read_traj_data(segment.folder / "traj_data.pkl")
            ade = np.mean(np.linalg.norm(position - gt[:, :2], axis=1))
            print(f"{segment.folder.name}: {segment.frames} frames, {segment.path_length_m:.1f} m"
                  f", ADE {ade:.3f} m, pitch {segment.pitch_deg:.1f} deg (true {PITCH_DEG}), "
                  f"confidence {segment.confidence:.2f}")


if __name__ == "__main__":
    main()
