"""The NavBench-GS sim bridge node's logic in plain Python: episodes out as ROS messages.

:class:`SimBridgeCore` runs NavBench-GS episode sets on :class:`NavBenchSim` (the simulator
``s2e navbench`` drives) and talks to a policy through a :class:`BridgeTransport` (the rclpy
adapter :mod:`s2e_sim_bridge.ros.bridge_node` or the Cyclone DDS adapter
:mod:`s2e_sim_bridge.ros.dds_bridge_node`). It writes the same outputs as ``s2e navbench``
(``episodes.csv``, ``trajectories/``, ``metrics.json``, ``trajectories_<task>.png``,
``report.md``) and resumes an interrupted run the same way.

Per control step it publishes, all stamped with the sim time ``t`` and in this order:
``/clock``; ``/tf`` (``odom -> base_link`` and ``base_link -> camera_optical_frame``, the
latter moving with a legged base's gait); ``odom`` (``nav_msgs/Odometry``, ``odom`` frame ==
the simulator's world); ``camera/camera_info``, ``camera/depth`` (``32FC1`` metres) and
``camera/image_raw`` (``rgb8``) in ``camera_optical_frame``; ``model_states``
(``gazebo_msgs/ModelStates``: the robot and the pedestrians). Each episode starts with its
``goal_pose`` (``odom`` frame).

Sim time drives everything (lockstep): after publishing the step at ``t`` the bridge waits for
the ``cmd_vel`` answering it (a ``TwistStamped`` stamped ``>= t``, or any ``Twist`` received
after the camera frame was sent), then advances the simulator one control period with it. So
a policy that answers every frame gives a deterministic run whatever the machine's speed.
Timeout policy: when no answer arrives within ``command_timeout_s`` of wall time, the base
keeps the last command if it is at most ``command_hold_s`` of sim time old (a robot base's
own cmd_vel watchdog), else it gets zero; each such step is counted in
:attr:`SimBridgeCore.missed_commands`.

The sim clock never runs backwards: episode ``k`` starts ``episode_gap_s`` after episode
``k - 1`` ended, so the policy's watchdog and frame buffer see the gap and start afresh.
Services (adapters): ``~/reset`` restarts the current episode; ``~/skip`` ends it (recorded
as a failure, termination ``skipped``) and moves on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import transforms3d.quaternions as tq

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.geometry import quaternion_from_yaw
from s2e_policy.msgconv import stamp_to_ns
from s2e_policy.ros import msgbuild
from s2e_policy.ros.msgbuild import MessageFactory
from s2e_policy.runtime.frames import NS_PER_S
from s2e_sim_bridge.navbench import report
from s2e_sim_bridge.navbench.episodes import EpisodeSet, scene_fingerprint
from s2e_sim_bridge.navbench.metrics import EpisodeMetrics, aggregate, episode_metrics
from s2e_sim_bridge.navbench.runner import episode_set_for, load_navbench_scene
from s2e_sim_bridge.navbench.sim import NavBenchSim, Observation, SimConfig
from s2e_sim_bridge.navbench.tasks import TASKS
from s2e_sim_bridge.render.camera import camera_from_pose

log = logging.getLogger("s2e_sim_bridge.ros")

TOPICS: dict[str, str] = {
    "clock": "/clock",
    "tf": "/tf",
    "odom": "odom",
    "camera_info": "camera/camera_info",
    "depth": "camera/depth",
    "image": "camera/image_raw",
    "model_states": "model_states",
    "goal_pose": "goal_pose",
    "cmd_vel": "cmd_vel",
    "reset": "~/reset",
    "skip": "~/skip",
}
"""Default topic and service names of the bridge (remappable by the adapters)."""

PUBLISHED: dict[str, str] = {
    "clock": "rosgraph_msgs/msg/Clock",
    "tf": "tf2_msgs/msg/TFMessage",
    "odom": "nav_msgs/msg/Odometry",
    "camera_info": "sensor_msgs/msg/CameraInfo",
    "depth": "sensor_msgs/msg/Image",
    "image": "sensor_msgs/msg/Image",
    "model_states": "gazebo_msgs/msg/ModelStates",
    "goal_pose": "geometry_msgs/msg/PoseStamped",
}
"""Message type of every topic the bridge publishes (keys of :data:`TOPICS`); ``image`` and
``depth`` use sensor-data QoS, ``/clock`` and ``/tf`` their ROS profiles, the rest the default."""

SENSOR_TOPICS = ("image", "depth")
"""Keys of :data:`PUBLISHED` sent with sensor-data QoS."""

SKIPPED = "skipped"
"""Termination recorded for an episode ended by the skip service."""

ROBOT_MODEL = "robot"
"""Name of the robot in ``model_states``; pedestrians are ``pedestrian_<i>``."""


class BridgeTransport(Protocol):
    """What an adapter provides: publish a message, and spin (run callbacks) for a while."""

    def publish(self, key: str, msg: Any) -> None:
        """Send ``msg`` on the topic of :data:`TOPICS` ``key``."""
        ...

    def spin_once(self, timeout_s: float) -> None:
        """Run callbacks of received messages and service calls (waits up to ``timeout_s``)."""
        ...


@dataclass(frozen=True)
class BridgeConfig:
    """What the bridge runs and how it waits.

    Attributes:
        out: output folder (same layout as ``s2e navbench --out``).
        scene: scene PLY/.splat with its YAML, or ``None`` for the generated street.
        tasks: task names (keys of ``navbench.tasks.TASKS``).
        episodes: episodes per task.
        seed: episode sampling seed.
        episodes_file: run this episode-set JSON instead of sampling (``tasks`` ignored).
        embodiment: ``wheeled``, ``go2`` or an embodiment YAML.
        render_width_px: camera width (height keeps the embodiment camera's aspect).
        backend: renderer backend (``cpu`` or ``cuda``).
        stamped_cmd_vel: ``cmd_vel`` is ``TwistStamped`` (else ``Twist``).
        command_timeout_s: wall-clock wait for the command of one step (s).
        command_hold_s: sim-time age up to which the last command is reused on a timeout (s).
        episode_gap_s: sim time between episodes (s).
        odom_frame: odometry (world) frame.
        base_frame: robot body frame.
        camera_frame: camera optical frame (OpenCV axes).
        policy_name: how the report names the policy under test.
    """

    out: Path
    scene: Path | None = None
    tasks: tuple[str, ...] = ("empty",)
    episodes: int = 5
    seed: int = 0
    episodes_file: Path | None = None
    embodiment: str = "wheeled"
    render_width_px: int = 128
    backend: str = "cpu"
    stamped_cmd_vel: bool = False
    command_timeout_s: float = 5.0
    command_hold_s: float = 0.5
    episode_gap_s: float = 2.0
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    camera_frame: str = "camera_optical_frame"
    policy_name: str = "ros policy"

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise S2EError(f"bridge: episodes must be >= 1, got {self.episodes}")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise S2EError(f"bridge: tasks {unknown or '[]'} unknown; expected some of "
                           f"{sorted(TASKS)}")
        for name in ("command_timeout_s", "command_hold_s", "episode_gap_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise S2EError(f"bridge: {name} must be a finite value >= 0, got {value}")


@dataclass
class _Pending:
    """The command awaited for the step published at ``stamp_ns``."""

    stamp_ns: int
    command: np.ndarray | None = None


@dataclass
class BridgeRun:
    """What a finished run produced.

    Attributes:
        per_task: aggregate metrics by task (as in ``metrics.json``).
        episodes: per-episode metrics in run order.
        missed_commands: steps whose command did not arrive in time.
    """

    per_task: dict[str, dict]
    episodes: list[EpisodeMetrics] = field(default_factory=list)
    missed_commands: int = 0


class SimBridgeCore:
    """NavBench-GS episodes published as ROS messages, stepped by the policy's ``cmd_vel``.

    Args:
        config: what to run.
        factory: how the adapter's transport builds messages.
    """

    def __init__(self, config: BridgeConfig, factory: MessageFactory) -> None:
        self.config = config
        self.factory = factory
        self.scene = load_navbench_scene(config.scene)
        self.embodiment = load_embodiment(config.embodiment)
        self.sim = NavBenchSim(self.scene, self.embodiment,
                               SimConfig(render_width_px=config.render_width_px,
                                         backend=config.backend))
        self.sim.render_images = True
        self.episode_sets = self._episode_sets()
        self.clock_ns = 0
        self.missed_commands = 0
        self._pending: _Pending | None = None
        self._last_command = np.zeros(3)
        self._last_command_ns: int | None = None
        self._missed_in_episode = 0
        self._request: str | None = None

    def _episode_sets(self) -> list[EpisodeSet]:
        c = self.config
        c.out.mkdir(parents=True, exist_ok=True)
        if c.episodes_file is not None:
            ep_set = EpisodeSet.load(c.episodes_file)
            ep_set.check_scene(self.scene.info.name, scene_fingerprint(self.scene),
                               str(c.episodes_file))
            if ep_set.embodiment != self.embodiment.name:
                raise S2EError(f"{c.episodes_file}: episodes are for embodiment "
                               f"{ep_set.embodiment!r}, the bridge runs "
                               f"{self.embodiment.name!r}")
            return [ep_set]
        return [episode_set_for(self.sim, name, c.episodes, c.seed,
                                cache=c.out / f"episodes_{name}.json")
                for name in dict.fromkeys(c.tasks)]

    # ------------------------------------------------------------------ inputs
    def on_cmd_vel(self, msg: Any) -> None:
        """A ``Twist`` or ``TwistStamped``: the answer to the pending step (others dropped)."""
        pending = self._pending
        if pending is None or pending.command is not None:
            return
        twist = msg
        if self.config.stamped_cmd_vel:
            if stamp_to_ns(msg.header.stamp) < pending.stamp_ns:
                return  # answers an earlier step
            twist = msg.twist
        command = np.array([twist.linear.x, twist.linear.y, twist.angular.z], dtype=np.float64)
        if not np.isfinite(command).all():
            log.warning("bridge: non-finite cmd_vel %s replaced by zero", command.tolist())
            command = np.zeros(3)
        pending.command = command

    def request_reset(self) -> tuple[bool, str]:
        """Restart the current episode (the ``~/reset`` service)."""
        self._request = "reset"
        return True, "the current episode restarts"

    def request_skip(self) -> tuple[bool, str]:
        """End the current episode as skipped (the ``~/skip`` service)."""
        self._request = SKIPPED
        return True, "the current episode ends (recorded as skipped)"

    # ------------------------------------------------------------------ outputs
    def step_messages(self, obs: Observation) -> list[tuple[str, Any]]:
        """Everything published for one simulator state, in publishing order."""
        f, c, sim = self.factory, self.config, self.sim
        t = self.clock_ns
        pose = obs.pose
        floor_z = self.scene.info.floor_height_m
        base_q = quaternion_from_yaw(float(pose[2]))
        position, yaw, pitch, roll = sim.physics.camera_pose()
        viewmat = camera_from_pose(*position, yaw, pitch, roll)
        cam_in_world_r = viewmat[:3, :3].T
        base_r = tq.quat2mat(base_q)
        base_t = np.array([pose[0], pose[1], floor_z])
        cam_t = base_r.T @ (position - base_t)
        cam_q = tq.mat2quat(base_r.T @ cam_in_world_r)
        if obs.rgb is None or sim.last_depth_m is None:
            raise S2EError("bridge: the simulator rendered no camera image")
        messages: list[tuple[str, Any]] = [
            ("clock", msgbuild.clock(f, t)),
            ("tf", msgbuild.tf_message(f, [
                msgbuild.transform_stamped(f, t, c.odom_frame, c.base_frame, base_t, base_q),
                msgbuild.transform_stamped(f, t, c.base_frame, c.camera_frame, cam_t, cam_q),
            ])),
            ("odom", msgbuild.odometry(f, t, c.odom_frame, c.base_frame, pose, obs.velocity,
                                       floor_z)),
            ("camera_info", msgbuild.camera_info(f, t, c.camera_frame, sim.width_px,
                                                 sim.height_px, sim.K)),
            ("depth", msgbuild.depth_image(f, t, c.camera_frame, sim.last_depth_m)),
            ("image", msgbuild.rgb_image(f, t, c.camera_frame, obs.rgb)),
            ("model_states", self._model_states(obs)),
        ]
        return messages

    def _model_states(self, obs: Observation) -> Any:
        crowd = self.sim.crowd.state
        yaw = float(obs.pose[2])
        c, s = math.cos(yaw), math.sin(yaw)
        vx, vy, wz = obs.velocity
        robot_world_velocity = np.array([c * vx - s * vy, s * vx + c * vy, wz])
        ped_yaw = np.arctan2(crowd.velocities[:, 1], crowd.velocities[:, 0])
        poses = np.vstack([obs.pose, np.column_stack([crowd.positions, ped_yaw])])
        velocities = np.vstack([robot_world_velocity,
                                np.column_stack([crowd.velocities, np.zeros(len(crowd))])])
        names = [ROBOT_MODEL] + [f"pedestrian_{i}" for i in range(len(crowd))]
        return msgbuild.model_states(self.factory, names, poses, velocities,
                                     self.scene.info.floor_height_m)

    # ------------------------------------------------------------------ loop
    def _publish_step(self, io: BridgeTransport, obs: Observation) -> None:
        self._pending = _Pending(self.clock_ns)
        for key, msg in self.step_messages(obs):
            io.publish(key, msg)

    def _await_command(self, io: BridgeTransport) -> np.ndarray | None:
        """The command for the pending step; ``None`` if a reset/skip was requested."""
        pending = self._pending
        assert pending is not None
        deadline = time.monotonic() + self.config.command_timeout_s
        while pending.command is None and self._request is None:
            remaining = deadline - time.monotonic()
            io.spin_once(max(0.0, remaining))  # at least one pass over received data
            if remaining <= 0:
                break
        if self._request is not None:
            return None
        if pending.command is not None:
            self._last_command, self._last_command_ns = pending.command, pending.stamp_ns
            return pending.command
        self.missed_commands += 1
        hold_ns = round(self.config.command_hold_s * NS_PER_S)
        held = self._last_command_ns is not None and \
            pending.stamp_ns - self._last_command_ns <= hold_ns
        log.log(logging.DEBUG if self._missed_in_episode else logging.WARNING,
                "bridge: no cmd_vel within %.3g s for t=%.2f s; %s",
                self.config.command_timeout_s, pending.stamp_ns / NS_PER_S,
                "keeping the last command" if held else "zero velocity")
        self._missed_in_episode += 1
        return self._last_command if held else np.zeros(3)

    def run_episode(self, io: BridgeTransport, ep_set: EpisodeSet, index: int
                    ) -> tuple[EpisodeMetrics, np.ndarray]:
        """Run one episode in lockstep with the policy (restarting it on a reset request).

        Returns:
            Its metrics and poses ``(T+1, 3)``.
        """
        episode = ep_set.episodes[index]
        while True:
            self._request = None
            self._last_command_ns = None
            self._missed_in_episode = 0
            start_ns = self.clock_ns
            obs = self.sim.reset(episode, ep_set.task)
            io.publish("goal_pose", msgbuild.pose_stamped(
                self.factory, start_ns, self.config.odom_frame, (*obs.goal_xy, 0.0)))
            self._publish_step(io, obs)
            done = False
            while not done:
                command = self._await_command(io)
                if command is None:
                    break
                obs, info = self.sim.step(command)
                self.clock_ns = start_ns + round(obs.time_s * NS_PER_S)
                self._publish_step(io, obs)
                done = info.done
            self._pending = None
            self.clock_ns += round(self.config.episode_gap_s * NS_PER_S)
            if self._request == "reset":
                log.info("bridge: episode %s restarted", episode.episode_id)
                continue
            record = self.sim.record()
            if self._request == SKIPPED:
                record = dataclasses.replace(record, termination=SKIPPED, success=False)
            self._request = None
            return episode_metrics(record, ep_set.task.personal_space_m), record.poses

    def run(self, io: BridgeTransport) -> BridgeRun:
        """Run every unfinished episode of every set, then write metrics and the report."""
        out = self.config.out
        result = BridgeRun(per_task={})
        for ep_set in self.episode_sets:
            done = {m.episode_id: m for m in report.read_finished(out)
                    if m.task == ep_set.task.name}
            for index, episode in enumerate(ep_set.episodes):
                if episode.episode_id in done:
                    continue
                metrics, poses = self.run_episode(io, ep_set, index)
                report.append_episode(out, metrics, poses)
                done[metrics.episode_id] = metrics
                result.episodes.append(metrics)
                log.info("bridge: %s %s (%s)", metrics.episode_id, metrics.termination,
                         ep_set.task.name)
            ordered = [done[e.episode_id] for e in ep_set.episodes]
            result.per_task[ep_set.task.name] = aggregate(ordered)
        result.missed_commands = self.missed_commands
        self.write_outputs(result.per_task)
        return result

    def write_outputs(self, per_task: dict[str, dict]) -> None:
        """``trajectories_<task>.png``, ``metrics.json`` and ``report.md`` (as ``s2e navbench``)."""
        out, c = self.config.out, self.config
        pictures: list[Path] = []
        for ep_set in self.episode_sets:
            agg = per_task[ep_set.task.name]
            obstacles = [o for e in ep_set.episodes for o in e.obstacles]
            pictures.append(report.plot_task_trajectories(
                out, self.sim.occupancy_with(obstacles), ep_set.episodes, ep_set.task.name,
                f"{ep_set.task.name}: {c.policy_name} on {self.scene.info.name} "
                f"(SR {agg['success']:.2f})"))
        title = (f"NavBench-GS over ROS 2: {c.policy_name} on {self.scene.info.name} "
                 f"({self.embodiment.name})")
        command = "navbench sim bridge (ROS 2)"
        meta = {"policy": c.policy_name, "scene": self.scene.info.name,
                "scene_fingerprint": scene_fingerprint(self.scene),
                "embodiment": self.embodiment.name, "seed": c.seed, "command": command,
                "transport": "ros2", "missed_commands": self.missed_commands}
        report.write_metrics(out, per_task, meta)
        report.write_report(out, per_task, title, pictures, command)
