"""Expert rollouts in NavBench-GS recorded as a GNM-format training dataset.

Each episode becomes one GNM trajectory folder (``0.jpg ... N.jpg`` + ``traj_data.pkl``) of
camera images at the simulator's control rate and the robot's world poses, so pretraining
reads simulator data with the same adapter as real GNM datasets. Collection resumes: an
episode whose folder already holds ``traj_data.pkl`` is skipped.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from s2e_policy.embodiment import load_embodiment
from s2e_sim_bridge.navbench.agents import make_agent
from s2e_sim_bridge.navbench.runner import episode_set_for, load_navbench_scene, run_episode
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_training.data.gnm import write_gnm

TRAJ_DATA = "traj_data.pkl"


def collect_rollouts(out_dir: Path, tasks: list[str], episodes_per_task: int, seed: int = 0,
                     scene_path: Path | None = None, embodiment: str = "wheeled",
                     render_width_px: int = 128, successful_only: bool = True,
                     progress: bool = True) -> dict[str, int]:
    """Drive the expert through sampled episodes and write one GNM folder per episode.

    Args:
        out_dir: dataset root; gets ``<episode_id>/`` folders and ``episodes_<task>.json``.
        tasks: NavBench-GS task names.
        episodes_per_task: episodes sampled per task.
        seed: episode sampling seed.
        scene_path: scene file, or None for the generated street.
        embodiment: embodiment name or YAML path (its camera mount is what gets recorded).
        render_width_px: camera image width.
        successful_only: keep only episodes the expert finished successfully.
        progress: show a progress bar.

    Returns:
        Counts: ``written``, ``skipped_existing``, ``dropped_failed`` episodes and ``frames``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = NavBenchSim(load_navbench_scene(scene_path), load_embodiment(embodiment),
                      SimConfig(render_width_px=render_width_px))
    counts = {"written": 0, "skipped_existing": 0, "dropped_failed": 0, "frames": 0}
    for task in tasks:
        ep_set = episode_set_for(sim, task, episodes_per_task, seed,
                                 cache=out_dir / f"episodes_{task}.json")
        for i in tqdm(range(len(ep_set.episodes)), desc=f"collect {task}", unit="ep",
                      disable=not progress):
            folder = out_dir / ep_set.episodes[i].episode_id
            if (folder / TRAJ_DATA).is_file():
                counts["skipped_existing"] += 1
                continue
            camera: list = []
            metrics, poses, _ = run_episode(sim, ep_set, i, make_agent("expert"), camera=camera)
            if successful_only and not metrics.success:
                counts["dropped_failed"] += 1
                continue
            counts["frames"] += write_gnm(folder, camera, poses)
            counts["written"] += 1
    return counts
