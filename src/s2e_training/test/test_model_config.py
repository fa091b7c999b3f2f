"""ModelConfig: presets, strict dict/YAML loading, validation errors that name the key."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from s2e_policy.errors import S2EError
from s2e_training.model.config import EncoderConfig, ModelConfig, ModelConfigError, preset


def test_paper_preset_matches_the_paper_figures() -> None:
    cfg = preset("paper")
    assert (cfg.context_frames, cfg.image_size, cfg.num_anchors) == (11, 256, 64)
    assert (cfg.decoder_layers, cfg.waypoints, cfg.waypoint_scale_m) == (6, 10, 0.25)
    assert cfg.nominal_speed_mps == pytest.approx(cfg.waypoint_scale_m / cfg.waypoint_dt_s)


def test_small_preset_is_small() -> None:
    cfg = preset("small")
    assert cfg.encoder.kind == "cnn"
    assert cfg.image_size <= 128 and cfg.context_frames <= 6 and cfg.decoder_layers <= 3


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ModelConfigError, match="paper"):
        preset("huge")


def test_round_trip_through_yaml(tmp_path) -> None:
    cfg = dataclasses.replace(preset("small"), anchor_kind="uniform", dropout=0.1)
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert ModelConfig.from_yaml(path) == cfg


def test_preset_with_overrides_merges_nested_sections() -> None:
    cfg = ModelConfig.from_dict(
        {"preset": "small", "num_anchors": 8, "encoder": {"channels": [8, 16]}}
    )
    assert cfg.num_anchors == 8
    assert cfg.encoder == dataclasses.replace(preset("small").encoder, channels=(8, 16))
    assert cfg.d_model == preset("small").d_model


def test_unknown_key_is_named_with_its_path() -> None:
    with pytest.raises(ModelConfigError, match=r"unknown key 'encoder\.kinds'"):
        ModelConfig.from_dict({"preset": "small", "encoder": {"kinds": "vit"}})
    with pytest.raises(ModelConfigError, match="unknown key 'num_anchor'"):
        ModelConfig.from_dict({"preset": "small", "num_anchor": 3})


def test_missing_required_key_is_named(tmp_path) -> None:
    data = preset("small").to_dict()
    del data["decoder_layers"]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(S2EError, match=r"m\.yaml: missing required key 'decoder_layers'"):
        ModelConfig.from_yaml(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"num_anchors": "64"}, "'num_anchors' must be an integer"),
        ({"num_anchors": True}, "'num_anchors' must be an integer"),
        ({"num_anchors": 0}, "'num_anchors' must be an integer >= 1"),
        ({"heads": 3}, "'d_model' must be divisible by heads=3"),
        ({"anchor_kind": "grid"}, "'anchor_kind' must be one of"),
        ({"encoder": {"kind": "resnet"}}, "'encoder.kind' must be one of"),
        ({"encoder": {"channels": 16}}, "'encoder.channels' must be a list"),
        ({"encoder": {"kind": "vit", "patch_size": 7}}, "'encoder.patch_size' must be a divisor"),
        ({"encoder": {"kind": "timm", "timm_model": "x"}}, "'encoder.weights_path'"),
        ({"waypoint_dt_s": 0}, "'waypoint_dt_s' must be > 0 seconds"),
        ({"waypoints": 1}, "'waypoints' must be an integer >= 2"),
    ],
)
def test_bad_values_name_the_key(override: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        ModelConfig.from_dict({"preset": "small", **override}, source="cfg.yaml")


def test_int_accepted_for_float_fields() -> None:
    cfg = ModelConfig.from_dict({"preset": "small", "waypoint_scale_m": 1})
    assert isinstance(cfg.waypoint_scale_m, float) and cfg.waypoint_scale_m == 1.0


def test_unreadable_and_invalid_yaml(tmp_path) -> None:
    with pytest.raises(ModelConfigError, match="cannot read"):
        ModelConfig.from_yaml(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ModelConfigError, match="not valid YAML"):
        ModelConfig.from_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ModelConfigError, match="expected a mapping"):
        ModelConfig.from_yaml(scalar)


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ModelConfigError, match=r"encoder\.kind"):
        dataclasses.replace(preset("small"), encoder=EncoderConfig(kind="dino"))
