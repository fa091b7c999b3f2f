"""GNM / visualnav-transformer trajectory folders: the reader.

A GNM trajectory folder holds ``0.jpg ... {N-1}.jpg`` (one frame per pose) and
``traj_data.pkl``, a pickled dict with ``position`` float ``(N, 2)`` (x, y metres, odometry
frame) and ``yaw`` float ``(N,)`` (radians; ``(N, 1)`` is accepted). The format carries no
timestamps: frames are ``1 / rate_hz`` seconds apart, the rate being a property of the
dataset (the caller passes it). A dataset is such a folder or a folder of such folders.

The file names and the one writer of the format live in
:mod:`s2e_sim_bridge.navbench.gnm_format` (``s2e navbench collect`` writes simulator rollouts
with it); ``write_gnm`` is re-exported here so training code finds reader and writer together.

``traj_data.pkl`` is read with a restricted unpickler that only rebuilds numpy arrays, lists,
tuples and dicts, so a hostile pickle cannot run code.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench.gnm_format import FRAME_SUFFIX, TRAJ_DATA_FILE, write_gnm
from s2e_training.data.sample import NS_PER_S, SkipReport, Trajectory

__all__ = [
    "FRAME_SUFFIX",
    "TRAJ_DATA_FILE",
    "GnmFrames",
    "load_frame",
    "read_gnm_dataset",
    "read_gnm_trajectory",
    "read_traj_data",
    "write_gnm",
]

_SAFE_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and builtin containers, nothing else."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays)")


class GnmFrames(Sequence[np.ndarray]):
    """Lazily loaded GNM frames: ``frames[i]`` reads one JPEG as uint8 ``(H, W, 3)`` RGB."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return GnmFrames(self._paths[index])
        return load_frame(self._paths[index])


def load_frame(path: Path) -> np.ndarray:
    """Decode one image file to uint8 ``(H, W, 3)`` RGB; undecodable files raise S2EError."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise S2EError(f"frame {path}: cannot be decoded as an image: {exc}") from exc


def _check_frame_header(path: Path) -> str | None:
    """Reason why ``path`` is not a readable image (header only, cheap), or ``None``."""
    if not path.is_file():
        return "missing frame file"
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        return f"unreadable frame: {exc}"
    return None


def read_traj_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate a ``traj_data.pkl``.

    Returns:
        ``(position, yaw)``: float64 ``(N, 2)`` metres and float64 ``(N,)`` radians (may hold
        NaN; the caller decides what to do with non-finite rows).

    Raises:
        S2EError: unreadable pickle, not a dict, missing ``position``/``yaw``, wrong shapes.
    """
    try:
        data = _ArrayUnpickler(io.BytesIO(path.read_bytes())).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise S2EError(f"{path}: cannot be read as a GNM traj_data pickle: {exc}") from exc
    if not isinstance(data, dict):
        raise S2EError(f"{path}: expected a dict with 'position' and 'yaw', got {type(data)}")
    missing = [key for key in ("position", "yaw") if key not in data]
    if missing:
        raise S2EError(
            f"{path}: missing key(s) {', '.join(missing)}; expected 'position' (N, 2) and "
            f"'yaw' (N,); found {', '.join(map(str, data)) or 'no keys'}"
        )
    try:
        position = np.asarray(data["position"], dtype=np.float64)
        yaw = np.asarray(data["yaw"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise S2EError(f"{path}: 'position'/'yaw' are not numeric arrays: {exc}") from exc
    if yaw.ndim == 2 and yaw.shape[1] == 1:
        yaw = yaw[:, 0]
    if position.ndim != 2 or position.shape[1] != 2:
        raise S2EError(f"{path}: 'position' has shape {position.shape}; expected (N, 2)")
    if yaw.shape != (position.shape[0],):
        raise S2EError(
            f"{path}: 'yaw' has shape {yaw.shape}; expected ({position.shape[0]},) to match "
            f"'position'"
        )
    return position, yaw


def read_gnm_trajectory(
    folder: Path, rate_hz: float, *, skip_bad: bool = False, report: SkipReport | None = None
) -> Trajectory:
    """Read one GNM trajectory folder.

    Args:
        folder: folder with ``0.jpg ...`` and ``traj_data.pkl``.
        rate_hz: frame rate of the dataset, Hz (frame ``i`` is at ``i / rate_hz`` s).
        skip_bad: drop frames with a NaN/inf pose or a missing/unreadable JPEG (recorded in
            ``report``) instead of raising.
        report: collects what was skipped (used only with ``skip_bad``).

    Returns:
        :class:`Trajectory` with lazily loaded frames; poses are the per-frame poses.

    Raises:
        S2EError: bad pickle (see :func:`read_traj_data`), or a bad frame/pose without
            ``skip_bad`` (names the file and index).
    """
    folder = Path(folder)
    if not np.isfinite(rate_hz) or rate_hz <= 0:
        raise S2EError(f"GNM rate_hz: expected a positive frame rate, got {rate_hz}")
    pkl = folder / TRAJ_DATA_FILE
    if not pkl.is_file():
        raise S2EError(f"GNM folder {folder}: no {TRAJ_DATA_FILE}")
    position, yaw = read_traj_data(pkl)
    report = report if report is not None else SkipReport()
    keep: list[int] = []
    for i in range(position.shape[0]):
        frame = folder / f"{i}{FRAME_SUFFIX}"
        reason = None
        if not (np.all(np.isfinite(position[i])) and np.isfinite(yaw[i])):
            reason = f"non-finite pose (position {position[i].tolist()}, yaw {yaw[i]})"
            where = str(pkl)
        else:
            reason = _check_frame_header(frame)
            where = str(frame)
        if reason is None:
            keep.append(i)
        elif skip_bad:
            report.add(where, i, reason)
        else:
            raise S2EError(f"{where} (frame {i}): {reason}")
    ids = np.asarray(keep, dtype=np.int64)
    stamps = np.round(ids * (NS_PER_S / rate_hz)).astype(np.int64)
    poses = np.column_stack([position[ids], yaw[ids]]) if len(ids) else np.zeros((0, 3))
    return Trajectory(
        source="gnm",
        trajectory_id=str(folder),
        frame_stamps_ns=stamps,
        frames=GnmFrames([folder / f"{i}{FRAME_SUFFIX}" for i in ids]),
        pose_stamps_ns=stamps.copy(),
        poses=poses,
        frame_ids=ids,
    )


def read_gnm_dataset(
    root: Path, rate_hz: float, *, skip_bad: bool = False, report: SkipReport | None = None
) -> list[Trajectory]:
    """Read a GNM trajectory folder, or every trajectory folder directly inside ``root``.

    With ``skip_bad``, trajectories that fail as a whole (bad pickle) are skipped and recorded
    in ``report`` along with skipped frames; folders without ``traj_data.pkl`` are ignored.

    Raises:
        S2EError: ``root`` is not a GNM folder and contains none.
    """
    root = Path(root)
    if (root / TRAJ_DATA_FILE).is_file():
        folders = [root]
    else:
        folders = sorted(
            (p for p in root.iterdir() if (p / TRAJ_DATA_FILE).is_file()),
            key=lambda p: p.name,
        ) if root.is_dir() else []
    if not folders:
        raise S2EError(
            f"GNM dataset {root}: expected a folder with {TRAJ_DATA_FILE} or a folder of such "
            f"folders"
        )
    report = report if report is not None else SkipReport()
    trajectories = []
    for folder in folders:
        try:
            trajectories.append(
                read_gnm_trajectory(folder, rate_hz, skip_bad=skip_bad, report=report)
            )
        except S2EError as exc:
            if not skip_bad:
                raise
            report.add(str(folder), None, str(exc))
    return trajectories

