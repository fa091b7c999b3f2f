"""Procedural street scenes: determinism, size, layout, and closed surfaces (no holes)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene import StreetConfig, generate_street_scene, load_scene, save_scene
from s2e_sim_bridge.scene.transform import quats_to_rotmats

SMALL = 20_000
COUNT_TOLERANCE = 0.05
# A camera only sees background through a surface where its accumulated alpha is below this.
MIN_SURFACE_ALPHA = 0.98
ALPHA_MAX = 0.999  # the renderer's per-Gaussian alpha cap


@pytest.fixture(scope="module")
def street() -> tuple:
    return generate_street_scene(7)


def _alpha_at(scene, points: np.ndarray) -> np.ndarray:
    """Accumulated alpha ``1 - prod(1 - a_i)`` of all Gaussians at 3D points (M, 3).

    Evaluated in 3D at points on a surface: a lower bound of what any camera sees there
    (a projected Gaussian's value at a pixel is the maximum of the 3D one along the ray).
    """
    lo, hi = points.min(axis=0) - 1.5, points.max(axis=0) + 1.5
    keep = np.all((scene.means >= lo) & (scene.means <= hi), axis=1)
    means, rot = scene.means[keep].astype(np.float64), quats_to_rotmats(scene.quats[keep])
    inv_var = 1.0 / scene.scales[keep].astype(np.float64) ** 2
    opac = scene.opacities[keep].astype(np.float64)
    d = points[:, None, :] - means[None]  # (M, G, 3)
    local = np.einsum("mgi,gij->mgj", d, rot)  # body-frame offsets
    q = np.sum(local**2 * inv_var[None], axis=-1)
    alpha = np.minimum(ALPHA_MAX, opac[None] * np.exp(-0.5 * q))
    return 1.0 - np.prod(1.0 - alpha, axis=1)


def test_default_street_size_layout_and_info(street: tuple) -> None:
    scene, info = street
    cfg = StreetConfig()
    assert abs(len(scene) - cfg.num_gaussians) <= COUNT_TOLERANCE * cfg.num_gaussians
    assert scene.info is info and scene.sh_degree == 0 and info.floor_height_m == 0.0
    (xmin, ymin), (xmax, ymax) = info.navigable_bounds_m
    assert (xmax - xmin, ymax - ymin) == (59.0, 19.0)
    assert np.isclose(scene.means[:, 2].min(), 0.0, atol=1e-6)  # road surface at z = 0
    assert np.all(np.abs(scene.means[:, :2]) <= [cfg.length_m / 2 + 1e-4, cfg.width_m / 2 + 1e-4])
    kinds = {o["kind"] for o in scene.meta["generator"]["objects"]}
    assert {"lamp_post", "tree", "bench"} <= kinds and kinds & {"box", "bin"}
    obstacles = [o for o in scene.meta["generator"]["objects"] if o["kind"] in ("box", "bin")]
    assert len(obstacles) == cfg.num_obstacles
    for i, a in enumerate(obstacles):
        assert xmin < a["xy"][0] < xmax and ymin < a["xy"][1] < ymax
        for b in obstacles[i + 1 :]:
            assert np.hypot(*np.subtract(a["xy"], b["xy"])) > a["radius_m"] + b["radius_m"]
    # Something stands in the robot's height band above the floor at every obstacle.
    for o in obstacles:
        near = np.hypot(*(scene.means[:, :2] - o["xy"]).T) < o["radius_m"]
        assert np.any(near & (scene.means[:, 2] > 0.3))


def test_surfaces_have_no_holes(street: tuple) -> None:
    scene, _ = street
    cfg = StreetConfig()
    rng = np.random.default_rng(0)
    n = 200
    road = np.column_stack([rng.uniform(-3, 3, n), rng.uniform(-3, 3, n), np.zeros(n)])
    walk_y = cfg.road_width_m / 2 + 2.0
    walk = np.column_stack(
        [rng.uniform(10, 16, n), rng.uniform(walk_y, walk_y + 3, n), np.full(n, cfg.kerb_height_m)]
    )
    facade = np.column_stack(
        [rng.uniform(-20, -14, n), np.full(n, -cfg.width_m / 2), rng.uniform(0.5, 5.5, n)]
    )
    kerb = np.column_stack(
        [rng.uniform(0, 6, n), np.full(n, cfg.road_width_m / 2), rng.uniform(0, 0.04, n)]
    )
    for name, points in {"road": road, "sidewalk": walk, "facade": facade, "kerb": kerb}.items():
        alpha = _alpha_at(scene, points)
        assert alpha.min() > MIN_SURFACE_ALPHA, (name, float(alpha.min()))


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    paths = []
    for run, seed in enumerate((3, 3, 4)):
        scene, _ = generate_street_scene(seed, num_gaussians=SMALL)
        out_dir = tmp_path / f"run{run}"
        out_dir.mkdir()
        paths.append(save_scene(scene, out_dir / "scene.ply"))
    (a_ply, a_yaml), (b_ply, b_yaml), (c_ply, c_yaml) = paths
    assert a_ply.read_bytes() == b_ply.read_bytes() and a_yaml.read_bytes() == b_yaml.read_bytes()
    assert a_ply.read_bytes() != c_ply.read_bytes() and a_yaml.read_bytes() != c_yaml.read_bytes()
    loaded = load_scene(a_ply)
    assert loaded.info is not None and loaded.info.name == "street_seed3"
    assert loaded.info.navigable_bounds_m == ((-29.5, -9.5), (29.5, 9.5))


@pytest.mark.parametrize("target", [SMALL, 1_000_000])
def test_count_follows_target_and_generation_is_fast(target: int) -> None:
    start = time.perf_counter()
    scene, _ = generate_street_scene(
        1, num_gaussians=target, length_m=40.0, width_m=14.0, sh_degree=1
    )
    elapsed = time.perf_counter() - start
    assert abs(len(scene) - target) <= COUNT_TOLERANCE * target
    assert scene.sh.shape == (len(scene), 4, 3) and not np.any(scene.sh[:, 1:])
    assert elapsed < 0.01 * target / 1000 + 2.0  # ~10 ms per 1k Gaussians, generous bound
    assert np.all(np.isfinite(scene.means)) and np.all(scene.scales > 0)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"length_m": 3.0}, "length_m"),
        ({"road_width_m": 19.0}, "road_width_m"),
        ({"num_gaussians": 10}, "num_gaussians"),
        ({"sh_degree": 4}, "sh_degree"),
        ({"building_height_m": (9.0, 4.0)}, "building_height_m"),
        ({"lane_count": 4}, "fields"),
    ],
)
def test_bad_config_names_the_field(override: dict, field: str) -> None:
    with pytest.raises(S2EError, match=f"StreetConfig.{field}|StreetConfig {field}"):
        generate_street_scene(0, **override)
