"""Level of detail in the cpu backend: exact when off, close and much cheaper when on."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from s2e_policy.embodiment import load_embodiment
from s2e_sim_bridge.navbench import sim as sim_module
from s2e_sim_bridge.navbench.runner import episode_set_for
from s2e_sim_bridge.render import (
    RenderError,
    camera_from_pose,
    cpu,
    intrinsics_from_fov,
    lod,
    look_at,
    render,
)
from s2e_sim_bridge.render.conventions import ALPHA_MAX
from s2e_sim_bridge.scene import GaussianScene, generate_street_scene, load_scene
from s2e_sim_bridge.scene.sh import rgb_to_sh0

HFOV_DEG = 90.0
SKY_RGB = (0.62, 0.74, 0.88)
LOD_PX = 1.0
# Camera poses (x, y, z, yaw, pitch) on the default 60 m x 20 m street: down the street from
# one end, mid-street slightly turned, near the middle looking a little aside, from the far
# end looking back, and from a sidewalk looking across.
STREET_POSES = [
    (-25.0, 0.0, 0.6, 0.0, math.radians(5.0)),
    (-10.0, 1.0, 0.6, 0.2, math.radians(5.0)),
    (0.0, -2.0, 0.6, -0.3, 0.0),
    (15.0, 3.0, 0.6, math.pi, math.radians(5.0)),
    (5.0, -6.0, 0.6, 1.2, 0.0),
]
# Measured with LOD_PX = 1 on these poses (seed 0, 100k Gaussians), per pose: PSNR 28.8-32.2 dB
# at 64 px and 35.2-45.4 dB at 128 px; mean |alpha difference| <= 0.0088 / 0.0017; 90th
# percentile of the relative depth error (pixels solid in both) <= 0.022 / 0.0002; rows drawn
# (all poses together) 4.2x / 1.8x fewer. The bounds keep a margin for other numba / CPU builds.
MIN_PSNR_DB = {64: 25.0, 128: 31.0}
MIN_ROWS_RATIO = {64: 3.5, 128: 1.5}
MAX_MEAN_ALPHA_DIFF = {64: 0.03, 128: 0.01}
MAX_P90_REL_DEPTH_ERROR = {64: 0.05, 128: 0.01}


@pytest.fixture(scope="module")
def street() -> GaussianScene:
    return generate_street_scene(0)[0]


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def isotropic_scene(means, sigmas, opacities, rgbs) -> GaussianScene:
    n = len(means)
    return GaussianScene(
        means=np.asarray(means, dtype=np.float32),
        quats=np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (n, 1)),
        scales=np.repeat(np.asarray(sigmas, dtype=np.float32)[:, None], 3, axis=1),
        opacities=np.asarray(opacities, dtype=np.float32),
        sh=rgb_to_sh0(np.asarray(rgbs, dtype=np.float32))[:, None, :],
    )


def upper(cov: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` -> ``(..., 6)`` upper triangle ``xx xy xz yy yz zz``."""
    return np.stack([cov[..., a, b] for a, b in lod.COV_UPPER], axis=-1)


# ------------------------------------------------------------------ exactness when off


def test_lod_off_is_the_exact_renderer(street, monkeypatch) -> None:
    K = intrinsics_from_fov(64, 64, HFOV_DEG)
    viewmat = camera_from_pose(*STREET_POSES[0])
    default = render(street, viewmat, K, 64, 64, background=SKY_RGB)
    with monkeypatch.context() as patch:  # off: no level is even built
        patch.setattr(cpu, "build_lod", lambda *a, **k: pytest.fail("LOD built while off"))
        off = render(dataclasses.replace(street), viewmat, K, 64, 64, background=SKY_RGB,
                     lod_px=0.0)
    for name in ("rgb", "depth", "alpha"):
        np.testing.assert_array_equal(getattr(off, name), getattr(default, name))


def test_cells_too_close_for_any_level_are_drawn_exactly(street) -> None:
    """With a threshold no voxel edge meets, LOD on draws exactly the same rows and pixels."""
    K = intrinsics_from_fov(64, 64, HFOV_DEG)
    tiny_px = 1e-4  # a 1 cm voxel would have to be 3 km away
    for pose in STREET_POSES[:2]:
        viewmat = camera_from_pose(*pose)
        exact = render(street, viewmat, K, 64, 64, background=SKY_RGB)
        on = render(street, viewmat, K, 64, 64, background=SKY_RGB, lod_px=tiny_px)
        assert cpu.prepare_lod(street) is not None
        for name in ("rgb", "depth", "alpha"):
            np.testing.assert_array_equal(getattr(on, name), getattr(exact, name))
        assert cpu.drawn_rows([street], viewmat, K, 64, 64, lod_px=tiny_px) \
            == cpu.drawn_rows([street], viewmat, K, 64, 64)


# ------------------------------------------------------------------ quality and savings


@pytest.mark.parametrize("size", [64, 128])
def test_street_lod_is_close_and_draws_far_fewer_rows(street, size: int) -> None:
    K = intrinsics_from_fov(size, size, HFOV_DEG)
    rows_exact = rows_lod = 0
    for pose in STREET_POSES:
        viewmat = camera_from_pose(*pose)
        exact = render(street, viewmat, K, size, size, background=SKY_RGB)
        approx = render(street, viewmat, K, size, size, background=SKY_RGB, lod_px=LOD_PX)
        assert psnr_db(approx.rgb, exact.rgb) > MIN_PSNR_DB[size], pose
        assert np.abs(approx.alpha - exact.alpha).mean() < MAX_MEAN_ALPHA_DIFF[size], pose
        solid = (exact.alpha > 0.5) & (approx.alpha > 0.5)
        rel = np.abs(approx.depth[solid] - exact.depth[solid]) / exact.depth[solid]
        assert np.percentile(rel, 90) < MAX_P90_REL_DEPTH_ERROR[size], pose
        rows_exact += cpu.drawn_rows([street], viewmat, K, size, size)
        rows_lod += cpu.drawn_rows([street], viewmat, K, size, size, lod_px=LOD_PX)
    assert rows_exact / rows_lod > MIN_ROWS_RATIO[size]


def test_levels_of_the_street_are_nested_and_coarsen(street) -> None:
    levels = cpu.prepare_lod(street)
    prep = cpu.prepare_scene(street)
    n_cells = prep.cell_spheres.shape[0]
    L = levels.num_levels
    assert L >= 2 and levels.starts.shape == (n_cells * L + 1,)
    counts = np.diff(levels.starts).reshape(n_cells, L)
    assert np.all(counts[:, -1] <= 1)  # the coarsest level: one proxy per cell
    assert np.all(np.diff(counts, axis=1) <= 0)  # coarser levels never hold more proxies
    assert counts[:, -1].sum() * lod.LOD_MIN_MERGE_FACTOR <= len(street)
    # every proxy lies inside its cell's sphere, and the coarsest one is the cell's weighted
    # mean, which for an opaque cell lies within the box of the members' centres
    cell_of = np.repeat(np.repeat(np.arange(n_cells), L), np.diff(levels.starts))
    dist = np.linalg.norm(levels.means - prep.cell_spheres[cell_of, :3], axis=1)
    assert np.all(dist <= prep.cell_spheres[cell_of, 3])
    assert np.all((levels.opacities >= 0.0) & (levels.opacities <= ALPHA_MAX))
    assert np.all(np.isfinite(levels.edges_m[:, -1]) == (counts[:, -1] < np.diff(prep.cell_starts)))


def test_view_dependent_proxies_match_view_independent_ones() -> None:
    """SH degree 1 with zero higher bands must give the degree-0 image (proxies carry SH)."""
    kwargs = {"length_m": 30.0, "width_m": 14.0, "num_gaussians": 20_000}
    flat = generate_street_scene(7, **kwargs)[0]
    sh1 = generate_street_scene(7, sh_degree=1, **kwargs)[0]
    K = intrinsics_from_fov(64, 64, HFOV_DEG)
    viewmat = camera_from_pose(-12.0, 0.0, 0.65, 0.0, math.radians(5.0))
    a = render(flat, viewmat, K, 64, 64, lod_px=LOD_PX)
    b = render(sh1, viewmat, K, 64, 64, lod_px=LOD_PX)
    assert cpu.prepare_lod(sh1).sh.shape[1:] == (4, 3)
    assert cpu.drawn_rows([sh1], viewmat, K, 64, 64, lod_px=LOD_PX) \
        < cpu.drawn_rows([sh1], viewmat, K, 64, 64)
    np.testing.assert_allclose(b.rgb, a.rgb, atol=1e-6)


# Measured at 64x64, 60-degree camera, 6 scene extents away: fruit (SH degree 3) 41.3 dB with
# 4.9x fewer rows, donut 33.1 dB with 5.1x fewer rows.
@pytest.mark.parametrize(("name", "min_psnr_db"), [("fruit_drops_minimal.ply", 36.0),
                                                   ("donut.ply", 29.0)])
def test_real_captures_from_afar(fixtures_dir, name: str, min_psnr_db: float) -> None:
    scene = load_scene(fixtures_dir / "scenes" / name)
    centre = scene.means.mean(axis=0)
    extent = float(np.ptp(scene.means, axis=0).max())
    viewmat = look_at(centre + np.array([0.0, -6.0, 1.8]) * extent, centre)
    K = intrinsics_from_fov(64, 64, 60.0)
    exact = render(scene, viewmat, K, 64, 64)
    approx = render(scene, viewmat, K, 64, 64, lod_px=LOD_PX)
    assert psnr_db(approx.rgb, exact.rgb) > min_psnr_db
    assert cpu.drawn_rows([scene], viewmat, K, 64, 64) \
        > 3.5 * cpu.drawn_rows([scene], viewmat, K, 64, 64, lod_px=LOD_PX)


# ------------------------------------------------------------------ merging


def test_mean_projected_area_of_spheres_disks_and_rotations() -> None:
    sphere = upper(np.diag([4.0, 4.0, 4.0]))[None]
    np.testing.assert_allclose(lod.mean_projected_area(sphere), [math.pi * 4.0])
    disk = upper(np.diag([4.0, 1.0, 0.0]))[None]  # semi-axes 2 and 1, flat
    np.testing.assert_allclose(lod.mean_projected_area(disk), [math.pi * 2.0 / math.sqrt(3.0)])
    rng = np.random.default_rng(0)
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    cov = np.diag([0.5, 0.2, 0.01])
    np.testing.assert_allclose(lod.mean_projected_area(upper(R @ cov @ R.T)[None]),
                               lod.mean_projected_area(upper(cov)[None]))


def test_two_equal_gaussians_side_by_side_merge_to_their_moments() -> None:
    sigma, a, opacity = 0.1, 0.3, 0.6
    means = np.array([[-a, 0.0, 2.0], [a, 0.0, 2.0]])
    covs = np.tile(upper(np.eye(3) * sigma**2), (2, 1))
    colours = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    merged = lod.merge_gaussians(means, covs, np.full(2, opacity), colours,
                                 np.zeros(2, dtype=np.int64))
    np.testing.assert_allclose(merged.means, [[0.0, 0.0, 2.0]], atol=1e-15)
    expected_cov = np.diag([sigma**2 + a**2, sigma**2, sigma**2])
    np.testing.assert_allclose(merged.covs, upper(expected_cov)[None], atol=1e-15)
    np.testing.assert_allclose(merged.colours, [[0.5, 0.0, 0.5]])
    # each member covers pi sigma^2 of the merged footprint's view-averaged area
    area_merged = math.pi * math.sqrt(((sigma**2 + a**2) * 2 * sigma**2 + sigma**4) / 3.0)
    fraction = math.pi * sigma**2 / area_merged
    np.testing.assert_allclose(merged.opacities, [1.0 - (1.0 - opacity * fraction) ** 2])
    assert merged.opacities[0] < opacity  # spread over a larger footprint: more transparent


def test_coincident_gaussians_merge_to_their_composite_opacity() -> None:
    means = np.zeros((2, 3))
    covs = np.tile(upper(np.diag([0.04, 0.01, 0.0025])), (2, 1))
    merged = lod.merge_gaussians(means, covs, np.array([0.5, 0.5]), np.ones((2, 3)),
                                 np.zeros(2, dtype=np.int64))
    np.testing.assert_allclose(merged.covs, covs[:1])
    np.testing.assert_allclose(merged.opacities, [0.75])  # 1 - (1 - 0.5)^2


def test_a_single_gaussian_merges_to_itself_and_transparent_ones_vanish() -> None:
    rng = np.random.default_rng(1)
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    covs = upper(np.stack([R @ np.diag([0.3, 0.05, 0.001]) @ R.T, np.eye(3) * 0.01]))
    means = np.array([[1.0, -2.0, 0.5], [4.0, 4.0, 4.0]])
    colours = np.array([[0.2, 0.4, 0.6], [1.0, 1.0, 1.0]])
    opacities = np.array([0.8, 1e-3])  # the second is never drawn (below ALPHA_MIN)
    merged = lod.merge_gaussians(means, covs, opacities, colours, np.array([3, 7]))
    np.testing.assert_array_equal(merged.groups, [3])
    np.testing.assert_allclose(merged.means, means[:1], rtol=1e-15)
    np.testing.assert_allclose(merged.covs, covs[:1], rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(merged.opacities, [0.8], rtol=1e-12)
    np.testing.assert_allclose(merged.colours, colours[:1], rtol=1e-15)


# ------------------------------------------------------------------ small scenes


def test_small_scenes_are_drawn_in_full() -> None:
    scene = isotropic_scene([[0.0, 5.0, 0.0]], [0.2], [0.9], [[1.0, 0.5, 0.2]])
    viewmat = look_at(np.zeros(3), np.array([0.0, 5.0, 0.0]))
    K = intrinsics_from_fov(32, 32, 60.0)
    exact = render(scene, viewmat, K, 32, 32)
    on = render(scene, viewmat, K, 32, 32, lod_px=LOD_PX)
    assert cpu.prepare_lod(scene) is None
    np.testing.assert_array_equal(on.rgb, exact.rgb)
    assert exact.alpha.max() > 0.5


def test_a_far_cluster_and_a_transparent_cell_render_with_lod(monkeypatch) -> None:
    """A far cluster becomes a few proxies, a transparent cell none, a near Gaussian stays.

    The scene-size floor is lifted so that a 73-Gaussian scene gets levels.
    """
    monkeypatch.setattr(lod, "LOD_MIN_GAUSSIANS", 0)
    rng = np.random.default_rng(2)
    cluster = np.array([-8.0, 30.0, 0.0]) + rng.uniform(-0.5, 0.5, (64, 3))
    hidden = np.array([6.0, 40.0, 0.0]) + rng.uniform(-0.5, 0.5, (8, 3))
    means = np.concatenate([cluster, hidden, [[0.0, 3.0, 0.0]]])
    opacities = np.r_[np.full(64, 0.9), np.full(8, 1e-3), 0.9]
    rgbs = np.concatenate([rng.uniform(0.2, 0.8, (64, 3)), np.ones((8, 3)), [[1.0, 0.0, 0.0]]])
    scene = isotropic_scene(means, np.full(len(means), 0.15), opacities, rgbs)
    levels = cpu.prepare_lod(scene)
    assert levels is not None and len(levels) < 64
    viewmat = look_at(np.zeros(3), np.array([0.0, 1.0, 0.0]))
    K = intrinsics_from_fov(32, 32, 60.0)
    exact = render(scene, viewmat, K, 32, 32)
    on = render(scene, viewmat, K, 32, 32, lod_px=4.0)
    rows_exact = cpu.drawn_rows([scene], viewmat, K, 32, 32)
    rows_on = cpu.drawn_rows([scene], viewmat, K, 32, 32, lod_px=4.0)
    assert rows_exact == 65 and rows_on < 10  # the cluster and the near Gaussian
    assert psnr_db(on.rgb, exact.rgb) > 25.0
    centre = (slice(15, 17), slice(15, 17))  # only the near Gaussian reaches these pixels
    assert exact.alpha[centre].min() > 0.5
    np.testing.assert_array_equal(on.rgb[centre], exact.rgb[centre])


# ------------------------------------------------------------------ option plumbing


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "1", True])
def test_bad_lod_px_is_refused(bad) -> None:
    scene = isotropic_scene([[0.0, 0.0, 5.0]], [0.2], [0.9], [[1.0, 0.5, 0.2]])
    with pytest.raises(RenderError, match="lod_px"):
        render(scene, np.eye(4), intrinsics_from_fov(16, 16, 60.0), 16, 16, lod_px=bad)


def test_sim_renders_with_its_lod_setting(monkeypatch) -> None:
    assert sim_module.SimConfig().render_lod_px == 1.0
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs["lod_px"])
        return render(*args, **kwargs)

    monkeypatch.setattr(sim_module, "render", spy)
    scene, _ = generate_street_scene(7, length_m=30.0, width_m=14.0, num_gaussians=5000)
    nav = sim_module.NavBenchSim(scene, load_embodiment("wheeled"),
                                 sim_module.SimConfig(render_width_px=32, render_lod_px=2.5))
    episodes = episode_set_for(nav, "empty", 1, 0)
    obs = nav.reset(episodes.episodes[0], episodes.task)
    assert seen == [2.5] and obs.rgb.shape == (24, 32, 3)
