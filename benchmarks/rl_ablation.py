"""The S2E paper's RL ablation: SFT only vs full-parameter, decoder-only and RAM PPO.

Every variant post-trains the same pretrained checkpoint with the same RL config, the same
budget of environment steps and the same seeds, and is evaluated on the same held-out
NavBench-GS episodes (the config's ``eval`` section: its own episode seed and, by default,
another generated street). ``sft`` is the pretrained policy evaluated as it is.

Writes into ``--out``:

- ``<variant>/seed_<s>/``: one ``s2e train rl`` run folder per variant and seed (re-running
  the script resumes unfinished runs and reuses finished ones);
- ``results.json``: per variant, per task: success rate, collisions per episode and route
  completion, mean and standard error over all held-out episodes of all seeds, plus each
  seed's means;
- ``results.md``: the same as a Markdown table;
- ``learning_curves.png``: held-out SR, collisions per episode and route completion against
  environment steps
  (mean over seeds, shaded standard error), the SFT level as a dashed line.

Usage (defaults: the shipped policy's pretraining checkpoint, the config's budget, seeds
0 1 2, all four variants; the pretrained policy at step 0 is evaluated once, by ``sft``)::

    python benchmarks/rl_ablation.py --out runs/rl_ablation [--init CHECKPOINT] \
        [--config config/train/rl_small.yaml] [--env-steps N] [--seeds 0 1 2] \
        [--variants sft full decoder ram] [--tasks obstacle pedestrian] [--eval-episodes N] \
        [--eval-every N] [--steps-per-rollout N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from s2e_sim_bridge.navbench import report
from s2e_sim_bridge.navbench.metrics import EpisodeMetrics
from s2e_training.pretrained import shipped_checkpoint_path
from s2e_training.rl import VARIANTS, RLConfig, train_rl
from s2e_training.rl.runner import EVAL_DIR
from s2e_training.train.checkpoint import latest_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "config" / "train" / "rl_small.yaml"
DEFAULT_SEEDS = (0, 1, 2)
METRICS = {"success": "SR", "collisions": "collisions / episode",
           "route_completion": "route completion"}
"""Per-episode NavBench-GS fields reported, with their labels."""
FIGURE_SIZE_IN = (15.0, 4.0)
FIGURE_DPI = 100
SEM_ALPHA = 0.2
"""Opacity of the standard-error bands."""


def sem(values: np.ndarray) -> float:
    """Standard error of the mean (0 for fewer than two values)."""
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0


def run_config(base: RLConfig, variant: str, seed: int, args: argparse.Namespace) -> RLConfig:
    """``base`` with the variant, seed and command-line overrides of one run."""
    config = dataclasses.replace(base, seed=seed,
                                 policy=dataclasses.replace(base.policy, variant=variant))
    ev = config.eval
    if args.tasks:
        ev = dataclasses.replace(ev, tasks=tuple(args.tasks))
    if args.eval_episodes:
        ev = dataclasses.replace(ev, episodes=args.eval_episodes)
    if args.eval_every is not None:
        ev = dataclasses.replace(ev, every_updates=args.eval_every)
    if variant != "sft":  # step 0 is the pretrained policy for all: the sft run evaluates it
        ev = dataclasses.replace(ev, at_start=False)
    ppo = config.ppo
    if args.steps_per_rollout:
        ppo = dataclasses.replace(ppo, steps_per_rollout=args.steps_per_rollout)
    return dataclasses.replace(config, eval=ev, ppo=ppo,
                               total_env_steps=args.env_steps or config.total_env_steps)


def eval_history(run_dir: Path) -> list[tuple[int, dict[str, list[EpisodeMetrics]]]]:
    """``(env_steps, {task: episodes})`` of every finished evaluation of a run, in order."""
    history = []
    for folder in sorted((run_dir / EVAL_DIR).glob("update_*")):
        metrics_file = folder / "metrics.json"
        if not metrics_file.is_file():
            continue
        meta = json.loads(metrics_file.read_text())["meta"]
        by_task: dict[str, list[EpisodeMetrics]] = {}
        for m in report.read_finished(folder):
            by_task.setdefault(m.task, []).append(m)
        history.append((int(meta["env_steps"]), by_task))
    return history


def run_all(args: argparse.Namespace) -> dict[str, dict[int, Path]]:
    """Run (or resume, or reuse) every variant x seed; return their run folders."""
    base = RLConfig.from_yaml(args.config)
    folders: dict[str, dict[int, Path]] = {}
    for variant in args.variants:
        # sft trains nothing and its evaluation is deterministic: one seed says it all.
        for seed in args.seeds[:1] if variant == "sft" else args.seeds:
            config = run_config(base, variant, seed, args)
            run_dir = args.out / variant / f"seed_{seed}"
            folders.setdefault(variant, {})[seed] = run_dir
            if variant == "sft" and eval_history(run_dir):
                continue
            start = time.perf_counter()
            resume = latest_checkpoint(run_dir) is not None
            train_rl(config, run_dir, init=None if resume else args.init, resume=resume,
                     progress=not args.no_progress)
            print(f"{variant} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    return folders


def summarise(folders: dict[str, dict[int, Path]]) -> dict[str, dict]:
    """Final held-out metrics per variant and task (see the module docstring)."""
    results: dict[str, dict] = {}
    for variant, runs in folders.items():
        per_task: dict[str, dict] = {}
        for seed, run_dir in runs.items():
            history = eval_history(run_dir)
            if not history:
                continue
            steps, by_task = history[-1]
            for task, episodes in by_task.items():
                entry = per_task.setdefault(task, {"episodes": [], "seeds": {}})
                entry["episodes"] += episodes
                entry["seeds"][seed] = {"env_steps": steps, **{
                    key: float(np.mean([getattr(m, key) for m in episodes])) for key in METRICS}}
        for entry in per_task.values():
            episodes = entry.pop("episodes")
            for key in METRICS:
                values = np.array([getattr(m, key) for m in episodes], dtype=np.float64)
                entry[key] = float(values.mean())
                entry[f"{key}_sem"] = sem(values)
            entry["num_episodes"] = len(episodes)
        results[variant] = per_task
    return results


def markdown_table(results: dict[str, dict]) -> str:
    """One row per task and variant: SR, collisions/episode, route completion (mean ± s.e.m.)."""
    lines = ["| task | variant | SR | collisions / episode | route completion | episodes (seeds) |",
             "|---|---|---|---|---|---|"]
    tasks = sorted({task for per_task in results.values() for task in per_task})
    for task in tasks:
        for variant, per_task in results.items():
            if task not in per_task:
                continue
            e = per_task[task]
            lines.append(f"| {task} | {variant} | {e['success']:.2f} ± {e['success_sem']:.2f} | "
                         f"{e['collisions']:.2f} ± {e['collisions_sem']:.2f} | "
                         f"{e['route_completion']:.2f} ± {e['route_completion_sem']:.2f} | "
                         f"{e['num_episodes']} ({len(e['seeds'])}) |")
    return "\n".join(lines) + "\n"


def plot_curves(folders: dict[str, dict[int, Path]], path: Path) -> None:
    """Held-out SR and collisions/episode vs environment steps (mean ± s.e.m. over seeds)."""
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(METRICS))
    for ax, (key, label) in zip(axes, METRICS.items(), strict=True):
        for variant, runs in folders.items():
            # seed -> {env_steps: mean over tasks and episodes}
            curves = {}
            for seed, run_dir in runs.items():
                curves[seed] = {steps: float(np.mean([getattr(m, key) for eps in by_task.values()
                                                      for m in eps]))
                                for steps, by_task in eval_history(run_dir)}
            if variant == "sft":
                level = np.mean([v for c in curves.values() for v in c.values()])
                ax.axhline(level, linestyle="--", color="k", label="sft")
                continue
            if "sft" in folders:  # every variant starts from the pretrained (sft) policy
                start = [float(np.mean([getattr(m, key) for eps in by_task.values()
                                        for m in eps]))
                         for run_dir in folders["sft"].values()
                         for steps, by_task in eval_history(run_dir) if steps == 0]
                for curve in curves.values():
                    if start:
                        curve.setdefault(0, float(np.mean(start)))
            steps = sorted({s for c in curves.values() for s in c})
            mean = np.array([np.mean([c[s] for c in curves.values() if s in c]) for s in steps])
            err = np.array([sem(np.array([c[s] for c in curves.values() if s in c]))
                            for s in steps])
            (line,) = ax.plot(steps, mean, marker="o", label=variant)
            ax.fill_between(steps, mean - err, mean + err, color=line.get_color(),
                            alpha=SEM_ALPHA)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"held-out {label}")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    canvas.print_png(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--init", type=Path, default=None,
                        help="pretrained checkpoint (default: the shipped policy's)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="RL YAML")
    parser.add_argument("--out", type=Path, default=Path("runs/rl_ablation"))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--env-steps", type=int, help="budget per run (overrides the config)")
    parser.add_argument("--steps-per-rollout", type=int, help="overrides ppo.steps_per_rollout")
    parser.add_argument("--tasks", nargs="+", help="held-out tasks (overrides eval.tasks)")
    parser.add_argument("--eval-episodes", type=int, help="overrides eval.episodes")
    parser.add_argument("--eval-every", type=int, help="overrides eval.every_updates")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.init is None:
        args.init = shipped_checkpoint_path()
    folders = run_all(args)
    results = summarise(folders)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    table = markdown_table(results)
    (args.out / "results.md").write_text(table)
    plot_curves(folders, args.out / "learning_curves.png")
    print(table)
    print(f"wrote {args.out / 'results.json'}, results.md, learning_curves.png")


if __name__ == "__main__":
    main()
