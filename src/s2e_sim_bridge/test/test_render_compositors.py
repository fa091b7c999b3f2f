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
                              drawn, kept, visible, numba.get_num_threads())
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


def test_exp_neg_matches_numpy() -> None:
    """The compositor's vectorisable ``exp(-s)`` is within 1e-15 of numpy's on its range."""
    s = np.concatenate([np.linspace(0.0, cpu.EXP_NEG_MAX, 200_001),
                        np.log(np.array([1.0 / cpu.ALPHA_MIN, 1.0 / cpu.ALPHA_MAX]))])
    got = np.array([cpu._exp_neg(v) for v in s])
    np.testing.assert_allclose(got, np.exp(-s), rtol=1e-15, atol=0.0)


def _per_pixel(packed: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Conventions step 5 pixel by pixel (numpy over pixels, one Gaussian at a time).

    Returns ``rgb, depth, alpha`` and the ``(H, W)`` bool mask of the pixels that stopped.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    trans = np.ones((height, width))
    live = np.ones((height, width), dtype=bool)
    acc = np.zeros((height, width, 4))
    for row in packed:
        dx, dy = row[cpu._PX] - xs, row[cpu._PY] - ys
        in_box = (np.abs(dx) <= row[cpu._RX]) & (np.abs(dy) <= row[cpu._RY])
        sigma = 0.5 * (row[cpu._CA] * dx * dx + row[cpu._CC] * dy * dy) + row[cpu._CB] * dx * dy
        alpha = np.minimum(cpu.ALPHA_MAX, row[cpu._OPAC] * np.exp(-sigma))
        take = live & in_box & (sigma >= 0.0) & (alpha >= cpu.ALPHA_MIN)
        next_trans = trans * (1.0 - alpha)
        stop = take & (next_trans <= cpu.TRANSMITTANCE_MIN)
        blend = take & ~stop
        weight = np.where(blend, alpha * trans, 0.0)
        acc += weight[..., None] * np.append(row[cpu._R : cpu._B + 1], row[cpu._Z])
        trans = np.where(blend, next_trans, trans)
        live &= ~stop
    coverage = 1.0 - trans
    rgb = acc[..., :3] + trans[..., None] * BACKGROUND
    depth = np.where(coverage > 0.0, acc[..., 3] / np.where(coverage > 0.0, coverage, 1.0), 0.0)
    return rgb, depth, coverage, ~live


@pytest.mark.parametrize(("width", "height", "per_pixel"),
                         [(21, 13, 1), (64, 9, 1), (67, 5, 1), (21, 13, 6), (67, 5, 6)])
def test_lanes_past_the_box_and_the_image_change_nothing(width, height, per_pixel) -> None:
    """The lane-wise compositor equals the per-pixel rule.

    Boxes of every width, cut by the image edges, over pixels that stop: box rows are
    rounded up to ``LANES`` pixels, into the padding past the image. Some pixels stop, or
    all of them: the compositor then ends early, so a lane past its box counted as
    stopped would cut the frame short.
    """
    rng = np.random.default_rng(width)
    n = per_pixel * width * height
    packed = np.zeros((n, cpu.TABLE_COLUMNS))
    packed[:, cpu._PX] = rng.uniform(-3.0, width + 3.0, n) ** 2 / (width + 3.0)  # dense left
    packed[:, cpu._PY] = rng.uniform(-2.0, height + 2.0, n)
    scale = rng.uniform(0.3, 6.0, n)  # footprints from sub-pixel to wider than LANES
    packed[:, cpu._CA] = 1.0 / scale**2
    packed[:, cpu._CC] = 1.0 / rng.uniform(0.3, 3.0, n) ** 2
    packed[:, cpu._CB] = rng.uniform(-0.3, 0.3, n) * np.sqrt(packed[:, cpu._CA]
                                                             * packed[:, cpu._CC])
    packed[:, cpu._OPAC] = rng.uniform(0.05, 1.0, n)
    packed[:, cpu._SIGMA_CUT] = np.log(packed[:, cpu._OPAC] / cpu.ALPHA_MIN)
    packed[:, cpu._R : cpu._B + 1] = rng.uniform(0.0, 1.0, (n, 3))
    packed[:, cpu._Z] = np.sort(rng.uniform(1.0, 9.0, n))
    det = packed[:, cpu._CA] * packed[:, cpu._CC] - packed[:, cpu._CB] ** 2
    extend = np.minimum(cpu.BBOX_SIGMA_MAX, np.sqrt(2.0 * packed[:, cpu._SIGMA_CUT]))
    packed[:, cpu._RX] = np.ceil(extend * np.sqrt(packed[:, cpu._CC] / det))
    packed[:, cpu._RY] = np.ceil(extend * np.sqrt(packed[:, cpu._CA] / det))
    assert (2 * packed[:, cpu._RX] + 1 > cpu.LANES).sum() > 10
    rgb, depth, alpha = _composite(packed, width, height, 1)
    want_rgb, want_depth, want_alpha, stopped = _per_pixel(packed, width, height)
    if per_pixel == 1:
        assert 0.2 < stopped.mean() < 0.9, "many pixels must stop, not all"
    else:
        assert stopped.all()
    np.testing.assert_allclose(alpha, want_alpha, atol=1e-6)
    np.testing.assert_allclose(rgb, want_rgb, atol=1e-6)
    np.testing.assert_allclose(depth, want_depth, rtol=1e-6, atol=1e-6)
