"""The ONNX contract: what one exported policy file promises the onboard runtime.

Training writes it into the ONNX ``metadata_props`` (string key/value pairs, readable with
ONNX Runtime's ``get_modelmeta().custom_metadata_map`` or any ONNX viewer); the runtime reads
it back and never guesses. Every key starts with :data:`METADATA_PREFIX`; values are JSON
(numbers, strings, lists, objects), so the file stays self-describing in tools like Netron.

Graph interface of contract version 1 (B batch, T context frames, S image side, K modes,
W waypoints; robot frame at the decision instant, REP-103: x forward, y left)::

    inputs   frames     (B, T, 3, S, S)  RGB in [0, 1], oldest frame first, frames
                                         1 / frame_rate_hz apart (preprocess_image)
             goal       (B, 3)           [clip(d, 0.1, 200) / 200, cos th, sin th]
    outputs  scores     (B, K)           mode logits (softmax -> probabilities)
             traj_m     (B, K, W, 3)     (x m, y m, heading rad), waypoint k at k * dt
             speed_mps  (B, K)           predicted mean speed of each mode
             traj_norm  (B, K, W, 2)     speed-normalised trajectories (anchors + offsets)
             gaussian   (B, K, W, 3)     [log sigma_x, log sigma_y, rho] over traj_norm

``traj_m[..., :2] == traj_norm * speed_mps * waypoint_dt_s``: an embodiment that should move
at its own speed rescales ``traj_norm`` instead (see :meth:`PolicyContract.trajectory_at_speed`).
The input element type is float32, or float16 when ``precision == "fp16"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import numpy as np

from s2e_policy.errors import S2EError
from s2e_policy.geometry import GOAL_MAX_DISTANCE_M, GOAL_MIN_DISTANCE_M

CONTRACT_VERSION = 1
"""The newest contract version this runtime understands; newer files are refused."""

METADATA_PREFIX = "s2e."
"""Prefix of every contract key in the ONNX ``metadata_props``."""

INPUT_NAMES = ("frames", "goal")
OUTPUT_NAMES = ("scores", "traj_m", "speed_mps", "traj_norm", "gaussian")
GOAL_ENCODING = "distance_cos_sin"
"""``[clip(d, goal_min_distance_m, goal_max_distance_m) / goal_max_distance_m, cos, sin]``."""

PRECISIONS = ("fp32", "fp16")

OUTPUT_SEMANTICS = {
    "scores": "(B,K) mode logits; softmax gives mode probabilities",
    "traj_m": "(B,K,W,3) x m, y m, heading rad in the robot frame (REP-103) at the decision "
              "instant; waypoint w is reached after (w+1)*waypoint_dt_s",
    "speed_mps": "(B,K) predicted mean speed of each mode, m/s",
    "traj_norm": "(B,K,W,2) speed-normalised trajectories; traj_m xy = traj_norm * speed_mps "
                 "* waypoint_dt_s",
    "gaussian": "(B,K,W,3) log sigma_x, log sigma_y, rho of a 2D Gaussian over traj_norm",
}


class ContractError(S2EError):
    """An ONNX file lacks the contract, or its contract is invalid or too new."""


@dataclass(frozen=True)
class PolicyContract:
    """Everything the runtime needs to feed a policy file and read its outputs.

    Attributes:
        version: contract version (:data:`CONTRACT_VERSION` when written by this code).
        image_size: S, input frames are S x S (``preprocess_image``).
        context_frames: T, frames per input, oldest first.
        frame_rate_hz: rate of the context frames (their spacing is ``1 / frame_rate_hz`` s).
        num_anchors: K, number of output modes.
        waypoints: W, waypoints per mode.
        waypoint_scale_m: nominal step length the speed head is expressed in (m).
        waypoint_dt_s: time between consecutive waypoints (s).
        anchors: ``(K, W, 2)`` float32 anchors in the speed-normalised space.
        anchor_kind: ``uniform`` or ``kmeans``.
        precision: ``fp32`` or ``fp16`` (element type of the graph's inputs and outputs).
        goal_encoding: :data:`GOAL_ENCODING`.
        goal_min_distance_m: lower clip of the goal distance (m).
        goal_max_distance_m: upper clip and normaliser of the goal distance (m).
        embodiment: the limits the policy was trained for (name, kind, max_linear_mps,
            max_lateral_mps, max_angular_radps, accelerations, nominal_speed_mps).
        model_config: the network configuration (plain dict) it was built from.
        train_config_sha256: SHA-256 of the training configuration (canonical JSON).
        train_config: the training configuration (plain dict), or empty.
        git_commit: commit of the training code, or ``None`` when unknown.
        train_command: the command line that trained the checkpoint, or ``""``.
        checkpoint_step: optimiser step of the exported checkpoint.
        producer: free text (tool and version that wrote the file).
    """

    image_size: int
    context_frames: int
    frame_rate_hz: float
    num_anchors: int
    waypoints: int
    waypoint_scale_m: float
    waypoint_dt_s: float
    anchors: np.ndarray
    anchor_kind: str
    embodiment: dict[str, Any]
    model_config: dict[str, Any]
    train_config_sha256: str
    version: int = CONTRACT_VERSION
    precision: str = "fp32"
    goal_encoding: str = GOAL_ENCODING
    goal_min_distance_m: float = GOAL_MIN_DISTANCE_M
    goal_max_distance_m: float = GOAL_MAX_DISTANCE_M
    train_config: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    train_command: str = ""
    checkpoint_step: int = 0
    producer: str = ""

    def __post_init__(self) -> None:
        anchors = np.asarray(self.anchors, dtype=np.float32)
        object.__setattr__(self, "anchors", anchors)
        _validate(self)

    @property
    def frame_period_s(self) -> float:
        """Time between consecutive context frames (s)."""
        return 1.0 / self.frame_rate_hz

    @property
    def input_shapes(self) -> dict[str, tuple[int | str, ...]]:
        """Input name -> shape, ``"B"`` marking the dynamic batch axis."""
        s = self.image_size
        return {"frames": ("B", self.context_frames, 3, s, s), "goal": ("B", 3)}

    def trajectory_at_speed(self, traj_norm: np.ndarray, speed_mps: float | np.ndarray
                            ) -> np.ndarray:
        """Scale normalised trajectories ``(..., W, 2)`` to metres at ``speed_mps``."""
        speed = np.asarray(speed_mps, dtype=np.float64)
        return np.asarray(traj_norm, np.float64) * (speed * self.waypoint_dt_s)[..., None, None]

    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` key/value strings that encode this contract."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = value.astype(np.float64).tolist()  # float32 values print exactly
            out[METADATA_PREFIX + f.name] = json.dumps(value, sort_keys=True)
        out[METADATA_PREFIX + "inputs"] = json.dumps(
            {k: list(v) for k, v in self.input_shapes.items()})
        out[METADATA_PREFIX + "outputs"] = json.dumps(OUTPUT_SEMANTICS, sort_keys=True)
        return out

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str = "ONNX file"
                      ) -> PolicyContract:
        """Parse and validate a contract from ``metadata_props``.

        Raises:
            ContractError: naming ``source`` when the contract is absent, too new, or a key
                is missing or malformed.
        """
        version_key = METADATA_PREFIX + "version"
        if version_key not in props:
            present = sorted(k for k in props if not k.startswith(METADATA_PREFIX))
            raise ContractError(
                f"{source}: no S2E policy contract in its metadata_props (key {version_key!r} "
                f"is missing; other keys: {present or 'none'}); export the policy with "
                "`s2e export CHECKPOINT --out policy.onnx`"
            )
        version = _load(props, "version", source)
        if not isinstance(version, int) or version < 1:
            raise ContractError(f"{source}: {version_key} must be an integer >= 1, got "
                                f"{props[version_key]!r}")
        if version > CONTRACT_VERSION:
            raise ContractError(
                f"{source}: contract version {version} is newer than this runtime supports "
                f"({CONTRACT_VERSION}); update s2e_policy"
            )
        values: dict[str, Any] = {}
        defaults = {f.name for f in fields(cls)
                    if f.default is not MISSING or f.default_factory is not MISSING}
        for f in fields(cls):
            key = METADATA_PREFIX + f.name
            if key not in props:
                if f.name in defaults:
                    continue
                raise ContractError(f"{source}: contract key {key!r} is missing")
            values[f.name] = _load(props, f.name, source)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ContractError):
                raise ContractError(f"{source}: {exc}") from None
            raise ContractError(f"{source}: invalid contract: {exc}") from None

    def summary(self) -> dict[str, Any]:
        """Human-readable key figures (for logs and ``s2e export``'s printout)."""
        d = asdict(self)
        d.pop("anchors")
        d.pop("model_config")
        d.pop("train_config")
        return d


def _load(props: Mapping[str, str], name: str, source: str) -> Any:
    key = METADATA_PREFIX + name
    try:
        return json.loads(props[key])
    except (json.JSONDecodeError, TypeError):
        raise ContractError(f"{source}: contract key {key!r} is not valid JSON: "
                            f"{str(props[key])[:80]!r}") from None


def _check(ok: bool, name: str, expectation: str, value: Any) -> None:
    if not ok:
        raise ContractError(f"contract key {METADATA_PREFIX + name!r}: expected {expectation}, "
                            f"got {value!r}")


def _positive_int(c: PolicyContract, name: str) -> None:
    value = getattr(c, name)
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name,
           "an integer >= 1", value)


def _positive_float(c: PolicyContract, name: str) -> None:
    value = getattr(c, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    _check(ok and math.isfinite(value) and value > 0, name, "a finite number > 0", value)


def _validate(c: PolicyContract) -> None:
    _check(isinstance(c.version, int) and 1 <= c.version <= CONTRACT_VERSION, "version",
           f"an integer in [1, {CONTRACT_VERSION}]", c.version)
    for name in ("image_size", "context_frames", "num_anchors", "waypoints"):
        _positive_int(c, name)
    for name in ("frame_rate_hz", "waypoint_scale_m", "waypoint_dt_s", "goal_min_distance_m",
                 "goal_max_distance_m"):
        _positive_float(c, name)
    expected = (c.num_anchors, c.waypoints, 2)
    _check(c.anchors.shape == expected and bool(np.all(np.isfinite(c.anchors))), "anchors",
           f"finite numbers of shape {expected}", f"shape {c.anchors.shape}")
    _check(c.anchor_kind in ("uniform", "kmeans"), "anchor_kind", "'uniform' or 'kmeans'",
           c.anchor_kind)
    _check(c.precision in PRECISIONS, "precision", f"one of {PRECISIONS}", c.precision)
    _check(c.goal_encoding == GOAL_ENCODING, "goal_encoding", repr(GOAL_ENCODING),
           c.goal_encoding)
    _check(isinstance(c.embodiment, dict), "embodiment", "an object", c.embodiment)
    for key in ("max_linear_mps", "max_angular_radps"):
        _check(key in c.embodiment, "embodiment", f"an object with {key!r}",
               sorted(c.embodiment))
    _check(isinstance(c.model_config, dict), "model_config", "an object", type(c.model_config))
    _check(isinstance(c.train_config, dict), "train_config", "an object", type(c.train_config))
    _check(isinstance(c.train_config_sha256, str) and len(c.train_config_sha256) == 64,
           "train_config_sha256", "64 hex digits", c.train_config_sha256)
    _check(c.git_commit is None or isinstance(c.git_commit, str), "git_commit",
           "a string or null", c.git_commit)
    _check(isinstance(c.checkpoint_step, int) and c.checkpoint_step >= 0, "checkpoint_step",
           "an integer >= 0", c.checkpoint_step)
