"""The ``cuda`` backend: ``gsplat.rasterization`` on a CUDA GPU.

torch and gsplat are imported only when this backend is chosen (``pip install
s2e_sim_bridge[cuda]``). gsplat is called with ``packed=False``, ``rasterize_mode="classic"``,
``render_mode="RGB+ED"`` and the scene's ``sh_degree``, which are the conventions of
:mod:`s2e_sim_bridge.render.conventions` (gsplat computes in float32).

Each static scene is copied to the GPU once, into buffers with spare rows; extra scenes
(pedestrians) are written into the spare rows each frame and gsplat is given views of the
first ``N_static + N_extra`` rows, so the static Gaussians are never copied again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from s2e_sim_bridge.render.conventions import EPS2D_PX2, TILE_SIZE_PX
from s2e_sim_bridge.render.scene_cache import SceneCache
from s2e_sim_bridge.render.validation import RenderError
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.sh import MAX_SH_DEGREE, pad_sh

EXTRA_ROWS_MIN = 4096
"""Spare rows reserved after the static Gaussians for extra scenes (grows on demand)."""

_FIELDS = ("means", "quats", "scales", "opacities", "sh")


def _torch_and_gsplat() -> tuple[Any, Any]:
    """Import torch and gsplat, or raise a :class:`RenderError` saying what is missing."""
    try:
        import torch
    except ImportError:
        raise RenderError(
            "render: backend 'cuda' needs PyTorch with CUDA and gsplat "
            "(pip install 's2e_sim_bridge[cuda]'); use backend='cpu' on this machine"
        ) from None
    if not torch.cuda.is_available():
        raise RenderError(
            "render: backend 'cuda' needs a CUDA GPU, but torch.cuda.is_available() is False; "
            "use backend='cpu'"
        )
    try:
        import gsplat
    except ImportError:
        raise RenderError(
            "render: backend 'cuda' needs gsplat (pip install 's2e_sim_bridge[cuda]'); "
            "use backend='cpu' on this machine"
        ) from None
    return torch, gsplat


@dataclass
class _DeviceScene:
    """GPU copy of one static scene plus spare rows for extras (all float32 tensors)."""

    tensors: dict[str, Any]
    n_static: int
    sh_degree: int

    @property
    def capacity(self) -> int:
        return int(self.tensors["means"].shape[0])


def _upload(
    scene: GaussianScene, extra_rows: int = EXTRA_ROWS_MIN, sh_degree: int = 0
) -> _DeviceScene:
    torch, _ = _torch_and_gsplat()
    degree = max(scene.sh_degree, sh_degree)
    host = {
        "means": scene.means,
        "quats": scene.quats,
        "scales": scene.scales,
        "opacities": scene.opacities,
        "sh": pad_sh(scene.sh, degree),
    }
    tensors = {}
    for name, array in host.items():
        buffer = torch.zeros(
            (len(scene) + extra_rows, *array.shape[1:]), dtype=torch.float32, device="cuda"
        )
        buffer[: len(scene)] = torch.from_numpy(
            np.ascontiguousarray(array, dtype=np.float32)
        ).cuda()
        tensors[name] = buffer
    tensors["quats"][len(scene) :, 0] = 1.0  # unused rows hold valid unit quaternions
    return _DeviceScene(tensors=tensors, n_static=len(scene), sh_degree=degree)


_CACHE: SceneCache[_DeviceScene] = SceneCache(_upload)


def _device_scene(scenes: list[GaussianScene]) -> tuple[_DeviceScene, int]:
    """Device buffers holding ``scenes[0]`` and, after it, ``scenes[1:]``; and the row count."""
    static, extras = scenes[0], scenes[1:]
    dev = _CACHE.get(static)
    n_extra = sum(len(s) for s in extras)
    degree = max([static.sh_degree, *(s.sh_degree for s in extras)])
    if dev.n_static + n_extra > dev.capacity or degree > dev.sh_degree:
        # grow once (doubling) and keep the larger buffers for later frames
        rows = max(2 * n_extra, EXTRA_ROWS_MIN)
        dev = _upload(static, rows, min(MAX_SH_DEGREE, degree))
        _CACHE.put(static, dev)
    torch, _ = _torch_and_gsplat()
    row = dev.n_static
    for scene in extras:
        host = {
            "means": scene.means,
            "quats": scene.quats,
            "scales": scene.scales,
            "opacities": scene.opacities,
            "sh": pad_sh(scene.sh, dev.sh_degree),
        }
        for name in _FIELDS:
            dev.tensors[name][row : row + len(scene)] = torch.from_numpy(
                np.ascontiguousarray(host[name], dtype=np.float32)
            ).cuda()
        row += len(scene)
    return dev, row


def render_cuda(
    scenes: list[GaussianScene],
    viewmats: np.ndarray,
    Ks: np.ndarray,
    width: int,
    height: int,
    background: np.ndarray,
    near: float,
    far: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the union of ``scenes`` from ``C`` cameras with gsplat (inputs validated).

    Args:
        scenes: static scene first, then extra scenes drawn with it.
        viewmats: ``(C, 4, 4)`` float64 world-to-camera matrices (OpenCV axes).
        Ks: ``(C, 3, 3)`` float64 intrinsics (pixels).
        width: image width (pixels).
        height: image height (pixels).
        background: ``(3,)`` float64 RGB.
        near: near plane (metres).
        far: far plane (metres).

    Returns:
        ``rgb (C, H, W, 3)``, ``depth (C, H, W)``, ``alpha (C, H, W)`` float32 numpy arrays.

    Raises:
        RenderError: torch, CUDA or gsplat unavailable.
    """
    torch, gsplat = _torch_and_gsplat()
    dev, rows = _device_scene(scenes)
    n_cams = viewmats.shape[0]
    t = {name: dev.tensors[name][:rows] for name in _FIELDS}
    with torch.no_grad():
        colours, alphas, _ = gsplat.rasterization(
            means=t["means"],
            quats=t["quats"],
            scales=t["scales"],
            opacities=t["opacities"],
            colors=t["sh"],
            viewmats=torch.as_tensor(viewmats, dtype=torch.float32, device="cuda"),
            Ks=torch.as_tensor(Ks, dtype=torch.float32, device="cuda"),
            width=width,
            height=height,
            near_plane=near,
            far_plane=far,
            eps2d=EPS2D_PX2,
            sh_degree=dev.sh_degree,
            packed=False,
            tile_size=TILE_SIZE_PX,
            backgrounds=torch.as_tensor(
                np.repeat(background[None], n_cams, axis=0), dtype=torch.float32, device="cuda"
            ),
            render_mode="RGB+ED",
            rasterize_mode="classic",
        )
    out = colours.float().cpu().numpy()
    rgb = np.ascontiguousarray(out[..., :3])
    depth = np.ascontiguousarray(out[..., 3])
    alpha = np.ascontiguousarray(alphas[..., 0].float().cpu().numpy())
    return rgb, depth, alpha
