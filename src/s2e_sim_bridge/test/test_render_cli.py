"""``s2e render``: PNG output of a fixture scene, depth PNG, clear error for a bad file."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from s2e_policy.errors import S2EError
from s2e_sim_bridge.render.cli import register


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="s2e")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_render_command_writes_colour_and_depth_pngs(fixtures_dir: Path, tmp_path: Path) -> None:
    # tiny16.ply: 16 opaque Gaussians around the origin; view them from 6 m along -x
    args = parse(
        [
            "render", str(fixtures_dir / "scenes" / "tiny16.ply"),
            "--pose", "-6", "0", "0", "0", "0",
            "--width", "40", "--height", "30", "--fov", "60",
            "--out", str(tmp_path / "view.png"), "--depth-out", str(tmp_path / "d" / "depth.png"),
        ]
    )  # fmt: skip
    assert args.func(args) == 0
    view = np.asarray(Image.open(tmp_path / "view.png"))
    depth = np.asarray(Image.open(tmp_path / "d" / "depth.png"))
    assert view.shape == (30, 40, 3) and view.dtype == np.uint8
    assert depth.shape == (30, 40, 3)
    assert view.max() > 50, "the scene must be visible"
    assert depth.any(axis=2).any() and not depth.any(axis=2).all(), "black where nothing drawn"
    assert len(np.unique(depth.reshape(-1, 3), axis=0)) > 3, "depth must be colour-mapped"


def test_render_command_reports_a_missing_scene(tmp_path: Path) -> None:
    args = parse(
        ["render", str(tmp_path / "nope.ply"), "--pose", "0", "0", "1", "0", "0",
         "--out", str(tmp_path / "v.png")]
    )  # fmt: skip
    with pytest.raises(S2EError, match=r"nope\.ply"):
        args.func(args)
    assert not (tmp_path / "v.png").exists()
