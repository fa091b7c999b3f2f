"""The cpu backend's compositor gives the same images whatever its number of row sets.

``composite_kernel`` splits the image into ``parts`` interleaved row sets composited in
parallel (``render`` passes the numba thread count: 1 in a vector-env worker, 2 here). The
images must agree bit for bit for any ``parts``, whatever the image width: one 64-bit word of
stopped-pixel flags per row at 64 px and below, two to four words above, heights that are not
multiples of ``parts``. The backend tests compare the images with the numpy reference.
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
SIZES = [(64, 64), (96, 72), (130, 70), (200, 151)]  # width, height (px)
PARTS = [2, 3, 7]  # compared with 1 part
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


def _composite(packed: np.ndarray, width: int, height: int, parts: int):
    rgb = np.empty((height, width, 3), np.float32)
    depth = np.empty((height, width), np.float32)
    alpha = np.empty((height, width), np.float32)
    cpu.composite_kernel(packed, parts, BACKGROUND, rgb, depth, alpha)
    return rgb, depth, alpha


@pytest.mark.parametrize("lod_px", [0.0, 1.0])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_images_do_not_depend_on_the_number_of_row_sets(scenes, width, height, lod_px) -> None:
    for pose in POSES:
        packed = _packed_rows(scenes, pose, width, height, lod_px)
        assert len(packed) > 1000
        rgb, depth, alpha = _composite(packed, width, height, 1)
        assert alpha.mean() > 0.5, "the street must fill most of the image"
        assert (alpha > 0.99).mean() > 0.3, "many pixels must stop early"
        for parts in PARTS:
            other = _composite(packed, width, height, parts)
            assert np.array_equal(rgb, other[0]), parts
            assert np.array_equal(depth, other[1]), parts
            assert np.array_equal(alpha, other[2]), parts


def test_more_row_sets_than_rows() -> None:
    """Parts beyond the image height are not created; a 3-row image still composites."""
    rng = np.random.default_rng(1)
    packed = np.zeros((5, cpu.TABLE_COLUMNS))
    packed[:, cpu._PX] = rng.uniform(0.0, 8.0, 5)
    packed[:, cpu._PY] = rng.uniform(0.0, 3.0, 5)
    packed[:, cpu._CA] = packed[:, cpu._CC] = 1.0
    packed[:, cpu._OPAC] = 0.8
    packed[:, cpu._SIGMA_CUT] = np.log(0.8 * 255.0)
    packed[:, cpu._R : cpu._B + 1] = rng.uniform(0.0, 1.0, (5, 3))
    packed[:, cpu._Z] = np.sort(rng.uniform(1.0, 5.0, 5))
    packed[:, cpu._RX] = packed[:, cpu._RY] = 3.0
    one = _composite(packed, 8, 3, 1)
    many = _composite(packed, 8, 3, 16)
    assert one[2].max() > 0.5
    for a, b in zip(one, many, strict=True):
        assert np.array_equal(a, b)


def test_render_on_one_thread_equals_render_on_several(scenes) -> None:
    """``render`` splits by the numba thread count; the image must not change with it."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads to compare with one")
    viewmat = camera_from_pose(*POSES[0])
    K = intrinsics_from_fov(130, 70, 90.0)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        several = render(scenes[0], viewmat, K, 130, 70, extra=scenes[1], lod_px=1.0)
        numba.set_num_threads(1)
        one = render(scenes[0], viewmat, K, 130, 70, extra=scenes[1], lod_px=1.0)
    finally:
        numba.set_num_threads(threads)
    for a, b in zip((several.rgb, several.depth, several.alpha), (one.rgb, one.depth, one.alpha),
                    strict=True):
        assert np.array_equal(a, b)
