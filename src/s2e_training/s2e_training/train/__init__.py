"""Pretraining of the S2E policy with AGDM: config, loop, checkpoints, ``s2e train``."""

from s2e_training.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    parameter_digest,
    read_checkpoint,
    save_checkpoint,
)
from s2e_training.train.config import OptimConfig, TrainConfig, TrainConfigError
from s2e_training.train.pretraining import (
    DistributedContext,
    PretrainResult,
    StepBatchSampler,
    check_data_length,
    fit_anchors,
    prediction_image,
    pretrain,
    train_step,
)

__all__ = [
    "CheckpointError",
    "DistributedContext",
    "OptimConfig",
    "PretrainResult",
    "StepBatchSampler",
    "TrainConfig",
    "TrainConfigError",
    "check_data_length",
    "fit_anchors",
    "latest_checkpoint",
    "load_checkpoint",
    "parameter_digest",
    "prediction_image",
    "pretrain",
    "read_checkpoint",
    "save_checkpoint",
    "train_step",
]
