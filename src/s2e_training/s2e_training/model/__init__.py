"""The S2E policy model: configuration and presets, anchors, and the torch network."""

from s2e_training.model.anchors import (
    build_anchors,
    kmeans_anchors,
    normalise_trajectories,
    uniform_anchors,
    waypoint_headings,
)
from s2e_training.model.config import EncoderConfig, ModelConfig, ModelConfigError, preset
from s2e_training.model.network import PolicyOutput, S2EPolicyNet

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
