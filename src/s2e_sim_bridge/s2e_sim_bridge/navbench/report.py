"""NavBench-GS outputs: per-episode CSV, metrics.json, trajectory plots, episode videos.

Everything a run writes lives in its output folder::

    runs/NAME/
      episodes.json          the episode set (re-run it with --episodes-file)
      episodes.csv           one row per finished episode (a resumed run appends)
      trajectories/<id>.npy  poses (T, 3) of every finished episode
      metrics.json           aggregated figures per task (mean and standard error)
      trajectories_<task>.png  top-down trajectories over the occupancy map
      episode_<id>.gif       camera + top-down video of selected episodes
      report.md              the results table and the pictures, for people
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np
from PIL import Image

from s2e_policy.atomic_files import write_bytes_atomic
from s2e_sim_bridge.navbench.episodes import Episode
from s2e_sim_bridge.navbench.metrics import EpisodeMetrics
from s2e_sim_bridge.world.occupancy import OccupancyMap

CSV_NAME = "episodes.csv"
TRAJECTORIES_DIR = "trajectories"
# Video: frames per second of the GIF, camera upscale factor, top-down map height (px).
VIDEO_FPS = 5
VIDEO_CAMERA_SCALE = 2
VIDEO_MAP_HEIGHT_PX = 192
# Table columns: (field, header, format).
TABLE_COLUMNS = (
    ("success", "SR", "{:.2f}"),
    ("spl", "SPL", "{:.2f}"),
    ("soft_spl", "SoftSPL", "{:.2f}"),
    ("route_completion", "RC", "{:.2f}"),
    ("collisions", "Coll/ep", "{:.2f}"),
    ("pedestrian_collisions", "PedColl/ep", "{:.2f}"),
    ("personal_space_time_s", "PS (s)", "{:.1f}"),
    ("path_length_m", "Path (m)", "{:.1f}"),
    ("mean_speed_mps", "v (m/s)", "{:.2f}"),
)
# The terminal table needs this many columns; narrower (or piped) output still gets it.
TABLE_WIDTH_CHARS = 132


def read_finished(out_dir: Path) -> list[EpisodeMetrics]:
    """Episodes already finished in ``out_dir`` (for resuming an interrupted run)."""
    path = out_dir / CSV_NAME
    if not path.is_file():
        return []
    types = {f.name: f.type for f in fields(EpisodeMetrics)}
    rows = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            values = {}
            for name, text in row.items():
                kind = types[name]
                values[name] = int(text) if kind == "int" else float(text) \
                    if kind == "float" else text
            rows.append(EpisodeMetrics(**values))
    return rows


def append_episode(out_dir: Path, metrics: EpisodeMetrics, poses: np.ndarray) -> None:
    """Append one finished episode to the CSV and write its poses (one file per episode)."""
    path = out_dir / CSV_NAME
    new = not path.is_file()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(EpisodeMetrics)])
        if new:
            writer.writeheader()
        writer.writerow(metrics.as_row())
    folder = out_dir / TRAJECTORIES_DIR
    folder.mkdir(exist_ok=True)
    tmp = folder / f"{metrics.episode_id}.tmp.npy"
    np.save(tmp, np.asarray(poses, dtype=np.float64))
    tmp.replace(folder / f"{metrics.episode_id}.npy")


def load_trajectories(out_dir: Path) -> dict[str, np.ndarray]:
    """Poses ``(T, 3)`` of every finished episode by id."""
    return {path.stem: np.load(path)
            for path in sorted((out_dir / TRAJECTORIES_DIR).glob("*.npy"))
            if not path.stem.endswith(".tmp")}


def results_table(per_task: dict[str, dict], title: str) -> str:
    """Markdown table of aggregated metrics (mean ± s.e.m.) per task."""
    header = "| task | episodes | " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " |"
    lines = [f"**{title}**", "", header, "|" + "---|" * (len(TABLE_COLUMNS) + 2)]
    for task, agg in per_task.items():
        cells = [f"{fmt.format(agg[k])} ± {fmt.format(agg[k + '_sem'])}"
                 for k, _, fmt in TABLE_COLUMNS]
        lines.append(f"| {task} | {agg['episodes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_table(per_task: dict[str, dict], title: str) -> None:
    """Print the results table to the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("task")
    table.add_column("episodes", justify="right")
    for _, header, _ in TABLE_COLUMNS:
        table.add_column(header, justify="right")
    for task, agg in per_task.items():
        table.add_row(task, str(agg["episodes"]),
                      *[fmt.format(agg[k]) for k, _, fmt in TABLE_COLUMNS])
    console = Console()
    console.width = max(console.width, TABLE_WIDTH_CHARS)
    console.print(table)


def write_metrics(out_dir: Path, per_task: dict[str, dict], meta: dict) -> Path:
    """Write ``metrics.json``: run metadata and aggregated metrics per task."""
    path = out_dir / "metrics.json"
    write_bytes_atomic(path, json.dumps({"meta": meta, "tasks": per_task}, indent=1).encode())
    return path


def plot_task_trajectories(out_dir: Path, occupancy: OccupancyMap, episodes: Sequence[Episode],
                           task: str, title: str) -> Path:
    """Draw one task's finished episodes into ``out_dir/trajectories_<task>.png``.

    ``occupancy`` is the map with every episode's obstacles; the trajectories are the pose
    files :func:`append_episode` wrote into ``out_dir``.
    """
    from s2e_sim_bridge.world.plot import plot_map  # matplotlib only when plotting

    trajectories = load_trajectories(out_dir)
    done = [e for e in episodes if e.episode_id in trajectories]
    picture = out_dir / f"trajectories_{task}.png"
    plot_map(occupancy, picture,
             trajectories=[trajectories[e.episode_id][:, :2] for e in done],
             starts=[e.start[:2] for e in done], goals=[e.goal for e in done], title=title)
    return picture


def write_report(out_dir: Path, per_task: dict[str, dict], title: str,
                 pictures: Sequence[Path], command: str) -> Path:
    """Write ``report.md`` with the table, the command that produced it, and the pictures."""
    lines = [f"# {title}", "", f"Produced by: `{command}`", "",
             results_table(per_task, "Results (mean ± standard error over episodes)"), "",
             "SR success rate, SPL success weighted by path length, RC route completion, "
             "Coll/ep collision events per episode, PS time seconds within 1 m of a "
             "pedestrian.", ""]
    lines += [f"![{p.stem}]({p.name})" for p in pictures]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------ video
def map_image(occupancy: OccupancyMap, height_px: int = VIDEO_MAP_HEIGHT_PX) -> np.ndarray:
    """``(h, w, 3)`` uint8 top-down picture of the map (north up), for video frames."""
    shade = np.where(occupancy.grid, 40, 235).astype(np.uint8)[::-1]
    rows, cols = shade.shape
    width_px = max(1, round(height_px * cols / rows))
    img = Image.fromarray(shade).resize((width_px, height_px), Image.Resampling.NEAREST)
    return np.repeat(np.asarray(img)[..., None], 3, axis=2)


def _to_pixels(occupancy: OccupancyMap, shape: tuple[int, int], xy: np.ndarray) -> np.ndarray:
    (x0, y0), (x1, y1) = occupancy.bounds_m
    h, w = shape
    col = (np.asarray(xy)[..., 0] - x0) / (x1 - x0) * w
    row = (1.0 - (np.asarray(xy)[..., 1] - y0) / (y1 - y0)) * h
    return np.stack([row, col], axis=-1).astype(int)


def _dot(img: np.ndarray, rc: np.ndarray, colour: Sequence[int], radius: int) -> None:
    h, w = img.shape[:2]
    r0, c0 = int(rc[0]), int(rc[1])
    rr, cc = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    keep = rr**2 + cc**2 <= radius**2
    rows, cols = r0 + rr[keep], c0 + cc[keep]
    ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    img[rows[ok], cols[ok]] = colour


def video_frame(camera: np.ndarray, base_map: np.ndarray, occupancy: OccupancyMap,
                trail_xy: np.ndarray, goal_xy: np.ndarray,
                pedestrians_xy: np.ndarray) -> np.ndarray:
    """One frame: the camera image (upscaled) beside the top-down map with the trail."""
    cam = np.asarray(Image.fromarray(camera).resize(
        (camera.shape[1] * VIDEO_CAMERA_SCALE, camera.shape[0] * VIDEO_CAMERA_SCALE),
        Image.Resampling.NEAREST))
    top = base_map.copy()
    for rc in _to_pixels(occupancy, top.shape[:2], trail_xy):
        _dot(top, rc, (30, 110, 230), 1)
    for rc in _to_pixels(occupancy, top.shape[:2], pedestrians_xy.reshape(-1, 2)):
        _dot(top, rc, (240, 150, 20), 2)
    _dot(top, _to_pixels(occupancy, top.shape[:2], goal_xy), (220, 30, 30), 3)
    _dot(top, _to_pixels(occupancy, top.shape[:2], trail_xy[-1]), (20, 160, 60), 3)
    h = max(cam.shape[0], top.shape[0])
    canvas = np.full((h, cam.shape[1] + top.shape[1] + 4, 3), 255, np.uint8)
    canvas[:cam.shape[0], :cam.shape[1]] = cam
    canvas[:top.shape[0], cam.shape[1] + 4:] = top
    return canvas


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: int = VIDEO_FPS) -> Path:
    """Write frames ``(H, W, 3)`` uint8 as an animated GIF (looping)."""
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps),
                   loop=0, optimize=True)
    return path
