"""Per-frame work around the cpu rasteriser: pedestrians posed every frame, bit for bit.

The simulator poses its crowd as a new small scene every frame, so the per-scene preparation
(covariances, degree-0 colours, culling grid), the posing and the gathering of drawn rows run
per frame. They are compiled kernels; these tests hold them to the plain numpy pipeline they
replaced (kept here as the reference): the rendered images must be identical, not just close.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2e_sim_bridge.pedestrians.bodies import (
    PART_LEFT_ARM,
    PART_LEFT_LEG,
    PART_RIGHT_ARM,
    PART_RIGHT_LEG,
    BodyConfig,
    build_template,
    pose_bodies,
    sample_palettes,
)
from s2e_sim_bridge.render import camera_from_pose, cpu, intrinsics_from_fov, render
from s2e_sim_bridge.render.conventions import ALPHA_MIN, BBOX_SIGMA_MAX, SH_COLOUR_OFFSET
from s2e_sim_bridge.render.scene_cache import SceneCache
from s2e_sim_bridge.scene import GaussianScene, generate_street_scene, load_scene
from s2e_sim_bridge.scene.sh import eval_sh, rgb_to_sh0
from s2e_sim_bridge.scene.transform import quat_multiply

WIDTH_PX, HEIGHT_PX = 64, 48
HFOV_DEG = 90.0
CROWD_SIZE = 12
# (x, y, z, yaw, pitch, roll) of cameras that see the crowd placed by crowd_state()
CAMERAS = [
    (-12.0, 0.0, 0.65, 0.0, math.radians(5.0), 0.0),
    (-12.0, 1.0, 1.2, math.radians(-10.0), math.radians(12.0), math.radians(4.0)),
]


@pytest.fixture(scope="module")
def street() -> GaussianScene:
    return generate_street_scene(7, length_m=30.0, width_m=14.0, num_gaussians=20_000)[0]


def crowd_state(seed: int, n: int = CROWD_SIZE) -> tuple[np.ndarray, ...]:
    """Positions, headings, gait phases and palettes of ``n`` walkers ahead of the cameras."""
    rng = np.random.default_rng(seed)
    positions = np.column_stack([rng.uniform(-10.0, -2.0, n), rng.uniform(-3.0, 3.0, n)])
    return (positions, rng.uniform(-math.pi, math.pi, n), rng.uniform(0.0, 2.0 * math.pi, n),
            sample_palettes(n, rng))


# ------------------------------------------------------------------ the numpy reference


def reference_pose(template, positions, headings, gait_phase, palettes, floor_height_m=0.0,
                   cfg: BodyConfig | None = None) -> GaussianScene:
    """The vectorised numpy posing that ``pose_bodies``' kernel replaced."""
    cfg = cfg or BodyConfig()
    n, m = len(positions), len(template.parts)
    swing_sign = np.select(
        [template.parts == PART_LEFT_LEG, template.parts == PART_RIGHT_LEG,
         template.parts == PART_LEFT_ARM, template.parts == PART_RIGHT_ARM],
        [cfg.leg_swing_rad, -cfg.leg_swing_rad, -cfg.arm_swing_rad, cfg.arm_swing_rad], 0.0)
    swing = np.sin(np.asarray(gait_phase, float))[:, None] * swing_sign[None, :]
    cs, ss = np.cos(swing), np.sin(swing)
    ox, oz = template.offsets[None, :, 0], template.offsets[None, :, 2]
    local = np.stack([cs * ox - ss * oz, np.broadcast_to(template.offsets[None, :, 1], (n, m)),
                      ss * ox + cs * oz], axis=-1) + template.pivots[None]
    cy, sy = np.cos(headings)[:, None], np.sin(headings)[:, None]
    world = np.stack([cy * local[..., 0] - sy * local[..., 1] + positions[:, 0:1],
                      sy * local[..., 0] + cy * local[..., 1] + positions[:, 1:2],
                      local[..., 2] + floor_height_m], axis=-1)
    half_yaw = 0.5 * np.broadcast_to(np.asarray(headings, float)[:, None], (n, m))
    zeros = np.zeros_like(half_yaw)
    q_yaw = np.stack([np.cos(half_yaw), zeros, zeros, np.sin(half_yaw)], axis=-1)
    q_swing = np.stack([np.cos(-0.5 * swing), zeros, np.sin(-0.5 * swing), zeros], axis=-1)
    colours = np.take_along_axis(palettes, np.broadcast_to(template.material[None, :, None],
                                                           (n, m, 3)), axis=1)
    return GaussianScene(
        means=world.reshape(-1, 3), quats=quat_multiply(q_yaw, q_swing).reshape(-1, 4),
        scales=np.broadcast_to(template.scales[None], (n, m, 3)).reshape(-1, 3),
        opacities=np.full(n * m, cfg.opacity), sh=rgb_to_sh0(colours.reshape(-1, 1, 3)))


def reference_covariances(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``(N, 6)`` float64 ``R S S^T R^T`` upper triangles, elementwise in numpy."""
    w, x, y, z = (quats[:, k].astype(np.float64) for k in range(4))
    inv = 1.0 / np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w * inv, x * inv, y * inv, z * inv
    sx, sy, sz = (scales[:, k].astype(np.float64) for k in range(3))
    m00 = (1.0 - 2.0 * (y * y + z * z)) * sx
    m01 = 2.0 * (x * y - w * z) * sy
    m02 = 2.0 * (x * z + w * y) * sz
    m10 = 2.0 * (x * y + w * z) * sx
    m11 = (1.0 - 2.0 * (x * x + z * z)) * sy
    m12 = 2.0 * (y * z - w * x) * sz
    m20 = 2.0 * (x * z - w * y) * sx
    m21 = 2.0 * (y * z + w * x) * sy
    m22 = (1.0 - 2.0 * (x * x + y * y)) * sz
    return np.column_stack([
        m00 * m00 + m01 * m01 + m02 * m02, m00 * m10 + m01 * m11 + m02 * m12,
        m00 * m20 + m01 * m21 + m02 * m22, m10 * m10 + m11 * m11 + m12 * m12,
        m10 * m20 + m11 * m21 + m12 * m22, m20 * m20 + m21 * m21 + m22 * m22,
    ])  # fmt: skip


def reference_grid(means: np.ndarray, scales: np.ndarray, cells: int = cpu.CULL_GRID_CELLS):
    """The numpy culling grid (argsort, reduceat) that ``culling_grid``'s kernel replaced."""
    n = means.shape[0]
    centres = means.astype(np.float64)
    lo = centres.min(axis=0)
    size = float((centres.max(axis=0) - lo).max()) / cells
    if size > 0.0:
        ijk = np.minimum(((centres - lo) / size).astype(np.int64), cells - 1)
        key = (ijk[:, 0] * cells + ijk[:, 1]) * cells + ijk[:, 2]
    else:
        key = np.zeros(n, dtype=np.int64)
    members = np.argsort(key, kind="stable")
    sorted_key = key[members]
    first = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    starts = np.r_[first, n].astype(np.int64)
    pts = centres[members]
    mid = 0.5 * (np.minimum.reduceat(pts, first, axis=0) + np.maximum.reduceat(pts, first, axis=0))
    extent = BBOX_SIGMA_MAX * scales[members].astype(np.float64).max(axis=1)
    cell_of = np.repeat(np.arange(first.shape[0]), np.diff(starts))
    reach = np.linalg.norm(pts - mid[cell_of], axis=1) + extent
    margin = cpu.CULL_SPHERE_MARGIN
    radius = np.maximum.reduceat(reach, first) * (1.0 + margin) + margin
    return np.column_stack([mid, radius]), starts, members.astype(np.int64)


def reference_prepare(scene: GaussianScene) -> cpu.CpuScene:
    """Per-scene data the numpy way: reference covariances, ``eval_sh`` colours and grid."""
    base = np.empty((0, 3))
    if scene.sh_degree == 0:
        sh_rgb = eval_sh(scene.sh, np.zeros((len(scene), 3))).astype(np.float64)
        base = np.maximum(sh_rgb + SH_COLOUR_OFFSET, 0.0)
    spheres, starts, members = reference_grid(scene.means, scene.scales)
    # libm's log (math.log, as numba's np.log); numpy's own log differs in a few last bits
    cuts = np.array([math.log(float(o) / ALPHA_MIN) for o in scene.opacities])
    return cpu.CpuScene(covs=reference_covariances(scene.quats, scene.scales), base_colour=base,
                        cell_spheres=spheres, cell_starts=starts, cell_members=members,
                        sigma_cuts=cuts)


def reference_gather(drawn: np.ndarray, out: np.ndarray) -> int:
    """``np.flatnonzero`` in place of the word-skipping gather kernel."""
    rows = np.flatnonzero(drawn)
    out[: rows.shape[0]] = rows
    return int(rows.shape[0])


def render_all(scene, extra, viewmat, K, lod_px) -> np.ndarray:
    out = render(scene, viewmat, K, WIDTH_PX, HEIGHT_PX, background=(0.62, 0.74, 0.88),
                 extra=extra, lod_px=lod_px)
    return np.concatenate([out.rgb.ravel(), out.depth.ravel(), out.alpha.ravel()])


def assert_same_prepared(fast: cpu.CpuScene, slow: cpu.CpuScene) -> None:
    for name in ("covs", "base_colour", "cell_spheres", "cell_starts", "cell_members",
                 "sigma_cuts"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("camera", CAMERAS)
@pytest.mark.parametrize("lod_px", [0.0, 1.0])
def test_posed_crowd_renders_bit_identical_to_the_numpy_pipeline(street, camera, lod_px,
                                                                 monkeypatch) -> None:
    template = build_template()
    K = intrinsics_from_fov(WIDTH_PX, HEIGHT_PX, HFOV_DEG)
    viewmat = camera_from_pose(*camera)
    floor = street.info.floor_height_m
    frames = [pose_bodies(template, *crowd_state(seed), floor_height_m=floor) for seed in (1, 2)]
    fast = [render_all(street, crowd, viewmat, K, lod_px) for crowd in frames]
    with monkeypatch.context() as patch:
        patch.setattr(cpu, "_CACHE", SceneCache(reference_prepare))
        patch.setattr(cpu, "_LOD_CACHE", SceneCache(cpu._prepare_lod))
        patch.setattr(cpu, "_gather_drawn", reference_gather)
        slow = [render_all(street, crowd, viewmat, K, lod_px) for crowd in frames]
    for fast_image, slow_image in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(fast_image, slow_image)
    empty = render_all(street, None, viewmat, K, lod_px)
    assert np.count_nonzero(fast[0] != empty) > 0.05 * empty.size, "the crowd must be in view"


def test_pose_kernel_matches_the_numpy_posing() -> None:
    template = build_template()
    for seed, n in ((3, CROWD_SIZE), (4, 1), (5, 0)):
        positions, headings, phases, palettes = crowd_state(seed, n)
        fast = pose_bodies(template, positions, headings, phases, palettes, 0.25)
        slow = reference_pose(template, positions, headings, phases, palettes, 0.25)
        for name in ("means", "quats"):  # float64 maths rounded to float32: within one ulp
            np.testing.assert_array_max_ulp(getattr(fast, name), getattr(slow, name), maxulp=1)
        for name in ("scales", "opacities", "sh"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        assert fast.sh_degree == 0 and len(fast) == n * len(template.parts)


def test_per_scene_kernels_match_numpy_on_a_crowd_and_the_street(street) -> None:
    crowd = pose_bodies(build_template(), *crowd_state(6))
    for scene in (crowd, street):
        assert_same_prepared(cpu._prepare(scene), reference_prepare(scene))


@pytest.mark.parametrize("name", ["donut.ply", "fruit_drops_minimal.ply", "tiny16.ply"])
def test_per_scene_kernels_match_numpy_on_real_captures(fixtures_dir, name: str) -> None:
    scene = load_scene(fixtures_dir / "scenes" / name)
    fast, slow = cpu._prepare(scene), reference_prepare(scene)
    assert_same_prepared(fast, slow)
    assert fast.view_dependent == (scene.sh_degree > 0)


def test_one_gaussian_and_coincident_centres_get_one_cell() -> None:
    means = np.zeros((5, 3), dtype=np.float32)
    scales = np.full((5, 3), 0.1, dtype=np.float32)
    spheres, starts, members = cpu.culling_grid(means, scales)
    np.testing.assert_array_equal(starts, [0, 5])
    np.testing.assert_array_equal(members, np.arange(5))
    assert spheres[0, 3] >= BBOX_SIGMA_MAX * 0.1
    spheres, starts, members = cpu.culling_grid(means[:0], scales[:0])
    assert spheres.shape == (0, 4) and starts.tolist() == [0] and members.shape == (0,)


def test_gather_kernel_lists_the_drawn_rows_in_order() -> None:
    rng = np.random.default_rng(0)
    for n, density in ((8, 0.5), (4096, 0.01), (4096, 0.6), (24, 0.0), (16, 1.0)):
        drawn = (rng.random(n) < density).astype(np.uint8)
        out = np.full(n, -1, dtype=np.int64)
        count = cpu._gather_drawn(drawn, out)
        np.testing.assert_array_equal(out[:count], np.flatnonzero(drawn))
