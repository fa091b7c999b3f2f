"""The scene YAML next to a capture: how it sits in the robot world (z up, metres).

Example ``street.yaml`` beside ``street.ply``::

    name: street
    description: captured with a phone, COLMAP frame (y down)
    up_axis: -y                # or rotation: 3x3 matrix / [w, x, y, z] (not both)
    scale: 0.5                 # capture units -> metres (> 0)
    translation: [0, 0, 1.2]   # metres, applied after rotation and scale
    floor_height: 0.0          # world z of the floor after alignment
    navigable_bounds: [[-10, -3], [25, 3]]   # [[xmin, ymin], [xmax, ymax]] world metres

Every key is optional; unknown keys and wrong types are errors naming the file and key.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from s2e_policy.yaml_files import read_yaml
from s2e_sim_bridge.scene.gaussians import SceneFormatError
from s2e_sim_bridge.scene.info import SceneAlignment, SceneInfo
from s2e_sim_bridge.scene.transform import check_rotation, quats_to_rotmats

# Rotation (world <- capture) taking each possible capture up axis onto world +z by the
# smallest turn (a half turn about x for -z).
UP_AXIS_ROTATIONS: dict[str, np.ndarray] = {
    "+z": np.eye(3),
    "-z": np.diag([1.0, -1.0, -1.0]),
    "+y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    "-y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
    "+x": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
    "-x": np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]),
}
SCENE_YAML_KEYS = (
    "name",
    "description",
    "up_axis",
    "rotation",
    "scale",
    "translation",
    "floor_height",
    "navigable_bounds",
)
SCENE_YAML_SUFFIX = ".yaml"


@dataclass(frozen=True)
class SceneConfig:
    """A validated scene YAML.

    Attributes:
        path: the YAML file.
        alignment: capture -> world transform (identity when the YAML gives none).
        floor_height_m: world z of the floor, or None when not given.
        navigable_bounds_m: ``((xmin, ymin), (xmax, ymax))`` in world metres, or None.
        name: scene name, or None when not given.
        description: free text ("" when not given).
    """

    path: Path
    alignment: SceneAlignment
    floor_height_m: float | None = None
    navigable_bounds_m: tuple[tuple[float, float], tuple[float, float]] | None = None
    name: str | None = None
    description: str = ""


def _number(path: Path, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SceneFormatError(
            f"{path}: key {key!r} must be a finite number, got {type(value).__name__} {value!r}"
        )
    return float(value)


def _numbers(path: Path, key: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    what = " x ".join(str(n) for n in shape)
    try:
        arr = np.array(value, dtype=object)
    except ValueError:  # ragged nesting
        arr = None
    if arr is None or arr.shape != shape:
        raise SceneFormatError(f"{path}: key {key!r} must be a {what} list of numbers")
    return np.array([_number(path, key, v) for v in arr.ravel()]).reshape(shape)


def _string(path: Path, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise SceneFormatError(f"{path}: key {key!r} must be a string, got {value!r}")
    return value


def _rotation(path: Path, raw: dict) -> np.ndarray:
    if "up_axis" in raw and "rotation" in raw:
        raise SceneFormatError(f"{path}: give either 'up_axis' or 'rotation', not both")
    if "up_axis" in raw:
        axis = raw["up_axis"]
        if axis not in UP_AXIS_ROTATIONS:
            raise SceneFormatError(
                f"{path}: key 'up_axis' must be one of {sorted(UP_AXIS_ROTATIONS)}, got {axis!r}"
            )
        return UP_AXIS_ROTATIONS[axis]
    if "rotation" not in raw:
        return np.eye(3)
    value = raw["rotation"]
    if isinstance(value, list) and len(value) == 4 and not any(isinstance(v, list) for v in value):
        quat = _numbers(path, "rotation", value, (4,))
        if not np.any(quat):
            raise SceneFormatError(f"{path}: key 'rotation' is a zero quaternion")
        return quats_to_rotmats(quat)
    if not (isinstance(value, list) and len(value) == 3):
        raise SceneFormatError(
            f"{path}: key 'rotation' must be a 3 x 3 matrix or a [w, x, y, z] quaternion"
        )
    return check_rotation(_numbers(path, "rotation", value, (3, 3)), f"{path}: key 'rotation'")


def parse_scene_yaml(raw: object, path: Path) -> SceneConfig:
    """Validate the parsed content of a scene YAML (see the module docstring for keys).

    Args:
        raw: what ``yaml.safe_load`` returned (a mapping, or None for an empty file).
        path: the file it came from (for messages).

    Returns:
        The validated :class:`SceneConfig`.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SceneFormatError(f"{path}: scene YAML must be a mapping of keys to values")
    for key in raw:
        if key not in SCENE_YAML_KEYS:
            close = difflib.get_close_matches(str(key), SCENE_YAML_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SceneFormatError(
                f"{path}: unknown key {key!r}{hint}; allowed keys: {', '.join(SCENE_YAML_KEYS)}"
            )
    scale = _number(path, "scale", raw.get("scale", 1.0))
    if scale <= 0:
        raise SceneFormatError(f"{path}: key 'scale' must be > 0, got {scale}")
    translation = _numbers(path, "translation", raw.get("translation", [0.0, 0.0, 0.0]), (3,))
    bounds = None
    if "navigable_bounds" in raw:
        b = _numbers(path, "navigable_bounds", raw["navigable_bounds"], (2, 2))
        if not (b[0, 0] < b[1, 0] and b[0, 1] < b[1, 1]):
            raise SceneFormatError(
                f"{path}: key 'navigable_bounds' must be [[xmin, ymin], [xmax, ymax]] with "
                f"xmin < xmax and ymin < ymax, got {b.tolist()}"
            )
        bounds = ((b[0, 0], b[0, 1]), (b[1, 0], b[1, 1]))
    floor = _number(path, "floor_height", raw["floor_height"]) if "floor_height" in raw else None
    return SceneConfig(
        path=path,
        alignment=SceneAlignment(_rotation(path, raw), scale, translation),
        floor_height_m=floor,
        navigable_bounds_m=bounds,
        name=_string(path, "name", raw["name"]) if "name" in raw else None,
        description=_string(path, "description", raw.get("description", "")),
    )


def load_scene_yaml(path: str | Path) -> SceneConfig:
    """Read and validate a scene YAML file (errors name the file and the key)."""
    path = Path(path)
    return parse_scene_yaml(read_yaml(path, "scene YAML", SceneFormatError), path)


def scene_yaml_dict(info: SceneInfo) -> dict:
    """The scene YAML content describing ``info`` (alignment keys only when not identity)."""
    out: dict = {"name": info.name}
    if info.description:
        out["description"] = info.description
    if not info.alignment.is_identity:
        out.update(info.alignment.to_dict())
    out["floor_height"] = float(info.floor_height_m)
    (xmin, ymin), (xmax, ymax) = info.navigable_bounds_m
    out["navigable_bounds"] = [[float(xmin), float(ymin)], [float(xmax), float(ymax)]]
    return out


def write_scene_yaml(info: SceneInfo, path: str | Path) -> Path:
    """Write ``info`` as a scene YAML (deterministic: same info -> same bytes)."""
    path = Path(path)
    text = yaml.safe_dump(scene_yaml_dict(info), sort_keys=False, default_flow_style=None)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SceneFormatError(f"cannot write {path}: {exc.strerror}") from None
    return path
