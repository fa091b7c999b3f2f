"""Load a capture aligned to the robot world, and save a scene as PLY + scene YAML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from s2e_sim_bridge.scene.gaussians import GaussianScene, SceneFormatError
from s2e_sim_bridge.scene.info import SceneAlignment, SceneInfo
from s2e_sim_bridge.scene.ply import PLY_MAGIC, read_ply, save_ply
from s2e_sim_bridge.scene.scene_yaml import (
    SCENE_YAML_SUFFIX,
    SceneConfig,
    load_scene_yaml,
    write_scene_yaml,
)
from s2e_sim_bridge.scene.splat import read_splat
from s2e_sim_bridge.scene.transform import transform_scene

SCENE_SUFFIXES = (".ply", ".splat")


def read_gaussians(path: str | Path) -> GaussianScene:
    """Read a ``.ply`` (INRIA 3DGS) or ``.splat`` (antimatter15) file in its own frame.

    The format comes from the suffix; a file with another suffix is read as PLY when it
    starts with the PLY magic. No scene YAML is applied and ``info`` is None.

    Raises:
        SceneFormatError: unknown format or any problem reported by the readers.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".splat":
        return read_splat(path)
    if suffix == ".ply":
        return read_ply(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(len(PLY_MAGIC))
    except OSError as exc:
        raise SceneFormatError(f"{path}: cannot read scene file ({exc.strerror})") from None
    if head == PLY_MAGIC:
        return read_ply(path)
    raise SceneFormatError(
        f"{path}: unknown scene format; expected one of {', '.join(SCENE_SUFFIXES)}"
    )


def default_scene_yaml(path: str | Path) -> Path:
    """The scene YAML that belongs to a capture: ``foo.ply`` -> ``foo.yaml``."""
    return Path(path).with_suffix(SCENE_YAML_SUFFIX)


def load_scene(path: str | Path, scene_yaml: str | Path | None = None) -> GaussianScene:
    """Load a capture and align it to the robot world (z up, metres).

    Args:
        path: ``.ply`` or ``.splat`` file.
        scene_yaml: the scene YAML to apply; None uses ``foo.yaml`` beside ``foo.ply`` when
            it exists, and otherwise leaves the capture as it is.

    Returns:
        The aligned scene (via :func:`transform_scene`: means, quats, scales and SH bands
        1-3 follow the alignment) with ``info`` set: floor height and navigable bounds from
        the YAML, or, where it gives none, the lowest Gaussian centre and the x-y box of the
        centres. ``meta["alignment"]`` records the applied transform.

    Raises:
        SceneFormatError: unreadable capture or YAML, explicit YAML missing.
    """
    path = Path(path)
    scene = read_gaussians(path)
    config: SceneConfig | None = None
    if scene_yaml is not None:
        config = load_scene_yaml(scene_yaml)
    elif default_scene_yaml(path).is_file():
        config = load_scene_yaml(default_scene_yaml(path))
    alignment = config.alignment if config else SceneAlignment()
    if not alignment.is_identity:
        scene = transform_scene(scene, alignment.rotation, alignment.translation, alignment.scale)
    floor = config.floor_height_m if config else None
    bounds = config.navigable_bounds_m if config else None
    scene.info = SceneInfo(
        name=(config.name if config and config.name else path.stem),
        description=config.description if config else "",
        floor_height_m=float(np.min(scene.means[:, 2])) if floor is None else floor,
        navigable_bounds_m=_xy_box(scene) if bounds is None else bounds,
        sh_degree=scene.sh_degree,
        alignment=alignment,
        source_path=path,
        yaml_path=config.path if config else None,
    )
    scene.meta = {**scene.meta, "source": str(path), "alignment": alignment.to_dict()}
    return scene


def _xy_box(scene: GaussianScene) -> tuple[tuple[float, float], tuple[float, float]]:
    lo = scene.means[:, :2].min(axis=0).astype(float)
    hi = scene.means[:, :2].max(axis=0).astype(float)
    return ((lo[0], lo[1]), (hi[0], hi[1]))


def save_scene(scene: GaussianScene, ply_path: str | Path) -> tuple[Path, Path]:
    """Write ``foo.ply`` and its scene YAML ``foo.yaml`` (world frame, identity alignment).

    The PLY holds the scene as it is in the robot world, so the YAML carries no alignment,
    only name, description, floor height and navigable bounds from ``scene.info`` (derived
    from the Gaussians when ``info`` is None). Loading ``foo.ply`` back gives the same
    Gaussians and info.

    Returns:
        ``(ply_path, yaml_path)``.
    """
    ply_path = Path(ply_path)
    info = scene.info
    if info is None:
        info = SceneInfo(
            name=ply_path.stem,
            floor_height_m=float(np.min(scene.means[:, 2])),
            navigable_bounds_m=_xy_box(scene),
            sh_degree=scene.sh_degree,
        )
    info = dataclasses.replace(info, alignment=SceneAlignment())
    save_ply(scene, ply_path)
    return ply_path, write_scene_yaml(info, default_scene_yaml(ply_path))
