"""The cpu backend's cell culling: conservative (never changes a pixel) and effective."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from s2e_sim_bridge.render import camera_from_pose, cpu, intrinsics_from_fov, look_at, render
from s2e_sim_bridge.render.conventions import BBOX_SIGMA_MAX, DEFAULT_FAR_M, DEFAULT_NEAR_M
from s2e_sim_bridge.scene import GaussianScene, generate_street_scene
from s2e_sim_bridge.scene.sh import rgb_to_sh0

WIDTH_PX, HEIGHT_PX = 48, 36
# (x, y, z, yaw, pitch, roll): along the street, facing a facade up close, looking down at
# the kerb, tilted, and from outside the street looking in.
POSES = [
    (-12.0, 0.0, 0.65, 0.0, math.radians(5.0), 0.0),
    (0.0, 1.5, 0.65, math.pi / 2, 0.0, 0.0),
    (5.0, -5.5, 0.4, -math.pi / 2, math.radians(30.0), 0.0),
    (8.0, 2.0, 1.2, 2.5, math.radians(-20.0), math.radians(15.0)),
    (0.0, -20.0, 3.0, math.pi / 2, math.radians(10.0), 0.0),
]


@pytest.fixture(scope="module")
def street() -> GaussianScene:
    return generate_street_scene(7, length_m=30.0, width_m=14.0, num_gaussians=20_000)[0]


def render_without_culling(scene: GaussianScene, viewmat, K, monkeypatch) -> np.ndarray:
    """Render with a one-cell grid (the cell always reaches the image: nothing is culled)."""
    grid = cpu.culling_grid
    with monkeypatch.context() as patch:
        patch.setattr(cpu, "culling_grid", lambda means, scales: grid(means, scales, cells=1))
        copy = dataclasses.replace(scene)  # a new scene object: its own cache entry
        out = render(copy, viewmat, K, WIDTH_PX, HEIGHT_PX)
    return np.concatenate([out.rgb.ravel(), out.depth.ravel(), out.alpha.ravel()])


def kept_fraction(scene: GaussianScene, viewmat, K) -> float:
    prep = cpu.prepare_scene(scene)
    rows = np.empty(len(scene), dtype=np.int64)
    kept = cpu.cull_cells_kernel(prep.cell_spheres, prep.cell_starts, prep.cell_members,
                                 viewmat, K, WIDTH_PX, HEIGHT_PX, DEFAULT_NEAR_M, DEFAULT_FAR_M,
                                 rows)
    return kept / len(scene)


def test_grid_cells_bound_their_gaussians(street) -> None:
    spheres, starts, members = cpu.culling_grid(street.means, street.scales)
    assert np.array_equal(np.sort(members), np.arange(len(street)))
    assert starts[0] == 0 and starts[-1] == len(street) and np.all(np.diff(starts) > 0)
    cell = np.repeat(np.arange(len(spheres)), np.diff(starts))
    means = street.means.astype(np.float64)[members]
    reach = np.linalg.norm(means - spheres[cell, :3], axis=1) \
        + BBOX_SIGMA_MAX * street.scales.astype(np.float64)[members].max(axis=1)
    assert np.all(reach <= spheres[cell, 3])
    for c in range(len(spheres)):  # ascending within a cell
        assert np.all(np.diff(members[starts[c]:starts[c + 1]]) > 0)


@pytest.mark.parametrize("pose", POSES)
def test_culling_never_changes_the_street_image(street, pose, monkeypatch) -> None:
    viewmat = camera_from_pose(*pose)
    K = intrinsics_from_fov(WIDTH_PX, HEIGHT_PX, 90.0)
    out = render(street, viewmat, K, WIDTH_PX, HEIGHT_PX)
    culled = np.concatenate([out.rgb.ravel(), out.depth.ravel(), out.alpha.ravel()])
    np.testing.assert_array_equal(culled, render_without_culling(street, viewmat, K,
                                                                 monkeypatch))


def test_culling_removes_most_of_the_street_when_facing_a_facade(street) -> None:
    K = intrinsics_from_fov(WIDTH_PX, HEIGHT_PX, 90.0)
    assert kept_fraction(street, camera_from_pose(*POSES[1]), K) < 0.5


def test_large_gaussians_just_outside_the_view_are_kept(monkeypatch) -> None:
    """Big, elongated Gaussians whose centres lie outside the frustum still reach the image."""
    rng = np.random.default_rng(0)
    n = 3000
    # centres on a shell around the camera's view cone, up to 60 degrees off-axis
    theta = rng.uniform(0.0, math.radians(60.0), n)
    phi = rng.uniform(0.0, 2.0 * math.pi, n)
    dist = rng.uniform(0.3, 8.0, n)
    means = np.stack([dist * np.cos(theta), dist * np.sin(theta) * np.cos(phi),
                      dist * np.sin(theta) * np.sin(phi)], axis=1)
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scene = GaussianScene(
        means=means, quats=quats,
        scales=np.exp(rng.uniform(np.log(0.005), np.log(0.6), (n, 3))) * [1.0, 0.2, 0.05],
        opacities=rng.uniform(0.05, 1.0, n),
        sh=rgb_to_sh0(rng.uniform(0.0, 1.0, (n, 3)))[:, None, :],
    )
    viewmat = look_at(np.zeros(3), np.array([1.0, 0.0, 0.0]))
    K = intrinsics_from_fov(WIDTH_PX, HEIGHT_PX, 60.0)
    out = render(scene, viewmat, K, WIDTH_PX, HEIGHT_PX)
    culled = np.concatenate([out.rgb.ravel(), out.depth.ravel(), out.alpha.ravel()])
    np.testing.assert_array_equal(culled, render_without_culling(scene, viewmat, K, monkeypatch))
    assert out.alpha.mean() > 0.1  # the camera does see the Gaussians
