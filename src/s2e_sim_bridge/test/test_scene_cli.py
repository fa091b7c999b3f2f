"""``s2e scene info`` / ``s2e scene generate`` through the real ``s2e`` entry point."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import s2e_policy.cli
from s2e_sim_bridge.scene import load_scene

# The entry point setup.py declares for the scene command (the installed metadata may lag).
SCENE_ENTRY_POINT = EntryPoint(
    name="scene", value="s2e_sim_bridge.scene.cli:register", group="s2e.commands"
)


@pytest.fixture(autouse=True)
def scene_command_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register just the scene command, so other packages' commands cannot break this test."""
    monkeypatch.setattr(s2e_policy.cli, "entry_points", lambda group: [SCENE_ENTRY_POINT])


def test_info_on_fixture(fixtures_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert s2e_policy.cli.main(["scene", "info", str(fixtures_dir / "scenes" / "donut.ply")]) == 0
    out = capsys.readouterr().out
    assert "gaussians: 45624" in out and "sh degree: 0" in out
    assert "alignment applied: none" in out and "MB" in out and "opacity: min" in out


def test_generate_then_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_ply = tmp_path / "gen" / "street.ply"
    argv = [
        "scene",
        "generate",
        "--seed",
        "5",
        "--out",
        str(out_ply),
        "--num-gaussians",
        "8000",
        "--size",
        "30",
        "14",
    ]
    assert s2e_policy.cli.main(argv) == 0
    assert out_ply.is_file() and out_ply.with_suffix(".yaml").is_file()
    scene = load_scene(out_ply)
    assert scene.info is not None and scene.info.navigable_bounds_m == ((-14.5, -6.5), (14.5, 6.5))
    assert s2e_policy.cli.main(["scene", "info", str(out_ply)]) == 0
    assert f"gaussians: {len(scene)}" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert s2e_policy.cli.main(["scene", "info", str(tmp_path / "missing.ply")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.ply" in err and "cannot read" in err
    out_ply = str(tmp_path / "x.ply")
    argv = ["scene", "generate", "--seed", "1", "--out", out_ply, "--size", "5", "5"]
    assert s2e_policy.cli.main(argv) == 2
    assert "StreetConfig.length_m" in capsys.readouterr().err


def test_scene_subcommands_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        s2e_policy.cli.main(["scene", "--help"])
    out = capsys.readouterr().out
    assert "info" in out and "generate" in out and "map" in out
