"""Training data: one :class:`NavSample` from GNM folders, rosbag2 recordings and videos.

Adapters turn each source into a :class:`Trajectory`; :func:`make_sample` cuts samples out of
any trajectory; :class:`NavDataset` and :func:`collate` feed torch.
"""

from s2e_policy.cli import lazy_attributes
from s2e_training.data.augment import AugmentConfig, augment, colour_jitter, hflip
from s2e_training.data.gnm import read_gnm_dataset, read_gnm_trajectory, write_gnm
from s2e_training.data.rosbag import read_bag_trajectory
from s2e_training.data.sample import (
    NavSample,
    SampleConfig,
    SkipReport,
    Trajectory,
    future_waypoints,
    make_sample,
    sample_indices,
)
from s2e_training.data.sources import load_trajectories
from s2e_training.data.video import read_pose_csv, read_video_trajectory

# torch-backed: imported on first use, so reading data never pays for torch.
__getattr__ = lazy_attributes(__name__, {"NavDataset": "dataset", "collate": "dataset"})

__all__ = [
    "AugmentConfig",
    "NavDataset",
    "NavSample",
    "SampleConfig",
    "SkipReport",
    "Trajectory",
    "augment",
    "collate",
    "colour_jitter",
    "future_waypoints",
    "hflip",
    "load_trajectories",
    "make_sample",
    "read_bag_trajectory",
    "read_gnm_dataset",
    "read_gnm_trajectory",
    "read_pose_csv",
    "read_video_trajectory",
    "sample_indices",
    "write_gnm",
]
