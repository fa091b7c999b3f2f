"""The shipped policy: a real contract, a recorded provenance, sane outputs on a real image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from s2e_policy.embodiment import load_embodiment
from s2e_policy.models import SHIPPED_POLICY_FILE, shipped_policy_path
from s2e_policy.preprocess import preprocess_image
from s2e_policy.runtime import Navigator, PolicyRuntime


@pytest.fixture(scope="module")
def runtime() -> PolicyRuntime:
    return PolicyRuntime.from_file(shipped_policy_path())


def test_contract_records_its_provenance(runtime: PolicyRuntime) -> None:
    c = runtime.contract
    assert shipped_policy_path().name == SHIPPED_POLICY_FILE
    assert (c.image_size, c.context_frames, c.num_anchors, c.waypoints) == (96, 5, 24, 10)
    assert c.frame_rate_hz == pytest.approx(5.0)
    assert c.precision == "fp32" and c.anchor_kind == "kmeans"
    assert c.embodiment["name"] == "wheeled"
    assert c.train_command.startswith("s2e train pretrain --config config/train/small.yaml")
    assert c.git_commit and len(c.train_config_sha256) == 64 and c.checkpoint_step > 0
    assert shipped_policy_path().stat().st_size < 5_000_000  # "a few MB" at most


def test_predicts_forward_motion_on_a_real_image(runtime: PolicyRuntime,
                                                 fixtures_dir: Path) -> None:
    frame = next(iter(sorted((fixtures_dir / "gnm").rglob("*.jpg"))))
    rgb = np.asarray(Image.open(frame).convert("RGB"))
    context = np.stack([preprocess_image(rgb, 96)] * 5)
    nav = Navigator(runtime, load_embodiment("wheeled"))
    d = nav.decide(0, np.zeros(3), np.array([8.0, 0.0]), context)
    assert np.all(np.isfinite(d.modes)) and d.probabilities.sum() == pytest.approx(1.0)
    # A goal straight ahead: the chosen mode heads forward at a walking pace.
    assert d.waypoints[-1, 0] > 0.5 and abs(d.waypoints[-1, 1]) < d.waypoints[-1, 0]
    assert 0.2 < d.speed_mps < 2.5
