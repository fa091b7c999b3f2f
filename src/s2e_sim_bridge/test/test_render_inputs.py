"""Renderer inputs: clear errors for bad cameras and sizes, camera helpers, scene cache."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_sim_bridge.render import (
    RenderError,
    camera_centre,
    camera_from_pose,
    intrinsics_from_fov,
    look_at,
    render,
    render_batch,
    rgb_to_uint8,
)
from s2e_sim_bridge.render.cpu import prepare_scene
from s2e_sim_bridge.scene import GaussianScene
from s2e_sim_bridge.scene.sh import rgb_to_sh0


def one_gaussian(at=(2.0, 0.0, 0.0)) -> GaussianScene:
    return GaussianScene(
        means=[at],
        quats=[[1.0, 0.0, 0.0, 0.0]],
        scales=[[0.1, 0.1, 0.1]],
        opacities=[0.9],
        sh=rgb_to_sh0(np.array([[[0.2, 0.6, 0.9]]])),
    )


def project(viewmat: np.ndarray, K: np.ndarray, point) -> np.ndarray:
    p_cam = viewmat[:3, :3] @ np.asarray(point, dtype=np.float64) + viewmat[:3, 3]
    return (K @ (p_cam / p_cam[2]))[:2]


GOOD_K = intrinsics_from_fov(16, 12, 90.0)
GOOD_VIEW = camera_from_pose(0.0, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"viewmat": np.eye(3)}, "viewmat"),
        ({"viewmat": np.full((4, 4), np.nan)}, "viewmat"),
        ({"viewmat": np.diag([2.0, 1.0, 1.0, 1.0])}, "viewmat"),
        ({"K": np.array([[np.nan, 0, 8], [0, 10, 6], [0, 0, 1]])}, "K"),
        ({"K": np.eye(4)}, "K"),
        ({"K": np.array([[-5.0, 0, 8], [0, 5, 6], [0, 0, 1]])}, "K"),
        ({"width": 0}, "width"),
        ({"height": -3}, "height"),
        ({"width": 12.5}, "width"),
        ({"backend": "vulkan"}, "backend"),
        ({"background": (0.0, 1.0)}, "background"),
        ({"near": 0.0}, "near"),
        ({"near": 5.0, "far": 1.0}, "near"),
        ({"extra": [np.zeros(3)]}, "extra[0]"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs: dict, names: str) -> None:
    args = {"viewmat": GOOD_VIEW, "K": GOOD_K, "width": 16, "height": 12}
    args.update(kwargs)
    scene = one_gaussian()
    with pytest.raises(RenderError, match=names.replace("[", r"\[")) as info:
        render(scene, **args)
    assert isinstance(info.value, S2EError)


@pytest.mark.parametrize(
    ("viewmat", "message"),
    [
        (np.diag([1.0, 1.0, 1.0, 2.0]), "last row must be"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "not a proper rotation"),  # a reflection
        (np.diag([1.0, 1.0, 1.0 + 2e-3, 1.0]), "not a proper rotation"),
        (np.where(np.eye(4) > 0, np.inf, 0.0), "NaN or infinite"),
    ],
)
def test_bad_view_matrices_say_what_is_wrong(viewmat: np.ndarray, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render(one_gaussian(), viewmat, GOOD_K, 16, 12)


@pytest.mark.parametrize(
    ("K", "message"),
    [
        (np.array([[10.0, 0.5, 8.0], [0.0, 10.0, 6.0], [0.0, 0.0, 1.0]]), "must be"),
        (np.array([[10.0, 0.0, 8.0], [0.0, 10.0, 6.0], [0.0, 1e-3, 1.0]]), "must be"),
        (np.array([[10.0, 0.0, 8.0], [0.0, 0.0, 6.0], [0.0, 0.0, 1.0]]), "focal lengths"),
    ],
)
def test_bad_intrinsics_say_what_is_wrong(K: np.ndarray, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render(one_gaussian(), GOOD_VIEW, K, 16, 12)


def test_cameras_within_the_tolerances_are_accepted() -> None:
    view = GOOD_VIEW.copy()
    view[3, 3] += 5e-9  # numpy.allclose's default tolerances for the fixed rows
    view[:3, :3] *= 1.0 + 1e-4  # |R R^T - I| = 2e-4 <= ORTHONORMAL_TOL
    K = GOOD_K.copy()
    K[2, 2] += 5e-9
    exact = render(one_gaussian(), GOOD_VIEW, GOOD_K, 16, 12)
    assert render(one_gaussian(), view, K, 16, 12).alpha.max() == pytest.approx(
        exact.alpha.max(), abs=1e-3)


def test_batch_shape_errors_name_the_argument() -> None:
    scene = one_gaussian()
    with pytest.raises(RenderError, match="viewmats"):
        render_batch(scene, np.eye(4), GOOD_K[None], 16, 12)
    with pytest.raises(RenderError, match="Ks"):
        render_batch(scene, GOOD_VIEW[None].repeat(2, 0), GOOD_K[None], 16, 12)
    with pytest.raises(RenderError, match=r"viewmats\[1\]"):
        render_batch(scene, np.stack([GOOD_VIEW, np.zeros((4, 4))]), np.stack([GOOD_K] * 2), 16, 12)


@pytest.mark.skipif(importlib.util.find_spec("gsplat") is not None, reason="gsplat installed")
def test_cuda_backend_without_gsplat_says_what_is_missing() -> None:
    with pytest.raises(RenderError, match="cuda"):
        render(one_gaussian(), GOOD_VIEW, GOOD_K, 16, 12, backend="cuda")


def test_camera_from_pose_axes_in_the_z_up_world() -> None:
    K = intrinsics_from_fov(64, 48, 90.0)
    centre = np.array([64 / 2, 48 / 2])
    view = camera_from_pose(1.0, 2.0, 0.5, 0.0, 0.0)
    np.testing.assert_allclose(camera_centre(view), [1.0, 2.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(project(view, K, (5.0, 2.0, 0.5)), centre, atol=1e-9)  # ahead
    left = project(view, K, (5.0, 3.0, 0.5))  # +y is the robot's left: image left
    above = project(view, K, (5.0, 2.0, 1.5))  # +z is up: image top (smaller v)
    assert left[0] < centre[0] and np.isclose(left[1], centre[1])
    assert above[1] < centre[1] and np.isclose(above[0], centre[0])
    # yaw 90 deg looks along +y; pitch 30 deg down sees a point 30 deg below the horizon
    yawed = camera_from_pose(0.0, 0.0, 0.0, math.pi / 2, 0.0)
    np.testing.assert_allclose(project(yawed, K, (0.0, 3.0, 0.0)), centre, atol=1e-9)
    pitched = camera_from_pose(0.0, 0.0, 1.0, 0.0, math.radians(30.0))
    below = (math.cos(math.radians(30.0)), 0.0, 1.0 - math.sin(math.radians(30.0)))
    np.testing.assert_allclose(project(pitched, K, below), centre, atol=1e-9)


def test_look_at_agrees_with_camera_from_pose() -> None:
    yaw, pitch = math.radians(35.0), math.radians(20.0)
    eye = np.array([1.0, -2.0, 1.5])
    forward = np.array(
        [math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)]
    )
    np.testing.assert_allclose(
        look_at(eye, eye + 3.0 * forward), camera_from_pose(*eye, yaw, pitch), atol=1e-12
    )
    with pytest.raises(RenderError, match="parallel"):
        look_at((0.0, 0.0, 0.0), (0.0, 0.0, -1.0))
    with pytest.raises(RenderError, match="coincides"):
        look_at((1.0, 1.0, 1.0), (1.0, 1.0, 1.0))


def test_intrinsics_from_fov_puts_the_fov_edge_on_the_image_edge() -> None:
    K = intrinsics_from_fov(80, 60, 60.0)
    edge = project(np.eye(4), K, (math.tan(math.radians(30.0)), 0.0, 1.0))
    np.testing.assert_allclose(edge, [80.0, 30.0], atol=1e-9)
    assert K[0, 0] == K[1, 1]
    for bad in (0.0, 180.0, float("nan")):
        with pytest.raises(RenderError, match="hfov_deg"):
            intrinsics_from_fov(80, 60, bad)


def test_per_scene_precomputation_is_cached_and_follows_replaced_arrays() -> None:
    scene = one_gaussian()
    scene.scales = np.full((1, 3), 0.5, dtype=np.float32)  # ~2 px footprint
    first = prepare_scene(scene)
    assert prepare_scene(scene) is first
    view = look_at((0.0, 0.0, 0.0), (2.0, 0.0, 0.0))
    before = render(scene, view, GOOD_K, 16, 12)
    scene.scales = scene.scales * 0.5  # a replaced array: covariances are recomputed
    assert prepare_scene(scene) is not first
    after = render(scene, view, GOOD_K, 16, 12)
    assert after.alpha.sum() < 0.5 * before.alpha.sum()


def test_rgb_to_uint8_rounds_float32_like_numpy() -> None:
    """The compiled float32 path is ``round(clip(rgb, 0, 1) * 255)`` in float32, bit for bit.

    Values within 2000 float32 steps of every ``(k + 0.5) / 255`` are where rounding the
    float32 product (rather than the exact one) or rounding halves up would show.
    """
    def numpy_way(rgb: np.ndarray) -> np.ndarray:
        return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)

    halves = ((np.arange(255) + 0.5) / 255).astype(np.float32).view(np.int32)
    near_halves = np.concatenate([halves + d for d in range(-2000, 2001)]).view(np.float32)
    rng = np.random.default_rng(0)
    spread = rng.uniform(-0.2, 1.2, near_halves.shape[0]).astype(np.float32)
    for values in (near_halves, spread):
        image = values[: values.shape[0] // 300 * 300].reshape(-1, 100, 3)
        np.testing.assert_array_equal(rgb_to_uint8(image), numpy_way(image))
        strided = image[:, ::2]  # not contiguous
        np.testing.assert_array_equal(rgb_to_uint8(strided), numpy_way(strided))
    as_float64 = spread[:300].reshape(10, 10, 3).astype(np.float64)
    np.testing.assert_array_equal(rgb_to_uint8(as_float64), numpy_way(as_float64))
