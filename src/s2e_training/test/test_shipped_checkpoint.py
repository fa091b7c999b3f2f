"""The shipped pretraining checkpoint is the network of the shipped ONNX policy."""

from __future__ import annotations

import pytest

from s2e_policy.errors import S2EError
from s2e_policy.models import packaged_file, shipped_policy_path
from s2e_policy.runtime import PolicyRuntime
from s2e_training.export.onnx_export import config_sha256, random_inputs
from s2e_training.export.parity import max_abs_errors, open_session
from s2e_training.export.settings import FP32_PARITY_ATOL
from s2e_training.pretrained import SHIPPED_CHECKPOINT_FILE, shipped_checkpoint_path
from s2e_training.train import load_checkpoint


def test_shipped_checkpoint_is_the_shipped_onnx_policy() -> None:
    path = shipped_checkpoint_path()
    assert path.name == SHIPPED_CHECKPOINT_FILE and path.stat().st_size < 2_000_000
    model, config, _anchors, step = load_checkpoint(path)
    contract = PolicyRuntime.from_file(shipped_policy_path()).contract
    assert step == contract.checkpoint_step
    assert config_sha256(config.to_dict()) == contract.train_config_sha256
    frames, goal = random_inputs(model, 3, seed=0)
    errors = max_abs_errors(model, open_session(shipped_policy_path()), frames.numpy(),
                            goal.numpy())
    assert max(errors.values()) < FP32_PARITY_ATOL, errors


def test_a_missing_packaged_file_names_it_and_the_way_out() -> None:
    with pytest.raises(S2EError, match=r"the shipped pretraining checkpoint .*nothing\.pt is "
                                       r"missing from this install of s2e_training; .*--init"):
        packaged_file("s2e_training.pretrained", "nothing.pt",
                      "the shipped pretraining checkpoint", "--init CHECKPOINT")
