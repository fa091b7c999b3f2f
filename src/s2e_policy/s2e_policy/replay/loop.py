"""The offline replay loop: a rosbag2 recording through the onboard runtime, measured.

For every camera frame of the bag (in timestamp order, odometry up to the frame's stamp
delivered first) each model's :class:`~s2e_policy.runtime.Pilot` gets exactly what the
robot's policy node would get: ``on_odometry`` for every odometry message, ``on_image`` for the
frame (the same :class:`~s2e_policy.runtime.FrameBuffer` at the contract's frame rate), then
``on_goal`` and ``step`` at the frame's stamp. The goal is the logged position
``goal_horizon_s`` after the decision (or the bag's last pose). When the pilot runs the policy,
its decision is compared with the logged future (:mod:`s2e_policy.replay.metrics`).

Several models are replayed in one pass over the bag (frames are decoded once). Decisions are
taken at camera frames, at most ``decision_rate_hz`` per second: by default each model's
context frame rate, as the policy node does with ``inference_rate_hz = 0`` (``math.inf``: every
frame). Every frame reaches every frame buffer. A decision instant is ``evaluated`` or skipped
with a counted status:

* a :class:`~s2e_policy.runtime.StopReason` value when the pilot did not run the policy
  (``context_incomplete`` while the frame context fills, ``no_odometry``, ``stale_odometry``
  after an odometry drop, ...);
* ``image_out_of_order``: the frame's stamp is not after the previous frame's (dropped by the
  frame buffer, as on the robot);
* ``outside_odometry``: the logged future (``W * waypoint_dt_s`` after the instant) is not
  inside the odometry's time span (the bag's start and end);
* ``odometry_gap``: the odometry has a gap longer than ``max_odometry_gap_s`` (default: the
  prediction horizon) within the instant's future, so there is no logged future to compare.

Truncated or corrupt bags raise :class:`~s2e_policy.bags.BagError`; with ``keep_partial``
the run instead ends at the damage and keeps the decisions before it (``partial_error``).
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2e_policy.bags import BagError, iter_images, list_topics, read_odometry
from s2e_policy.embodiment import Embodiment, load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.replay.logged import LoggedMotion
from s2e_policy.replay.metrics import InstantMetrics, MetricsConfig, aggregate, instant_metrics
from s2e_policy.runtime import (
    NavigatorConfig,
    Pilot,
    PolicyRuntime,
    SafetyConfig,
)
from s2e_policy.runtime.frames import NS_PER_S

log = logging.getLogger("s2e_policy.replay")

DEFAULT_GOAL_HORIZON_S = 5.0
"""The goal is the logged position this long after the decision (or the bag's end) (s)."""

DEFAULT_WORST_INSTANTS = 12
"""Decisions with the largest ADE kept (with their camera frame) for the contact sheet."""

EVALUATED = "evaluated"
IMAGE_OUT_OF_ORDER = "image_out_of_order"
OUTSIDE_ODOMETRY = "outside_odometry"
ODOMETRY_GAP = "odometry_gap"


@dataclass(frozen=True)
class ReplayConfig:
    """What to replay and how (units in the names).

    Attributes:
        image_topic: ``sensor_msgs/Image`` or ``CompressedImage`` topic.
        odom_topic: ``nav_msgs/Odometry`` topic (the logged motion).
        goal_horizon_s: the goal is the logged position this long after each decision.
        decision_rate_hz: at most this many decisions per second (``None``: each model's
            contract ``frame_rate_hz``, like the policy node; ``math.inf``: every frame).
        max_odometry_gap_s: longest odometry gap inside an evaluated future (``None``: the
            model's prediction horizon ``W * waypoint_dt_s``).
        keep_partial: on a truncated/corrupt bag keep the decisions before the damage.
        embodiment: packaged embodiment name or YAML path (``None``: each contract's).
        navigator: navigator settings (controller, speed source, mode switching).
        safety: safety-core settings (watchdog timeouts, goal tolerance).
        metrics: direction-class thresholds.
        worst_instants: decisions kept with their camera frame for the contact sheet.
    """

    image_topic: str
    odom_topic: str
    goal_horizon_s: float = DEFAULT_GOAL_HORIZON_S
    decision_rate_hz: float | None = None
    max_odometry_gap_s: float | None = None
    keep_partial: bool = False
    embodiment: str | None = None
    navigator: NavigatorConfig = field(default_factory=NavigatorConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    worst_instants: int = DEFAULT_WORST_INSTANTS

    def __post_init__(self) -> None:
        if not math.isfinite(self.goal_horizon_s) or self.goal_horizon_s <= 0:
            raise S2EError(f"goal_horizon_s: expected a number > 0 (s), got "
                           f"{self.goal_horizon_s}")
        for name in ("decision_rate_hz", "max_odometry_gap_s"):
            value = getattr(self, name)
            if value is not None and (math.isnan(value) or value <= 0):
                raise S2EError(f"{name}: expected a number > 0 or None, got {value}")
        if self.worst_instants < 0:
            raise S2EError(f"worst_instants: expected >= 0, got {self.worst_instants}")


@dataclass
class InstantRecord:
    """One decision instant of one model.

    Attributes:
        stamp_ns: the camera frame's stamp = decision time (nanoseconds).
        status: ``evaluated`` or why not (see the module docstring).
        pose: float64 ``(3,)`` logged pose at the instant (odometry frame, clamped to the
            logged span).
        goal: float64 ``(2,)`` goal given to the pilot (odometry frame, m).
        command: float64 ``(3,)`` command the pilot sent ``(vx, vy, wz)``.
        mode: chosen mode, or -1 when the policy did not run.
        probabilities: float32 ``(K,)`` mode probabilities, or ``None``.
        modes: float32 ``(K, W, 3)`` every mode in base_link at the instant, or ``None``.
        truth: float64 ``(W, 3)`` logged future in base_link, or ``None``.
        logged_velocity: float64 ``(2,)`` logged ``(vx, wz)`` over the first waypoint
            interval, or ``None``.
        metrics: the decision's metrics when evaluated.
        inference_s: ONNX inference time (s; NaN without a decision).
        decide_s: navigator time, inference included (s; NaN without a decision).
        step_s: the pilot's whole step (s).
    """

    stamp_ns: int
    status: str
    pose: np.ndarray
    goal: np.ndarray
    command: np.ndarray
    mode: int = -1
    probabilities: np.ndarray | None = None
    modes: np.ndarray | None = None
    truth: np.ndarray | None = None
    logged_velocity: np.ndarray | None = None
    metrics: InstantMetrics | None = None
    inference_s: float = math.nan
    decide_s: float = math.nan
    step_s: float = math.nan


@dataclass
class WorstInstant:
    """A decision kept for the contact sheet: its record and the uint8 ``(H, W, 3)`` frame."""

    record: InstantRecord
    rgb: np.ndarray


@dataclass
class ReplayRun:
    """Everything one model's replay produced.

    Attributes:
        label: short unique name of the model in reports.
        model: path of the ``.onnx`` file.
        bag: path of the bag.
        config: the replay settings.
        contract_summary: the policy's contract summary.
        embodiment: name of the embodiment the pilot used.
        records: one per decision instant, in time order.
        worst: the decisions with the largest ADE, worst first.
        motion: the logged odometry.
        decision_period_ns: least time between two decisions (nanoseconds).
        partial_error: the error that ended a ``keep_partial`` run early, else ``None``.
        decode_s: time spent reading and decoding every camera frame (shared by all models
            of the pass), seconds per frame.
    """

    label: str
    model: str
    bag: str
    config: ReplayConfig
    contract_summary: dict
    embodiment: str
    motion: LoggedMotion
    decision_period_ns: int
    records: list[InstantRecord] = field(default_factory=list)
    worst: list[WorstInstant] = field(default_factory=list)
    partial_error: str | None = None
    decode_s: list[float] = field(default_factory=list)
    _heap: list = field(default_factory=list, repr=False)
    _last_decision_ns: int | None = field(default=None, repr=False)

    @property
    def evaluated(self) -> list[InstantRecord]:
        """The evaluated records."""
        return [r for r in self.records if r.status == EVALUATED]

    def status_counts(self) -> dict[str, int]:
        """How many instants ended with each status."""
        return dict(sorted(Counter(r.status for r in self.records).items()))

    def summary(self) -> dict[str, object]:
        """The run's ``metrics.json`` content (JSON-ready)."""
        decided = [r for r in self.records if r.mode >= 0]
        metrics = aggregate([r.metrics for r in self.evaluated if r.metrics is not None],
                            np.array([r.inference_s for r in decided]),
                            np.array([r.step_s for r in decided]))
        return {
            "model": self.model, "label": self.label, "bag": self.bag,
            "image_topic": self.config.image_topic, "odom_topic": self.config.odom_topic,
            "goal_horizon_s": self.config.goal_horizon_s,
            "embodiment": self.embodiment,
            "controller": self.config.navigator.controller,
            "decision_period_s": self.decision_period_ns / NS_PER_S,
            "instants": len(self.records), "decisions": len(decided),
            "status_counts": self.status_counts(),
            "odometry_dropped_out_of_order": self.motion.dropped_out_of_order,
            "partial": self.partial_error is not None, "partial_error": self.partial_error,
            **metrics,
            "contract": self.contract_summary,
        }

    def _keep_worst(self, record: InstantRecord, rgb: np.ndarray) -> None:
        if self.config.worst_instants == 0 or record.metrics is None:
            return
        item = (record.metrics.ade_m, record.stamp_ns, WorstInstant(record, rgb))
        if len(self._heap) < self.config.worst_instants:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, item)

    def _throttled(self, t: int) -> bool:
        """Whether ``t`` comes too soon after the previous decision (else it becomes one)."""
        last = self._last_decision_ns
        if last is not None and 0 <= t - last < self.decision_period_ns:
            return True
        self._last_decision_ns = t
        return False

    def _finish(self) -> None:
        self.worst = [w for _ade, _t, w in sorted(self._heap, key=lambda i: i[:2],
                                                  reverse=True)]


def unique_labels(models: Sequence[str | Path]) -> list[str]:
    """Report labels for model files: their stems, suffixed ``-2``, ``-3``... when repeated."""
    labels: list[str] = []
    seen: Counter[str] = Counter()
    for model in models:
        stem = Path(model).stem or "model"
        seen[stem] += 1
        labels.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return labels


def _embodiment(config: ReplayConfig, runtime: PolicyRuntime) -> Embodiment:
    name = config.embodiment or str(runtime.contract.embodiment.get("name", ""))
    try:
        return load_embodiment(name)
    except S2EError as exc:
        raise S2EError(f"{runtime.source}: embodiment {name!r} of its contract cannot be "
                       f"loaded ({exc}); choose one with --embodiment") from exc


def _check_topics(bag: Path, config: ReplayConfig) -> None:
    topics = list_topics(bag)
    names = {t.name for t in topics}
    missing = [t for t in (config.image_topic, config.odom_topic) if t not in names]
    if missing:
        listing = ", ".join(f"{t.name} ({t.msgtype}, {t.count})" for t in topics) or "none"
        raise BagError(f"rosbag2 {bag}: no topic {' or '.join(map(repr, missing))}; the bag "
                       f"has: {listing}")


def replay_bag(bag: str | Path, runtimes: Sequence[PolicyRuntime], config: ReplayConfig,
               labels: Sequence[str] | None = None) -> list[ReplayRun]:
    """Replay ``bag`` through every runtime and measure each against the logged motion.

    Args:
        bag: rosbag2 folder (sqlite3 or MCAP storage) or its storage file.
        runtimes: the loaded policies (one pilot each, all fed the same messages).
        config: topics, goal horizon and settings.
        labels: report names of the runtimes (default: unique file stems).

    Returns:
        One :class:`ReplayRun` per runtime, in order.

    Raises:
        BagError: missing topic (lists the bag's topics), wrong message type, truncated or
            corrupt bag (unless ``keep_partial``).
        S2EError: undecodable frames (e.g. an unknown image encoding), too little odometry.
    """
    bag = Path(bag)
    if not runtimes:
        raise S2EError("replay: expected at least one model")
    _check_topics(bag, config)
    truncated: list[BagError] = []
    track = read_odometry(bag, config.odom_topic,
                          on_truncated=truncated.append if config.keep_partial else None)
    motion = LoggedMotion.from_track(track, f"rosbag2 {bag} topic {config.odom_topic!r}")
    if motion.dropped_out_of_order:
        log.warning("%s: %d odometry messages on %s are not after the previous stamp: "
                    "dropped", bag, motion.dropped_out_of_order, config.odom_topic)
    labels = list(labels) if labels is not None else unique_labels([r.source for r in runtimes])
    runs, pilots = [], []
    for runtime, label in zip(runtimes, labels, strict=True):
        embodiment = _embodiment(config, runtime)
        pilots.append(Pilot(runtime, embodiment, config.navigator, config.safety))
        rate_hz = config.decision_rate_hz or runtime.contract.frame_rate_hz
        runs.append(ReplayRun(label, runtime.source, str(bag), config,
                              runtime.contract.summary(), embodiment.name, motion,
                              round(NS_PER_S / rate_hz)))
    goal_offset_ns = round(config.goal_horizon_s * NS_PER_S)
    frames = iter_images(bag, config.image_topic)
    next_odom = 0
    while True:
        start = time.perf_counter()
        try:
            frame = next(frames, None)
        except S2EError as exc:
            if not config.keep_partial:
                if any(run.records for run in runs):
                    raise type(exc)(f"{exc} (keep_partial / --keep-partial keeps the "
                                    "decisions before it)") from exc
                raise
            truncated.append(exc)
            break
        if frame is None:
            break
        decode_s = time.perf_counter() - start
        t = int(frame.stamp_ns)
        while next_odom < len(motion.stamps_ns) and motion.stamps_ns[next_odom] <= t:
            for pilot in pilots:
                pilot.on_odometry(int(motion.stamps_ns[next_odom]), motion.poses[next_odom])
            next_odom += 1
        pose = motion.pose_at(t)
        goal = motion.pose_at(t + goal_offset_ns)[:2]
        for pilot, run in zip(pilots, runs, strict=True):
            run.decode_s.append(decode_s)
            stored = pilot.on_image(t, frame.rgb)
            if run._throttled(t):
                continue
            if not stored:
                run.records.append(InstantRecord(t, IMAGE_OUT_OF_ORDER, pose, goal,
                                                 np.zeros(3)))
                continue
            _decide(pilot, run, motion, t, pose, goal, frame.rgb)
    for run in runs:
        run.partial_error = str(truncated[0]) if truncated else None
        run._finish()
    if truncated:
        log.warning("%s: replay ended early, partial results kept: %s", bag, truncated[0])
    return runs


def _decide(pilot: Pilot, run: ReplayRun, motion: LoggedMotion, t: int, pose: np.ndarray,
            goal: np.ndarray, rgb: np.ndarray) -> None:
    """Step one pilot at ``t`` and record (and evaluate) what it did."""
    contract = pilot.navigator.contract
    pilot.on_goal(t, goal)
    start = time.perf_counter()
    out = pilot.step(t)
    step_s = time.perf_counter() - start
    record = InstantRecord(t, EVALUATED, pose, goal, out.command.copy(), step_s=step_s)
    run.records.append(record)
    decision = out.decision
    if decision is None:
        record.status = out.safe.reasons[0].value
        return
    record.mode = decision.mode
    record.probabilities = decision.probabilities.astype(np.float32)
    record.modes = decision.modes.astype(np.float32)
    record.inference_s = decision.inference_s
    record.decide_s = decision.total_s
    horizon_ns = round(contract.waypoints * contract.waypoint_dt_s * NS_PER_S)
    max_gap_s = (run.config.max_odometry_gap_s if run.config.max_odometry_gap_s is not None
                 else horizon_ns / NS_PER_S)
    if not motion.covers(t, t + horizon_ns):
        record.status = OUTSIDE_ODOMETRY
        return
    if motion.largest_gap_s(t, t + horizon_ns) > max_gap_s:
        record.status = ODOMETRY_GAP
        return
    record.truth = motion.future_in_robot(t, contract.waypoints, contract.waypoint_dt_s)
    record.logged_velocity = motion.mean_velocity(
        t, t + round(contract.waypoint_dt_s * NS_PER_S))
    record.metrics = instant_metrics(decision.modes, decision.mode, record.truth,
                                     out.command, record.logged_velocity, run.config.metrics)
    run._keep_worst(record, rgb)
