"""Put a Gaussian object (a captured prop, a generated box) into a scene."""

from __future__ import annotations

import numpy as np

from s2e_sim_bridge.scene.gaussians import GaussianScene, SceneFormatError
from s2e_sim_bridge.scene.transform import merge_scenes, transform_scene, yaw_rotation


def object_anchor(obj: GaussianScene) -> np.ndarray:
    """``(3,)`` float64 anchor of an object: centre of its x-y box at its lowest centre z."""
    lo = obj.means.min(axis=0).astype(np.float64)
    hi = obj.means.max(axis=0).astype(np.float64)
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])


def place_object(
    scene: GaussianScene,
    obj: GaussianScene,
    position_xyz: np.ndarray | tuple[float, float, float],
    yaw_rad: float = 0.0,
    scale: float = 1.0,
    base_on_floor: bool = True,
) -> GaussianScene:
    """Return ``scene`` with a transformed copy of ``obj`` added.

    The object (z up, in its own frame) is scaled by ``scale`` and turned by ``yaw_rad``
    about +z around its anchor (:func:`object_anchor`: x-y box centre, lowest Gaussian
    centre), then the anchor is moved to ``position_xyz``. With ``base_on_floor`` the z of
    ``position_xyz`` is a height above ``scene.info.floor_height_m`` (0 stands the object on
    the floor); otherwise it is a world z.

    Args:
        scene: the world-frame scene (not modified).
        obj: the object's Gaussians (not modified), already z up (use ``load_scene`` with a
            scene YAML or :func:`transform_scene` to make it so).
        position_xyz: ``(3,)`` world metres of the anchor.
        yaw_rad: heading about world +z, radians.
        scale: uniform scale factor (> 0).
        base_on_floor: interpret ``position_xyz[2]`` relative to the scene's floor.

    Returns:
        A new scene: ``scene``'s Gaussians followed by the object's (SH padded to the higher
        degree); ``meta["placed_objects"]`` lists each placement.
    """
    pos = np.asarray(position_xyz, dtype=np.float64)
    if pos.shape != (3,) or not np.all(np.isfinite(pos)):
        raise SceneFormatError(f"place_object: position_xyz must be 3 finite numbers, got {pos}")
    if base_on_floor:
        if scene.info is None:
            raise SceneFormatError(
                "place_object: base_on_floor needs scene.info.floor_height_m; the scene has "
                "no info (load it with load_scene or pass base_on_floor=False)"
            )
        pos = pos + np.array([0.0, 0.0, scene.info.floor_height_m])
    R = yaw_rotation(yaw_rad)
    anchor = object_anchor(obj)
    placed = transform_scene(obj, R, pos - scale * (R @ anchor), scale)
    merged = merge_scenes([scene, placed])
    record = {
        "source": obj.meta.get("source", "<in-memory>"),
        "position_xyz": pos.tolist(),
        "yaw_rad": float(yaw_rad),
        "scale": float(scale),
        "count": len(obj),
    }
    merged.meta["placed_objects"] = [*scene.meta.get("placed_objects", []), record]
    return merged
