"""Scene YAML alignment, transform_scene and the SH basis / rotation it relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2e_sim_bridge.scene import (
    GaussianScene,
    SceneFormatError,
    eval_sh,
    load_scene,
    load_scene_yaml,
    read_gaussians,
    rotate_sh,
    save_ply,
    save_scene,
    transform_scene,
)
from s2e_sim_bridge.scene.scene_yaml import UP_AXIS_ROTATIONS
from s2e_sim_bridge.scene.sh import SH_C0, SH_C1, SH_C2, SH_C3, sh_basis, sh_rotation_matrices
from s2e_sim_bridge.scene.transform import quats_to_rotmats, rotmats_to_quats


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    return quats_to_rotmats(q)


def _write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------- SH
def test_sh_basis_matches_inria_formulas() -> None:
    d = np.array([[0.36, -0.48, 0.8]])
    x, y, z = d[0]
    basis = sh_basis(d)[0]
    assert basis[0] == SH_C0
    assert np.allclose(basis[1:4], [-SH_C1 * y, SH_C1 * z, -SH_C1 * x])
    assert np.isclose(basis[6], SH_C2[2] * (2 * z * z - x * x - y * y))
    assert np.isclose(basis[15], SH_C3[6] * x * (x * x - 3 * y * y))
    # Real SH are orthonormal on the sphere. Gauss-Legendre in cos(theta) x uniform phi is
    # an exact quadrature for these degree-6 products.
    cos_t, w_t = np.polynomial.legendre.leggauss(8)
    phi = np.arange(16) * 2 * np.pi / 16
    c, p = np.meshgrid(cos_t, phi, indexing="ij")
    s_t = np.sqrt(1 - c**2)
    dirs = np.stack([s_t * np.cos(p), s_t * np.sin(p), c], axis=-1).reshape(-1, 3)
    weights = np.repeat(w_t, len(phi)) * (2 * np.pi / len(phi))
    b = sh_basis(dirs)
    assert np.allclose(b.T @ (weights[:, None] * b), np.eye(16), atol=1e-12)


def test_eval_sh_degree_zero_is_dc_and_normalises_dirs() -> None:
    sh = np.zeros((2, 4, 3), np.float32)
    sh[:, 0] = 1.0
    sh[:, 2] = 0.5  # the z-linear coefficient
    out = eval_sh(sh, np.array([[0.0, 0.0, 5.0], [0.0, 0.0, -2.0]]))
    assert np.allclose(out[0], SH_C0 + 0.5 * SH_C1)
    assert np.allclose(out[1], SH_C0 - 0.5 * SH_C1)
    assert np.allclose(eval_sh(sh, np.zeros((2, 3)), degree=0), SH_C0)


def test_sh_rotation_is_exact_orthogonal_and_composes() -> None:
    rng = np.random.default_rng(1)
    r1, r2 = _random_rotations(rng, 2)
    m1, m2, m12 = (sh_rotation_matrices(r) for r in (r1, r2, r1 @ r2))
    for band in range(4):
        assert np.allclose(m1[band] @ m1[band].T, np.eye(2 * band + 1), atol=1e-10)
        assert np.allclose(m1[band] @ m2[band], m12[band], atol=1e-10)
    assert np.allclose(m1[1], sh_rotation_matrices(r1, 1)[1])


def test_rotating_coefficients_and_view_direction_together_keeps_colour() -> None:
    rng = np.random.default_rng(2)
    sh = rng.normal(size=(300, 16, 3)).astype(np.float32)
    dirs = rng.normal(size=(300, 3))
    for R in _random_rotations(rng, 4):
        rotated = rotate_sh(sh, R)
        assert np.array_equal(rotated[:, 0], sh[:, 0])
        assert np.allclose(eval_sh(rotated, dirs @ R.T), eval_sh(sh, dirs), atol=2e-5)


def test_quaternion_matrix_round_trip_including_half_turns() -> None:
    rng = np.random.default_rng(3)
    mats = np.concatenate([_random_rotations(rng, 50), np.stack(list(UP_AXIS_ROTATIONS.values()))])
    mats = np.concatenate([mats, [np.diag([-1.0, -1.0, 1.0]), np.diag([-1.0, 1.0, -1.0])]])
    q = rotmats_to_quats(mats)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0) and np.all(q[:, 0] >= 0)
    assert np.allclose(quats_to_rotmats(q), mats, atol=1e-12)


# ------------------------------------------------------------------------ transforms
def test_transform_scene_maps_all_attributes(fixtures_dir: Path) -> None:
    scene = read_gaussians(fixtures_dir / "scenes" / "fruit_drops_minimal.ply")
    rng = np.random.default_rng(4)
    R, t, s = _random_rotations(rng, 1)[0], np.array([1.0, -2.0, 0.5]), 2.5
    out = transform_scene(scene, R, t, s)
    assert np.allclose(out.means, s * scene.means @ R.T + t, atol=1e-5)
    assert np.allclose(quats_to_rotmats(out.quats), R @ quats_to_rotmats(scene.quats), atol=1e-5)
    assert np.allclose(out.scales, s * scene.scales, rtol=1e-6)
    assert np.array_equal(out.opacities, scene.opacities)
    # View-dependent colour follows the scene: same colour seen along the rotated direction.
    dirs = rng.normal(size=(len(scene), 3))
    assert np.allclose(eval_sh(out.sh, dirs @ R.T), eval_sh(scene.sh, dirs), atol=1e-4)
    # Two transforms compose like the similarity transforms they are.
    R2, t2 = _random_rotations(rng, 1)[0], np.array([0.0, 3.0, 1.0])
    twice = transform_scene(out, R2, t2, 0.5)
    once = transform_scene(scene, R2 @ R, 0.5 * R2 @ t + t2, s * 0.5)
    assert np.allclose(twice.means, once.means, atol=1e-5)
    assert np.allclose(twice.sh, once.sh, atol=1e-4)
    assert np.allclose(np.abs(np.sum(twice.quats * once.quats, axis=1)), 1.0, atol=1e-5)


def test_transform_scene_rejects_bad_arguments() -> None:
    scene = GaussianScene(
        np.zeros((1, 3)), [[1, 0, 0, 0]], np.ones((1, 3)), [1.0], np.zeros((1, 1, 3))
    )
    with pytest.raises(SceneFormatError, match="not a proper rotation"):
        transform_scene(scene, np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(SceneFormatError, match="scale"):
        transform_scene(scene, scale=0.0)
    with pytest.raises(SceneFormatError, match="translation"):
        transform_scene(scene, translation=[1.0, 2.0])


# ---------------------------------------------------------------------------- YAML
@pytest.mark.parametrize("axis", sorted(UP_AXIS_ROTATIONS))
def test_up_axis_rotates_that_axis_to_world_z(tmp_path: Path, axis: str) -> None:
    config = load_scene_yaml(_write_yaml(tmp_path / "s.yaml", f"up_axis: '{axis}'\n"))
    vec = np.zeros(3)
    vec["xyz".index(axis[1])] = 1.0 if axis[0] == "+" else -1.0
    R = config.alignment.rotation
    assert np.allclose(R @ vec, [0, 0, 1]) and np.isclose(np.linalg.det(R), 1.0)


def test_rotation_as_matrix_or_quaternion(tmp_path: Path) -> None:
    half = np.sqrt(0.5)
    quat = load_scene_yaml(_write_yaml(tmp_path / "q.yaml", f"rotation: [{half}, 0, 0, {half}]"))
    mat = load_scene_yaml(_write_yaml(tmp_path / "m.yaml", "rotation: [[0,-1,0],[1,0,0],[0,0,1]]"))
    assert np.allclose(quat.alignment.rotation, mat.alignment.rotation)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("floor_hieght: 0.0\n", "did you mean 'floor_height'"),
        ("up_axis: +y\nrotation: [1, 0, 0, 0]\n", "not both"),
        ("up_axis: up\n", "'up_axis' must be one of"),
        ("scale: big\n", "'scale' must be a finite number"),
        ("scale: -2\n", "'scale' must be > 0"),
        ("scale: true\n", "'scale' must be a finite number"),
        ("translation: [1, 2]\n", "'translation' must be a 3 list"),
        ("navigable_bounds: [[5, 0], [1, 4]]\n", "xmin < xmax"),
        ("navigable_bounds: [1, 2, 3, 4]\n", "'navigable_bounds' must be a 2 x 2"),
        ("rotation: [[1, 0, 0], [0, 2, 0], [0, 0, 1]]\n", "not a proper rotation"),
        ("rotation: [0, 0, 0, 0]\n", "zero quaternion"),
        ("rotation: [1, 2]\n", "3 x 3 matrix or a [w, x, y, z]"),
        ("name: [a]\n", "'name' must be a string"),
        ("- just\n- a list\n", "must be a mapping"),
        ("scale: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_yaml_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = _write_yaml(tmp_path / "bad.yaml", text)
    with pytest.raises(SceneFormatError) as info:
        load_scene_yaml(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_load_scene_applies_explicit_yaml(fixtures_dir: Path, tmp_path: Path) -> None:
    ply = fixtures_dir / "scenes" / "fruit_drops_minimal.ply"
    yaml_path = _write_yaml(
        tmp_path / "fruit.yaml",
        "name: fruit\ndescription: test capture\nup_axis: -y\nscale: 4.0\n"
        "translation: [0.0, 0.0, 9.0]\nfloor_height: 0.25\n"
        "navigable_bounds: [[-1.0, -2.0], [3.0, 4.0]]\n",
    )
    raw = read_gaussians(ply)
    scene = load_scene(ply, yaml_path)
    R = UP_AXIS_ROTATIONS["-y"]
    assert np.allclose(scene.means, 4.0 * raw.means @ R.T + [0, 0, 9], atol=1e-5)
    assert np.allclose(scene.scales, 4.0 * raw.scales, rtol=1e-6)
    dirs = np.random.default_rng(5).normal(size=(len(raw), 3))
    assert np.allclose(eval_sh(scene.sh, dirs @ R.T), eval_sh(raw.sh, dirs), atol=1e-4)
    info = scene.info
    assert info is not None and info.name == "fruit" and info.description == "test capture"
    assert info.floor_height_m == 0.25 and info.navigable_bounds_m == ((-1.0, -2.0), (3.0, 4.0))
    assert info.sh_degree == 3 and info.yaml_path == yaml_path and info.source_path == ply
    assert info.alignment.scale == 4.0 and scene.meta["alignment"]["scale"] == 4.0


def test_sibling_yaml_is_found_and_defaults_without_one(fixtures_dir: Path, tmp_path: Path) -> None:
    raw = read_gaussians(fixtures_dir / "scenes" / "tiny16.ply")
    ply = save_ply(raw, tmp_path / "tiny.ply")
    plain = load_scene(ply)
    assert plain.info is not None and plain.info.yaml_path is None
    assert plain.info.floor_height_m == float(raw.means[:, 2].min())
    assert plain.info.alignment.is_identity
    assert plain.ply_encoding is not None  # identity alignment keeps the bit-exact encoding
    _write_yaml(tmp_path / "tiny.yaml", "up_axis: +x\n")
    aligned = load_scene(ply)
    assert aligned.info is not None and aligned.info.yaml_path == tmp_path / "tiny.yaml"
    assert np.allclose(aligned.means, raw.means @ UP_AXIS_ROTATIONS["+x"].T, atol=1e-6)
    with pytest.raises(SceneFormatError, match="cannot read scene YAML"):
        load_scene(ply, tmp_path / "missing.yaml")


def test_save_scene_writes_yaml_that_loads_back(fixtures_dir: Path, tmp_path: Path) -> None:
    ply = fixtures_dir / "scenes" / "tiny16.ply"
    yaml_path = _write_yaml(
        tmp_path / "in.yaml",
        "up_axis: -z\nfloor_height: -1.0\nnavigable_bounds: [[0, 0], [1, 1]]\n",
    )
    aligned = load_scene(ply, yaml_path)
    out_ply, out_yaml = save_scene(aligned, tmp_path / "world.ply")
    assert out_yaml == tmp_path / "world.yaml"
    again = load_scene(out_ply)
    assert np.array_equal(again.means, aligned.means) and np.array_equal(again.sh, aligned.sh)
    assert again.info is not None and again.info.alignment.is_identity
    assert again.info.floor_height_m == -1.0
    assert again.info.navigable_bounds_m == ((0.0, 0.0), (1.0, 1.0))
