"""Bad scene files give SceneFormatError naming the file and problem; fuzzed files too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene import GaussianScene, SceneFormatError, read_gaussians

INRIA_PROPS = [
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2",
    "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
]  # fmt: skip
FUZZ_CASES = 150


def _ply(
    path: Path,
    rows: np.ndarray,
    props: list[str] = INRIA_PROPS,
    count: int | None = None,
    fmt: str = "binary_little_endian",
    kind: str = "float",
) -> Path:
    header = ["ply", f"format {fmt} 1.0", f"element vertex {len(rows) if count is None else count}"]
    header += [f"property {kind} {p}" for p in props] + ["end_header"]
    path.write_bytes(("\n".join(header) + "\n").encode() + rows.astype("<f4").tobytes())
    return path


def _rows(n: int = 4) -> np.ndarray:
    rows = np.zeros((n, len(INRIA_PROPS)), np.float32)
    rows[:, INRIA_PROPS.index("rot_0")] = 1.0
    return rows


def _error(path: Path) -> str:
    with pytest.raises(SceneFormatError) as info:
        read_gaussians(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, S2EError)
    return str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read" in _error(tmp_path / "nope.ply")


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad.ply"
    path.write_bytes(b"PLY?\nformat binary_little_endian 1.0\n")
    assert "does not start with 'ply'" in _error(path)


def test_unknown_suffix_without_ply_magic(tmp_path: Path) -> None:
    path = tmp_path / "scene.bin"
    path.write_bytes(b"\x00" * 64)
    assert "unknown scene format" in _error(path)


def test_truncated_body(tmp_path: Path) -> None:
    msg = _error(_ply(tmp_path / "t.ply", _rows(4), count=5))
    assert "truncated" in msg and "5 vertices" in msg


def test_no_end_header(tmp_path: Path) -> None:
    path = tmp_path / "h.ply"
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n")
    assert "end_header" in _error(path)


@pytest.mark.parametrize(
    ("fmt", "kind", "expected"),
    [
        ("binary_middle_endian", "float", "unsupported format"),
        ("binary_little_endian", "half", "unsupported property type"),
        ("binary_little_endian", "uchar", "expected float or double"),
    ],
)
def test_unsupported_format_and_types(tmp_path: Path, fmt: str, kind: str, expected: str) -> None:
    rows = _rows().astype(np.uint8) if kind == "uchar" else _rows()
    path = tmp_path / "u.ply"
    header = ["ply", f"format {fmt} 1.0", "element vertex 4"]
    header += [f"property {kind} {p}" for p in INRIA_PROPS] + ["end_header"]
    path.write_bytes(("\n".join(header) + "\n").encode() + rows.tobytes())
    assert expected in _error(path)


def test_list_property_in_vertex(tmp_path: Path) -> None:
    path = tmp_path / "l.ply"
    path.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
        b"property list uchar int vertex_indices\nend_header\n\x00"
    )
    assert "list properties" in _error(path)


def test_missing_required_properties(tmp_path: Path) -> None:
    props = [p for p in INRIA_PROPS if p not in ("opacity", "rot_3")]
    msg = _error(_ply(tmp_path / "m.ply", _rows()[:, : len(props)], props))
    assert "'opacity'" in msg and "'rot_3'" in msg


def test_bad_f_rest_count(tmp_path: Path) -> None:
    props = [*INRIA_PROPS, *(f"f_rest_{i}" for i in range(5))]
    rows = np.concatenate([_rows(), np.zeros((4, 5), np.float32)], axis=1)
    assert "5 f_rest properties" in _error(_ply(tmp_path / "r.ply", rows, props))


def test_nan_and_inf_values_are_counted_by_property(tmp_path: Path) -> None:
    rows = _rows(6)
    rows[:3, INRIA_PROPS.index("x")] = np.nan
    rows[1, INRIA_PROPS.index("opacity")] = np.inf
    msg = _error(_ply(tmp_path / "n.ply", rows))
    assert "4 NaN/inf" in msg and "3 in 'x'" in msg and "1 in 'opacity'" in msg


def test_zero_norm_quaternion(tmp_path: Path) -> None:
    rows = _rows()
    rows[2, INRIA_PROPS.index("rot_0")] = 0.0
    msg = _error(_ply(tmp_path / "q.ply", rows))
    assert "1 zero-norm quaternions" in msg and "vertex 2" in msg


def test_scale_overflow(tmp_path: Path) -> None:
    rows = _rows()
    rows[0, INRIA_PROPS.index("scale_1")] = 200.0
    assert "exp overflows" in _error(_ply(tmp_path / "s.ply", rows))


def test_empty_scenes(tmp_path: Path) -> None:
    assert "empty" in _error(_ply(tmp_path / "e.ply", _rows(0)))
    (tmp_path / "e.splat").write_bytes(b"")
    assert "empty" in _error(tmp_path / "e.splat")


def test_splat_size_not_multiple_of_32(tmp_path: Path) -> None:
    (tmp_path / "odd.splat").write_bytes(b"\x00" * 70)
    assert "not a multiple of 32" in _error(tmp_path / "odd.splat")


def test_splat_zero_quaternion(tmp_path: Path) -> None:
    record = np.zeros(6, "<f4").tobytes() + bytes([255, 0, 0, 255]) + bytes([128] * 4)
    (tmp_path / "q.splat").write_bytes(record)
    assert "zero-norm" in _error(tmp_path / "q.splat")


def test_save_rejects_invalid_scenes(tmp_path: Path) -> None:
    from s2e_sim_bridge.scene import save_ply

    good = {
        "means": np.zeros((2, 3)),
        "quats": [[1, 0, 0, 0]] * 2,
        "scales": np.ones((2, 3)),
        "opacities": [0.5, 0.5],
        "sh": np.zeros((2, 1, 3)),
    }
    with pytest.raises(SceneFormatError, match="opacities"):
        save_ply(GaussianScene(**{**good, "opacities": [0.5, 1.5]}), tmp_path / "a.ply")
    with pytest.raises(SceneFormatError, match="scales"):
        save_ply(GaussianScene(**{**good, "scales": -np.ones((2, 3))}), tmp_path / "b.ply")
    with pytest.raises(SceneFormatError, match="quaternions"):
        save_ply(GaussianScene(**{**good, "quats": np.zeros((2, 4))}), tmp_path / "c.ply")


# ----------------------------------------------------------------------------- fuzzing
def _small_fixture_bytes(fixtures_dir: Path) -> dict[str, bytes]:
    """Small valid files cut from the fixtures (header counts rewritten to match)."""
    scenes = fixtures_dir / "scenes"
    fruit = (scenes / "fruit_drops_minimal.ply").read_bytes()
    end = fruit.index(b"end_header\n") + len(b"end_header\n")
    header = fruit[:end].replace(b"element vertex 4721", b"element vertex 40")
    record = (len(fruit) - end) // 4721
    return {
        "tiny16.ply": (scenes / "tiny16.ply").read_bytes(),
        "fruit40.ply": header + fruit[end : end + 40 * record],
        "donut40.splat": (scenes / "donut.splat").read_bytes()[: 40 * 32],
    }


def _check_only_scene_errors(path: Path) -> None:
    try:
        scene = read_gaussians(path)
    except SceneFormatError:
        return
    for name in ("means", "quats", "scales", "opacities", "sh"):
        assert np.all(np.isfinite(getattr(scene, name))), name
    assert np.all((scene.opacities >= 0) & (scene.opacities <= 1))
    assert np.allclose(np.linalg.norm(scene.quats, axis=1), 1.0, atol=1e-5)


def test_seeded_truncations_and_byte_flips(fixtures_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1234)
    for name, data in _small_fixture_bytes(fixtures_dir).items():
        path = tmp_path / name
        header_len = data.find(b"end_header") + 11 if name.endswith(".ply") else 0
        for case in range(FUZZ_CASES):
            buf = bytearray(data)
            if case % 3 == 0:
                buf = buf[: int(rng.integers(0, len(buf)))]
            else:
                # Half the flips hit the header (parser paths), half the body (value checks).
                hi = header_len if (case % 2 and header_len) else len(buf)
                for pos in rng.integers(0, hi, size=int(rng.integers(1, 8))):
                    buf[pos] = int(rng.integers(0, 256))
            path.write_bytes(bytes(buf))
            _check_only_scene_errors(path)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_hypothesis_mutations_of_tiny16(
    fixtures_dir: Path, tmp_path: Path, data: st.DataObject
) -> None:
    original = (fixtures_dir / "scenes" / "tiny16.ply").read_bytes()
    buf = bytearray(original)
    edits = data.draw(
        st.lists(st.tuples(st.integers(0, len(buf) - 1), st.integers(0, 255)), max_size=6)
    )
    for pos, value in edits:
        buf[pos] = value
    cut = data.draw(st.integers(0, len(buf)))
    path = tmp_path / "mutated.ply"
    path.write_bytes(bytes(buf[:cut]))
    _check_only_scene_errors(path)
