"""Pretraining of the S2E policy with AGDM: config, loop, checkpoints, ``s2e train``."""

from s2e_policy.cli import lazy_attributes

# torch-backed: imported on first use, so `s2e` start-up stays free of torch.
__getattr__ = lazy_attributes(__name__, {
    **dict.fromkeys(("OptimConfig", "TrainConfig", "TrainConfigError"), "config"),
    **dict.fromkeys(("CheckpointError", "latest_checkpoint", "load_checkpoint",
                     "parameter_digest", "read_checkpoint", "save_checkpoint"), "checkpoint"),
    **dict.fromkeys(("DistributedContext", "PretrainResult", "StepBatchSampler",
                     "check_data_length", "fit_anchors", "prediction_image", "pretrain",
                     "train_step"), "pretraining"),
})

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
