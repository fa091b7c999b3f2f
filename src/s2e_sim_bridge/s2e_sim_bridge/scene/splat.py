"""antimatter15 ``.splat`` files: 32 bytes per Gaussian, no header.

Record layout (little endian): 3 float32 position, 3 float32 linear scale, 4 uint8 RGBA
(``RGB = 0.5 + C0 * f_dc`` clamped, ``A = opacity``, both times 255), 4 uint8 quaternion
``w x y z`` stored as ``q * 128 + 128``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2e_sim_bridge.scene.gaussians import GaussianScene, SceneFormatError
from s2e_sim_bridge.scene.sh import rgb_to_sh0

SPLAT_DTYPE = np.dtype(
    [("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))]
)
SPLAT_RECORD_BYTES = SPLAT_DTYPE.itemsize  # 32
_UINT8_MAX = 255.0
_QUAT_OFFSET = 128.0  # uint8 quaternion component q is stored as q * 128 + 128


def read_splat(path: str | Path) -> GaussianScene:
    """Read an antimatter15 ``.splat`` file into a degree-0 scene, unaligned.

    Args:
        path: the ``.splat`` file.

    Returns:
        A :class:`GaussianScene` in the file's frame: float32 means, linear scales, opacities
        ``A / 255``, unit quats ``(q - 128) / 128`` normalised, and ``(N, 1, 3)`` SH with
        ``sh0 = (RGB / 255 - 0.5) / C0``.

    Raises:
        SceneFormatError: missing file, size not a multiple of 32 bytes, empty file,
            non-finite or negative position/scale values, zero quaternions.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SceneFormatError(f"{path}: cannot read scene file ({exc.strerror})") from None
    if len(data) % SPLAT_RECORD_BYTES:
        raise SceneFormatError(
            f"{path}: .splat size {len(data)} bytes is not a multiple of {SPLAT_RECORD_BYTES}"
        )
    if not data:
        raise SceneFormatError(f"{path}: scene is empty (0 Gaussians)")
    table = np.frombuffer(data, dtype=SPLAT_DTYPE)
    for field in ("position", "scale"):
        bad = ~np.isfinite(table[field])
        if np.any(bad):
            raise SceneFormatError(
                f"{path}: {int(np.count_nonzero(bad))} NaN/inf values in {field!r}"
            )
    if np.any(table["scale"] < 0):
        raise SceneFormatError(f"{path}: {int(np.sum(table['scale'] < 0))} negative scales")
    quats = (table["rot"].astype(np.float64) - _QUAT_OFFSET) / _QUAT_OFFSET
    norms = np.linalg.norm(quats, axis=-1, keepdims=True)
    zero = norms[:, 0] == 0
    if np.any(zero):
        raise SceneFormatError(
            f"{path}: {int(np.count_nonzero(zero))} zero-norm quaternions "
            f"(all bytes 128), first at splat {int(np.argmax(zero))}"
        )
    rgba = table["rgba"].astype(np.float64) / _UINT8_MAX
    return GaussianScene(
        means=table["position"],
        quats=quats / norms,
        scales=table["scale"],
        opacities=rgba[:, 3],
        sh=rgb_to_sh0(rgba[:, None, :3]),
        meta={"source": str(path), "format": "splat"},
    )
