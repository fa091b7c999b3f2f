"""Parameters of the policy node: one declaration (name, default, description) for every use.

The rclpy node declares exactly these (with their descriptions), the DDS adapter reads the
same ROS 2 parameter files, and ``config/<embodiment>.yaml`` holds one value per parameter
(a test checks the files against this table). A params file is the ROS 2 format::

    policy_node:
      ros__parameters:
        model_path: /models/s2e.onnx
        embodiment: wheeled

Units are in the names (``_s``, ``_m``, ``_hz``, ``_rad``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from s2e_policy.errors import S2EError
from s2e_policy.runtime import NavigatorConfig, SafetyConfig
from s2e_policy.runtime.navigator import (
    DEFAULT_CONTROLLER,
    DEFAULT_LOOKAHEAD_M,
    DEFAULT_TURN_IN_PLACE_BEARING_RAD,
    SPEED_SOURCES,
)
from s2e_policy.yaml_files import read_yaml

NODE_NAME = "policy_node"
"""Default node name (the top-level key of its params files)."""

ROS_PARAMETERS_KEY = "ros__parameters"
"""Key under the node name in ROS 2 params files."""

WAYPOINT_MODES = ("chosen", "all")
"""What ``~/waypoints`` shows: the followed mode, or every mode (a fan from base_link)."""

_DEFAULT_SAFETY = SafetyConfig()


class ParameterError(S2EError):
    """A policy node parameter or params file is invalid (names the parameter or file)."""


@dataclass(frozen=True)
class PolicyNodeParams:
    """Every parameter of the policy node (ROS 2 parameters with these names).

    Attributes:
        model_path: the exported ``.onnx`` policy (its contract sets image size, context,
            rate and anchors).
        embodiment: ``wheeled``, ``go2`` or a path to an embodiment YAML (limits, camera).
        providers: ONNX Runtime execution providers in order (empty, or ``[""]`` in a
            params file: TensorRT -> CUDA -> CPU, whichever is available).
        intra_op_threads: ONNX Runtime threads inside one operator (0: its default).
        inference_rate_hz: how often the policy runs (0: the contract's frame rate).
        compressed_image: subscribe ``sensor_msgs/CompressedImage`` (JPEG/PNG) instead of
            ``sensor_msgs/Image``.
        cmd_vel_stamped: publish ``geometry_msgs/TwistStamped`` instead of ``Twist``.
        waypoint_modes: ``chosen`` or ``all`` (see :data:`WAYPOINT_MODES`).
        base_frame: the robot's body frame (REP-105 ``base_link``).
        odom_frame: the odometry frame goals are transformed into (REP-105 ``odom``).
        controller: ``direct`` (the paper) or ``pure_pursuit``.
        speed_source: ``predicted`` (the policy's speed head) or ``nominal`` (embodiment).
        lookahead_m: pure-pursuit lookahead (m).
        mode_switch_margin: logit margin needed to leave the previous mode (0: argmax).
        turn_in_place_bearing_rad: goals further off the heading make the robot turn on the
            spot (rad; 0 disables).
        image_timeout_s: stop when the newest camera frame is older than this (s).
        odometry_timeout_s: stop when the newest odometry is older than this (s).
        goal_tolerance_m: stop within this distance of the goal (m).
        diagnostics_period_s: time between ``/diagnostics`` messages (s).
        autostart: configure and activate at start-up (as a lifecycle manager would); the
            DDS adapter, which has no lifecycle services, needs it.
    """

    model_path: str = ""
    embodiment: str = "wheeled"
    providers: tuple[str, ...] = ()
    intra_op_threads: int = 0
    inference_rate_hz: float = 0.0
    compressed_image: bool = False
    cmd_vel_stamped: bool = False
    waypoint_modes: str = "chosen"
    base_frame: str = "base_link"
    odom_frame: str = "odom"
    controller: str = DEFAULT_CONTROLLER
    speed_source: str = "predicted"
    lookahead_m: float = DEFAULT_LOOKAHEAD_M
    mode_switch_margin: float = 0.0
    turn_in_place_bearing_rad: float = DEFAULT_TURN_IN_PLACE_BEARING_RAD
    image_timeout_s: float = _DEFAULT_SAFETY.image_timeout_s
    odometry_timeout_s: float = _DEFAULT_SAFETY.odometry_timeout_s
    goal_tolerance_m: float = _DEFAULT_SAFETY.goal_tolerance_m
    diagnostics_period_s: float = 1.0
    autostart: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = _PYTHON_TYPES[f.name]
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif expected is tuple and isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
            value = getattr(self, f.name)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ParameterError(f"parameter {f.name}: expected {expected.__name__}, got "
                                     f"{value!r}")
        if not all(isinstance(p, str) for p in self.providers):
            raise ParameterError(f"parameter providers: expected strings, got {self.providers!r}")
        # ROS 2 parameter files cannot hold an empty array: [""] means "none given".
        object.__setattr__(self, "providers", tuple(p for p in self.providers if p))
        for name in ("inference_rate_hz", "mode_switch_margin", "turn_in_place_bearing_rad"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ParameterError(f"parameter {name}: expected a finite value >= 0, got "
                                     f"{getattr(self, name)}")
        for name in ("lookahead_m", "image_timeout_s", "odometry_timeout_s",
                     "goal_tolerance_m", "diagnostics_period_s"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ParameterError(f"parameter {name}: expected a finite value > 0, got "
                                     f"{getattr(self, name)}")
        if self.waypoint_modes not in WAYPOINT_MODES:
            raise ParameterError(f"parameter waypoint_modes: expected one of {WAYPOINT_MODES}, "
                                 f"got {self.waypoint_modes!r}")
        if self.speed_source not in SPEED_SOURCES:
            raise ParameterError(f"parameter speed_source: expected one of {SPEED_SOURCES}, "
                                 f"got {self.speed_source!r}")
        if self.intra_op_threads < 0:
            raise ParameterError(f"parameter intra_op_threads: expected >= 0, got "
                                 f"{self.intra_op_threads}")
        for name in ("base_frame", "odom_frame"):
            if not getattr(self, name):
                raise ParameterError(f"parameter {name}: expected a frame name, got ''")
        self.navigator()  # validates controller and the turn bearing

    def navigator(self) -> NavigatorConfig:
        """The navigator settings."""
        bearing = self.turn_in_place_bearing_rad
        try:
            return NavigatorConfig(controller=self.controller, lookahead_m=self.lookahead_m,
                                   speed=self.speed_source,
                                   mode_switch_margin=self.mode_switch_margin,
                                   turn_in_place_bearing_rad=bearing if bearing > 0 else None)
        except S2EError as exc:
            raise ParameterError(f"policy node parameters: {exc}") from None

    def safety(self) -> SafetyConfig:
        """The safety-core settings (goals stay valid until replaced)."""
        return SafetyConfig(image_timeout_s=self.image_timeout_s,
                            odometry_timeout_s=self.odometry_timeout_s,
                            goal_tolerance_m=self.goal_tolerance_m)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "parameters"
                     ) -> PolicyNodeParams:
        """Parameters from a name -> value mapping (unknown names are refused).

        Raises:
            ParameterError: unknown name or a value of the wrong type or range.
        """
        if not isinstance(values, Mapping):
            raise ParameterError(f"{source}: expected a mapping of parameters, got "
                                 f"{type(values).__name__}")
        unknown = sorted(set(values) - set(PARAMETER_DESCRIPTIONS))
        if unknown:
            raise ParameterError(f"{source}: unknown parameter(s) {unknown}; known: "
                                 f"{sorted(PARAMETER_DESCRIPTIONS)}")
        try:
            return cls(**values)
        except ParameterError as exc:
            raise ParameterError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path, node_name: str = NODE_NAME) -> PolicyNodeParams:
        """Parameters of ``node_name`` in a ROS 2 params file (``/**`` entries apply too).

        Raises:
            ParameterError: unreadable file, no section for the node, or a bad parameter.
        """
        data = read_yaml(path, "ROS 2 params file", ParameterError)
        if not isinstance(data, dict):
            raise ParameterError(f"{path}: expected '<node name>: {{{ROS_PARAMETERS_KEY}: "
                                 "...}}' at the top level")
        merged: dict[str, Any] = {}
        found = False
        for key in ("/**", node_name, "/" + node_name.lstrip("/")):
            section = data.get(key)
            if section is None:
                continue
            if not isinstance(section, dict) or not isinstance(
                    section.get(ROS_PARAMETERS_KEY), dict):
                raise ParameterError(f"{path}: section {key!r} needs a mapping "
                                     f"{ROS_PARAMETERS_KEY!r}")
            merged.update(section[ROS_PARAMETERS_KEY])
            found = True
        if not found:
            raise ParameterError(f"{path}: no section for node {node_name!r} (top-level keys: "
                                 f"{sorted(data)})")
        return cls.from_mapping(merged, str(path))

    def as_ros_values(self) -> dict[str, Any]:
        """Name -> value as ROS 2 parameters hold them (lists; ``[""]`` for no providers)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["providers"] = list(self.providers) or [""]
        return values


PARAMETER_DESCRIPTIONS: dict[str, str] = {
    "model_path": "exported .onnx policy file (its contract sets image size, context, rate)",
    "embodiment": "robot: wheeled, go2 or a path to an embodiment YAML (limits, camera)",
    "providers": "ONNX Runtime execution providers in order; empty: TensorRT, CUDA, CPU",
    "intra_op_threads": "ONNX Runtime threads inside one operator (0: its default)",
    "inference_rate_hz": "policy rate in Hz (0: the contract's frame rate)",
    "compressed_image": "subscribe sensor_msgs/CompressedImage instead of sensor_msgs/Image",
    "cmd_vel_stamped": "publish geometry_msgs/TwistStamped instead of Twist on cmd_vel",
    "waypoint_modes": "~/waypoints shows the 'chosen' mode or 'all' modes (fan from base)",
    "base_frame": "robot body frame (REP-105)",
    "odom_frame": "odometry frame; goals are transformed into it with tf2",
    "controller": "waypoints to velocity: direct (the paper) or pure_pursuit",
    "speed_source": "speed of the followed mode: predicted (policy) or nominal (embodiment)",
    "lookahead_m": "pure-pursuit lookahead distance (m)",
    "mode_switch_margin": "logit margin another mode needs to replace the previous (0: argmax)",
    "turn_in_place_bearing_rad": "turn on the spot for goals further off the heading (rad; "
                                 "0 disables)",
    "image_timeout_s": "watchdog: stop when the newest camera frame is older than this (s)",
    "odometry_timeout_s": "watchdog: stop when the newest odometry is older than this (s)",
    "goal_tolerance_m": "stop within this distance of the goal (m)",
    "diagnostics_period_s": "time between /diagnostics messages (s)",
    "autostart": "configure and activate at start-up (else wait for lifecycle transitions)",
}
"""Description of every parameter (declared with the rclpy node's parameter descriptors)."""

_PYTHON_TYPES: dict[str, type] = {
    f.name: {"str": str, "int": int, "float": float, "bool": bool,
             "tuple[str, ...]": tuple}[str(f.type)]
    for f in fields(PolicyNodeParams)
}

if set(PARAMETER_DESCRIPTIONS) != set(_PYTHON_TYPES):  # pragma: no cover - a developer error
    raise RuntimeError("PARAMETER_DESCRIPTIONS must describe every PolicyNodeParams field")
