"""Replay outputs on disk: per-instant CSV, aggregated JSON, the multi-model table, plots.

Layout of ``s2e replay ... --out OUT`` (one folder per model, named by its label)::

    OUT/comparison.csv, OUT/comparison.md   one row per model (the headline metrics)
    OUT/LABEL/instants.csv                  one row per decision instant (all statuses)
    OUT/LABEL/metrics.json                  aggregated metrics, status counts, contract
    OUT/LABEL/*.png                         plots (:mod:`s2e_policy.replay.plots`)
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from s2e_policy.errors import S2EError
from s2e_policy.replay.loop import ReplayRun
from s2e_policy.replay.metrics import InstantMetrics
from s2e_policy.runtime.frames import NS_PER_S

INSTANTS_CSV = "instants.csv"
METRICS_JSON = "metrics.json"
COMPARISON_CSV = "comparison.csv"
COMPARISON_MD = "comparison.md"
MS_PER_S = 1000.0
CSV_DIGITS = 6
"""Decimal places of the floats written to the CSV files."""

INSTANT_COLUMNS = (
    "stamp_ns", "time_s", "status", "x_m", "y_m", "yaw_rad", "goal_x_m", "goal_y_m", "mode",
    "mode_probability", "cmd_vx_mps", "cmd_vy_mps", "cmd_wz_radps", "logged_vx_mps",
    "logged_wz_radps", *(f.name for f in InstantMetrics.__dataclass_fields__.values()),
    "inference_ms", "step_ms",
)

COMPARISON_COLUMNS = (
    ("model", "model"), ("evaluated", "evaluated"), ("ade_m", "ADE m"), ("fde_m", "FDE m"),
    ("min_ade_m", "minADE m"), ("min_fde_m", "minFDE m"),
    ("heading_error_deg", "heading err deg"), ("direction_agreement", "direction agree"),
    ("cmd_vx_abs_error_mps", "|vx err| m/s"), ("cmd_wz_abs_error_radps", "|wz err| rad/s"),
    ("inference_ms_median", "inference ms (median)"),
)
"""``(key, heading)`` of the comparison table; errors are means over evaluated instants."""


def _number(value: float) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{CSV_DIGITS}g}"


def instant_rows(run: ReplayRun) -> list[dict[str, object]]:
    """One CSV row per instant of ``run`` (empty cells where a value does not exist)."""
    t0 = run.motion.start_ns
    rows = []
    for r in run.records:
        row: dict[str, object] = {
            "stamp_ns": r.stamp_ns, "time_s": _number((r.stamp_ns - t0) / NS_PER_S),
            "status": r.status, "x_m": _number(r.pose[0]), "y_m": _number(r.pose[1]),
            "yaw_rad": _number(r.pose[2]), "goal_x_m": _number(r.goal[0]),
            "goal_y_m": _number(r.goal[1]), "mode": r.mode if r.mode >= 0 else "",
            "mode_probability": (_number(float(r.probabilities[r.mode]))
                                 if r.probabilities is not None else ""),
            "cmd_vx_mps": _number(r.command[0]), "cmd_vy_mps": _number(r.command[1]),
            "cmd_wz_radps": _number(r.command[2]),
            "logged_vx_mps": _number(r.logged_velocity[0]) if r.logged_velocity is not None
            else "",
            "logged_wz_radps": _number(r.logged_velocity[1]) if r.logged_velocity is not None
            else "",
            "inference_ms": _number(r.inference_s * MS_PER_S),
            "step_ms": _number(r.step_s * MS_PER_S),
        }
        for name, value in (r.metrics.as_row().items() if r.metrics is not None else ()):
            row[name] = _number(value) if isinstance(value, float) else value
        rows.append(row)
    return rows


def _json_ready(value: object) -> object:
    """NaN/inf -> ``None`` (JSON has no NaN), numpy scalars/arrays -> Python."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_run(run: ReplayRun, folder: Path) -> dict[str, object]:
    """Write ``instants.csv`` and ``metrics.json`` of one run into ``folder``.

    Returns:
        The run's summary (the JSON content).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / INSTANTS_CSV).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=INSTANT_COLUMNS, restval="")
            writer.writeheader()
            writer.writerows(instant_rows(run))
        summary = _json_ready(run.summary())
        (folder / METRICS_JSON).write_text(json.dumps(summary, indent=2) + "\n",
                                           encoding="utf-8")
    except OSError as exc:
        raise S2EError(f"replay output {folder}: cannot be written: {exc}") from exc
    return summary


def comparison_row(summary: dict) -> dict[str, object]:
    """The headline metrics of one run's summary (keys of :data:`COMPARISON_COLUMNS`)."""
    def mean(name: str) -> float | None:
        entry = summary.get(name) or {}
        return entry.get("mean")

    heading = mean("heading_error_rad")
    return {
        "model": summary["label"], "evaluated": summary["evaluated"],
        **{name: mean(name) for name in ("ade_m", "fde_m", "min_ade_m", "min_fde_m",
                                         "cmd_vx_abs_error_mps", "cmd_wz_abs_error_radps")},
        "heading_error_deg": None if heading is None else math.degrees(heading),
        "direction_agreement": summary["direction_agreement"],
        "inference_ms_median": (summary.get("inference_ms") or {}).get("median"),
    }


def comparison_markdown(rows: list[dict[str, object]]) -> str:
    """The comparison table as GitHub Markdown (3 decimals; ``-`` for missing values)."""
    def cell(value: object) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(h for _k, h in COMPARISON_COLUMNS) + " |",
             "|" + "|".join("---" for _ in COMPARISON_COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(row[k]) for k, _h in COMPARISON_COLUMNS) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def write_comparison(summaries: list[dict], out: Path) -> str:
    """Write ``comparison.csv`` and ``comparison.md`` into ``out``; return the Markdown."""
    rows = [comparison_row(s) for s in summaries]
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with (out / COMPARISON_CSV).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=[k for k, _h in COMPARISON_COLUMNS])
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        table = comparison_markdown(rows)
        (out / COMPARISON_MD).write_text(table, encoding="utf-8")
    except OSError as exc:
        raise S2EError(f"replay output {out}: cannot be written: {exc}") from exc
    return table
