"""Replay metrics: predicted waypoints against the logged future, one decision at a time.

Definitions (robot frame at the decision instant, REP-103; waypoint ``w`` at
``(w + 1) * waypoint_dt_s``; ``p`` predicted, ``g`` logged; ``W`` waypoints, ``K`` modes):

* ADE of a mode: ``mean_w ||p_w - g_w||`` (m); FDE: ``||p_W - g_W||`` (m).
* ``ade_m`` / ``fde_m``: of the mode the runtime chose; ``min_ade_m`` / ``min_fde_m``: the
  smallest over the K modes, each minimised on its own (min-of-K, as in trajectory
  forecasting benchmarks).
* ``heading_error_rad``: ``mean_w |wrap(heading_p_w - heading_g_w)|`` of the chosen mode.
* direction: ``left`` / ``straight`` / ``right`` from the bearing ``atan2(y, x)`` of the last
  waypoint: ``straight`` within ``straight_bearing_rad`` of ahead, or when the last waypoint is
  closer than ``still_distance_m`` (no motion has no side); ``direction_agreement`` is the share
  of decisions where the chosen mode's class equals the logged one.
* velocity: the command the runtime sent ``(vx m/s, wz rad/s)`` minus the time-averaged logged
  twist over the first waypoint interval (``cmd_vx_error_mps``, ``cmd_wz_error_radps``).
* latency: ONNX Runtime inference time per decision (``PolicyPrediction.latency_s``) and the
  whole runtime step (frame preprocessing, goal handling, inference, controller, safety).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from s2e_policy.errors import S2EError
from s2e_policy.geometry import wrap_angle

DIRECTIONS = ("left", "straight", "right")
"""Direction classes, in the order of the confusion matrix rows and columns."""

DEFAULT_STRAIGHT_BEARING_RAD = math.radians(10.0)
"""Last-waypoint bearings within this angle of straight ahead count as ``straight`` (rad)."""

DEFAULT_STILL_DISTANCE_M = 0.1
"""A last waypoint closer than this to the robot counts as ``straight`` (m)."""

SUMMARY_PERCENTILE = 90
"""Percentile reported beside the mean and median of every error."""

MS_PER_S = 1000.0


@dataclass(frozen=True)
class MetricsConfig:
    """Thresholds of the direction classes.

    Attributes:
        straight_bearing_rad: half-width of the ``straight`` class (rad).
        still_distance_m: displacements shorter than this are ``straight`` (m).
    """

    straight_bearing_rad: float = DEFAULT_STRAIGHT_BEARING_RAD
    still_distance_m: float = DEFAULT_STILL_DISTANCE_M

    def __post_init__(self) -> None:
        if not 0 < self.straight_bearing_rad < math.pi:
            raise S2EError(f"MetricsConfig.straight_bearing_rad: expected a value in (0, pi), "
                           f"got {self.straight_bearing_rad}")
        if not math.isfinite(self.still_distance_m) or self.still_distance_m < 0:
            raise S2EError(f"MetricsConfig.still_distance_m: expected >= 0, got "
                           f"{self.still_distance_m}")


@dataclass(frozen=True)
class InstantMetrics:
    """The metrics of one evaluated decision (see the module docstring)."""

    ade_m: float
    fde_m: float
    min_ade_m: float
    min_fde_m: float
    heading_error_rad: float
    direction_predicted: str
    direction_logged: str
    cmd_vx_error_mps: float
    cmd_wz_error_radps: float

    def as_row(self) -> dict[str, float | str]:
        """Field name -> value (for the per-instant CSV)."""
        return asdict(self)


ERROR_FIELDS = tuple(f.name for f in fields(InstantMetrics)
                     if f.name not in ("direction_predicted", "direction_logged"))
"""Numeric per-instant metrics, summarised by :func:`aggregate`."""


def displacement_errors(modes: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ADE and FDE of every mode.

    Args:
        modes: ``(K, W, 2+)`` predicted waypoints (x, y first), metres.
        truth: ``(W, 2+)`` logged waypoints in the same frame.

    Returns:
        float64 ``(K,)`` ADE and ``(K,)`` FDE (m).
    """
    modes = np.asarray(modes, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if modes.ndim != 3 or truth.ndim != 2 or modes.shape[1] != truth.shape[0]:
        raise S2EError(f"displacement_errors: expected modes (K, W, 2+) and truth (W, 2+), got "
                       f"{modes.shape} and {truth.shape}")
    dist = np.linalg.norm(modes[..., :2] - truth[None, :, :2], axis=-1)
    return dist.mean(axis=1), dist[:, -1]


def direction(xy: np.ndarray, config: MetricsConfig) -> str:
    """``left``, ``straight`` or ``right`` for a final waypoint ``(x, y)`` in base_link."""
    x, y = float(xy[0]), float(xy[1])
    if math.hypot(x, y) < config.still_distance_m:
        return "straight"
    bearing = math.atan2(y, x)
    if abs(bearing) <= config.straight_bearing_rad:
        return "straight"
    return "left" if bearing > 0 else "right"


def instant_metrics(modes: np.ndarray, mode: int, truth: np.ndarray, command: np.ndarray,
                    logged_velocity: np.ndarray, config: MetricsConfig) -> InstantMetrics:
    """Metrics of one decision.

    Args:
        modes: ``(K, W, 3)`` every predicted mode ``(x m, y m, heading rad)`` in base_link.
        mode: index of the chosen mode.
        truth: ``(W, 3)`` logged future in the same frame.
        command: ``(3,)`` command sent ``(vx m/s, vy m/s, wz rad/s)``.
        logged_velocity: ``(2,)`` logged ``(vx m/s, wz rad/s)`` over the first interval.
        config: direction thresholds.
    """
    ade, fde = displacement_errors(modes, truth)
    chosen = np.asarray(modes, dtype=np.float64)[mode]
    heading = np.abs(wrap_angle(chosen[:, 2] - np.asarray(truth, dtype=np.float64)[:, 2]))
    return InstantMetrics(
        ade_m=float(ade[mode]), fde_m=float(fde[mode]),
        min_ade_m=float(ade.min()), min_fde_m=float(fde.min()),
        heading_error_rad=float(np.mean(heading)),
        direction_predicted=direction(chosen[-1], config),
        direction_logged=direction(truth[-1], config),
        cmd_vx_error_mps=float(command[0] - logged_velocity[0]),
        cmd_wz_error_radps=float(command[2] - logged_velocity[1]),
    )


def summarise(values: np.ndarray) -> dict[str, float]:
    """``mean``, ``median``, ``p90``, ``max`` of ``values`` (NaN when empty)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"mean": math.nan, "median": math.nan, f"p{SUMMARY_PERCENTILE}": math.nan,
                "max": math.nan}
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            f"p{SUMMARY_PERCENTILE}": float(np.percentile(values, SUMMARY_PERCENTILE)),
            "max": float(values.max())}


def aggregate(metrics: list[InstantMetrics], inference_s: np.ndarray, step_s: np.ndarray
              ) -> dict[str, object]:
    """Aggregate the evaluated decisions of one run.

    Args:
        metrics: one entry per evaluated decision.
        inference_s: ``(M,)`` ONNX inference times of every decision the policy made (s).
        step_s: ``(M,)`` whole runtime step times of the same decisions (s).

    Returns:
        A JSON-ready dict: ``evaluated``, one summary per error field (absolute values for
        the signed velocity errors, with the signed mean as ``bias``), ``direction_agreement``
        and ``direction_confusion`` (``[logged][predicted]`` counts), and latency in ms.
    """
    out: dict[str, object] = {"evaluated": len(metrics)}
    for name in ERROR_FIELDS:
        values = np.array([getattr(m, name) for m in metrics], dtype=np.float64)
        if name.startswith("cmd_"):
            summary = summarise(np.abs(values))
            summary["bias"] = float(values.mean()) if values.size else math.nan
            out[name.replace("_error", "_abs_error")] = summary
        else:
            out[name] = summarise(values)
    confusion = {g: {p: 0 for p in DIRECTIONS} for g in DIRECTIONS}
    for m in metrics:
        confusion[m.direction_logged][m.direction_predicted] += 1
    agree = sum(confusion[d][d] for d in DIRECTIONS)
    out["direction_agreement"] = agree / len(metrics) if metrics else math.nan
    out["direction_confusion"] = confusion
    out["inference_ms"] = summarise(np.asarray(inference_s) * MS_PER_S)
    out["step_ms"] = summarise(np.asarray(step_s) * MS_PER_S)
    return out
