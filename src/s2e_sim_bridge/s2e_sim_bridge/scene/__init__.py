"""3DGS scenes: I/O (INRIA PLY, antimatter15 .splat), world alignment, placement, generator.

Public API:

- :class:`GaussianScene`, :class:`SceneInfo`, :class:`SceneAlignment`, :class:`SceneFormatError`
- :func:`load_scene` (aligned, with ``info``), :func:`read_gaussians` (raw capture frame),
  :func:`save_ply`, :func:`save_scene` (PLY + scene YAML), :func:`load_scene_yaml`
- :func:`transform_scene`, :func:`merge_scenes`, :func:`place_object`
- :func:`eval_sh`, :func:`rotate_sh` (real SH basis of INRIA 3DGS / gsplat)
- :func:`generate_street_scene`, :class:`StreetConfig`, :func:`box_object`
"""

from s2e_sim_bridge.scene.gaussians import (
    GaussianScene,
    PlyEncoding,
    SceneFormatError,
    sh_degree_from_coeffs,
)
from s2e_sim_bridge.scene.info import SceneAlignment, SceneInfo
from s2e_sim_bridge.scene.loading import load_scene, read_gaussians, save_scene
from s2e_sim_bridge.scene.placement import place_object
from s2e_sim_bridge.scene.ply import read_ply, save_ply
from s2e_sim_bridge.scene.scene_yaml import SceneConfig, load_scene_yaml
from s2e_sim_bridge.scene.sh import eval_sh, rotate_sh
from s2e_sim_bridge.scene.splat import read_splat
from s2e_sim_bridge.scene.street import StreetConfig, box_object, generate_street_scene
from s2e_sim_bridge.scene.transform import merge_scenes, transform_scene

__all__ = [
    "GaussianScene",
    "PlyEncoding",
    "SceneAlignment",
    "SceneConfig",
    "SceneFormatError",
    "SceneInfo",
    "StreetConfig",
    "box_object",
    "eval_sh",
    "generate_street_scene",
    "load_scene",
    "load_scene_yaml",
    "merge_scenes",
    "place_object",
    "read_gaussians",
    "read_ply",
    "read_splat",
    "rotate_sh",
    "save_ply",
    "save_scene",
    "sh_degree_from_coeffs",
    "transform_scene",
]
