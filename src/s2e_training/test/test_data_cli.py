import argparse

import numpy as np
import pytest
from PIL import Image

from s2e_policy.errors import S2EError
from s2e_training.data.cli import register

ORANGE = np.array([255, 165, 0])  # matplotlib "orange": the waypoint overlay colour


def run(argv):
    parser = argparse.ArgumentParser(prog="s2e")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def orange_pixels(path):
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    return int(np.sum(np.abs(rgb - ORANGE).sum(axis=2) < 40))


def test_inspect_gnm(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    gnm = fixtures_dir / "gnm" / "euroc_cam1"
    argv = ["data", "inspect", str(gnm), "--rate-hz", "20", "--out", str(out), "--tiles", "4"]
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "frames 95, poses 95, duration 4.70 s" in text
    assert "frame rate 20.00 Hz" in text
    assert "gaps > 1.5x median interval: 0" in text
    assert "path length 2.35 m" in text
    assert orange_pixels(out) > 50  # waypoints drawn on the frames
    plot = tmp_path / "sheet_trajectory.png"
    with Image.open(plot) as image:
        assert image.size[0] > 300


def test_inspect_bag(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "bag.png"
    bag = fixtures_dir / "bags" / "euroc_cam1_mcap"
    argv = [
        "data", "inspect", str(bag), "--image-topic", "/camera/image_raw/compressed",
        "--odom-topic", "/odom", "--out", str(out), "--tiles", "2",
    ]
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "frames 95, poses 236" in text
    assert "pose rate 50.00 Hz" in text
    assert out.is_file() and (tmp_path / "bag_trajectory.png").is_file()


def test_inspect_needs_the_source_options(fixtures_dir, tmp_path):
    bag = fixtures_dir / "bags" / "euroc_cam1_mcap"
    with pytest.raises(S2EError, match="--image-topic and --odom-topic"):
        run(["data", "inspect", str(bag), "--out", str(tmp_path / "x.png")])
    gnm = fixtures_dir / "gnm" / "euroc_cam1"
    with pytest.raises(S2EError, match="--rate-hz"):
        run(["data", "inspect", str(gnm), "--out", str(tmp_path / "x.png")])
    with pytest.raises(S2EError, match="no such file"):
        run(["data", "inspect", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")])


def test_data_without_subcommand_prints_help(capsys):
    assert run(["data"]) == 2
    assert "inspect" in capsys.readouterr().out
