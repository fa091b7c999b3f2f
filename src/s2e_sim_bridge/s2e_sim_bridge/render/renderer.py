"""``render`` / ``render_batch``: the one entry point to every rendering backend.

Conventions (shared by all backends, see :mod:`s2e_sim_bridge.render.conventions`): gsplat's
classic 3DGS rasterisation, world-to-camera view matrices with OpenCV axes (x right, y down,
z forward), pinhole intrinsics in pixels, pixel centres at ``(x + 0.5, y + 0.5)``.

Outputs per camera:

- ``rgb``: ``(H, W, 3)`` float32, ``sum_i w_i c_i + T_final * background`` with
  ``c_i = max(SH_i(dir) + 0.5, 0)`` (not clamped above, so values lie in ``[0, 1]`` for
  in-gamut scenes and backgrounds).
- ``alpha``: ``(H, W)`` float32 coverage ``1 - T_final``.
- ``depth``: ``(H, W)`` float32 *expected* camera-space depth in metres,
  ``sum_i w_i z_i / alpha`` where ``alpha > 0`` and 0 where nothing was drawn (gsplat's
  ``render_mode="ED"``). It is a blend, not the first surface: at a silhouette it lies
  between the foreground and the background depth.

Extra scenes (pedestrians, obstacles inserted per frame) are drawn together with the static
scene, sorted jointly by depth, without copying the static scene's arrays per frame.
Per-scene precomputation (covariances, view-independent colours, device copies) is cached
per scene object and reused for every camera of a batch and every later frame.

Level of detail (``lod_px > 0``, ``cpu`` backend only): far culling cells are drawn as merged
proxy Gaussians whose voxels project to at most ``lod_px`` pixels (see
:mod:`s2e_sim_bridge.render.lod`); the image is then an approximation. ``lod_px = 0`` (the
default) draws every Gaussian exactly. The ``cuda`` backend ignores ``lod_px`` and always
draws every Gaussian (the GPU does not need it), so one setting serves both backends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from s2e_sim_bridge.render.conventions import DEFAULT_FAR_M, DEFAULT_NEAR_M
from s2e_sim_bridge.render.validation import (
    RenderError,
    check_background,
    check_clip_planes,
    check_image_size,
    check_intrinsics,
    check_viewmat,
)
from s2e_sim_bridge.scene.gaussians import GaussianScene

BACKENDS = ("cpu", "cuda")
"""Names accepted by ``backend``: ``cpu`` (numba rasteriser), ``cuda`` (gsplat)."""

ExtraScenes = GaussianScene | Sequence[GaussianScene] | None


def _check_lod_px(lod_px: float) -> float:
    """``lod_px`` as a float, or a :class:`RenderError` unless it is finite and ``>= 0``."""
    if isinstance(lod_px, bool) or not isinstance(lod_px, int | float | np.floating | np.integer):
        raise RenderError(f"render: lod_px must be a number of pixels >= 0, got {lod_px!r}")
    value = float(lod_px)
    if not math.isfinite(value) or value < 0.0:
        raise RenderError(f"render: lod_px must be finite and >= 0 (pixels; 0 = off), "
                          f"got {lod_px!r}")
    return value


@dataclass(frozen=True)
class RenderResult:
    """Rendered images of one camera (``render``) or a batch (``render_batch``, leading ``C``).

    Attributes:
        rgb: ``([C,] H, W, 3)`` float32 colour.
        depth: ``([C,] H, W)`` float32 expected camera-space depth (metres), 0 where
            ``alpha == 0``.
        alpha: ``([C,] H, W)`` float32 coverage ``1 - T_final`` in ``[0, 1)``.
    """

    rgb: np.ndarray
    depth: np.ndarray
    alpha: np.ndarray


def _scene_list(scene: GaussianScene, extra: ExtraScenes) -> list[GaussianScene]:
    if not isinstance(scene, GaussianScene):
        raise RenderError(f"render: scene must be a GaussianScene, got {type(scene).__name__}")
    if extra is None:
        extras: list = []
    elif isinstance(extra, GaussianScene):
        extras = [extra]
    else:
        extras = list(extra)
    for i, item in enumerate(extras):
        if not isinstance(item, GaussianScene):
            raise RenderError(
                f"render: extra[{i}] must be a GaussianScene, got {type(item).__name__}"
            )
    return [scene, *extras]


def render_batch(
    scene: GaussianScene,
    viewmats: np.ndarray,
    Ks: np.ndarray,
    width: int,
    height: int,
    backend: str = "cpu",
    background: Sequence[float] | np.ndarray = (0.0, 0.0, 0.0),
    extra: ExtraScenes = None,
    near: float = DEFAULT_NEAR_M,
    far: float = DEFAULT_FAR_M,
    lod_px: float = 0.0,
) -> RenderResult:
    """Render ``scene`` (plus ``extra`` scenes) from ``C`` cameras of the same image size.

    Args:
        scene: the static scene.
        viewmats: ``(C, 4, 4)`` world-to-camera matrices (OpenCV axes).
        Ks: ``(C, 3, 3)`` pinhole intrinsics (pixels).
        width: image width in pixels.
        height: image height in pixels.
        backend: ``"cpu"`` or ``"cuda"`` (gsplat; needs a CUDA GPU).
        background: RGB added with the remaining transmittance.
        extra: scene or scenes drawn together with ``scene`` (e.g. pedestrians).
        near: near plane (camera z, metres).
        far: far plane (camera z, metres).
        lod_px: level-of-detail threshold in pixels: far cells are drawn as proxies whose
            voxels project to at most this many pixels. 0 (default) draws every Gaussian
            exactly; ignored by the ``cuda`` backend.

    Returns:
        :class:`RenderResult` with ``rgb (C, H, W, 3)``, ``depth (C, H, W)``,
        ``alpha (C, H, W)`` float32.

    Raises:
        RenderError: bad camera, size, background, ``lod_px`` or backend, or an unavailable
            backend.
    """
    vms = np.asarray(viewmats, dtype=np.float64)
    ks = np.asarray(Ks, dtype=np.float64)
    if vms.ndim != 3 or vms.shape[1:] != (4, 4) or vms.shape[0] == 0:
        raise RenderError(
            f"render_batch: viewmats must have shape (C, 4, 4) with C >= 1, got {vms.shape}"
        )
    if ks.shape != (vms.shape[0], 3, 3):
        raise RenderError(
            f"render_batch: Ks must have shape ({vms.shape[0]}, 3, 3), got {ks.shape}"
        )
    vms = np.stack([check_viewmat(v, f"viewmats[{i}]") for i, v in enumerate(vms)])
    ks = np.stack([check_intrinsics(k, f"Ks[{i}]") for i, k in enumerate(ks)])
    return _render_checked(scene, vms, ks, width, height, backend, background, extra, near, far,
                           lod_px)


def _render_checked(
    scene: GaussianScene,
    viewmats: np.ndarray,
    Ks: np.ndarray,
    width: int,
    height: int,
    backend: str,
    background: Sequence[float] | np.ndarray,
    extra: ExtraScenes,
    near: float,
    far: float,
    lod_px: float,
) -> RenderResult:
    """:func:`render_batch` after its camera checks; checks the remaining arguments.

    ``viewmats`` ``(C, 4, 4)`` and ``Ks`` ``(C, 3, 3)`` are float64 matrices that passed
    :func:`check_viewmat` / :func:`check_intrinsics` (``render`` checks its one camera once).
    """
    scenes = _scene_list(scene, extra)
    width, height = check_image_size(width, height)
    near, far = check_clip_planes(near, far)
    bg = check_background(background)
    lod = _check_lod_px(lod_px)
    vms, ks = viewmats, Ks
    if backend == "cpu":
        from s2e_sim_bridge.render.cpu import render_cpu

        rgb, depth, alpha = render_cpu(scenes, vms, ks, width, height, bg, near, far, lod)
    elif backend == "cuda":
        from s2e_sim_bridge.render.cuda import render_cuda

        rgb, depth, alpha = render_cuda(scenes, vms, ks, width, height, bg, near, far)
    else:
        raise RenderError(f"render: backend must be one of {BACKENDS}, got {backend!r}")
    return RenderResult(rgb=rgb, depth=depth, alpha=alpha)


def render(
    scene: GaussianScene,
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    backend: str = "cpu",
    background: Sequence[float] | np.ndarray = (0.0, 0.0, 0.0),
    extra: ExtraScenes = None,
    near: float = DEFAULT_NEAR_M,
    far: float = DEFAULT_FAR_M,
    lod_px: float = 0.0,
) -> RenderResult:
    """Render ``scene`` (plus ``extra`` scenes) from one camera.

    Args:
        scene: the static scene.
        viewmat: ``(4, 4)`` world-to-camera matrix (OpenCV axes: x right, y down, z forward).
        K: ``(3, 3)`` pinhole intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (pixels).
        width: image width in pixels.
        height: image height in pixels.
        backend: ``"cpu"`` or ``"cuda"`` (gsplat; needs a CUDA GPU).
        background: RGB added with the remaining transmittance.
        extra: scene or scenes drawn together with ``scene`` (e.g. pedestrians).
        near: near plane (camera z, metres).
        far: far plane (camera z, metres).
        lod_px: level-of-detail threshold in pixels: far cells are drawn as proxies whose
            voxels project to at most this many pixels. 0 (default) draws every Gaussian
            exactly; ignored by the ``cuda`` backend.

    Returns:
        :class:`RenderResult` with ``rgb (H, W, 3)``, ``depth (H, W)``, ``alpha (H, W)``
        float32.

    Raises:
        RenderError: bad camera, size, background, ``lod_px`` or backend, or an unavailable
            backend.
    """
    vm = check_viewmat(viewmat, "viewmat")
    k = check_intrinsics(K, "K")
    batch = _render_checked(scene, vm[None], k[None], width, height, backend, background, extra,
                            near, far, lod_px)
    return RenderResult(rgb=batch.rgb[0], depth=batch.depth[0], alpha=batch.alpha[0])
