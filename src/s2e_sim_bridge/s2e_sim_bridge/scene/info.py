"""Where a scene sits in the robot world: the alignment applied and the navigation facts.

These are plain records with no file handling; :mod:`s2e_sim_bridge.scene.scene_yaml` reads
and validates them from a scene YAML, :func:`s2e_sim_bridge.scene.load_scene` attaches a
:class:`SceneInfo` to every :class:`~s2e_sim_bridge.scene.gaussians.GaussianScene` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SceneAlignment:
    """Similarity transform from a capture's frame to the robot world (z up, metres).

    ``p_world = scale * rotation @ p_capture + translation``.

    Attributes:
        rotation: ``(3, 3)`` float64 proper rotation matrix (world <- capture).
        scale: uniform scale factor (> 0), capture units -> metres.
        translation: ``(3,)`` float64 offset in world metres, applied after rotation and scale.
    """

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    scale: float = 1.0
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotation", np.asarray(self.rotation, dtype=np.float64))
        object.__setattr__(self, "translation", np.asarray(self.translation, dtype=np.float64))
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def is_identity(self) -> bool:
        """True when applying the alignment changes nothing."""
        return bool(
            np.array_equal(self.rotation, np.eye(3))
            and self.scale == 1.0
            and not np.any(self.translation)
        )

    def to_dict(self) -> dict:
        """Plain-Python form (lists and floats) for YAML, logs and ``s2e scene info``."""
        return {
            "rotation": self.rotation.tolist(),
            "scale": self.scale,
            "translation": self.translation.tolist(),
        }


@dataclass(frozen=True)
class SceneInfo:
    """Navigation facts about a scene in the robot world (z up, metres).

    Attributes:
        name: short scene name (defaults to the capture's file stem).
        description: free text from the scene YAML or the generator.
        floor_height_m: world z of the walkable floor.
        navigable_bounds_m: ``((xmin, ymin), (xmax, ymax))`` world rectangle episodes may use.
        sh_degree: spherical-harmonics degree of the scene's colours (0-3).
        alignment: the capture -> world transform that was applied on load.
        source_path: the PLY / .splat file the Gaussians came from (None if generated).
        yaml_path: the scene YAML that gave the alignment and navigation facts; None when
            there was none, in which case ``floor_height_m`` is the lowest Gaussian centre and
            ``navigable_bounds_m`` the x-y box of the centres.
    """

    name: str
    floor_height_m: float
    navigable_bounds_m: tuple[tuple[float, float], tuple[float, float]]
    sh_degree: int
    alignment: SceneAlignment = field(default_factory=SceneAlignment)
    description: str = ""
    source_path: Path | None = None
    yaml_path: Path | None = None

    @property
    def navigable_size_m(self) -> tuple[float, float]:
        """Extent ``(dx, dy)`` of the navigable rectangle in metres."""
        (xmin, ymin), (xmax, ymax) = self.navigable_bounds_m
        return (xmax - xmin, ymax - ymin)
