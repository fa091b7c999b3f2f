"""Run an agent through a NavBench-GS episode set and write the results.

The run is resumable: finished episodes are appended to ``episodes.csv`` as they end, and a
re-run with the same output folder skips them (Ctrl-C loses at most the episode in flight).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench import report
from s2e_sim_bridge.navbench.agents import NavAgent
from s2e_sim_bridge.navbench.episodes import EpisodeSet, sample_episodes, scene_fingerprint
from s2e_sim_bridge.navbench.metrics import EpisodeMetrics, aggregate, episode_metrics
from s2e_sim_bridge.navbench.obstacles import obstacle_occupancy_fn
from s2e_sim_bridge.navbench.sim import NavBenchSim
from s2e_sim_bridge.navbench.tasks import get_task
from s2e_sim_bridge.scene import GaussianScene, generate_street_scene, load_scene

log = logging.getLogger(__name__)
# The embedded default scene: the generated street of this seed.
DEFAULT_SCENE_SEED = 0


@dataclass
class RunResult:
    """Per-episode metrics and the aggregate of one task."""

    task: str
    episodes: list[EpisodeMetrics]
    aggregate: dict


def run_episode(sim: NavBenchSim, episode_set: EpisodeSet, index: int, agent: NavAgent,
                video: bool = False, camera: list[np.ndarray] | None = None,
                ) -> tuple[EpisodeMetrics, np.ndarray, list[np.ndarray]]:
    """Run one episode to its end.

    Args:
        sim: the simulator.
        episode_set: the episodes (and their task).
        index: which episode.
        agent: what drives.
        video: also return camera + top-down video frames.
        camera: if given, the camera image ``(H, W, 3)`` uint8 of every pose is appended to
            it (one per row of the returned poses), e.g. to record a training dataset.

    Returns:
        The episode's metrics, its poses ``(T+1, 3)``, and (with ``video``) the frames
        ``(H, W', 3)`` uint8 of camera + top-down map (else an empty list).
    """
    sim.render_images = agent.needs_images or video or camera is not None
    obs = sim.reset(episode_set.episodes[index], episode_set.task)
    agent.reset(sim, obs)
    frames: list[np.ndarray] = []
    top_map = report.map_image(sim.occupancy) if video else None
    trail = [obs.pose[:2].copy()]
    while True:
        if camera is not None:
            camera.append(obs.rgb)
        if video:
            frames.append(report.video_frame(obs.rgb, top_map, sim.occupancy, np.array(trail),
                                             obs.goal_xy, obs.pedestrians_xy))
        obs, info = sim.step(agent.act(obs))
        trail.append(obs.pose[:2].copy())
        if info.done:
            break
    if camera is not None:
        camera.append(obs.rgb)
    if video:
        frames.append(report.video_frame(obs.rgb, top_map, sim.occupancy, np.array(trail),
                                         obs.goal_xy, obs.pedestrians_xy))
    record = sim.record()
    return episode_metrics(record, episode_set.task.personal_space_m), record.poses, frames


def load_navbench_scene(path: str | Path | None,
                        seed: int = DEFAULT_SCENE_SEED) -> GaussianScene:
    """A scene file (with its scene YAML), or the generated street of ``seed`` when None."""
    if path is None:
        return generate_street_scene(seed)[0]
    return load_scene(path)


def episode_set_for(sim: NavBenchSim, task_name: str, num_episodes: int, seed: int,
                    cache: Path | None = None) -> EpisodeSet:
    """Episodes of a task for ``sim``'s scene and robot.

    With ``cache`` (a JSON path), an existing file with the same count and seed is reused
    (resuming an interrupted run on the same episodes); otherwise new episodes are sampled
    and saved there.
    """
    fingerprint = scene_fingerprint(sim.scene)
    if cache is not None and cache.is_file():
        existing = EpisodeSet.load(cache)
        existing.check_scene(sim.scene.info.name, fingerprint, str(cache))
        if len(existing.episodes) == num_episodes and existing.seed == seed:
            return existing
    task = get_task(task_name)
    e = sim.embodiment
    episodes = sample_episodes(
        sim.base_occupancy, task, num_episodes, seed, e.footprint_radius_m,
        e.nominal_speed_mps,
        obstacle_occupancy_fn(sim.scene.info.floor_height_m, sim.config.occupancy))
    ep_set = EpisodeSet(sim.scene.info.name, fingerprint, task, e.name, seed, episodes)
    if cache is not None:
        ep_set.save(cache)
    return ep_set


def run_episode_set(sim: NavBenchSim, episode_set: EpisodeSet, agent: NavAgent, out_dir: Path,
                    num_videos: int = 2, progress: bool = True) -> RunResult:
    """Run every unfinished episode of ``episode_set``; append results under ``out_dir``."""
    if episode_set.embodiment != sim.embodiment.name:
        raise S2EError(f"episode set is for embodiment {episode_set.embodiment!r}, the "
                       f"simulator runs {sim.embodiment.name!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {m.episode_id: m for m in report.read_finished(out_dir)
            if m.task == episode_set.task.name}
    todo = [i for i, e in enumerate(episode_set.episodes) if e.episode_id not in done]
    if done:
        log.info("resuming: %d of %d %s episodes already finished in %s", len(done),
                 len(episode_set.episodes), episode_set.task.name, out_dir)
    bar = tqdm(todo, desc=f"{episode_set.task.name} [{agent.name}]", unit="ep",
               disable=not progress)
    for i in bar:
        metrics, poses, frames = run_episode(sim, episode_set, i, agent, video=i < num_videos)
        report.append_episode(out_dir, metrics, poses)
        if frames:
            report.write_gif(out_dir / f"episode_{metrics.episode_id}.gif", frames)
        done[metrics.episode_id] = metrics
        bar.set_postfix(SR=f"{np.mean([m.success for m in done.values()]):.2f}")
    ordered = [done[e.episode_id] for e in episode_set.episodes]
    return RunResult(task=episode_set.task.name, episodes=ordered, aggregate=aggregate(ordered))
