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
from s2e_sim_bridge.navbench.episodes import EpisodeSet
from s2e_sim_bridge.navbench.metrics import EpisodeMetrics, aggregate, episode_metrics
from s2e_sim_bridge.navbench.sim import NavBenchSim

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Per-episode metrics and the aggregate of one task."""

    task: str
    episodes: list[EpisodeMetrics]
    aggregate: dict


def run_episode(sim: NavBenchSim, episode_set: EpisodeSet, index: int, agent: NavAgent,
                video: bool = False) -> tuple[EpisodeMetrics, np.ndarray, list[np.ndarray]]:
    """Run one episode to its end.

    Returns:
        The episode's metrics, its poses ``(T+1, 3)``, and (with ``video``) the frames
        ``(H, W', 3)`` uint8 of camera + top-down map (else an empty list).
    """
    sim.render_images = agent.needs_images or video
    obs = sim.reset(episode_set.episodes[index], episode_set.task)
    agent.reset(sim, obs)
    frames: list[np.ndarray] = []
    top_map = report.map_image(sim.occupancy) if video else None
    trail = [obs.pose[:2].copy()]
    while True:
        if video:
            frames.append(report.video_frame(obs.rgb, top_map, sim.occupancy, np.array(trail),
                                             obs.goal_xy, obs.pedestrians_xy))
        obs, info = sim.step(agent.act(obs))
        trail.append(obs.pose[:2].copy())
        if info.done:
            break
    if video:
        frames.append(report.video_frame(obs.rgb, top_map, sim.occupancy, np.array(trail),
                                         obs.goal_xy, obs.pedestrians_xy))
    record = sim.record()
    return episode_metrics(record, episode_set.task.personal_space_m), record.poses, frames


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
