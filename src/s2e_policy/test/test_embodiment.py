"""Embodiment YAML loading and strict validation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from s2e_policy.embodiment import (
    EmbodimentError,
    available_embodiments,
    embodiment_from_dict,
    load_embodiment,
)
from s2e_policy.errors import S2EError

PAPER_MAX_LINEAR_MPS = 2.0
PAPER_MAX_ANGULAR_RADPS = 2.0


def _go2_dict() -> dict:
    return yaml.safe_load(
        (Path(__file__).parents[1] / "s2e_policy" / "embodiments" / "go2.yaml").read_text()
    )


def test_packaged_embodiments_load_with_paper_limits():
    assert available_embodiments() == ["go2", "wheeled"]
    wheeled, go2 = load_embodiment("wheeled"), load_embodiment("go2")
    assert wheeled.kind == "diff_drive" and not wheeled.is_holonomic and wheeled.gait is None
    assert go2.kind == "holonomic_legged" and go2.is_holonomic and go2.gait is not None
    for emb in (wheeled, go2):
        assert emb.max_linear_mps == PAPER_MAX_LINEAR_MPS
        assert emb.max_angular_radps == PAPER_MAX_ANGULAR_RADPS
    assert 0.3 <= wheeled.footprint_radius_m <= 0.4 and 0.6 <= wheeled.camera.height_m <= 0.7
    assert 0.25 <= go2.footprint_radius_m <= 0.35 and 0.35 <= go2.camera.height_m <= 0.4
    assert 0.1 <= go2.velocity_lag_s <= 0.2
    assert go2.gait.bob_amplitude_m > 0 and go2.gait.roll_amplitude_deg > 0


def test_load_from_path(tmp_path):
    data = _go2_dict()
    data["name"] = "custom"
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_embodiment(path).name == "custom"
    assert load_embodiment(str(path)).name == "custom"


def test_unknown_name_lists_available():
    with pytest.raises(S2EError, match=r"unknown embodiment 'spot'.*go2, wheeled"):
        load_embodiment("spot")


def test_missing_file_names_path(tmp_path):
    with pytest.raises(EmbodimentError, match=r"nope\.yaml: embodiment file not found"):
        load_embodiment(tmp_path / "nope.yaml")


def test_invalid_yaml_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(EmbodimentError, match=r"bad\.yaml: not valid YAML"):
        load_embodiment(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("mass_kg"), "missing key 'mass_kg'"),
        (lambda d: d.update(max_speed=1.0), "unknown key 'max_speed'"),
        (lambda d: d["camera"].pop("hfov_deg"), "missing key 'camera.hfov_deg'"),
        (lambda d: d["camera"].update(fov=1), "unknown key 'camera.fov'"),
        (lambda d: d["gait"].update(bob=1), "unknown key 'gait.bob'"),
        (lambda d: d.pop("gait"), "missing key 'gait'"),
        (lambda d: d.update(kind="tracked"), "'kind' must be one of"),
        (lambda d: d.update(max_linear_mps=-1.0), "'max_linear_mps' must be > 0"),
        (lambda d: d.update(velocity_lag_s="fast"), "'velocity_lag_s' must be a finite number"),
        (lambda d: d.update(mass_kg=True), "'mass_kg' must be a finite number"),
        (lambda d: d["camera"].update(image_width_px=64.5), "'camera.image_width_px' must be a"),
        (lambda d: d["camera"].update(hfov_deg=200.0), "'camera.hfov_deg' must be < 180"),
        (lambda d: d["gait"].update(bob_amplitude_m=-0.1), "'gait.bob_amplitude_m' must be >= 0"),
        (lambda d: d.update(camera=[1, 2]), "camera must be a mapping"),
    ],
)
def test_strict_validation_names_source_and_key(edit, message):
    data = copy.deepcopy(_go2_dict())
    edit(data)
    with pytest.raises(EmbodimentError, match=message) as info:
        embodiment_from_dict(data, "robots/go2.yaml")
    assert str(info.value).startswith("robots/go2.yaml: ")


def test_diff_drive_rules():
    data = _go2_dict()
    data["kind"] = "diff_drive"
    with pytest.raises(EmbodimentError, match="'gait' is only valid for kind holonomic_legged"):
        embodiment_from_dict(copy.deepcopy(data))
    data.pop("gait")
    with pytest.raises(EmbodimentError, match="'max_lateral_mps' must be 0 for kind diff_drive"):
        embodiment_from_dict(copy.deepcopy(data))
    data["max_lateral_mps"] = 0.0
    assert embodiment_from_dict(data).kind == "diff_drive"


def test_top_level_must_be_mapping():
    with pytest.raises(EmbodimentError, match=r"x\.yaml: top level must be a mapping"):
        embodiment_from_dict([1, 2], "x.yaml")
