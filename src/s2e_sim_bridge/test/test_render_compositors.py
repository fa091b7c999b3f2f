"""The cpu backend's two compositors give the same images, bit for bit.

``composite_kernel`` (16x16 tiles in parallel, used with several numba threads) and
``composite_frame_kernel`` (the whole frame on one thread, used by vector-env workers) must
agree exactly, whatever the image width: one 64-bit word of stopped flags per row at 64 px
and below, two or three words above, and image edges that are not tile multiples.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from s2e_sim_bridge.pedestrians.bodies import build_template, pose_bodies, sample_palettes
from s2e_sim_bridge.render import camera_from_pose, cpu, intrinsics_from_fov, render
from s2e_sim_bridge.scene import GaussianScene, generate_street_scene

# (x, y, z, yaw, pitch) on the default street: down it, turned, and close to a facade
POSES = [
    (-25.0, 0.0, 0.6, 0.0, math.radians(5.0)),
    (-10.0, 1.0, 0.6, 0.2, math.radians(5.0)),
    (5.0, -6.0, 0.6, 1.2, 0.0),
]
SIZES = [(64, 64), (96, 72), (130, 70), (200, 150)]  # width, height (px)
BACKGROUND = np.array([0.62, 0.74, 0.88])


@pytest.fixture(scope="module")
def scenes() -> list[GaussianScene]:
    """The default street and a crowd of 6 walkers in front of the first camera."""
    street, _ = generate_street_scene(0)
    rng = np.random.default_rng(0)
    xy = np.column_stack([rng.uniform(-22.0, -15.0, 6), rng.uniform(-2.0, 2.0, 6)])
    crowd = pose_bodies(build_template(), xy, rng.uniform(-math.pi, math.pi, 6),
                        rng.uniform(0.0, 2.0 * math.pi, 6), sample_palettes(6, rng), 0.0)
    return [street, crowd]


def _packed_rows(scenes: list[GaussianScene], pose, width: int, height: int,
                 lod_px: float) -> np.ndarray:
    viewmat = camera_from_pose(*pose)
    K = intrinsics_from_fov(width, height, 90.0)
    layout = cpu._layout(scenes, lod_px)
    table, drawn, kept, visible = cpu._BUFFERS.get(layout.offsets[-1])
    rows = cpu._project_frame(layout, viewmat, K, width, height, 0.01, 1e3, lod_px, table,
                              drawn, kept, visible)
    return cpu.sort_rows_kernel(table, rows)


@pytest.mark.parametrize("lod_px", [0.0, 1.0])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_frame_and_tile_compositors_agree_bit_for_bit(scenes, width, height, lod_px) -> None:
    for pose in POSES:
        packed = _packed_rows(scenes, pose, width, height, lod_px)
        assert len(packed) > 1000
        images = []
        for tiled in (True, False):
            rgb = np.empty((height, width, 3), np.float32)
            depth = np.empty((height, width), np.float32)
            alpha = np.empty((height, width), np.float32)
            if tiled:
                starts, entries = cpu.tile_lists_kernel(packed, width, height)
                cpu.composite_kernel(packed, starts, entries, BACKGROUND, rgb, depth, alpha)
            else:
                cpu.composite_frame_kernel(packed, BACKGROUND, rgb, depth, alpha)
            images.append((rgb, depth, alpha))
        (rgb_t, depth_t, alpha_t), (rgb_f, depth_f, alpha_f) = images
        assert alpha_t.mean() > 0.5, "the street must fill most of the image"
        assert np.array_equal(rgb_t, rgb_f)
        assert np.array_equal(depth_t, depth_f)
        assert np.array_equal(alpha_t, alpha_f)


def test_render_on_one_thread_equals_render_on_several(scenes) -> None:
    """``render`` picks the compositor by the numba thread count; the image must not change."""
    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("needs at least 2 numba threads to compare with one")
    viewmat = camera_from_pose(*POSES[0])
    K = intrinsics_from_fov(130, 70, 90.0)
    several = render(scenes[0], viewmat, K, 130, 70, extra=scenes[1], lod_px=1.0)
    numba.set_num_threads(1)
    try:
        one = render(scenes[0], viewmat, K, 130, 70, extra=scenes[1], lod_px=1.0)
    finally:
        numba.set_num_threads(threads)
    for a, b in zip((several.rgb, several.depth, several.alpha), (one.rgb, one.depth, one.alpha),
                    strict=True):
        assert np.array_equal(a, b)
