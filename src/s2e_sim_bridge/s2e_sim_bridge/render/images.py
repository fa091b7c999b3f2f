"""Turning render outputs into 8-bit images and PNG files (Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from s2e_sim_bridge.render.validation import RenderError

DEPTH_COLORMAP = "turbo"
"""Matplotlib colormap for depth images (near = dark blue, far = dark red)."""

UINT8_MAX = 255


def rgb_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float colour in ``[0, 1]`` (clipped) -> ``(H, W, 3)`` uint8.

    ``round(clip(rgb, 0, 1) * 255)`` in the input's precision, rounding halves to even. A
    float32 image (the renderer's) goes through one compiled loop, the same arithmetic
    without numpy's four temporaries (a NavBench-GS step converts one every frame).
    """
    if rgb.dtype == np.float32:
        out = np.empty(rgb.shape, dtype=np.uint8)
        _rgb_to_uint8_f32(np.ascontiguousarray(rgb).reshape(-1), out.reshape(-1))
        return out
    return np.round(np.clip(rgb, 0.0, 1.0) * UINT8_MAX).astype(np.uint8)


@njit(cache=True)
def _rgb_to_uint8_f32(rgb: np.ndarray, out: np.ndarray) -> None:
    """:func:`rgb_to_uint8` of flat float32 values into ``out`` (float32 maths throughout)."""
    zero, one, scale = np.float32(0.0), np.float32(1.0), np.float32(UINT8_MAX)
    for i in range(rgb.shape[0]):
        out[i] = np.uint8(np.rint(min(max(rgb[i], zero), one) * scale))


def colourise_depth(depth: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colour-map a depth image; pixels with ``alpha == 0`` are black.

    Args:
        depth: ``(H, W)`` float expected depth (metres).
        alpha: ``(H, W)`` float coverage; only covered pixels set the colour range.

    Returns:
        ``(H, W, 3)`` uint8 image, colours spanning the covered depths' min..max.
    """
    from matplotlib import colormaps

    covered = alpha > 0
    out = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if not covered.any():
        return out
    lo, hi = float(depth[covered].min()), float(depth[covered].max())
    scaled = (depth[covered] - lo) / (hi - lo) if hi > lo else np.zeros(int(covered.sum()))
    out[covered] = rgb_to_uint8(colormaps[DEPTH_COLORMAP](scaled)[:, :3])
    return out


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a ``(H, W, 3)`` uint8 image as PNG (parent folders are created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise RenderError(f"save_png: expected an (H, W, 3) image for {path}, got {image.shape}")
    Image.fromarray(image).save(path)
    return path
