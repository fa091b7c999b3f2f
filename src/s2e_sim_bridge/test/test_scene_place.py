"""Placing captured objects (the donut fixture) into a scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene import (
    GaussianScene,
    SceneFormatError,
    box_object,
    generate_street_scene,
    merge_scenes,
    place_object,
    read_gaussians,
)
from s2e_sim_bridge.scene.placement import object_anchor
from s2e_sim_bridge.scene.transform import quats_to_rotmats


@pytest.fixture(scope="module")
def street() -> GaussianScene:
    scene, _ = generate_street_scene(0, num_gaussians=10_000, num_obstacles=0)
    return scene


def test_donut_placed_on_the_floor_at_position_and_yaw(
    street: GaussianScene, fixtures_dir: Path
) -> None:
    donut = read_gaussians(fixtures_dir / "scenes" / "donut.ply")
    out = place_object(street, donut, (5.0, -1.0, 0.0), yaw_rad=np.pi / 2, scale=4.0)
    assert len(out) == len(street) + len(donut)
    assert np.array_equal(out.means[: len(street)], street.means)
    placed = out.means[len(street) :].astype(np.float64)
    moved = GaussianScene(placed, donut.quats, donut.scales, donut.opacities, donut.sh)
    assert np.allclose(object_anchor(moved), [5.0, -1.0, 0.0], atol=1e-5)
    # Yaw by 90 degrees: the object's x extent becomes its y extent (times the scale).
    ext_in = np.ptp(donut.means.astype(np.float64), axis=0)
    ext_out = np.ptp(placed, axis=0)
    assert np.allclose(ext_out, 4.0 * ext_in[[1, 0, 2]], rtol=1e-4)
    assert np.allclose(out.scales[len(street) :], 4.0 * donut.scales, rtol=1e-6)
    assert out.info is street.info
    assert out.meta["placed_objects"][0]["count"] == len(donut)


def test_height_above_floor_and_world_z(street: GaussianScene, fixtures_dir: Path) -> None:
    donut = read_gaussians(fixtures_dir / "scenes" / "donut.ply")
    raised = place_object(street, donut, (0.0, 0.0, 0.5))
    assert np.isclose(raised.means[len(street) :, 2].min(), 0.5, atol=1e-6)
    bare = GaussianScene(street.means, street.quats, street.scales, street.opacities, street.sh)
    with pytest.raises(SceneFormatError, match="floor_height_m"):
        place_object(bare, donut, (0.0, 0.0, 0.0))
    world = place_object(bare, donut, (0.0, 0.0, 2.0), base_on_floor=False)
    assert np.isclose(world.means[len(bare) :, 2].min(), 2.0, atol=1e-6)


def test_sh_degrees_are_padded_when_merging(street: GaussianScene, fixtures_dir: Path) -> None:
    fruit = read_gaussians(fixtures_dir / "scenes" / "fruit_drops_minimal.ply")
    out = place_object(street, fruit, (1.0, 1.0, 0.0), yaw_rad=0.3)
    assert out.sh_degree == 3 and out.info is not None and out.info.sh_degree == 3
    assert np.array_equal(out.sh[: len(street), :1], street.sh)
    assert not np.any(out.sh[: len(street), 1:])
    twice = place_object(out, fruit, (2.0, 1.0, 0.0))
    assert len(twice.meta["placed_objects"]) == 2
    with pytest.raises(SceneFormatError, match="at least one"):
        merge_scenes([])


def test_box_object_is_a_closed_box_of_the_requested_size() -> None:
    box = box_object((2.0, -1.0), 0.1, (1.0, 0.5, 0.8), np.pi / 2, (0.6, 0.4, 0.2), 0.05, 0)
    assert box.sh_degree == 0 and box.info is None and box.meta["size"] == [1.0, 0.5, 0.8]
    lo, hi = box.means.min(axis=0), box.means.max(axis=0)
    # Yawed by 90 degrees: 'along' (1.0 m) lies on world y, 'across' (0.5 m) on world x.
    assert np.allclose(lo, [1.75, -1.5, 0.1], atol=0.03) and np.allclose(hi, [2.25, -0.5, 0.9])
    # Every face Gaussian is flat against its face: its thin axis is the face normal.
    rot = quats_to_rotmats(box.quats)
    thin = np.take_along_axis(rot, np.argmin(box.scales, axis=1)[:, None, None], axis=2)[..., 0]
    on_top = np.isclose(box.means[:, 2], 0.9, atol=1e-5)
    assert np.allclose(np.abs(thin[on_top, 2]), 1.0, atol=1e-6)
    assert np.allclose(thin[~on_top, 2], 0.0, atol=1e-6)
    with pytest.raises(S2EError, match="spacing_m"):
        box_object((0.0, 0.0), 0.0, (1.0, 1.0, 1.0), 0.0, (1.0, 1.0, 1.0), 0.0, 0)
