"""The pretraining checkpoint of the shipped policy: where RL post-training starts.

``s2e_small_wheeled.pt`` (package data) is the AGDM pretraining checkpoint (``small`` preset,
3000 steps) that ``s2e export`` turned into the shipped ONNX policy
(:func:`s2e_policy.models.shipped_policy_path`; its contract records the same step and
training-config hash). It is a regular checkpoint of :mod:`s2e_training.train.checkpoint`
without the optimiser state (not needed to start RL or a fine-tuning run), so
``s2e train rl`` uses it when no ``--init`` is given and a fresh install can post-train the
shipped policy without pretraining first. The project README's "Shipped policy" section
lists the commands that produced it.
"""

from __future__ import annotations

from pathlib import Path

from s2e_policy.models import packaged_file

SHIPPED_CHECKPOINT_FILE = "s2e_small_wheeled.pt"
"""File name of the shipped pretraining checkpoint inside this package."""


def shipped_checkpoint_path() -> Path:
    """Path of the shipped pretraining checkpoint (raises ``S2EError`` if missing)."""
    return packaged_file(__name__, SHIPPED_CHECKPOINT_FILE,
                         "the shipped pretraining checkpoint", "--init CHECKPOINT")
