"""Reading and writing 3DGS scenes: INRIA PLY (binary, ASCII), antimatter15 .splat."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from s2e_sim_bridge.scene import (
    GaussianScene,
    read_gaussians,
    read_ply,
    save_ply,
)
from s2e_sim_bridge.scene.sh import SH_C0, sh0_to_rgb

FIXTURE_PLYS = ("donut.ply", "fruit_drops_minimal.ply", "tiny16.ply")
UINT8_STEP = 1.0 / 255.0


def _scenes(fixtures_dir: Path) -> Path:
    return fixtures_dir / "scenes"


def _write_ply(path: Path, props: list[tuple[str, str]], rows: np.ndarray, fmt: str) -> None:
    """Write a PLY by hand (independent of save_ply) with the given property order/types."""
    header = ["ply", f"format {fmt} 1.0", f"element vertex {len(rows)}"]
    header += [f"property {kind} {name}" for name, kind in props] + ["end_header"]
    text = "\n".join(header) + "\n"
    if fmt == "ascii":
        body = "\n".join(" ".join(repr(float(v)) for v in row) for row in rows) + "\n"
        path.write_bytes(text.encode() + body.encode())
        return
    order = "<" if fmt == "binary_little_endian" else ">"
    codes = {"float": "f4", "double": "f8", "uchar": "u1"}
    dtype = np.dtype([(name, order + codes[kind]) for name, kind in props])
    table = np.zeros(len(rows), dtype=dtype)
    for i, (name, _) in enumerate(props):
        table[name] = rows[:, i]
    path.write_bytes(text.encode() + table.tobytes())


def _shuffled_props(rng: np.random.Generator) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Degree-1 Gaussians with properties in a random order, doubles and an extra uchar."""
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(9))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    names += ["label"]
    order = rng.permutation(len(names))
    props = [(names[i], "double" if i % 3 == 0 else "float") for i in order]
    props = [(n, "uchar" if n == "label" else k) for n, k in props]
    values = rng.normal(size=(5, len(names))).astype(np.float32)
    values[:, names.index("label")] = 7
    return props, values[:, order]


def test_fixture_plys_load_with_expected_shapes(fixtures_dir: Path) -> None:
    donut = read_ply(_scenes(fixtures_dir) / "donut.ply")
    assert len(donut) == 45_624 and donut.sh_degree == 0 and donut.sh.shape == (45_624, 1, 3)
    fruit = read_ply(_scenes(fixtures_dir) / "fruit_drops_minimal.ply")  # has 'transform'
    assert len(fruit) == 4_721 and fruit.sh_degree == 3 and fruit.sh.shape == (4_721, 16, 3)
    for scene in (donut, fruit):
        assert np.allclose(np.linalg.norm(scene.quats, axis=1), 1.0, atol=1e-6)
        assert np.all((scene.opacities >= 0) & (scene.opacities <= 1))
        assert np.all(scene.scales > 0) and np.all(np.isfinite(scene.sh))
    extent = donut.means.max(axis=0) - donut.means.min(axis=0)
    assert np.allclose(extent, [0.21, 0.21, 0.10], atol=0.02)


def test_tiny16_saturated_logits_give_exact_ones_without_warnings(fixtures_dir: Path) -> None:
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        tiny = read_ply(_scenes(fixtures_dir) / "tiny16.ply")
    assert len(tiny) == 16 and tiny.sh_degree == 3
    assert tiny.ply_encoding is not None
    assert np.all(tiny.ply_encoding.opacity_logits == 100.0)
    assert np.all(tiny.opacities == 1.0)


def test_properties_in_any_order_channel_major_f_rest(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    props, rows = _shuffled_props(rng)
    names = [n for n, _ in props]
    col = {n: rows[:, i].astype(np.float64) for i, n in enumerate(names)}
    path = tmp_path / "shuffled.ply"
    _write_ply(path, props, rows, "binary_little_endian")
    scene = read_ply(path)
    assert scene.sh_degree == 1
    for c in range(3):
        assert np.allclose(scene.sh[:, 0, c], col[f"f_dc_{c}"])
        for j in range(3):  # f_rest[c * (K - 1) + j] is coefficient j + 1 of channel c
            assert np.allclose(scene.sh[:, 1 + j, c], col[f"f_rest_{c * 3 + j}"])
    assert np.allclose(scene.means, np.stack([col["x"], col["y"], col["z"]], 1))
    assert np.allclose(scene.scales, np.exp(np.stack([col[f"scale_{i}"] for i in range(3)], 1)))
    assert np.allclose(scene.opacities, 1 / (1 + np.exp(-col["opacity"])), atol=1e-7)
    quat = np.stack([col[f"rot_{i}"] for i in range(4)], 1)
    assert np.allclose(scene.quats, quat / np.linalg.norm(quat, axis=1, keepdims=True))


@pytest.mark.parametrize("fmt", ["ascii", "binary_big_endian"])
def test_ascii_and_big_endian_match_little_endian(tmp_path: Path, fmt: str) -> None:
    props, rows = _shuffled_props(np.random.default_rng(1))
    _write_ply(tmp_path / "le.ply", props, rows, "binary_little_endian")
    _write_ply(tmp_path / "other.ply", props, rows, fmt)
    a, b = read_ply(tmp_path / "le.ply"), read_ply(tmp_path / "other.ply")
    for name in ("means", "quats", "scales", "opacities", "sh"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_donut_ply_and_splat_agree_within_uint8_quantisation(fixtures_dir: Path) -> None:
    ply = read_gaussians(_scenes(fixtures_dir) / "donut.ply")
    splat = read_gaussians(_scenes(fixtures_dir) / "donut.splat")
    assert len(ply) == len(splat) and splat.sh_degree == 0
    assert splat.meta["format"] == "splat"
    # The .splat is sorted by importance; match Gaussians by sorting both by position.
    ia = np.lexsort(ply.means.T[::-1])
    ib = np.lexsort(splat.means.T[::-1])
    assert np.array_equal(ply.means[ia], splat.means[ib])
    rgb_ply = np.clip(0.5 + SH_C0 * ply.sh[ia, 0].astype(np.float64), 0, 1)
    rgb_splat = sh0_to_rgb(splat.sh[ib, 0])
    assert np.max(np.abs(rgb_ply - rgb_splat)) <= UINT8_STEP + 1e-6
    assert np.max(np.abs(ply.opacities[ia] - splat.opacities[ib])) <= UINT8_STEP + 1e-6
    assert np.allclose(ply.scales[ia], splat.scales[ib], rtol=1e-6)
    # uint8 quaternions: ~1/128 per component; compare orientations up to sign.
    dots = np.abs(np.sum(ply.quats[ia] * splat.quats[ib], axis=1))
    assert np.min(dots) > 0.97 and np.median(dots) > 0.999


@pytest.mark.parametrize("name", FIXTURE_PLYS)
def test_load_save_load_is_bit_exact(fixtures_dir: Path, tmp_path: Path, name: str) -> None:
    first = read_ply(_scenes(fixtures_dir) / name)
    second = read_ply(save_ply(first, tmp_path / name))
    for field in ("means", "quats", "scales", "opacities", "sh"):
        assert np.array_equal(getattr(first, field), getattr(second, field)), field
    # The raw stored values are written back unchanged (log scales, logits, raw quaternions).
    enc1, enc2 = first.ply_encoding, second.ply_encoding
    assert enc1 is not None and enc2 is not None
    assert np.array_equal(enc1.log_scales, enc2.log_scales)
    assert np.array_equal(enc1.opacity_logits, enc2.opacity_logits)
    assert np.array_equal(enc1.raw_quats, enc2.raw_quats)


def test_edited_values_are_re_encoded(fixtures_dir: Path, tmp_path: Path) -> None:
    scene = read_ply(_scenes(fixtures_dir) / "fruit_drops_minimal.ply")
    scene.opacities[:10] = 0.5
    scene.scales[10:20] *= 2.0
    back = read_ply(save_ply(scene, tmp_path / "edited.ply"))
    assert np.array_equal(back.opacities[10:], scene.opacities[10:])
    assert np.allclose(back.opacities[:10], 0.5, atol=1e-7)
    assert np.allclose(back.scales[10:20], scene.scales[10:20], rtol=1e-6)
    assert np.array_equal(back.scales[20:], scene.scales[20:])


def test_scene_without_encoding_round_trips_to_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 500
    opac = rng.uniform(0, 1, n).astype(np.float32)
    opac[:3] = [0.0, 1.0, 0.5]
    scene = GaussianScene(
        means=rng.normal(size=(n, 3)),
        quats=rng.normal(size=(n, 4)),  # not unit: the writer normalises
        scales=rng.uniform(1e-4, 2.0, (n, 3)),
        opacities=opac,
        sh=rng.normal(size=(n, 9, 3)),
    )
    back = read_ply(save_ply(scene, tmp_path / "synthetic.ply"))
    assert np.array_equal(back.means, scene.means) and np.array_equal(back.sh, scene.sh)
    assert back.opacities[0] == 0.0 and back.opacities[1] == 1.0
    assert np.allclose(back.opacities, scene.opacities, rtol=1e-6, atol=1e-7)
    assert np.allclose(back.scales, scene.scales, rtol=1e-6)
    unit = scene.quats / np.linalg.norm(scene.quats, axis=1, keepdims=True)
    assert np.allclose(back.quats, unit, atol=1e-6)
    header = (tmp_path / "synthetic.ply").read_bytes()[:2000].decode("ascii", "replace")
    assert "property float nx" in header and "property float f_rest_23" in header
