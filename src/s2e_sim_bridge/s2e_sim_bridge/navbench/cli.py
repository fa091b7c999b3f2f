"""``s2e navbench``: evaluate a policy closed-loop in NavBench-GS and write a report.

``s2e navbench collect --out DIR`` records expert rollouts as a GNM dataset instead
(:mod:`s2e_sim_bridge.navbench.collect`).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.models import SHIPPED_POLICY_FILE, shipped_policy_path
from s2e_sim_bridge.navbench import report
from s2e_sim_bridge.navbench.agents import make_agent
from s2e_sim_bridge.navbench.collect import (
    DEFAULT_TASKS,
    CollectConfig,
    NoiseConfig,
    collect_rollouts,
    parse_tasks,
)
from s2e_sim_bridge.navbench.episodes import EpisodeSet, scene_fingerprint
from s2e_sim_bridge.navbench.runner import (
    DEFAULT_SCENE_SEED,
    episode_set_for,
    load_navbench_scene,
    run_episode_set,
)
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.navbench.tasks import TASKS

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
    p.add_argument("--policy", default=None,
                   help="expert | straight | path/to/policy.onnx (default: the shipped policy, "
                        f"s2e_policy/models/{SHIPPED_POLICY_FILE})")
    p.add_argument("--embodiment", default="wheeled", help="wheeled | go2 | path to YAML")
    p.add_argument("--seed", type=int, default=0, help="episode sampling seed")
    p.add_argument("--videos", type=int, default=1, help="GIFs for the first N episodes/task")
    p.add_argument("--render-width", type=int, default=128, help="camera width in pixels")
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda"], help="renderer")
    p.add_argument("--out", type=Path, default=Path("runs/navbench"), help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    commands = p.add_subparsers(dest="navbench_command", metavar="SUBCOMMAND")
    _register_collect(commands)


def _register_collect(commands: argparse._SubParsersAction) -> None:
    """Add ``s2e navbench collect``."""
    defaults = CollectConfig()
    noise = NoiseConfig()
    c = commands.add_parser(
        "collect", help="record expert rollouts as a GNM dataset (frames + poses)",
        description="Drive the privileged expert through NavBench-GS episodes and write one "
                    "GNM folder (frames + traj_data.pkl, at the 5 Hz control rate) per "
                    "successful episode, over one or more generated streets and tasks. "
                    "Re-running with the same --out resumes.")
    c.add_argument("--out", type=Path, required=True, help="dataset root folder")
    c.add_argument("--task", action="append", choices=[*TASKS, "all"], default=None,
                   help="task(s) (repeatable; default: " + " and ".join(DEFAULT_TASKS) + ")")
    c.add_argument("--episodes", type=int, default=defaults.episodes_per_task,
                   help="episodes per scene and task")
    c.add_argument("--seed", type=int, default=defaults.seed,
                   help="episode sampling and noise seed")
    c.add_argument("--scene", type=Path, default=None,
                   help="scene PLY/.splat with its scene YAML (default: generated streets)")
    c.add_argument("--scenes", type=int, default=defaults.num_scenes,
                   help="number of generated streets (seeds --scene-seed, +1, ...)")
    c.add_argument("--scene-seed", type=int, default=defaults.scene_seed,
                   help="seed of the first generated street")
    c.add_argument("--embodiment", default=defaults.embodiment, help="wheeled | go2 | YAML path")
    c.add_argument("--render-width", type=int, default=defaults.render_width_px,
                   help="image width, pixels")
    c.add_argument("--noise-prob", type=float, default=noise.probability,
                   help="chance per control step that an action-noise burst starts (0: off)")
    c.add_argument("--noise-std", type=float, default=noise.std,
                   help="burst perturbation std, as a fraction of the velocity limits")
    c.add_argument("--noise-steps", type=int, default=noise.burst_steps,
                   help="control steps per noise burst")
    c.add_argument("--keep-failed", action="store_true",
                   help="also write episodes the expert did not finish")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=run_collect)


def run_collect(args: argparse.Namespace) -> int:
    """Handler of ``s2e navbench collect``."""
    config = CollectConfig(
        tasks=parse_tasks(args.task), episodes_per_task=args.episodes, seed=args.seed,
        scene_path=args.scene, num_scenes=args.scenes, scene_seed=args.scene_seed,
        embodiment=args.embodiment, render_width_px=args.render_width,
        successful_only=not args.keep_failed,
        noise=NoiseConfig(probability=args.noise_prob, std=args.noise_std,
                          burst_steps=args.noise_steps))
    counts = collect_rollouts(args.out, config, progress=not args.no_progress)
    print(f"{args.out}: {counts['written']} episodes written ({counts['frames']} frames), "
          f"{counts['skipped_existing']} already there, {counts['dropped_failed']} dropped "
          "(expert failed)")
    return 0


def run(args: argparse.Namespace) -> int:
    """Handler of ``s2e navbench``."""
    if args.episodes < 1:
        raise S2EError(f"--episodes must be >= 1, got {args.episodes}")
    scene = load_navbench_scene(args.scene)
    embodiment = load_embodiment(args.embodiment)
    agent = make_agent(args.policy or str(shipped_policy_path()))
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
        all_obstacles = [o for e in ep_set.episodes for o in e.obstacles]
        pictures.append(report.plot_task_trajectories(
            out, sim.occupancy_with(all_obstacles), ep_set.episodes, result.task,
            f"{result.task}: {agent.name} on {scene.info.name} "
            f"(SR {result.aggregate['success']:.2f})"))
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
