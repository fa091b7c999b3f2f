"""The labels report: JSON, markdown, a top-down plot and a contact sheet with paths.

Files: ``labels_report.json``, ``labels_report.md``, a top-down plot of the kept segments and
a contact sheet with each frame's predicted path drawn into it.

On the contact sheet the next ``PATH_HORIZON_S`` seconds of the labelled trajectory are
projected into the frame through the camera model, the estimated pitch and
``LabelConfig.camera_height_m`` (the ground is taken as flat).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from s2e_policy.geometry import poses_world_to_robot
from s2e_training.data.gnm import FRAME_SUFFIX, load_frame, read_gnm_trajectory
from s2e_training.data.inspection import write_trajectory_plot
from s2e_training.data.labelling.config import LabelConfig
from s2e_training.data.labelling.labeller import SegmentLabel, VideoLabels
from s2e_training.data.labelling.odometry import levelling

REPORT_JSON = "labels_report.json"
REPORT_MARKDOWN = "labels_report.md"
TRAJECTORY_PLOT = "labels_trajectories.png"
CONTACT_SHEET = "labels_contact_sheet.png"
"""Report file names inside the output folder."""

PATH_HORIZON_S = 2.0
"""Future path drawn on each contact-sheet tile, seconds."""

SHEET_TILES = 12
SHEET_COLUMNS = 4
TILE_WIDTH_PX = 320
"""Contact sheet layout."""

PATH_RGB = (255, 165, 0)
PATH_THICKNESS_PX = 2
LABEL_SCALE = 0.4
MIN_DEPTH_M = 0.1
"""Drawing: path colour and width, caption font scale, nearest drawn point (camera z)."""


def _segment_row(segment: SegmentLabel, rate_hz: float) -> dict[str, object]:
    duration = (segment.frames - 1) / rate_hz
    return {
        "folder": segment.folder.name,
        "first_frame": segment.first_frame,
        "start_s": round(segment.start_s, 3),
        "frames": segment.frames,
        "duration_s": round(duration, 3),
        "path_length_m": round(segment.path_length_m, 3),
        "mean_speed_mps": round(segment.path_length_m / duration, 3) if duration else 0.0,
        "net_turn_deg": round(segment.net_turn_deg, 1),
        "confidence": round(segment.confidence, 3),
        "pitch_deg": None if math.isnan(segment.pitch_deg) else round(segment.pitch_deg, 2),
        "pitch_source": segment.pitch_source,
    }


def video_summary(labels: VideoLabels) -> dict[str, object]:
    """JSON-ready summary of one video (counts, reasons, per-segment statistics)."""
    if labels.error is not None:
        return {"video": str(labels.video), "error": labels.error}
    info = labels.info
    kept_frames = sum(s.frames for s in labels.segments)
    dropped: dict[str, int] = {}
    for _start, frames, reason in labels.dropped:
        dropped[reason] = dropped.get(reason, 0) + frames
    return {
        "video": str(labels.video),
        "size_px": [info.width, info.height],
        "video_frames": info.frames,
        "duration_s": round(info.duration_s, 3),
        "declared_fps": round(info.declared_fps, 3),
        "variable_frame_rate": info.variable_rate,
        "camera": labels.camera.source,
        "pose_source": labels.pose_source,
        "scale_source": labels.scale_source,
        "rate_hz": labels.rate_hz,
        "labelled_frames": len(labels.statuses),
        "kept_frames": kept_frames,
        "step_status_counts": labels.status_counts(),
        "dropped_runs": len(labels.dropped),
        "dropped_frames_by_reason": dropped,
        "segments": [_segment_row(s, labels.rate_hz) for s in labels.segments],
        "warnings": labels.warnings,
    }


def _markdown(summaries: Sequence[dict[str, object]]) -> str:
    lines = ["# Video labels", ""]
    for summary in summaries:
        lines.append(f"## {summary['video']}")
        if "error" in summary:
            lines += ["", f"FAILED: {summary['error']}", ""]
            continue
        lines += [
            "",
            f"- {summary['video_frames']} frames, {summary['duration_s']} s, "
            f"{summary['size_px'][0]}x{summary['size_px'][1]}; camera: {summary['camera']}",
            f"- poses: {summary['pose_source']}; scale: {summary['scale_source']}",
            f"- labelled {summary['labelled_frames']} frames at {summary['rate_hz']} Hz, kept "
            f"{summary['kept_frames']} in {len(summary['segments'])} segment(s)",
            f"- step statuses: {summary['step_status_counts']}",
            f"- dropped frames by reason: {summary['dropped_frames_by_reason'] or 'none'}",
        ]
        lines += [f"- warning: {w}" for w in summary["warnings"]]
        if summary["segments"]:
            keys = list(summary["segments"][0])
            lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |"
                      for row in summary["segments"]]
        lines.append("")
    return "\n".join(lines)


def draw_path(
    image: np.ndarray, labels: VideoLabels, segment: SegmentLabel, index: int,
    config: LabelConfig,
) -> np.ndarray:
    """Copy of ``image`` (uint8 ``(H, W, 3)`` RGB) with the path after frame ``index`` drawn.

    The future poses (robot frame of frame ``index``, x forward, y left) are put on the
    ground ``camera_height_m`` below the camera, turned into the pitched camera frame and
    projected with the video's camera model scaled to ``image``.
    """
    horizon = max(1, round(PATH_HORIZON_S * labels.rate_hz))
    future = segment.poses[index:index + horizon + 1]
    local = poses_world_to_robot(future, segment.poses[index])
    pitch = 0.0 if math.isnan(segment.pitch_deg) else math.radians(segment.pitch_deg)
    level_points = np.column_stack([
        -local[:, 1], np.full(len(local), config.camera_height_m), local[:, 0]
    ])
    points = level_points @ levelling(pitch)  # level -> pitched: the transpose of levelling
    points = points[points[:, 2] > MIN_DEPTH_M]
    out = image.copy()
    if len(points) >= 2:
        camera = labels.camera.scaled(image.shape[1], image.shape[0])
        pixels = np.round(camera.project(points)).astype(np.int32)
        cv2.polylines(out, [pixels.reshape(-1, 1, 2)], False, PATH_RGB, PATH_THICKNESS_PX,
                      cv2.LINE_AA)
    return out


def write_contact_sheet(results: Sequence[VideoLabels], out: Path, config: LabelConfig) -> int:
    """Write a grid of evenly spaced kept frames with their predicted paths; returns tiles."""
    picks = [(labels, segment, i) for labels in results for segment in labels.segments
             for i in range(segment.frames)]
    if not picks:
        return 0
    chosen = np.unique(np.linspace(0, len(picks) - 1, SHEET_TILES).round().astype(int))
    tiles = []
    for pick in chosen:
        labels, segment, i = picks[pick]
        image = draw_path(load_frame(segment.folder / f"{i}{FRAME_SUFFIX}"), labels, segment,
                          i, config)
        height = round(image.shape[0] * TILE_WIDTH_PX / image.shape[1])
        tile = cv2.resize(image, (TILE_WIDTH_PX, height), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"{segment.folder.name} #{i}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX,
                    LABEL_SCALE, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    height = max(t.shape[0] for t in tiles)
    rows = math.ceil(len(tiles) / SHEET_COLUMNS)
    sheet = np.zeros((rows * height, SHEET_COLUMNS * TILE_WIDTH_PX, 3), dtype=np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, SHEET_COLUMNS)
        sheet[r * height:r * height + tile.shape[0], c * TILE_WIDTH_PX:(c + 1) * TILE_WIDTH_PX] = (
            tile
        )
    Image.fromarray(sheet).save(out)
    return len(tiles)


def write_report(results: Sequence[VideoLabels], out: Path, config: LabelConfig) -> dict:
    """Write the report files into ``out``; returns the JSON content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = [video_summary(labels) for labels in results]
    content = {"config": {k: getattr(config, k) for k in config.__dataclass_fields__},
               "videos": summaries}
    (out / REPORT_JSON).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    (out / REPORT_MARKDOWN).write_text(_markdown(summaries), encoding="utf-8")
    segments = [(labels, s) for labels in results for s in labels.segments]
    if segments:
        write_trajectory_plot(
            [read_gnm_trajectory(s.folder, labels.rate_hz) for labels, s in segments],
            out / TRAJECTORY_PLOT,
        )
        write_contact_sheet(results, out / CONTACT_SHEET, config)
    return content
