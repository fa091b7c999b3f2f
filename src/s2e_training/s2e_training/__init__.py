"""Training for the S2E visual navigation policy (torch).

Model, AGDM loss, datasets, pretraining, RAM + PPO post-training and ONNX export.
"""

__version__ = "0.1.0"

DEVICES = ("cpu", "cuda")
"""torch devices training and RL run on."""
