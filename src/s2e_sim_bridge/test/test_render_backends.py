"""Every renderer backend against the numpy reference, analytic cases and compositing rules.

The ``cpu`` backend always runs, twice: with several numba threads (row sets composited in
parallel) and with one (as in a vector-env worker). The ``cuda``
(gsplat) backend runs the same tests where gsplat and a CUDA GPU are available and is skipped
otherwise.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from s2e_sim_bridge.render import (
    intrinsics_from_fov,
    look_at,
    render,
    render_batch,
)
from s2e_sim_bridge.render.conventions import (
    ALPHA_MAX,
    ALPHA_MIN,
    EPS2D_PX2,
    TRANSMITTANCE_MIN,
)
from s2e_sim_bridge.scene import GaussianScene, load_scene, merge_scenes
from s2e_sim_bridge.scene.sh import SH_C0, rgb_to_sh0

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_reference import reference_render


def _cuda_available() -> bool:
    if importlib.util.find_spec("gsplat") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not _cuda_available(), reason="gsplat with a CUDA GPU not available"),
    ],
)
CPU_ONE_THREAD = "cpu-one-thread"  # the cpu backend with numba limited to one thread
# Largest |difference| to the float64 reference (rgb, alpha; depth where alpha > 0.5). The cpu
# backend computes in float64 like the reference; gsplat 1.5.3 computes in float32 and met the
# same bound on an H100.
TOLERANCE = {"cpu": 1e-3, "cuda": 1e-3}
DEPTH_ALPHA_MIN = 0.5  # compare expected depth only where pixels are mostly covered
FIXTURE_SCENES = ["donut.ply", "fruit_drops_minimal.ply", "tiny16.ply"]
FIXTURE_SIZE_PX = (48, 40)  # width, height: small so the reference stays fast


def random_scene(
    rng: np.random.Generator, n: int, sh_degree: int, centre=(0.0, 0.0, 0.0), spread=1.0
) -> GaussianScene:
    """``n`` random anisotropic Gaussians around ``centre`` (metres)."""
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    sh = rng.normal(0.0, 0.3, size=(n, (sh_degree + 1) ** 2, 3))
    sh[:, 0] = rgb_to_sh0(rng.uniform(0.0, 1.0, size=(n, 3)))
    return GaussianScene(
        means=np.asarray(centre) + rng.uniform(-spread, spread, size=(n, 3)),
        quats=quats,
        scales=np.exp(rng.uniform(np.log(0.01), np.log(0.3), size=(n, 3))) * spread,
        opacities=rng.uniform(0.0, 1.0, size=n),
        sh=sh,
    )


def camera_for(scene: GaussianScene, width: int, height: int, hfov_deg: float = 60.0):
    """A camera that frames the bulk of ``scene`` from an oblique viewpoint."""
    lo, hi = np.percentile(scene.means, [2.0, 98.0], axis=0)
    centre = 0.5 * (lo + hi)
    radius = 0.5 * float(np.linalg.norm(hi - lo))
    direction = np.array([1.0, -0.7, 0.6]) / np.linalg.norm([1.0, -0.7, 0.6])
    distance = 1.1 * radius / math.tan(math.radians(hfov_deg) / 2.0)
    return look_at(centre + distance * direction, centre), intrinsics_from_fov(
        width, height, hfov_deg
    )


def assert_matches_reference(result, expected, tol: float) -> None:
    rgb, depth, alpha = expected
    assert np.abs(result.rgb - rgb).max() <= tol
    assert np.abs(result.alpha - alpha).max() <= tol
    covered = alpha > DEPTH_ALPHA_MIN
    assert np.abs(result.depth - depth)[covered].max(initial=0.0) <= tol
    assert result.rgb.dtype == np.float32 and result.depth.dtype == np.float32


@pytest.fixture(params=["cpu", CPU_ONE_THREAD, CUDA])
def backend(request) -> str:
    """The backend name for ``render``, with numba's thread count set for the test.

    ``cpu`` runs on every thread the process may use, ``cpu-one-thread`` on one.
    """
    if request.param == "cuda":
        yield request.param
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1 if request.param == CPU_ONE_THREAD
                          else numba.config.NUMBA_NUM_THREADS)
    try:
        yield "cpu"
    finally:
        numba.set_num_threads(threads)


@pytest.fixture(scope="module", params=FIXTURE_SCENES)
def fixture_scene(request, fixtures_dir: Path) -> GaussianScene:
    return load_scene(fixtures_dir / "scenes" / request.param)


def test_matches_reference_on_fixture_scenes(fixture_scene: GaussianScene, backend: str) -> None:
    width, height = FIXTURE_SIZE_PX
    viewmat, K = camera_for(fixture_scene, width, height)
    result = render(fixture_scene, viewmat, K, width, height, backend=backend)
    expected = reference_render([fixture_scene], viewmat, K, width, height)
    assert expected[2].mean() > 0.05, "camera must actually see the scene"
    assert_matches_reference(result, expected, TOLERANCE[backend])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_reference_on_random_scenes(seed: int, backend: str) -> None:
    rng = np.random.default_rng(seed)
    scene = random_scene(rng, n=400, sh_degree=seed % 4)
    width, height = 40, 32
    K = intrinsics_from_fov(width, height, 75.0)
    K[0, 2] += 3.3  # off-centre principal point
    # close enough that some Gaussians lie behind the camera or far outside the FOV
    viewmat = look_at((1.6, 0.4, 0.5), (0.0, 0.1, 0.0))
    background = tuple(rng.uniform(0.0, 1.0, size=3))
    result = render(scene, viewmat, K, width, height, backend=backend, background=background)
    expected = reference_render([scene], viewmat, K, width, height, background=background)
    assert 0.05 < expected[2].mean() < 0.999
    assert_matches_reference(result, expected, TOLERANCE[backend])


def test_needle_gaussians_match_reference(backend: str) -> None:
    # Thin, long, rotated footprints fill a small part of their box: every pixel of the
    # ellipse must still be composited (the cpu backend walks per-row spans of it).
    rng = np.random.default_rng(7)
    scene = random_scene(rng, n=80, sh_degree=0)
    scene = dataclasses.replace(scene, scales=np.tile([0.004, 0.004, 0.6], (80, 1)),
                                opacities=rng.uniform(0.5, 1.0, size=80))
    width, height = 48, 40
    viewmat, K = camera_for(scene, width, height)
    result = render(scene, viewmat, K, width, height, backend=backend)
    expected = reference_render([scene], viewmat, K, width, height)
    assert 0.05 < expected[2].mean() < 0.95
    assert_matches_reference(result, expected, TOLERANCE[backend])


def test_equal_depths_composite_in_index_order(backend: str) -> None:
    # Overlapping Gaussians on one plane facing the camera all have the same depth, so only
    # the tie rule orders them: the lower index first, and the first scene before an extra
    # one (gsplat's stable sort of the concatenation). The indices are shuffled against the
    # culling grid's cell order, which the cpu backend projects in.
    rng = np.random.default_rng(11)
    n = 300
    xy = rng.uniform(-1.0, 1.0, size=(n, 2))
    scene = GaussianScene(
        means=np.column_stack([xy, np.full(n, 2.0)]), quats=np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)),
        scales=np.tile([0.15, 0.15, 0.15], (n, 1)), opacities=rng.uniform(0.3, 0.9, size=n),
        sh=rgb_to_sh0(rng.uniform(0.0, 1.0, size=(n, 3)))[:, None, :])
    colours = rng.uniform(0.0, 1.0, size=(n, 3))
    extra = dataclasses.replace(scene, sh=rgb_to_sh0(colours)[:, None, :])
    width, height = 48, 40
    K = intrinsics_from_fov(width, height, 70.0)
    viewmat = np.eye(4)
    result = render(scene, viewmat, K, width, height, backend=backend, extra=[extra])
    expected = reference_render([scene, extra], viewmat, K, width, height)
    assert_matches_reference(result, expected, TOLERANCE[backend])
    # the tie rule matters here: the extra scene first gives another image
    swapped = reference_render([extra, scene], viewmat, K, width, height)
    assert np.abs(swapped[0] - expected[0]).max() > 0.1


def _single(mean, scale: float, opacity: float, rgb) -> GaussianScene:
    return GaussianScene(
        means=np.asarray([mean], dtype=np.float64),
        quats=[[1.0, 0.0, 0.0, 0.0]],
        scales=[[scale, scale, scale]],
        opacities=[opacity],
        sh=rgb_to_sh0(np.asarray(rgb, dtype=np.float64))[None, None, :],
    )


def test_isotropic_gaussian_matches_closed_form(backend: str) -> None:
    # camera at the origin looking along world +z (identity viewmat), principal point on the
    # centre of pixel (8, 6), Gaussian on the optical axis
    width, height, focal, dist, scale, opacity = 17, 13, 20.0, 2.0, 0.05, 0.8
    K = np.array([[focal, 0.0, 8.5], [0.0, focal, 6.5], [0.0, 0.0, 1.0]])
    colour = np.array([0.9, 0.4, 0.1])
    scene = _single((0.0, 0.0, dist), scale, opacity, colour)
    bg = np.array([0.2, 0.3, 0.5])
    out = render(scene, np.eye(4), K, width, height, backend=backend, background=bg)
    var_px = (focal * scale / dist) ** 2 + EPS2D_PX2
    for dx in (0, 1, 2, 3):  # pixels right of the centre pixel
        alpha = min(ALPHA_MAX, opacity * math.exp(-0.5 * dx * dx / var_px))
        if alpha < ALPHA_MIN:  # at 3 px the contribution is below the cut and skipped
            assert dx == 3
            alpha = 0.0
        got = out.rgb[6, 8 + dx]
        np.testing.assert_allclose(out.alpha[6, 8 + dx], alpha, atol=1e-6)
        np.testing.assert_allclose(got, alpha * colour + (1 - alpha) * bg, atol=1e-6)
        np.testing.assert_allclose(out.depth[6, 8 + dx], dist if alpha else 0.0, rtol=1e-6)
    # colour is 0.5 + C0 * sh0 (rgb_to_sh0 inverts exactly that)
    np.testing.assert_allclose(0.5 + SH_C0 * scene.sh[0, 0], colour, atol=1e-6)


def test_early_termination_stops_before_the_saturating_gaussian(backend: str) -> None:
    # layers of alpha 0.95 at the centre pixel: T = 0.05, 0.0025, 1.25e-4, then 6.25e-6 <= 1e-4
    # so the 4th layer (and every later one) is never added
    width, height, focal = 9, 9, 40.0
    K = np.array([[focal, 0.0, 4.5], [0.0, focal, 4.5], [0.0, 0.0, 1.0]])
    colours = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    layers = [_single((0.0, 0.0, 1.0 + 0.5 * i), 0.2, 0.95, c) for i, c in enumerate(colours)]
    scene = merge_scenes(layers[::-1])  # stored back to front: the sort must reorder
    bg = np.array([0.0, 0.0, 0.0])
    out = render(scene, np.eye(4), K, width, height, backend=backend, background=bg)
    trans = np.cumprod([1.0, 0.05, 0.05])  # before layers 0, 1, 2
    expected_rgb = (0.95 * trans[:, None] * colours[:3]).sum(axis=0)
    expected_alpha = 1.0 - trans[-1] * 0.05
    assert trans[-1] * 0.05 > TRANSMITTANCE_MIN >= trans[-1] * 0.05 * 0.05
    np.testing.assert_allclose(out.rgb[4, 4], expected_rgb, atol=1e-5)
    np.testing.assert_allclose(out.alpha[4, 4], expected_alpha, atol=1e-6)
    expected_depth = (0.95 * trans * np.array([1.0, 1.5, 2.0])).sum() / expected_alpha
    np.testing.assert_allclose(out.depth[4, 4], expected_depth, rtol=1e-5)


def test_background_fills_uncovered_pixels(backend: str) -> None:
    rng = np.random.default_rng(7)
    scene = random_scene(rng, n=200, sh_degree=1)
    width, height = 24, 20
    viewmat, K = camera_for(scene, width, height)
    bg = np.array([0.25, 0.5, 1.0])
    black = render(scene, viewmat, K, width, height, backend=backend)
    coloured = render(scene, viewmat, K, width, height, backend=backend, background=bg)
    np.testing.assert_allclose(
        coloured.rgb, black.rgb + (1 - black.alpha)[..., None] * bg, atol=1e-6
    )
    np.testing.assert_array_equal(coloured.alpha, black.alpha)
    # looking away from the scene: background only, zero alpha and depth
    away = look_at((0.0, 0.0, 0.0), (0.0, 0.0, 10.0), up=(0.0, 1.0, 0.0))
    scene_behind = random_scene(rng, n=50, sh_degree=0, centre=(0.0, 0.0, -5.0))
    empty = render(scene_behind, away, K, width, height, backend=backend, background=bg)
    np.testing.assert_array_equal(
        empty.rgb, np.broadcast_to(bg.astype(np.float32), empty.rgb.shape)
    )
    assert not empty.alpha.any() and not empty.depth.any()


def test_extra_scenes_equal_rendering_the_concatenation(backend: str) -> None:
    rng = np.random.default_rng(11)
    static = random_scene(rng, n=300, sh_degree=3)
    walkers = [random_scene(rng, n=40, sh_degree=d, spread=0.3) for d in (0, 1)]
    width, height = 32, 24
    viewmat, K = camera_for(static, width, height)
    together = render(static, viewmat, K, width, height, backend=backend, extra=walkers)
    merged = render(merge_scenes([static, *walkers]), viewmat, K, width, height, backend=backend)
    for name in ("rgb", "depth", "alpha"):
        np.testing.assert_allclose(getattr(together, name), getattr(merged, name), atol=1e-5)
    alone = render(static, viewmat, K, width, height, backend=backend)
    assert np.abs(together.rgb - alone.rgb).max() > 0.05, "the extras must be visible"


def test_batch_equals_loop(backend: str) -> None:
    rng = np.random.default_rng(5)
    scene = random_scene(rng, n=300, sh_degree=2)
    width, height = 24, 16
    viewmats = [look_at((4.0, 2.0 * i - 2.0, 1.6), (0.0, 0.0, 0.0)) for i in range(3)]
    Ks = [intrinsics_from_fov(width, height, hfov) for hfov in (50.0, 70.0, 90.0)]
    batch = render_batch(scene, np.stack(viewmats), np.stack(Ks), width, height, backend=backend)
    assert batch.rgb.shape == (3, height, width, 3) and batch.depth.shape == (3, height, width)
    for i in range(3):
        single = render(scene, viewmats[i], Ks[i], width, height, backend=backend)
        np.testing.assert_allclose(batch.rgb[i], single.rgb, atol=1e-6)
        np.testing.assert_allclose(batch.depth[i], single.depth, atol=1e-5)
        np.testing.assert_allclose(batch.alpha[i], single.alpha, atol=1e-6)
    assert np.abs(batch.rgb[0] - batch.rgb[2]).max() > 0.05, "cameras must differ"
