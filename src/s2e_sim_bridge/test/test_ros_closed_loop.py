"""Closed loop over DDS: the sim bridge and the policy node as separate processes.

Both run their Cyclone DDS adapters on loopback (a random domain id, ``loopback_config_xml``):
the bridge publishes a NavBench-GS episode (camera, odom, /tf, /clock, goal_pose) and steps
the simulator with the policy node's ``cmd_vel`` in lockstep; the policy is a real ONNX graph
(the analytic goal seeker of ``src/s2e_policy/test/onnx_models.py``) run by the onboard
runtime. This process calls the bridge's ``~/skip`` service (``std_srvs/Trigger`` over DDS)
during the first episode; the second must succeed and the report/metrics must be written.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("cyclonedds")

from s2e_policy.embodiment import load_embodiment
from s2e_policy.ros.dds import CLOCK_QOS, CONFIG_ENV, DdsNode, idl_class, loopback_config_xml
from s2e_policy.ros.dds.node import MAX_DOMAIN_ID
from s2e_sim_bridge.navbench.episodes import EpisodeSet, sample_episodes, scene_fingerprint
from s2e_sim_bridge.navbench.obstacles import obstacle_occupancy_fn
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.navbench.tasks import get_task
from s2e_sim_bridge.scene import generate_street_scene, load_scene, save_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "s2e_policy" / "test"))
import onnx_models as om

STREET = {"length_m": 30.0, "width_m": 14.0, "num_gaussians": 20_000}
RENDER_WIDTH_PX = 32  # a 32 x 24 camera; the runtime resizes it to the contract's 16 px
SIM_RATE_HZ = 5.0  # NavBench-GS control rate = the test policy's frame rate
BRIDGE_TIMEOUT_S = 150.0
SKIP_AT_S = 1.0  # sim time into the first episode at which this test skips it


def _episodes(tmp: Path) -> tuple[Path, Path]:
    """A small generated street saved as PLY + YAML and two short empty-task episodes."""
    ply, _ = save_scene(generate_street_scene(7, **STREET)[0], tmp / "street.ply")
    scene = load_scene(ply)  # episodes are tied to the scene as the bridge loads it
    sim = NavBenchSim(scene, load_embodiment("wheeled"),
                      SimConfig(render_width_px=RENDER_WIDTH_PX, render=False))
    task = get_task("empty", min_geodesic_m=4.0, max_geodesic_m=6.0, min_time_limit_s=20.0)
    e = sim.embodiment
    episodes = sample_episodes(sim.base_occupancy, task, 2, 3, e.footprint_radius_m,
                               e.nominal_speed_mps,
                               obstacle_occupancy_fn(scene.info.floor_height_m,
                                                     sim.config.occupancy))
    ep_set = EpisodeSet(scene.info.name, scene_fingerprint(scene), task, e.name, 3, episodes)
    path = tmp / "episodes.json"
    ep_set.save(path)
    return ply, path


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def skip_first_episode() -> None:
    """Wait until the first episode runs (sim time >= SKIP_AT_S), then call ``~/skip``."""
    clock_ns: list[int] = []
    with DdsNode("skipper") as node:
        node.subscription("/clock", "rosgraph_msgs/msg/Clock",
                          lambda m: clock_ns.append(m.clock.sec * 10**9 + m.clock.nanosec),
                          CLOCK_QOS)
        skip = node.client("/navbench_bridge/skip", "std_srvs/srv/Trigger")
        assert skip.wait_for_service(BRIDGE_TIMEOUT_S)
        assert node.spin_until(lambda: bool(clock_ns) and clock_ns[-1] >= SKIP_AT_S * 1e9,
                               BRIDGE_TIMEOUT_S)
        reply = skip.call(idl_class("std_srvs/srv/Trigger_Request")(), BRIDGE_TIMEOUT_S)
        assert reply.success, reply.message


def test_bridge_and_policy_node_complete_an_episode_over_dds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ply, episodes = _episodes(tmp_path)
    contract = om.make_contract(frame_rate_hz=SIM_RATE_HZ, waypoint_dt_s=1.0 / SIM_RATE_HZ)
    policy = om.save(om.goal_seeker(contract, speed_mps=1.0), tmp_path / "seeker.onnx")
    domain = random.Random(os.getpid() ^ time.time_ns()).randrange(1, MAX_DOMAIN_ID)
    monkeypatch.setenv(CONFIG_ENV, loopback_config_xml())  # this process: the skip client
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    env = dict(os.environ)
    out = tmp_path / "run"
    bridge = _spawn(["s2e_sim_bridge.ros.dds_bridge_node", "--scene", str(ply),
                     "--episodes-file", str(episodes), "--render-width", str(RENDER_WIDTH_PX),
                     "--out", str(out), "--policy-name", "seeker.onnx",
                     "--wait-for-policy-s", "60"], env, tmp_path / "bridge.log")
    node = _spawn(["s2e_policy.ros.dds_policy_node", "--use-sim-time",
                   "-p", f"model_path:={policy}", "-p", "embodiment:=wheeled",
                   "-r", "image:=camera/image_raw"], env, tmp_path / "policy.log")
    try:
        skip_first_episode()
        bridge.wait(timeout=BRIDGE_TIMEOUT_S)
    finally:
        for child in (bridge, node):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("bridge", "policy")}
    assert bridge.returncode == 0, logs
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks"]["empty"]["episodes"] == 2
    rows = (out / "episodes.csv").read_text().splitlines()[1:]
    assert [row.split(",")[-1] for row in rows] == ["skipped", "success"], logs
    assert metrics["meta"]["missed_commands"] == 0, logs
    assert (out / "report.md").is_file() and (out / "episodes.csv").is_file()
    assert (out / "trajectories_empty.png").is_file()
    assert node.returncode == 0, logs["policy"]
