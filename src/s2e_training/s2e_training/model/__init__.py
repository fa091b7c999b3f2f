"""The S2E policy model: configuration and presets, anchors, and the torch network."""

from s2e_policy.cli import lazy_attributes
from s2e_training.model.anchors import (
    build_anchors,
    kmeans_anchors,
    normalise_trajectories,
    uniform_anchors,
    waypoint_headings,
)
from s2e_training.model.config import EncoderConfig, ModelConfig, ModelConfigError, preset

# torch-backed: imported on first use.
__getattr__ = lazy_attributes(__name__,
                              dict.fromkeys(("PolicyOutput", "S2EPolicyNet"), "network"))

__all__ = [
    "EncoderConfig",
    "ModelConfig",
    "ModelConfigError",
    "PolicyOutput",
    "S2EPolicyNet",
    "build_anchors",
    "kmeans_anchors",
    "normalise_trajectories",
    "preset",
    "uniform_anchors",
    "waypoint_headings",
]
