"""The sim bridge core without a network: messages, lockstep, timeout policy, reset and skip.

The transport here is in-process: ``publish`` records the messages and, when a camera frame
goes out, a driver (a straight-to-goal controller, or nothing) answers with ``cmd_vel`` the
way a policy node would; ``spin_once`` delivers the answer. Messages are DDS IDL samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transforms3d.quaternions as tq

pytest.importorskip("cyclonedds")

from s2e_policy.embodiment import load_embodiment
from s2e_policy.geometry import world_to_robot
from s2e_policy.msgconv import odometry_to_state, raw_image_to_rgb, stamp_to_ns
from s2e_policy.ros import msgbuild
from s2e_policy.ros.dds.factory import DDS_MESSAGES as F
from s2e_sim_bridge.navbench.episodes import EpisodeSet, sample_episodes, scene_fingerprint
from s2e_sim_bridge.navbench.obstacles import obstacle_occupancy_fn
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.navbench.tasks import get_task
from s2e_sim_bridge.ros.bridge_core import SKIPPED, BridgeConfig, SimBridgeCore
from s2e_sim_bridge.scene import generate_street_scene, load_scene, save_scene

STREET = {"length_m": 30.0, "width_m": 14.0, "num_gaussians": 20_000}
RENDER_WIDTH_PX = 32
ORDER = ["clock", "tf", "odom", "camera_info", "depth", "image", "model_states"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("bridge")
    ply, _ = save_scene(generate_street_scene(7, **STREET)[0], tmp / "street.ply")
    scene = load_scene(ply)
    sim = NavBenchSim(scene, load_embodiment("wheeled"), SimConfig(render=False))
    task = get_task("empty", min_geodesic_m=3.0, max_geodesic_m=5.0, min_time_limit_s=15.0)
    e = sim.embodiment
    episodes = sample_episodes(sim.base_occupancy, task, 2, 1, e.footprint_radius_m,
                               e.nominal_speed_mps,
                               obstacle_occupancy_fn(scene.info.floor_height_m,
                                                     sim.config.occupancy))
    path = tmp / "episodes.json"
    EpisodeSet(scene.info.name, scene_fingerprint(scene), task, e.name, 1, episodes).save(path)
    return ply, path


def make_core(files: tuple[Path, Path], out: Path, **overrides: Any) -> SimBridgeCore:
    ply, episodes = files
    config = BridgeConfig(out=out, scene=ply, episodes_file=episodes,
                          render_width_px=RENDER_WIDTH_PX, **overrides)
    return SimBridgeCore(config, F)


def seek_goal(pose: np.ndarray, goal_xy: np.ndarray) -> tuple[float, float, float]:
    """Turn towards the goal, drive when roughly facing it (m/s, rad/s)."""
    local = world_to_robot(goal_xy[None], pose)[0]
    bearing = math.atan2(local[1], local[0])
    return (1.0 if abs(bearing) < 0.5 else 0.0, 0.0, float(np.clip(2.0 * bearing, -1.5, 1.5)))


class Loopback:
    """In-process transport: records messages; ``driver`` answers each camera frame."""

    def __init__(self, core: SimBridgeCore,
                 driver: Callable[[Loopback], Any] | None = None) -> None:
        self.core = core
        self.driver = driver
        self.sent: list[tuple[str, Any]] = []
        self.inbox: list[Any] = []
        self.pose = np.zeros(3)
        self.goal = np.zeros(2)
        self.frames = 0

    def publish(self, key: str, msg: Any) -> None:
        self.sent.append((key, msg))
        if key == "odom":
            s = odometry_to_state(msg)
            self.pose = np.array([s.x, s.y, s.yaw])
        elif key == "goal_pose":
            self.goal = np.array([msg.pose.position.x, msg.pose.position.y])
        elif key == "image":
            self.frames += 1
            answer = self.driver(self) if self.driver else None
            if answer is not None:
                self.inbox.append(answer)

    def spin_once(self, timeout_s: float) -> None:
        while self.inbox:
            self.core.on_cmd_vel(self.inbox.pop(0))

    def keys(self) -> list[str]:
        return [k for k, _ in self.sent]


def seeker(io: Loopback) -> Any:
    return msgbuild.twist(F, seek_goal(io.pose, io.goal))


def test_step_messages_order_frames_and_camera_transform(files, tmp_path: Path) -> None:
    core = make_core(files, tmp_path)
    ep_set = core.episode_sets[0]
    obs = core.sim.reset(ep_set.episodes[0], ep_set.task)
    core.clock_ns = 7_000_000_000
    messages = dict(core.step_messages(obs))
    assert [k for k, _ in core.step_messages(obs)] == ORDER
    for key in ("odom", "camera_info", "depth", "image"):
        assert stamp_to_ns(messages[key].header.stamp) == 7_000_000_000
    assert stamp_to_ns(messages["clock"].clock) == 7_000_000_000
    odom, base_cam = messages["tf"].transforms
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    assert (base_cam.header.frame_id, base_cam.child_frame_id) == \
        ("base_link", "camera_optical_frame")
    assert odometry_to_state(messages["odom"])[1:4] == pytest.approx(tuple(obs.pose))
    mount = core.embodiment.camera
    t = base_cam.transform.translation
    assert (t.x, t.y, t.z) == pytest.approx((mount.forward_offset_m, 0.0, mount.height_m))
    q = base_cam.transform.rotation
    optical_z = tq.quat2mat([q.w, q.x, q.y, q.z])[:, 2]  # the viewing direction in base_link
    pitch = math.radians(mount.pitch_deg)
    assert optical_z == pytest.approx([math.cos(pitch), 0.0, -math.sin(pitch)], abs=1e-9)
    image, depth, info = messages["image"], messages["depth"], messages["camera_info"]
    assert np.array_equal(raw_image_to_rgb(image), obs.rgb)
    assert (depth.encoding, depth.width, depth.height) == ("32FC1", image.width, image.height)
    depth_m = np.frombuffer(depth.data, "<f4").reshape(depth.height, depth.width)
    assert np.array_equal(depth_m, core.sim.last_depth_m) and depth_m.max() > 0
    assert np.reshape(info.k, (3, 3)) == pytest.approx(core.sim.K)
    states = messages["model_states"]
    assert states.name[0] == "robot" and len(states.name) == 1 + ep_set.task.num_pedestrians


def test_lockstep_run_reaches_goals_and_writes_the_report(files, tmp_path: Path) -> None:
    core = make_core(files, tmp_path / "run", policy_name="seeker")
    io = Loopback(core, seeker)
    result = core.run(io)
    assert [m.termination for m in result.episodes] == ["success", "success"]
    assert result.missed_commands == 0
    keys = io.keys()
    assert keys[:1 + len(ORDER)] == ["goal_pose", *ORDER]
    assert keys.count("goal_pose") == 2 and keys.count("image") == io.frames
    clocks = [stamp_to_ns(m.clock) for k, m in io.sent if k == "clock"]
    steps = np.diff(clocks)  # never backwards: 0.2 s steps and one gap between episodes
    assert set(steps.tolist()) == {200_000_000, round(core.config.episode_gap_s * 1e9)}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["tasks"]["empty"]["success"] == 1.0
    assert metrics["meta"]["policy"] == "seeker"
    assert (tmp_path / "run" / "report.md").is_file()
    # Deterministic: the same answers give the same trajectory.
    again = make_core(files, tmp_path / "again", policy_name="seeker")
    again.run(Loopback(again, seeker))
    first = np.load(tmp_path / "run" / "trajectories" / "empty-000.npy")
    assert np.array_equal(first, np.load(tmp_path / "again" / "trajectories" / "empty-000.npy"))


def test_timeout_policy_zero_or_held_command(files, tmp_path: Path) -> None:
    silent = make_core(files, tmp_path / "silent", command_timeout_s=0.0)
    io = Loopback(silent)
    metrics, poses = silent.run_episode(io, silent.episode_sets[0], 0)
    assert metrics.termination in ("timeout", "stuck") and not metrics.success
    assert silent.missed_commands == len(poses) - 1
    assert np.abs(poses - poses[0]).max() < 1e-3  # zero commands: it never moved

    def every_other(io: Loopback) -> Any:
        return seeker(io) if io.frames % 2 == 1 else None

    holding = make_core(files, tmp_path / "hold", command_timeout_s=0.0, command_hold_s=0.25)
    metrics, _ = holding.run_episode(Loopback(holding, every_other), holding.episode_sets[0], 0)
    assert metrics.success  # every missing answer reused the 0.2 s old command
    assert holding.missed_commands > 0


def test_reset_restarts_and_skip_ends_an_episode(files, tmp_path: Path) -> None:
    core = make_core(files, tmp_path)

    def reset_once(io: Loopback) -> Any:
        if io.frames == 3 and io.keys().count("goal_pose") == 1:
            assert core.request_reset()[0]
        return seeker(io)

    io = Loopback(core, reset_once)
    metrics, poses = core.run_episode(io, core.episode_sets[0], 0)
    assert metrics.success and io.keys().count("goal_pose") == 2
    assert np.array_equal(poses[0], core.episode_sets[0].episodes[0].start)

    def skip_at_4(io: Loopback) -> Any:
        if io.frames == 4:
            core.request_skip()
        return seeker(io)

    metrics, poses = core.run_episode(Loopback(core, skip_at_4), core.episode_sets[0], 1)
    assert metrics.termination == SKIPPED and not metrics.success and len(poses) == 4


def test_stamped_commands_must_answer_the_current_step(files, tmp_path: Path) -> None:
    core = make_core(files, tmp_path, stamped_cmd_vel=True, command_timeout_s=0.0)

    def stale_then_current(io: Loopback) -> Any:
        stamp = core._pending.stamp_ns
        vx, vy, wz = seek_goal(io.pose, io.goal)
        if stamp > 0:  # an answer to the previous step arriving late: ignored
            core.on_cmd_vel(msgbuild.twist_stamped(F, stamp - 1, "base_link", (0, 0, 9)))
        return msgbuild.twist_stamped(F, stamp, "base_link", (vx, vy, wz))

    metrics, _ = core.run_episode(Loopback(core, stale_then_current), core.episode_sets[0], 0)
    assert metrics.success and core.missed_commands == 0
