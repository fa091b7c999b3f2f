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


def packaged_file(package: str, name: str, what: str, instead: str) -> Path:
    """Path of the data file ``name`` of ``package`` (the shipped policy and checkpoint).

    Args:
        package: dotted package that holds the file as package data.
        name: file name inside it.
        what: what the file is, for the error message (e.g. ``"the shipped policy"``).
        instead: what the user can pass instead (e.g. ``"--policy path/to/policy.onnx"``).

    Raises:
        S2EError: the install lacks the file.
    """
    path = Path(str(files(package).joinpath(name)))
    if not path.is_file():
        raise S2EError(f"{what} {path} is missing from this install of "
                       f"{package.split('.')[0]}; reinstall the package or pass {instead}")
    return path


def shipped_policy_path() -> Path:
    """Path of the shipped ONNX policy (raises :class:`S2EError` if the install lacks it)."""
    return packaged_file(__name__, SHIPPED_POLICY_FILE, "the shipped policy",
                         "--policy path/to/policy.onnx")
