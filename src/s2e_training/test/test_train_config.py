"""TrainConfig: strict YAML loading, data/model agreement, the shipped small config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from s2e_policy.errors import S2EError
from s2e_training.model.config import preset
from s2e_training.train.config import TrainConfig

SMALL_YAML = Path(__file__).resolve().parents[3] / "config" / "train" / "small.yaml"


@pytest.fixture(scope="module")
def small_dict() -> dict:
    return yaml.safe_load(SMALL_YAML.read_text())


def test_small_config_is_the_small_preset_and_round_trips(small_dict) -> None:
    cfg = TrainConfig.from_yaml(SMALL_YAML)
    small = preset("small")
    assert (cfg.model.image_size, cfg.model.context_frames, cfg.model.num_anchors) == (
        small.image_size, small.context_frames, small.num_anchors)
    assert cfg.anchor_kind == "kmeans"
    # Shared data fields come from the model.
    assert cfg.data.image_size_px == cfg.model.image_size
    assert cfg.data.context_dt_s == cfg.data.waypoint_dt_s == cfg.model.waypoint_dt_s
    assert cfg.data.num_waypoints == cfg.model.waypoints
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(epochs=3), "unknown key 'epochs'"),
        (lambda d: d.pop("seed"), "missing required key 'seed'"),
        (lambda d: d["optim"].update(momentum=0.9), "unknown key 'optim.momentum'"),
        (lambda d: d["optim"].pop("lr"), "missing required key 'optim.lr'"),
        (lambda d: d["data"].update(goal_max=3), "unknown key 'data.goal_max'"),
        (lambda d: d["loss"].update(mode="mse"), "'mode' must be one of"),
        (lambda d: d["model"].update(widht=3), "unknown key 'widht'"),
        (lambda d: d["augment"].update(flip_probability=2.0), "flip_probability"),
        (lambda d: d.update(steps="many"), "'steps' must be an integer"),
        (lambda d: d.update(batch_size=0), "'batch_size' must be an integer >= 1"),
        (lambda d: d["optim"].update(lr=-1.0), "'optim.lr' must be a finite number > 0"),
        (lambda d: d.update(optim=[1, 2]), "'optim' must be a mapping"),
    ],
)
def test_bad_keys_and_values_name_the_key(small_dict, edit, message) -> None:
    data = copy.deepcopy(small_dict)
    edit(data)
    with pytest.raises(S2EError, match=r"small\.yaml") as info:
        TrainConfig.from_dict(data, source=str(SMALL_YAML))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "model_key"),
    [
        ("waypoint_dt_s", 0.25, "waypoint_dt_s"),
        ("context_dt_s", 0.1, "waypoint_dt_s"),
        ("context_frames", 3, "context_frames"),
        ("image_size_px", 64, "image_size"),
        ("num_waypoints", 8, "waypoints"),
    ],
)
def test_data_section_must_match_the_model(small_dict, key, value, model_key) -> None:
    data = copy.deepcopy(small_dict)
    data["data"][key] = value
    with pytest.raises(S2EError, match=f"'data.{key}'.*must equal 'model.{model_key}'"):
        TrainConfig.from_dict(data)
    data["model"][model_key] = value  # agreeing values are accepted
    data["data"] = {k: v for k, v in data["data"].items() if k != key} | {key: value}
    if key == "context_dt_s":  # both time steps follow the model's waypoint_dt_s
        data["data"]["waypoint_dt_s"] = value
    assert getattr(TrainConfig.from_dict(data).data, key) == value


def test_augment_may_be_null_and_files_are_named(small_dict, tmp_path) -> None:
    data = copy.deepcopy(small_dict)
    data["augment"] = None
    assert TrainConfig.from_dict(data).augment is None
    with pytest.raises(S2EError, match=r"nope\.yaml: cannot read training config"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(S2EError, match=r"bad\.yaml: not valid YAML"):
        TrainConfig.from_yaml(bad)
