"""Per-scene precomputation cache shared by the backends.

A backend derives data from a :class:`GaussianScene` once (3D covariances, view-independent
colours, device tensors) and reuses it for every camera and every frame. Entries are keyed by
the scene object and dropped when it is garbage-collected. An entry is rebuilt when any of the
scene's array attributes has been *replaced* by another array; arrays modified in place are not
detected (assign a new array, or build a new scene, after editing Gaussians).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

from s2e_sim_bridge.scene.gaussians import GaussianScene

T = TypeVar("T")

_ARRAY_FIELDS = ("means", "quats", "scales", "opacities", "sh")


def _arrays(scene: GaussianScene) -> tuple[np.ndarray, ...]:
    return tuple(getattr(scene, name) for name in _ARRAY_FIELDS)


def _same_arrays(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    return all(x is y for x, y in zip(a, b, strict=True))


class SceneCache(Generic[T]):
    """Maps live scenes to a value built from them by ``build(scene)``."""

    def __init__(self, build: Callable[[GaussianScene], T]) -> None:
        self._build = build
        self._entries: dict[int, tuple[tuple[np.ndarray, ...], T]] = {}

    def get(self, scene: GaussianScene) -> T:
        """Cached value for ``scene``, building it on first use or after arrays were replaced."""
        key = id(scene)
        arrays = _arrays(scene)
        entry = self._entries.get(key)
        if entry is not None and _same_arrays(entry[0], arrays):
            return entry[1]
        value = self._build(scene)
        self.put(scene, value)
        return value

    def put(self, scene: GaussianScene, value: T) -> None:
        """Store ``value`` for ``scene`` (e.g. a grown version of the cached one)."""
        if id(scene) not in self._entries:
            weakref.finalize(scene, self._entries.pop, id(scene), None)
        self._entries[id(scene)] = (_arrays(scene), value)

    def __len__(self) -> int:
        return len(self._entries)
