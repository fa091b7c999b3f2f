"""torch side of the data pipeline: a map-style Dataset over trajectories and ``collate``.

Determinism: item ``i`` of epoch ``e`` draws its goal and augmentations from
``numpy.random.default_rng((seed, e, i))``, so a given (seed, epoch, index) always gives the
same sample whatever the worker count or order; call :meth:`NavDataset.set_epoch` once per
epoch to get fresh goals and augmentations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from s2e_policy.errors import S2EError
from s2e_training.data.augment import AugmentConfig, augment
from s2e_training.data.sample import (
    NavSample,
    SampleConfig,
    Trajectory,
    make_sample,
    sample_indices,
)


class NavDataset(Dataset):
    """Every valid current frame of every trajectory, as :class:`NavSample` items.

    Args:
        trajectories: from any adapter (GNM, rosbag2, video).
        config: how samples are cut.
        augment_config: augmentation strengths; ``None`` disables augmentation.
        seed: base seed of the per-item random generators.
    """

    def __init__(
        self,
        trajectories: Sequence[Trajectory],
        config: SampleConfig,
        *,
        augment_config: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.trajectories = list(trajectories)
        self.config = config
        self.augment_config = augment_config
        self.seed = int(seed)
        self.epoch = 0
        pairs = [
            (t, int(i))
            for t, trajectory in enumerate(self.trajectories)
            for i in sample_indices(trajectory, config)
        ]
        self.index = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(self.index) == 0:
            raise S2EError(
                f"NavDataset: none of {len(self.trajectories)} trajectories is long enough for "
                f"the sample config (context {config.context_span_s} s, horizon "
                f"{max(config.waypoint_horizon_s, config.goal_min_s)} s)"
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose goals and augmentations ``__getitem__`` draws."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> NavSample:
        if not 0 <= item < len(self.index):
            raise IndexError(f"NavDataset index {item} out of range [0, {len(self.index)})")
        rng = np.random.default_rng((self.seed, self.epoch, int(item)))
        trajectory_index, frame_index = self.index[item]
        sample = make_sample(
            self.trajectories[int(trajectory_index)], int(frame_index), self.config, rng
        )
        if self.augment_config is not None:
            sample = augment(sample, rng, self.augment_config)
        return sample


def collate(samples: Sequence[NavSample]) -> dict[str, torch.Tensor | list]:
    """Stack samples into a batch.

    Returns:
        ``context`` float32 ``(B, T, 3, S, S)``, ``goal`` float32 ``(B, 3)``, ``waypoints``
        float32 ``(B, W, 3)``, ``speed`` float32 ``(B,)``, ``stamp_ns`` int64 ``(B,)``,
        ``frame_index`` int64 ``(B,)``, and the lists ``source`` and ``trajectory_id``.

    Raises:
        S2EError: empty batch or samples of different shapes.
    """
    if not samples:
        raise S2EError("collate: expected at least one NavSample")
    for name in ("context", "goal", "waypoints"):
        shapes = {getattr(s, name).shape for s in samples}
        if len(shapes) != 1:
            raise S2EError(f"collate: NavSample.{name} shapes differ in one batch: {shapes}")
    return {
        "context": torch.from_numpy(np.stack([s.context for s in samples])),
        "goal": torch.from_numpy(np.stack([s.goal for s in samples])),
        "waypoints": torch.from_numpy(np.stack([s.waypoints for s in samples])),
        "speed": torch.tensor([s.speed for s in samples], dtype=torch.float32),
        "stamp_ns": torch.tensor([s.stamp_ns for s in samples], dtype=torch.int64),
        "frame_index": torch.tensor([s.frame_index for s in samples], dtype=torch.int64),
        "source": [s.source for s in samples],
        "trajectory_id": [s.trajectory_id for s in samples],
    }
