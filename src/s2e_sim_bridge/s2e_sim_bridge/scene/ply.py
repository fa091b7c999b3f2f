"""INRIA 3DGS PLY files: reader (binary either endianness, ASCII) and writer.

Layout (one ``vertex`` element, properties in any order, unknown ones ignored)::

    x y z [nx ny nz] f_dc_0..2 [f_rest_0 .. f_rest_{3(K-1)-1}] opacity scale_0..2 rot_0..3

``f_rest`` is channel-major (``f_rest[c * (K - 1) + j]`` is coefficient ``j + 1`` of channel
``c``), ``scale_*`` are natural logs of the standard deviations, ``opacity`` a logit and
``rot_*`` a w x y z quaternion that need not be normalised. The body is decoded with one
numpy structured dtype built from the header (no per-vertex Python loop).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from s2e_sim_bridge.scene.gaussians import GaussianScene, PlyEncoding, SceneFormatError

PLY_MAGIC = b"ply"
# A 3DGS header is a few kB even with 62 properties; refuse to scan further for end_header.
MAX_HEADER_BYTES = 64 * 1024
_END_HEADER = b"end_header"
_PLY_SCALAR_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_BYTE_ORDERS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": None}
_FLOAT_KINDS = ("f4", "f8")
_F_REST = re.compile(r"f_rest_(\d+)$")
MEANS_PROPS = ("x", "y", "z")
DC_PROPS = ("f_dc_0", "f_dc_1", "f_dc_2")
SCALE_PROPS = ("scale_0", "scale_1", "scale_2")
ROT_PROPS = ("rot_0", "rot_1", "rot_2", "rot_3")
OPACITY_PROP = "opacity"
REQUIRED_PROPS = (*MEANS_PROPS, *DC_PROPS, OPACITY_PROP, *SCALE_PROPS, *ROT_PROPS)
NORMAL_PROPS = ("nx", "ny", "nz")
# |logit| at which a float32 sigmoid is exactly 0 or 1 (e^-110 is below half the smallest
# float32 subnormal): opacities 0 and 1 are written as -/+ this so they read back exactly.
OPACITY_LOGIT_LIMIT = 110.0
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)


class _Element:
    """One ``element`` of a PLY header: name, count and (name, numpy type or None=list)."""

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count
        self.props: list[tuple[str, str | None]] = []

    def dtype(self, byte_order: str) -> np.dtype:
        return np.dtype([(name, byte_order + kind) for name, kind in self.props if kind])

    @property
    def has_list(self) -> bool:
        return any(kind is None for _, kind in self.props)


def _parse_header(path: Path, data: bytes) -> tuple[str, list[_Element], int]:
    """Return (format, elements, body offset) of the PLY header at the start of ``data``."""
    if not data.startswith(PLY_MAGIC + b"\n") and not data.startswith(PLY_MAGIC + b"\r\n"):
        raise SceneFormatError(f"{path}: not a PLY file (does not start with 'ply')")
    end = data.find(_END_HEADER, 0, MAX_HEADER_BYTES)
    newline = data.find(b"\n", end) if end >= 0 else -1
    if end < 0 or newline < 0:
        raise SceneFormatError(
            f"{path}: PLY header has no 'end_header' line within {MAX_HEADER_BYTES} bytes"
        )
    try:
        lines = data[:end].decode("ascii").splitlines()[1:]
    except UnicodeDecodeError as exc:
        raise SceneFormatError(f"{path}: PLY header is not ASCII text ({exc})") from None
    fmt: str | None = None
    elements: list[_Element] = []
    for number, raw in enumerate(lines, start=2):
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        where = f"{path}: PLY header line {number} ({raw.strip()!r})"
        if words[0] == "format":
            if len(words) != 3 or words[1] not in _BYTE_ORDERS:
                raise SceneFormatError(
                    f"{where}: unsupported format; expected one of {sorted(_BYTE_ORDERS)}"
                )
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise SceneFormatError(f"{where}: expected 'element NAME COUNT'")
            elements.append(_Element(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise SceneFormatError(f"{where}: property before any element")
            elem = elements[-1]
            if len(words) == 5 and words[1] == "list":
                elem.props.append((words[4], None))
                continue
            if len(words) != 3 or words[1] not in _PLY_SCALAR_TYPES:
                raise SceneFormatError(
                    f"{where}: unsupported property type; expected one of "
                    f"{sorted(set(_PLY_SCALAR_TYPES))} or a list"
                )
            if any(name == words[2] for name, _ in elem.props):
                raise SceneFormatError(f"{where}: duplicate property {words[2]!r}")
            elem.props.append((words[2], _PLY_SCALAR_TYPES[words[1]]))
        else:
            raise SceneFormatError(f"{where}: unknown header keyword {words[0]!r}")
    if fmt is None:
        raise SceneFormatError(f"{path}: PLY header has no 'format' line")
    return fmt, elements, newline + 1


def _read_vertex_columns(path: Path, data: bytes) -> tuple[dict[str, np.ndarray], int]:
    """Decode the vertex element into ``{property: (N,) array}`` and its count."""
    fmt, elements, offset = _parse_header(path, data)
    names = [e.name for e in elements]
    if "vertex" not in names:
        raise SceneFormatError(f"{path}: PLY has no 'vertex' element (elements: {names})")
    index = names.index("vertex")
    vertex = elements[index]
    if vertex.has_list:
        raise SceneFormatError(f"{path}: list properties in element 'vertex' are not supported")
    if fmt == "ascii":
        return _read_ascii(path, data[offset:], elements[:index], vertex), vertex.count
    byte_order = _BYTE_ORDERS[fmt]
    for elem in elements[:index]:
        if elem.has_list:
            raise SceneFormatError(
                f"{path}: element {elem.name!r} before 'vertex' has list properties; "
                "only fixed-size elements can precede the Gaussians"
            )
        offset += elem.count * elem.dtype(byte_order).itemsize
    dtype = vertex.dtype(byte_order)
    need = vertex.count * dtype.itemsize
    have = len(data) - offset
    if have < need:
        raise SceneFormatError(
            f"{path}: truncated PLY body: {max(have, 0)} bytes for {vertex.count} vertices, "
            f"header promises {need} ({dtype.itemsize} bytes each)"
        )
    table = np.frombuffer(data, dtype=dtype, count=vertex.count, offset=offset)
    return {name: table[name] for name in dtype.names}, vertex.count


def _read_ascii(
    path: Path, body: bytes, before: list[_Element], vertex: _Element
) -> dict[str, np.ndarray]:
    """Decode an ASCII body: one line per element instance, whitespace-separated values."""
    lines = body.splitlines()
    skip = sum(e.count for e in before)
    rows = lines[skip : skip + vertex.count]
    tokens = b" ".join(rows).split()
    nprops = len(vertex.props)
    if len(rows) < vertex.count or len(tokens) != vertex.count * nprops:
        raise SceneFormatError(
            f"{path}: ASCII PLY body has {len(tokens)} values in {len(rows)} vertex lines, "
            f"header promises {vertex.count} lines of {nprops}"
        )
    try:
        values = np.array(tokens).astype(np.float64).reshape(vertex.count, nprops)
    except ValueError as exc:
        raise SceneFormatError(f"{path}: ASCII PLY body has a non-numeric value ({exc})") from None
    return {name: values[:, i] for i, (name, _) in enumerate(vertex.props)}


def _f_rest_names(path: Path, columns: dict[str, np.ndarray]) -> list[str]:
    """The ``f_rest_*`` names in coefficient order; checks the count is 3 * ((deg+1)^2 - 1)."""
    indices = sorted(int(m.group(1)) for name in columns if (m := _F_REST.match(name)))
    if indices != list(range(len(indices))):
        raise SceneFormatError(
            f"{path}: f_rest properties are not numbered 0..{len(indices) - 1} without gaps"
        )
    valid = {3 * ((deg + 1) ** 2 - 1): deg for deg in range(4)}
    if len(indices) not in valid:
        raise SceneFormatError(
            f"{path}: {len(indices)} f_rest properties; expected one of {sorted(valid)} "
            "(SH degree 0-3)"
        )
    return [f"f_rest_{i}" for i in indices]


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """float64 logistic function without overflow for any finite ``x``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def read_ply(path: str | Path) -> GaussianScene:
    """Read an INRIA 3DGS PLY (binary little/big endian or ASCII) into a scene, unaligned.

    Args:
        path: the ``.ply`` file.

    Returns:
        A :class:`GaussianScene` in the capture's own frame: float32 means, unit quats,
        ``exp``'d scales, sigmoid opacities and ``(N, K, 3)`` SH (channel-major ``f_rest``
        unpacked), with ``ply_encoding`` set so :func:`save_ply` writes it back bit-exact.

    Raises:
        SceneFormatError: missing/unreadable file, bad magic or header, truncated body,
            unsupported types, missing properties, non-finite values, zero quaternions,
            scale overflow, or no Gaussians; the message names the file and the problem.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SceneFormatError(f"{path}: cannot read scene file ({exc.strerror})") from None
    columns, count = _read_vertex_columns(path, data)
    missing = [p for p in REQUIRED_PROPS if p not in columns]
    if missing:
        raise SceneFormatError(
            f"{path}: PLY vertex element lacks 3DGS properties {missing} "
            "(expected the INRIA layout; compressed PLYs are not supported)"
        )
    rest = _f_rest_names(path, columns)
    used = [*REQUIRED_PROPS, *rest]
    wrong_type = [p for p in used if columns[p].dtype.kind != "f"]
    if wrong_type:
        raise SceneFormatError(
            f"{path}: properties {wrong_type} are integers; expected float or double"
        )
    if count == 0:
        raise SceneFormatError(f"{path}: scene is empty (0 Gaussians)")
    raw = {p: columns[p].astype(np.float32) for p in used}
    bad = {p: int(np.count_nonzero(~np.isfinite(v))) for p, v in raw.items()}
    bad = {p: n for p, n in bad.items() if n}
    if bad:
        detail = ", ".join(f"{n} in {p!r}" for p, n in bad.items())
        raise SceneFormatError(f"{path}: {sum(bad.values())} NaN/inf values ({detail})")
    return _decode(path, raw, rest, count)


def _decode(path: Path, raw: dict[str, np.ndarray], rest: list[str], count: int) -> GaussianScene:
    """Turn finite float32 property columns into a scene (log scales, logits, raw quats)."""
    log_scales = np.stack([raw[p] for p in SCALE_PROPS], axis=-1)
    scales64 = np.exp(log_scales.astype(np.float64))
    overflow = scales64 > _F32_MAX
    if np.any(overflow):
        raise SceneFormatError(
            f"{path}: {int(np.count_nonzero(overflow))} log scales above "
            f"{np.log(_F32_MAX):.1f} (exp overflows float32)"
        )
    logits = raw[OPACITY_PROP]
    raw_quats = np.stack([raw[p] for p in ROT_PROPS], axis=-1)
    norms = np.linalg.norm(raw_quats.astype(np.float64), axis=-1, keepdims=True)
    zero = norms[:, 0] == 0
    if np.any(zero):
        raise SceneFormatError(
            f"{path}: {int(np.count_nonzero(zero))} zero-norm quaternions (rot_0..3 all 0), "
            f"first at vertex {int(np.argmax(zero))}"
        )
    quats = (raw_quats / norms).astype(np.float32)
    degree_terms = len(rest) // 3
    sh = np.empty((count, 1 + degree_terms, 3), dtype=np.float32)
    sh[:, 0] = np.stack([raw[p] for p in DC_PROPS], axis=-1)
    if degree_terms:
        f_rest = np.stack([raw[p] for p in rest], axis=-1)  # (N, 3 * (K-1)), channel-major
        sh[:, 1:] = f_rest.reshape(count, 3, degree_terms).transpose(0, 2, 1)
    scales = scales64.astype(np.float32)
    opacities = _stable_sigmoid(logits.astype(np.float64)).astype(np.float32)
    encoding = PlyEncoding(
        log_scales=log_scales,
        opacity_logits=logits,
        raw_quats=raw_quats,
        scales=scales.copy(),
        opacities=opacities.copy(),
        quats=quats.copy(),
    )
    return GaussianScene(
        means=np.stack([raw[p] for p in MEANS_PROPS], axis=-1),
        quats=quats,
        scales=scales,
        opacities=opacities,
        sh=sh,
        meta={"source": str(path), "format": "ply"},
        ply_encoding=encoding,
    )


def _encode(scene: GaussianScene, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PLY log scales ``(N, 3)``, logits ``(N,)`` and quats ``(N, 4)`` (float32) of a scene."""
    scales = scene.scales
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise SceneFormatError(f"cannot write {path}: scales must be finite and >= 0")
    opac = scene.opacities
    if not np.all((opac >= 0) & (opac <= 1)):
        raise SceneFormatError(f"cannot write {path}: opacities must lie in [0, 1]")
    norms = np.linalg.norm(scene.quats.astype(np.float64), axis=-1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise SceneFormatError(f"cannot write {path}: quaternions must be finite and non-zero")
    log_scales = np.log(np.maximum(scales.astype(np.float64), _F32_TINY))
    p = opac.astype(np.float64)
    with np.errstate(divide="ignore"):
        logits = np.clip(np.log(p) - np.log1p(-p), -OPACITY_LOGIT_LIMIT, OPACITY_LOGIT_LIMIT)
    quats = scene.quats.astype(np.float64) / norms
    enc = scene.ply_encoding
    if enc is not None and enc.opacities.shape == opac.shape:
        log_scales = np.where(scales == enc.scales, enc.log_scales, log_scales)
        logits = np.where(opac == enc.opacities, enc.opacity_logits, logits)
        same_quat = np.all(scene.quats == enc.quats, axis=-1, keepdims=True)
        quats = np.where(same_quat, enc.raw_quats, quats)
    return log_scales.astype(np.float32), logits.astype(np.float32), quats.astype(np.float32)


def save_ply(scene: GaussianScene, path: str | Path) -> Path:
    """Write a scene as a binary little-endian INRIA 3DGS PLY (normals zero).

    Properties in INRIA order: ``x y z nx ny nz f_dc_0..2 f_rest_* opacity scale_0..2
    rot_0..3``, all float32. A scene read by :func:`read_ply` and not modified since is
    written with its original raw values, so load -> save -> load is bit-exact.

    Args:
        scene: the scene to write (its own frame; ``info`` is not written, see
            :func:`s2e_sim_bridge.scene.save_scene` for PLY + YAML).
        path: destination ``.ply`` (parent directories must exist).

    Returns:
        ``path`` as a :class:`Path`.
    """
    path = Path(path)
    if len(scene) == 0:
        raise SceneFormatError(f"cannot write {path}: scene is empty")
    if not (np.all(np.isfinite(scene.means)) and np.all(np.isfinite(scene.sh))):
        raise SceneFormatError(f"cannot write {path}: means and SH must be finite")
    log_scales, logits, quats = _encode(scene, path)
    rest_count = 3 * (scene.sh.shape[1] - 1)
    names = [
        *MEANS_PROPS, *NORMAL_PROPS, *DC_PROPS,
        *(f"f_rest_{i}" for i in range(rest_count)),
        OPACITY_PROP, *SCALE_PROPS, *ROT_PROPS,
    ]  # fmt: skip
    rows = np.concatenate(
        [
            scene.means,
            np.zeros((len(scene), 3), np.float32),
            scene.sh[:, 0],
            scene.sh[:, 1:].transpose(0, 2, 1).reshape(len(scene), rest_count),
            logits[:, None],
            log_scales,
            quats,
        ],
        axis=1,
    ).astype("<f4")  # (N, len(names)): one PLY vertex record per row
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(scene)}"]
    header += [f"property float {n}" for n in names] + ["end_header"]
    try:
        with path.open("wb") as fh:
            fh.write(("\n".join(header) + "\n").encode("ascii"))
            rows.tofile(fh)
    except OSError as exc:
        raise SceneFormatError(f"cannot write {path}: {exc.strerror}") from None
    return path
