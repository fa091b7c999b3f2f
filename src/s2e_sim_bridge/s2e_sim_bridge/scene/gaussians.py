"""The in-memory Gaussian scene every part of NavBench-GS works on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene.info import SceneInfo


class SceneFormatError(S2EError):
    """A scene file or scene YAML is unreadable or inconsistent (message names file and problem)."""


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    """Spherical-harmonics degree for ``num_coeffs`` = (deg+1)^2 coefficients per channel."""
    degree = round(float(np.sqrt(num_coeffs))) - 1
    if degree < 0 or degree > 3 or (degree + 1) ** 2 != num_coeffs:
        raise SceneFormatError(
            f"{num_coeffs} SH coefficients per channel is not (deg+1)^2 for a degree 0-3"
        )
    return degree


@dataclass(frozen=True)
class PlyEncoding:
    """The raw PLY values a scene was decoded from, so an unchanged scene saves back bit-exact.

    ``log(exp(x))`` and ``logit(sigmoid(x))`` do not round-trip in float32 (a logit of 100
    decodes to an opacity of exactly 1.0), so the PLY reader keeps what it read. The writer
    uses a raw value only where the scene's current decoded value still equals the decoded
    value recorded here, element by element; anything edited since is re-encoded.

    Attributes:
        log_scales: ``(N, 3)`` float32 ``scale_*`` as stored (natural log of metres).
        opacity_logits: ``(N,)`` float32 ``opacity`` as stored (logits).
        raw_quats: ``(N, 4)`` float32 ``rot_*`` as stored (w x y z, not normalised).
        scales: ``(N, 3)`` float32 the decoded scales these gave.
        opacities: ``(N,)`` float32 the decoded opacities these gave.
        quats: ``(N, 4)`` float32 the decoded unit quaternions these gave.
    """

    log_scales: np.ndarray
    opacity_logits: np.ndarray
    raw_quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    quats: np.ndarray


@dataclass
class GaussianScene:
    """A set of 3D Gaussians in one world frame (robot world: z up, metres).

    Attributes:
        means: ``(N, 3)`` float32 centres.
        quats: ``(N, 4)`` float32 unit quaternions, ``w x y z`` order (rotation body->world).
        scales: ``(N, 3)`` float32 linear standard deviations along the body axes (metres),
            not the log scales a PLY stores.
        opacities: ``(N,)`` float32 in ``[0, 1]`` (sigmoid of the PLY's logits).
        sh: ``(N, K, 3)`` float32 spherical-harmonics coefficients, ``K = (deg+1)^2``;
            ``sh[:, 0]`` is the DC term (colour = 0.5 + C0 * sh0 for degree 0).
        meta: free-form provenance (source path, alignment applied, generator seed).
        info: where the scene sits in the robot world (floor height, navigable bounds,
            alignment applied, source files); set by ``load_scene`` and the generator, None
            for scenes built by hand or read raw with ``read_gaussians``.
        ply_encoding: raw values of the PLY this scene was read from (see
            :class:`PlyEncoding`); lets ``save_ply`` write an unchanged scene back bit-exact.
    """

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    meta: dict = field(default_factory=dict)
    info: SceneInfo | None = None
    ply_encoding: PlyEncoding | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.means = np.ascontiguousarray(self.means, dtype=np.float32)
        self.quats = np.ascontiguousarray(self.quats, dtype=np.float32)
        self.scales = np.ascontiguousarray(self.scales, dtype=np.float32)
        self.opacities = np.ascontiguousarray(self.opacities, dtype=np.float32)
        self.sh = np.ascontiguousarray(self.sh, dtype=np.float32)
        n = self.means.shape[0]
        expected = {
            "means": (self.means, (n, 3)),
            "quats": (self.quats, (n, 4)),
            "scales": (self.scales, (n, 3)),
            "opacities": (self.opacities, (n,)),
        }
        for name, (arr, shape) in expected.items():
            if arr.shape != shape:
                raise SceneFormatError(
                    f"GaussianScene.{name} has shape {arr.shape}, expected {shape}"
                )
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise SceneFormatError(
                f"GaussianScene.sh has shape {self.sh.shape}, expected ({n}, K, 3)"
            )
        sh_degree_from_coeffs(self.sh.shape[1])
        if self.ply_encoding is not None and self.ply_encoding.opacities.shape != (n,):
            self.ply_encoding = None  # recorded for a different set of Gaussians

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """Spherical-harmonics degree (0-3)."""
        return sh_degree_from_coeffs(self.sh.shape[1])
