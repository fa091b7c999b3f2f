"""``s2e navbench``: evaluate a policy closed-loop in NavBench-GS and write a report."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench import report
from s2e_sim_bridge.navbench.agents import make_agent
from s2e_sim_bridge.navbench.episodes import EpisodeSet, scene_fingerprint
from s2e_sim_bridge.navbench.runner import (
    DEFAULT_SCENE_SEED,
    episode_set_for,
    load_navbench_scene,
    run_episode_set,
)
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.navbench.tasks import TASKS
from s2e_sim_bridge.world.plot import plot_map

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``navbench`` subcommand."""
    p = subparsers.add_parser(
        "navbench", help="closed-loop evaluation in NavBench-GS (metrics, plots, videos)",
        description="Run a policy through NavBench-GS episodes and write metrics.json, "
                    "episodes.csv, trajectory plots, episode GIFs and report.md. Re-running "
                    "with the same --out resumes where an interrupted run stopped.")
    p.add_argument("--scene", type=Path, default=None,
                   help="scene PLY/.splat (with its scene YAML); default: the generated street "
                        f"(seed {DEFAULT_SCENE_SEED})")
    p.add_argument("--task", action="append", choices=[*TASKS, "all"], default=None,
                   help="task(s) to run (repeatable; default: all four)")
    p.add_argument("--episodes", type=int, default=5, help="episodes per task (default 5)")
    p.add_argument("--episodes-file", type=Path, default=None,
                   help="run the episodes of this episode-set JSON instead of sampling")
    p.add_argument("--policy", default="expert",
                   help="expert | straight (default expert)")
    p.add_argument("--embodiment", default="wheeled", help="wheeled | go2 | path to YAML")
    p.add_argument("--seed", type=int, default=0, help="episode sampling seed")
    p.add_argument("--videos", type=int, default=1, help="GIFs for the first N episodes/task")
    p.add_argument("--render-width", type=int, default=128, help="camera width in pixels")
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda"], help="renderer")
    p.add_argument("--out", type=Path, default=Path("runs/navbench"), help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``s2e navbench``."""
    if args.episodes < 1:
        raise S2EError(f"--episodes must be >= 1, got {args.episodes}")
    scene = load_navbench_scene(args.scene)
    embodiment = load_embodiment(args.embodiment)
    agent = make_agent(args.policy)
    config = SimConfig(render_width_px=args.render_width, backend=args.backend)
    sim = NavBenchSim(scene, embodiment, config)
    fingerprint = scene_fingerprint(scene)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.episodes_file is not None:
        sets = [EpisodeSet.load(args.episodes_file)]
        sets[0].check_scene(scene.info.name, fingerprint, str(args.episodes_file))
    else:
        names = list(TASKS) if not args.task or "all" in args.task else args.task
        sets = [episode_set_for(sim, name, args.episodes, args.seed,
                                cache=out / f"episodes_{name}.json")
                for name in dict.fromkeys(names)]
    per_task: dict[str, dict] = {}
    pictures: list[Path] = []
    for ep_set in sets:
        result = run_episode_set(sim, ep_set, agent, out, num_videos=args.videos,
                                 progress=not args.no_progress)
        per_task[result.task] = result.aggregate
        trajectories = report.load_trajectories(out)
        picture = out / f"trajectories_{result.task}.png"
        all_obstacles = [o for e in ep_set.episodes for o in e.obstacles]
        plot_map(sim.occupancy_with(all_obstacles), picture,
                 trajectories=[trajectories[e.episode_id][:, :2] for e in ep_set.episodes],
                 starts=[e.start[:2] for e in ep_set.episodes],
                 goals=[e.goal for e in ep_set.episodes],
                 title=f"{result.task}: {agent.name} on {scene.info.name} "
                       f"(SR {result.aggregate['success']:.2f})")
        pictures.append(picture)
        pictures += sorted(out.glob(f"episode_{result.task}-*.gif"))
    title = f"NavBench-GS: {agent.name} on {scene.info.name} ({embodiment.name})"
    command = "s2e " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if Path(sys.argv[0]).name == "s2e" else "s2e navbench"
    meta = {"policy": agent.name, "scene": scene.info.name, "scene_fingerprint": fingerprint,
            "embodiment": embodiment.name, "seed": args.seed, "command": command}
    report.write_metrics(out, per_task, meta)
    report.write_report(out, per_task, title, pictures, command)
    if not args.no_progress:
        report.print_table(per_task, title)
    log.info("wrote %s", out / "report.md")
    return 0
