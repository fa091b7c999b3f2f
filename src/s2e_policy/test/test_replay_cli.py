"""``s2e replay`` end to end on the real bag, and the live-replay launch file."""

from __future__ import annotations

import ast
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.bags import list_topics
from s2e_policy.cli import main
from s2e_policy.replay.annotate import CMD_VEL_TOPIC, MARKERS_TOPIC, WAYPOINTS_TOPIC
from s2e_policy.replay.plots import FILES as PLOT_FILES

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_models as om

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "replay.launch.py"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("cli_models")
    contract = om.make_contract()
    k, w = contract.num_anchors, contract.waypoints
    still = om.build_policy(contract, np.zeros((k, w, 2)), np.zeros(k), np.zeros((k, w)))
    return [om.save(om.goal_seeker(contract, speed_mps=0.5), folder / "seeker.onnx"),
            om.save(still, folder / "still.onnx")]


def test_two_models_one_table_csv_json_plots_and_annotated_bag(
        mcap_bag: Path, models: list[Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out, annotated = tmp_path / "run", tmp_path / "annotated"
    status = main(["replay", str(mcap_bag), "--model", str(models[0]), "--model",
                   str(models[1]), "--image-topic", "/camera/image_raw/compressed",
                   "--odom-topic", "/odom", "--goal-horizon", "3", "--every-frame",
                   "--out", str(out), "--annotated-dir", str(annotated), "--worst", "4"])
    assert status == 0
    table = capsys.readouterr().out
    assert "| seeker | 61 |" in table and "| still | 61 |" in table
    assert (out / "comparison.md").read_text() in table
    with (out / "comparison.csv").open() as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    # the still policy's ADE is the distance travelled: about 0.5 m/s * 0.25 s * 3
    assert float(rows["still"]["ade_m"]) == pytest.approx(0.375, rel=0.02)
    assert float(rows["seeker"]["ade_m"]) < 0.05
    for label in ("seeker", "still"):
        summary = json.loads((out / label / "metrics.json").read_text())
        assert summary["status_counts"] == {"context_incomplete": 8, "evaluated": 61,
                                            "outside_odometry": 26}
        assert summary["contract"]["context_frames"] == 3
        with (out / label / "instants.csv").open() as f:
            instants = list(csv.DictReader(f))
        assert len(instants) == 95
        evaluated = [r for r in instants if r["status"] == "evaluated"]
        assert np.mean([float(r["ade_m"]) for r in evaluated]) == pytest.approx(
            summary["ade_m"]["mean"], rel=1e-5)
        for name in PLOT_FILES:
            assert (out / label / name).stat().st_size > 10_000
        topics = {t.name: t for t in list_topics(annotated / f"euroc_cam1_mcap_s2e_{label}")}
        assert topics["/camera/image_raw"].count == 95 and topics["/odom"].count == 236
        assert topics[CMD_VEL_TOPIC].count == 95
        assert topics[WAYPOINTS_TOPIC].count == topics[MARKERS_TOPIC].count == 87


def test_missing_topic_exits_2_with_the_topic_list(
        mcap_bag: Path, models: list[Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["replay", str(mcap_bag), "--model", str(models[0]), "--image-topic",
                   "/image", "--odom-topic", "/odom", "--out", str(tmp_path / "x")])
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no topic '/image'" in err and "/camera/image_raw" in err


def test_keep_partial_writes_results_and_exits_1(
        mcap_bag: Path, models: list[Path], tmp_path: Path) -> None:
    bag = tmp_path / "corrupt"
    shutil.copytree(mcap_bag, bag)
    storage = bag / "euroc_cam1_mcap.mcap"
    storage.chmod(0o644)
    size = storage.stat().st_size
    with storage.open("r+b") as f:
        f.seek(size // 2)
        f.write(b"\xff" * (size // 50))
    args = ["replay", str(bag), "--model", str(models[1]), "--image-topic",
            "/camera/image_raw", "--odom-topic", "/odom", "--out", str(tmp_path / "out"),
            "--no-plots", "--no-annotated-bag"]
    assert main(args) == 2
    assert not (tmp_path / "out").exists()
    assert main([*args, "--keep-partial"]) == 1
    summary = json.loads((tmp_path / "out" / "still" / "metrics.json").read_text())
    assert summary["partial"] is True and summary["evaluated"] > 0


def test_launch_file_plays_the_bag_into_the_policy_node() -> None:
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    assert {"s2e_policy", "policy_node", "--clock", "use_sim_time", "--use-sim-time",
            "model_path"} <= strings


def test_launch_file_builds_with_ros() -> None:
    pytest.importorskip("launch_ros")  # only where ROS 2 is installed
    namespace: dict = {}
    exec(compile(LAUNCH_FILE.read_text(), str(LAUNCH_FILE), "exec"), namespace)
    assert namespace["generate_launch_description"]().entities
