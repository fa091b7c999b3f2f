"""Robot embodiments: dynamics limits, footprint and camera mount, loaded from strict YAML.

One YAML file per robot lives in ``s2e_policy/embodiments/`` (package data), because both
the onboard runtime (velocity and acceleration limits) and the simulator (footprint,
mass, velocity lag, camera mount, gait) need the same numbers. Frames follow REP-103:
base_link x forward, y left, z up; camera pitch is positive looking down (a positive
rotation about base_link y turns x towards -z), roll is positive about x.

Example:
    >>> from s2e_policy.embodiment import load_embodiment
    >>> go2 = load_embodiment("go2")
    >>> go2.max_linear_mps
    2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from s2e_policy.errors import S2EError
from s2e_policy.yaml_files import parse_yaml

EMBODIMENT_KINDS = ("diff_drive", "holonomic_legged")
EMBODIMENT_SUFFIX = ".yaml"


class EmbodimentError(S2EError):
    """An embodiment YAML is missing, unreadable or invalid (message names file and key)."""


@dataclass(frozen=True)
class CameraMount:
    """Where the robot's RGB camera sits on base_link and what it sees.

    Attributes:
        height_m: optical centre height above the floor (metres).
        pitch_deg: downward tilt (degrees, positive looks down).
        hfov_deg: horizontal field of view (degrees, in ``(0, 180)``).
        forward_offset_m: optical centre ahead of the base_link origin along x (metres).
        image_width_px: native image width (pixels).
        image_height_px: native image height (pixels).
    """

    height_m: float
    pitch_deg: float
    hfov_deg: float
    forward_offset_m: float
    image_width_px: int
    image_height_px: int


@dataclass(frozen=True)
class GaitConfig:
    """Gait-induced camera motion of a legged base (amplitudes at nominal walking speed).

    Attributes:
        bob_amplitude_m: vertical camera oscillation amplitude (metres).
        bob_frequency_hz: vertical oscillation frequency, one per footfall pair (hertz).
        roll_amplitude_deg: body roll amplitude (degrees); the roll oscillates once per
            stride, i.e. at half ``bob_frequency_hz``.
    """

    bob_amplitude_m: float
    bob_frequency_hz: float
    roll_amplitude_deg: float


@dataclass(frozen=True)
class Embodiment:
    """Dynamics limits, footprint and camera mount of one robot.

    Attributes:
        name: identifier (``wheeled``, ``go2``...).
        kind: ``diff_drive`` (no lateral velocity) or ``holonomic_legged`` (vx, vy, wz).
        footprint_radius_m: radius of the circle that bounds the base in the xy plane.
        mass_kg: base mass (kilograms).
        max_linear_mps: forward/backward speed limit (m/s).
        max_lateral_mps: sideways speed limit (m/s); 0 for ``diff_drive``.
        max_angular_radps: yaw rate limit (rad/s).
        max_linear_accel_mps2: linear acceleration limit, per body axis (m/s^2).
        max_angular_accel_radps2: yaw acceleration limit (rad/s^2).
        velocity_lag_s: first-order time constant between commanded and achieved body
            velocity (seconds; the response reaches 63% of a step after this long).
        nominal_speed_mps: cruise speed; scales the policy's normalised trajectories (m/s).
        camera: the RGB camera mount.
        gait: gait-induced camera motion (``holonomic_legged`` only, ``None`` otherwise).
    """

    name: str
    kind: Literal["diff_drive", "holonomic_legged"]
    footprint_radius_m: float
    mass_kg: float
    max_linear_mps: float
    max_lateral_mps: float
    max_angular_radps: float
    max_linear_accel_mps2: float
    max_angular_accel_radps2: float
    velocity_lag_s: float
    nominal_speed_mps: float
    camera: CameraMount
    gait: GaitConfig | None = None

    @property
    def is_holonomic(self) -> bool:
        """Whether the base can move sideways (``holonomic_legged``)."""
        return self.kind == "holonomic_legged"


# Keys whose value must be > 0, >= 0, or an int > 0; every other numeric key is any finite float.
_POSITIVE = {
    "footprint_radius_m",
    "mass_kg",
    "max_linear_mps",
    "max_angular_radps",
    "max_linear_accel_mps2",
    "max_angular_accel_radps2",
    "velocity_lag_s",
    "nominal_speed_mps",
    "height_m",
    "hfov_deg",
    "bob_frequency_hz",
}
_NON_NEGATIVE = {"max_lateral_mps", "bob_amplitude_m", "roll_amplitude_deg"}
_INTEGER = {"image_width_px", "image_height_px"}
_MAX_HFOV_DEG = 180.0
_MAX_ABS_PITCH_DEG = 90.0


def _check_keys(
    section: Any, cls: type, where: str, source: str, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Return ``section`` as a dict after checking it has exactly ``cls``'s fields."""
    if not isinstance(section, dict):
        raise EmbodimentError(
            f"{source}: {where or 'top level'} must be a mapping, got {type(section).__name__}"
        )
    names = {f.name for f in fields(cls)}
    prefix = f"{where}." if where else ""
    unknown = sorted(set(section) - names)
    if unknown:
        raise EmbodimentError(
            f"{source}: unknown key '{prefix}{unknown[0]}' "
            f"(expected keys: {', '.join(sorted(names))})"
        )
    missing = sorted(names - set(section) - optional)
    if missing:
        raise EmbodimentError(f"{source}: missing key '{prefix}{missing[0]}'")
    return dict(section)


def _number(value: Any, key: str, source: str, where: str = "") -> float | int:
    """Validate one numeric field against the positivity/integer rules above."""
    label = f"{where}.{key}" if where else key
    is_bool = isinstance(value, bool)
    if key in _INTEGER:
        if is_bool or not isinstance(value, int) or value <= 0:
            raise EmbodimentError(f"{source}: '{label}' must be a positive integer, got {value!r}")
        return value
    if is_bool or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EmbodimentError(f"{source}: '{label}' must be a finite number, got {value!r}")
    if key in _POSITIVE and value <= 0:
        raise EmbodimentError(f"{source}: '{label}' must be > 0, got {value!r}")
    if key in _NON_NEGATIVE and value < 0:
        raise EmbodimentError(f"{source}: '{label}' must be >= 0, got {value!r}")
    return float(value)


def embodiment_from_dict(data: Any, source: str = "<dict>") -> Embodiment:
    """Build and validate an :class:`Embodiment` from parsed YAML.

    Args:
        data: the mapping read from the YAML file.
        source: file name used in error messages.

    Raises:
        EmbodimentError: on unknown, missing or out-of-range keys.
    """
    raw = _check_keys(data, Embodiment, "", source, optional=frozenset({"gait"}))
    name, kind = raw.pop("name"), raw.pop("kind")
    if not isinstance(name, str) or not name:
        raise EmbodimentError(f"{source}: 'name' must be a non-empty string, got {name!r}")
    if kind not in EMBODIMENT_KINDS:
        raise EmbodimentError(f"{source}: 'kind' must be one of {EMBODIMENT_KINDS}, got {kind!r}")
    camera_raw = _check_keys(raw.pop("camera"), CameraMount, "camera", source)
    camera = CameraMount(**{k: _number(v, k, source, "camera") for k, v in camera_raw.items()})
    if camera.hfov_deg >= _MAX_HFOV_DEG:
        raise EmbodimentError(f"{source}: 'camera.hfov_deg' must be < {_MAX_HFOV_DEG}")
    if abs(camera.pitch_deg) > _MAX_ABS_PITCH_DEG:
        raise EmbodimentError(f"{source}: 'camera.pitch_deg' must be within +-{_MAX_ABS_PITCH_DEG}")
    gait_raw = raw.pop("gait", None)
    gait = None
    if kind == "holonomic_legged":
        if gait_raw is None:
            raise EmbodimentError(f"{source}: missing key 'gait' (required for holonomic_legged)")
        gait_raw = _check_keys(gait_raw, GaitConfig, "gait", source)
        gait = GaitConfig(**{k: _number(v, k, source, "gait") for k, v in gait_raw.items()})
    elif gait_raw is not None:
        raise EmbodimentError(f"{source}: key 'gait' is only valid for kind holonomic_legged")
    values = {k: _number(v, k, source) for k, v in raw.items()}
    if kind == "diff_drive" and values["max_lateral_mps"] != 0:
        raise EmbodimentError(f"{source}: 'max_lateral_mps' must be 0 for kind diff_drive")
    return Embodiment(name=name, kind=kind, camera=camera, gait=gait, **values)


def available_embodiments() -> list[str]:
    """Names of the embodiment YAML files shipped in ``s2e_policy/embodiments/``."""
    folder = files("s2e_policy") / "embodiments"
    return sorted(
        p.name[: -len(EMBODIMENT_SUFFIX)]
        for p in folder.iterdir()
        if p.name.endswith(EMBODIMENT_SUFFIX)
    )


def load_embodiment(name_or_path: str | Path) -> Embodiment:
    """Load an embodiment by packaged name (``wheeled``, ``go2``) or from a YAML path.

    Raises:
        EmbodimentError: unknown name, unreadable file or invalid content.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(EMBODIMENT_SUFFIX) or "/" in text:
        path = Path(name_or_path)
        if not path.is_file():
            raise EmbodimentError(f"{path}: embodiment file not found")
        source, content = str(path), path.read_text(encoding="utf-8")
    else:
        resource = files("s2e_policy") / "embodiments" / f"{text}{EMBODIMENT_SUFFIX}"
        if not resource.is_file():
            raise EmbodimentError(
                f"unknown embodiment '{text}' (available: "
                f"{', '.join(available_embodiments())}, or a .yaml path)"
            )
        source, content = (
            f"s2e_policy/embodiments/{text}{EMBODIMENT_SUFFIX}",
            resource.read_text(encoding="utf-8"),
        )
    return embodiment_from_dict(parse_yaml(content, source, EmbodimentError), source)
