"""A slow, plain-numpy reference of the renderer's conventions (tests only).

Written straight from the rules in :mod:`s2e_sim_bridge.render.conventions`, with no tiles,
no footprint boxes and no sorting tricks: every Gaussian that survives the near/far, opacity
and determinant culls is evaluated at every pixel, and each pixel composites its list front to
back with an explicit early stop. The footprint box the backends use to pick tiles contains
every pixel where a Gaussian's alpha can reach ``ALPHA_MIN``, so leaving it out here changes
nothing except the running time, which is what makes this an independent check.
Arithmetic is float64 throughout.
"""

from __future__ import annotations

import numpy as np

from s2e_sim_bridge.render.camera import camera_centre
from s2e_sim_bridge.render.conventions import (
    ALPHA_MAX,
    ALPHA_MIN,
    EPS2D_PX2,
    FOV_CLAMP_MARGIN,
    SH_COLOUR_OFFSET,
    TRANSMITTANCE_MIN,
)
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.sh import eval_sh
from s2e_sim_bridge.scene.transform import quats_to_rotmats


def _project(
    scene: GaussianScene,
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    near: float,
    far: float,
) -> dict[str, np.ndarray]:
    """Projected centres, conics, depths, opacities and colours of the kept Gaussians."""
    W = viewmat[:3, :3]
    t_cam = scene.means.astype(np.float64) @ W.T + viewmat[:3, 3]
    R = quats_to_rotmats(scene.quats)
    M = R * scene.scales.astype(np.float64)[:, None, :]  # R diag(s)
    cov_world = M @ np.swapaxes(M, 1, 2)
    cov_cam = W @ cov_world @ W.T
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x, y, z = t_cam[:, 0], t_cam[:, 1], t_cam[:, 2]
    half_tan_x, half_tan_y = 0.5 * width / fx, 0.5 * height / fy
    ux = np.clip(
        x / z, -(cx / fx + FOV_CLAMP_MARGIN * half_tan_x),
        (width - cx) / fx + FOV_CLAMP_MARGIN * half_tan_x,
    )  # fmt: skip
    uy = np.clip(
        y / z, -(cy / fy + FOV_CLAMP_MARGIN * half_tan_y),
        (height - cy) / fy + FOV_CLAMP_MARGIN * half_tan_y,
    )  # fmt: skip
    J = np.zeros((len(scene), 2, 3))
    J[:, 0, 0] = fx / z
    J[:, 0, 2] = -fx * ux / z
    J[:, 1, 1] = fy / z
    J[:, 1, 2] = -fy * uy / z
    cov2d = J @ cov_cam @ np.swapaxes(J, 1, 2) + EPS2D_PX2 * np.eye(2)
    det = np.linalg.det(cov2d)
    opacity = scene.opacities.astype(np.float64)
    keep = (z > near) & (z < far) & (det > 0) & (opacity >= ALPHA_MIN)
    colour = np.maximum(
        eval_sh(scene.sh, scene.means - camera_centre(viewmat)).astype(np.float64)
        + SH_COLOUR_OFFSET,
        0.0,
    )
    return {
        "xy": np.stack([fx * x / z + cx, fy * y / z + cy], axis=1)[keep],
        "conic": np.linalg.inv(cov2d[keep]),
        "z": z[keep],
        "opacity": opacity[keep],
        "colour": colour[keep],
    }


def reference_render(
    scenes: list[GaussianScene],
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    near: float = 0.01,
    far: float = 1e3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the union of ``scenes``; returns float64 ``rgb (H, W, 3)``, ``depth``, ``alpha``."""
    viewmat = np.asarray(viewmat, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    parts = [_project(s, viewmat, K, width, height, near, far) for s in scenes]
    g = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    # front to back by float32 depth; ties keep the lower index first (stable sort)
    order = np.argsort(g["z"].astype(np.float32), kind="stable")
    g = {key: value[order] for key, value in g.items()}
    bg = np.asarray(background, dtype=np.float64)
    rgb = np.zeros((height, width, 3))
    depth = np.zeros((height, width))
    alpha = np.zeros((height, width))
    for row in range(height):
        dx = g["xy"][None, :, 0] - (np.arange(width)[:, None] + 0.5)  # (W, G)
        dy = g["xy"][None, :, 1] - (row + 0.5)
        conic = g["conic"]
        sigma = 0.5 * (conic[:, 0, 0] * dx * dx + conic[:, 1, 1] * dy * dy)
        sigma = sigma + conic[:, 0, 1] * dx * dy
        alphas = np.minimum(ALPHA_MAX, g["opacity"] * np.exp(-sigma))
        use = (sigma >= 0) & (alphas >= ALPHA_MIN)
        for col in range(width):
            a = alphas[col, use[col]]
            trans_before = np.cumprod(np.concatenate([[1.0], 1.0 - a]))[:-1]
            stopped = np.flatnonzero(trans_before * (1.0 - a) <= TRANSMITTANCE_MIN)
            count = stopped[0] if stopped.size else a.size  # stop *before* that Gaussian
            weight = a[:count] * trans_before[:count]
            trans = trans_before[count] if count < a.size else np.prod(1.0 - a)
            rgb[row, col] = weight @ g["colour"][use[col]][:count] + trans * bg
            alpha[row, col] = 1.0 - trans
            if alpha[row, col] > 0:
                depth[row, col] = weight @ g["z"][use[col]][:count] / alpha[row, col]
    return rgb, depth, alpha
