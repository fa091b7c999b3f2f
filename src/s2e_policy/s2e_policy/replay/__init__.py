"""Rosbag replay evaluation: recorded robot logs through the onboard runtime, measured.

- :mod:`~s2e_policy.replay.loop`: :func:`replay_bag` feeds a rosbag2 (sqlite3 or MCAP, raw or
  compressed images) into one :class:`~s2e_policy.runtime.Pilot` per model in timestamp
  order, exactly as the policy node would, and records every decision (:class:`ReplayRun`).
- :mod:`~s2e_policy.replay.logged`: the logged motion (ground truth) from the odometry.
- :mod:`~s2e_policy.replay.metrics`: ADE/FDE (chosen mode and min-of-K), heading error,
  direction agreement, command vs logged velocity, latency; their definitions.
- :mod:`~s2e_policy.replay.report`: per-instant CSV, ``metrics.json``, the model table.
- :mod:`~s2e_policy.replay.plots`: figures (matplotlib, optional).
- :mod:`~s2e_policy.replay.annotate`: the input bag plus ``/s2e/waypoints``,
  ``/s2e/cmd_vel`` and ``/s2e/markers`` as MCAP for Foxglove Studio.
- :mod:`~s2e_policy.replay.cli`: ``s2e replay``.

Example:
    >>> runtime = PolicyRuntime.from_file("policy.onnx")                        # doctest: +SKIP
    >>> run, = replay_bag("bags/run1", [runtime], ReplayConfig("/image", "/odom"))  # doctest: +SKIP
    >>> run.summary()["ade_m"]["mean"]                                          # doctest: +SKIP
"""

from s2e_policy.replay.logged import LoggedMotion, ReplayInputError
from s2e_policy.replay.loop import (
    InstantRecord,
    ReplayConfig,
    ReplayRun,
    replay_bag,
    unique_labels,
)
from s2e_policy.replay.metrics import InstantMetrics, MetricsConfig, aggregate, instant_metrics

__all__ = [
    "InstantMetrics",
    "InstantRecord",
    "LoggedMotion",
    "MetricsConfig",
    "ReplayConfig",
    "ReplayInputError",
    "ReplayRun",
    "aggregate",
    "instant_metrics",
    "replay_bag",
    "unique_labels",
]
