"""The policy shipped with the project: a `small`-preset S2E policy trained by its own pipeline.

``s2e_small_wheeled.onnx`` (package data) was produced here, from nothing but the project's
tools: expert rollouts in generated NavBench-GS streets (``s2e navbench collect``), AGDM
pretraining (``s2e train pretrain``) and ``s2e export``. Its ONNX contract records the
training configuration, its hash, the git commit and the exact training command
(``s2e_policy.contract.PolicyContract.train_command``); the project README's "Shipped
policy" section lists every command, from data collection to export, with its results.
No weights from elsewhere are involved.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from s2e_policy.errors import S2EError

SHIPPED_POLICY_FILE = "s2e_small_wheeled.onnx"
"""File name of the shipped policy inside this package."""


def shipped_policy_path() -> Path:
    """Path of the shipped ONNX policy (raises :class:`S2EError` if the install lacks it)."""
    path = Path(str(files(__name__).joinpath(SHIPPED_POLICY_FILE)))
    if not path.is_file():
        raise S2EError(f"the shipped policy {path} is missing from this install of s2e_policy; "
                       "reinstall the package or pass --policy path/to/policy.onnx")
    return path
