"""NavBench-GS with an ONNX policy: make_agent, the OnnxAgent loop and ``s2e navbench``.

The policy is the analytic goal seeker of ``src/s2e_policy/test/onnx_models.py`` (rays fanned
around the heading, the one nearest the goal bearing scores highest): a real ONNX graph with
a contract, run by the onboard runtime on the simulator's camera frames.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.cli import main
from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.models import SHIPPED_POLICY_FILE
from s2e_policy.runtime import StopReason, goal_in_robot
from s2e_sim_bridge.navbench.agents import ExpertAgent, OnnxAgent, make_agent
from s2e_sim_bridge.navbench.episodes import EpisodeSet, sample_episodes, scene_fingerprint
from s2e_sim_bridge.navbench.obstacles import obstacle_occupancy_fn
from s2e_sim_bridge.navbench.runner import run_episode
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.navbench.tasks import get_task
from s2e_sim_bridge.scene import generate_street_scene, save_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "s2e_policy" / "test"))
import onnx_models as om

STREET = {"length_m": 30.0, "width_m": 14.0, "num_gaussians": 20_000}
RENDER_WIDTH_PX = 32  # 32 x 24 camera (4:3), centre-cropped and resized to the contract's 16


@pytest.fixture(scope="module")
def sim() -> NavBenchSim:
    scene, _ = generate_street_scene(7, **STREET)
    return NavBenchSim(scene, load_embodiment("wheeled"),
                       SimConfig(render_width_px=RENDER_WIDTH_PX))


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return om.save(om.goal_seeker(speed_mps=1.0),
                   tmp_path_factory.mktemp("onnx_agent") / "seeker.onnx")


def empty_episodes(sim: NavBenchSim, n: int) -> EpisodeSet:
    task = get_task("empty", min_geodesic_m=5.0, max_geodesic_m=8.0)
    e = sim.embodiment
    eps = sample_episodes(sim.base_occupancy, task, n, 0, e.footprint_radius_m,
                          e.nominal_speed_mps,
                          obstacle_occupancy_fn(sim.scene.info.floor_height_m,
                                                sim.config.occupancy))
    return EpisodeSet(sim.scene.info.name, scene_fingerprint(sim.scene), task, e.name, 0, eps)


def test_make_agent_dispatch(policy: Path, tmp_path: Path) -> None:
    agent = make_agent(str(policy))
    assert isinstance(agent, OnnxAgent) and agent.needs_images and agent.name == "seeker.onnx"
    assert isinstance(make_agent(policy), OnnxAgent)  # a Path works too
    assert isinstance(make_agent("expert"), ExpertAgent)  # built-ins unchanged
    with pytest.raises(S2EError, match=r"missing\.onnx: policy file not found"):
        make_agent(str(tmp_path / "missing.onnx"))
    with pytest.raises(S2EError, match="unknown policy 'nope'"):
        make_agent("nope")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(policy.read_bytes()[:300])
    with pytest.raises(S2EError, match="not a loadable ONNX model"):
        make_agent(str(corrupt))


def test_agent_feeds_sim_frames_pose_and_goal_with_sim_time(sim, policy) -> None:
    ep_set = empty_episodes(sim, 1)
    agent = OnnxAgent(policy)
    sim.render_images = True
    obs = sim.reset(ep_set.episodes[0], ep_set.task)
    agent.reset(sim, obs)
    reasons, distances = [], []
    for _ in range(14):
        command = agent.act(obs)
        out = agent.last
        assert agent.pilot.frames.newest_stamp_ns == round(obs.time_s * 1e9)
        reasons.append(out.safe.reasons)
        if out.decision is not None:
            expected = goal_in_robot(obs.pose, obs.goal_xy)
            np.testing.assert_allclose(out.decision.goal.xy, expected.xy)
        distances.append(float(np.linalg.norm(obs.pose[:2] - obs.goal_xy)))
        obs, info = sim.step(command)
        assert not info.done
    # Sim camera at 5 Hz, contract context 3 frames at 4 Hz: frames at 0, 0.2, 0.4 s fill it.
    assert reasons[:2] == [(StopReason.CONTEXT_INCOMPLETE,)] * 2
    assert all(r == () for r in reasons[2:])
    assert distances[-1] < distances[2] - 1.0  # drives towards the goal


def test_episode_runs_to_success(sim, policy) -> None:
    ep_set = empty_episodes(sim, 1)  # a 5.6 m walk along the street, nothing in the way
    metrics, poses, _ = run_episode(sim, ep_set, 0, make_agent(str(policy)))
    assert metrics.success
    assert np.linalg.norm(poses[-1, :2] - ep_set.episodes[0].goal) <= ep_set.task.goal_radius_m


def test_agent_refuses_a_camera_slower_than_the_context(sim, policy) -> None:
    slow = NavBenchSim(sim.scene, load_embodiment("wheeled"),
                       SimConfig(control_rate_hz=2.0, render_width_px=RENDER_WIDTH_PX))
    ep_set = empty_episodes(slow, 1)
    obs = slow.reset(ep_set.episodes[0], ep_set.task)
    with pytest.raises(S2EError, match="camera runs at 2 Hz, slower than the policy's 4 Hz"):
        OnnxAgent(policy).reset(slow, obs)
    ep_set = empty_episodes(sim, 1)
    obs = sim.reset(ep_set.episodes[0], ep_set.task)
    with pytest.raises(S2EError, match="needs camera images"):
        OnnxAgent(policy).reset(sim, dataclasses.replace(obs, rgb=None))


def test_cli_runs_an_onnx_policy(policy, tmp_path: Path) -> None:
    scene_path = tmp_path / "street.ply"
    save_scene(generate_street_scene(7, **STREET)[0], scene_path)
    out = tmp_path / "run"
    common = ["navbench", "--scene", str(scene_path), "--task", "empty", "--episodes", "1",
              "--videos", "0", "--render-width", str(RENDER_WIDTH_PX), "--no-progress"]
    assert main([*common, "--policy", str(policy), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["policy"] == "seeker.onnx"
    assert metrics["tasks"]["empty"]["episodes"] == 1
    missing = str(tmp_path / "missing.onnx")
    assert main([*common, "--policy", missing, "--out", str(tmp_path / "x")]) == 2


def test_cli_default_policy_is_the_shipped_one(tmp_path: Path) -> None:
    scene_path = tmp_path / "street.ply"
    save_scene(generate_street_scene(7, **STREET)[0], scene_path)
    out = tmp_path / "run"
    assert main(["navbench", "--scene", str(scene_path), "--task", "empty", "--episodes", "1",
                 "--videos", "0", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["policy"] == SHIPPED_POLICY_FILE
    assert metrics["tasks"]["empty"]["episodes"] == 1
