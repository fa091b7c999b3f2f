"""The S2E paper's RL ablation: SFT only vs full-parameter, decoder-only and RAM PPO.

Every variant post-trains the same pretrained checkpoint with the same RL config, the same
budget of environment steps and the same seeds. Then every run's checkpoint at that budget,
and the pretrained policy itself (``sft``), is exported to ONNX and drives the same held-out
NavBench-GS episodes as ``s2e navbench --policy FILE.onnx`` would (``--heldout-episodes``
per task of the config's ``eval.tasks``, episode seed ``--heldout-seed``, on the config's
held-out street ``eval.scene_seed``, with the benchmark's camera ``--heldout-render-width``,
128 px by default), so every policy is compared with SFT episode by episode (a paired
comparison: the episodes' own difficulty cancels out).

Writes into ``--out``:

- ``<variant>/seed_<s>/``: one ``s2e train rl`` run folder per variant and seed. Re-running
  the script resumes unfinished runs and reuses finished ones: a run folder that already
  holds the checkpoint at the budget is evaluated as it is, after checking that its training
  config equals this one (only ``eval`` and ``total_env_steps`` may differ, so a longer run
  of the same recipe serves through its checkpoint at the budget).
- ``heldout/<variant>_seed_<s>.onnx`` and ``heldout/<variant>_seed_<s>/``: each policy's
  file and its held-out episodes (NavBench-GS ``episodes.csv`` and trajectories, resumed
  episode by episode), and ``heldout/episodes_<task>.json``, the episode sets all policies
  share;
- ``results.json``: per variant and task: SR, collisions per episode and route completion
  (mean and standard error over all held-out episodes of all seeds, and each seed's means),
  and for RL variants the paired difference from SFT (mean over episodes of the per-episode
  difference averaged over seeds, its standard error over episodes, and how many
  (seed, episode) pairs had fewer / more collisions than SFT);
- ``results.md``: the same as a Markdown table;
- ``learning_curves.png``: the share of training episodes that ended in a collision, their
  success rate and return against environment steps (mean over seeds, shaded standard
  error; from each run's TensorBoard scalars).

Usage (defaults: the shipped policy's pretraining checkpoint, the config's budget, seeds
0 1 2, all four variants)::

    python benchmarks/rl_ablation.py --out runs/rl_ablation [--init CHECKPOINT] \
        [--config config/train/rl_small.yaml] [--env-steps N] [--seeds 0 1 2] \
        [--variants sft full decoder ram] [--tasks obstacle pedestrian] \
        [--heldout-episodes 40] [--heldout-seed 2000] [--heldout-render-width 128] \
        [--eval-episodes N] [--eval-every N] [--steps-per-rollout N] [--reuse-only]

``--eval-episodes``/``--eval-every`` shape the runs' own periodic evaluation (TensorBoard
``eval/*``), which the results do not use.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench.metrics import EpisodeMetrics
from s2e_sim_bridge.navbench.sim import SimConfig
from s2e_training.export.onnx_export import export_network, load_export_source
from s2e_training.pretrained import shipped_checkpoint_path
from s2e_training.rl import VARIANTS, RLConfig, train_rl
from s2e_training.rl.runner import RL_CONFIG_FILE, Evaluator
from s2e_training.train.checkpoint import checkpoint_path, latest_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "config" / "train" / "rl_small.yaml"
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_HELDOUT_EPISODES = 40
DEFAULT_HELDOUT_SEED = 2000
HELDOUT_DIR = "heldout"
METRICS = {"success": "SR", "collisions": "collisions / episode",
           "route_completion": "route completion"}
"""Per-episode NavBench-GS fields reported, with their labels."""
PAIRED_METRIC = "collisions"
"""The field compared with SFT episode by episode."""
UNCHECKED_FIELDS = ("eval", "total_env_steps")
"""RLConfig fields a reused run may differ in (they do not change its training)."""
CURVES = {"collision_share": "training episodes ending in a collision",
          "success": "training episode SR", "return": "training episode return"}
"""Learning-curve panels: per-update training-episode statistics."""
CURVE_WINDOW_UPDATES = 10
"""Updates per point of a learning curve (episode-count weighted mean)."""
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
    ev = dataclasses.replace(config.eval, at_start=False)  # step 0 is sft's held-out result
    if args.tasks:
        ev = dataclasses.replace(ev, tasks=tuple(args.tasks))
    if args.eval_episodes:
        ev = dataclasses.replace(ev, episodes=args.eval_episodes)
    if args.eval_every is not None:
        ev = dataclasses.replace(ev, every_updates=args.eval_every)
    ppo = config.ppo
    if args.steps_per_rollout:
        ppo = dataclasses.replace(ppo, steps_per_rollout=args.steps_per_rollout)
    return dataclasses.replace(config, eval=ev, ppo=ppo,
                               total_env_steps=args.env_steps or config.total_env_steps)


def budget_updates(config: RLConfig) -> int:
    """PPO updates of a one-process run of ``config.total_env_steps`` environment steps."""
    per_update = config.ppo.steps_per_rollout * config.env.num_envs
    return math.ceil(config.total_env_steps / per_update)


def finished_checkpoint(run_dir: Path, config: RLConfig) -> Path | None:
    """The run's checkpoint at the budget, or None when the run has not reached it.

    Raises:
        S2EError: the run folder trained with another recipe (any :class:`RLConfig` field
            but :data:`UNCHECKED_FIELDS` differs from ``config``).
    """
    path = checkpoint_path(run_dir, budget_updates(config))
    if not path.is_file():
        return None
    saved = RLConfig.from_yaml(run_dir / RL_CONFIG_FILE)
    differences = saved.differences(config, ignore=UNCHECKED_FIELDS)
    if differences:
        raise S2EError(f"{run_dir}: trained with another config than this ablation's (differs "
                       f"in {', '.join(differences)}); choose another --out")
    return path


def run_all(args: argparse.Namespace) -> dict[str, dict[int, Path | None]]:
    """Train (or resume, or reuse) every RL variant x seed.

    With ``--reuse-only`` nothing trains: runs that have not reached the budget are left out
    (to summarise an ablation while some of its runs are missing).

    Returns:
        ``{variant: {seed: checkpoint at the budget}}``; ``sft`` (nothing to train) maps its
        one seed to None.
    """
    base = RLConfig.from_yaml(args.config)
    checkpoints: dict[str, dict[int, Path | None]] = {}
    for variant in args.variants:
        if variant == "sft":  # deterministic and untrained: one evaluation says it all
            checkpoints[variant] = {args.seeds[0]: None}
            continue
        for seed in args.seeds:
            config = run_config(base, variant, seed, args)
            run_dir = args.out / variant / f"seed_{seed}"
            done = finished_checkpoint(run_dir, config)
            if done is None and args.reuse_only:
                print(f"{variant} seed {seed}: no finished run in {run_dir}, left out "
                      "(--reuse-only)", flush=True)
                continue
            if done is None:
                start = time.perf_counter()
                resume = latest_checkpoint(run_dir) is not None
                train_rl(config, run_dir, init=None if resume else args.init, resume=resume,
                         progress=not args.no_progress)
                print(f"{variant} seed {seed}: trained in {time.perf_counter() - start:.0f} s",
                      flush=True)
                done = finished_checkpoint(run_dir, config)
                if done is None:
                    raise S2EError(f"{run_dir}: no checkpoint at update "
                                   f"{budget_updates(config)} after training (a run longer "
                                   "than the budget that skipped it?)")
            checkpoints.setdefault(variant, {})[seed] = done
    return checkpoints


def export_policy(checkpoint: Path, out: Path, embodiment: str) -> Path:
    """``checkpoint`` (RL or pretraining) as an ONNX policy file ``out`` (kept if present).

    Its contract records the limits of ``embodiment``, the robot the episodes drive.
    """
    if not out.is_file():
        source = load_export_source(checkpoint)
        export_network(source.model, out, embodiment=embodiment,
                       train_config=source.train_config,
                       checkpoint_step=source.checkpoint_step, git_commit=source.git_commit)
    return out


def evaluate_heldout(checkpoints: dict[str, dict[int, Path | None]],
                     args: argparse.Namespace) -> dict[str, dict[int, list[EpisodeMetrics]]]:
    """Every policy, exported, on the shared held-out episodes (finished episodes are reused).

    Each policy runs as ``s2e navbench --policy FILE.onnx`` runs it (ONNX Runtime, the
    benchmark's controller and camera), on the config's held-out street.

    Returns:
        ``{variant: {seed: episodes}}`` of the evaluated tasks.
    """
    config = RLConfig.from_yaml(args.config)
    root = args.out / HELDOUT_DIR
    root.mkdir(parents=True, exist_ok=True)
    evaluator = Evaluator(config, root, tasks=args.tasks or None,
                          episodes=args.heldout_episodes, seed=args.heldout_seed,
                          render_width_px=args.heldout_render_width)
    results: dict[str, dict[int, list[EpisodeMetrics]]] = {}
    for variant, runs in checkpoints.items():
        for seed, checkpoint in runs.items():
            name = f"{variant}_seed_{seed}"
            policy_file = export_policy(checkpoint or args.init, root / f"{name}.onnx",
                                        config.env.embodiment)
            start = time.perf_counter()
            episodes = evaluator.evaluate(policy_file, root / name,
                                          progress=not args.no_progress)
            print(f"{variant} seed {seed}: held-out episodes in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
            results.setdefault(variant, {})[seed] = [m for task_episodes in episodes.values()
                                                     for m in task_episodes]
    return results


def summarise(results: dict[str, dict[int, list[EpisodeMetrics]]]) -> dict[str, dict]:
    """Held-out metrics per variant and task, with the paired difference from ``sft``."""
    sft = {(m.task, m.episode_id): m for runs in results.get("sft", {}).values() for m in runs}
    summary: dict[str, dict] = {}
    for variant, runs in results.items():
        per_task: dict[str, dict] = {}
        for task in sorted({m.task for episodes in runs.values() for m in episodes}):
            by_seed = {seed: [m for m in episodes if m.task == task]
                       for seed, episodes in runs.items()}
            pooled = [m for episodes in by_seed.values() for m in episodes]
            entry: dict = {"num_episodes": len(pooled), "seeds": {
                seed: {key: float(np.mean([getattr(m, key) for m in episodes]))
                       for key in METRICS} for seed, episodes in by_seed.items()}}
            for key in METRICS:
                values = np.array([getattr(m, key) for m in pooled], dtype=np.float64)
                entry[key] = float(values.mean())
                entry[f"{key}_sem"] = sem(values)
            if variant != "sft" and sft:
                entry["vs_sft"] = paired_difference(by_seed, sft, task)
            per_task[task] = entry
        summary[variant] = per_task
    return summary


def paired_difference(by_seed: dict[int, list[EpisodeMetrics]],
                      sft: dict[tuple[str, str], EpisodeMetrics], task: str) -> dict:
    """:data:`PAIRED_METRIC` minus SFT's on the same episodes.

    Per episode the difference is averaged over seeds; the mean and its standard error are
    over episodes (the seeds of one episode are not independent samples of it). ``fewer`` /
    ``more`` count (seed, episode) pairs below / above SFT.
    """
    per_episode: dict[str, list[float]] = {}
    for episodes in by_seed.values():
        for m in episodes:
            reference = sft.get((task, m.episode_id))
            if reference is None:
                raise S2EError(f"held-out episode {m.episode_id} of {task} has no SFT result: "
                               "were the policies evaluated on different episode sets?")
            diff = getattr(m, PAIRED_METRIC) - getattr(reference, PAIRED_METRIC)
            per_episode.setdefault(m.episode_id, []).append(float(diff))
    all_diffs = np.array([d for diffs in per_episode.values() for d in diffs])
    means = np.array([np.mean(diffs) for diffs in per_episode.values()])
    return {"metric": PAIRED_METRIC, "mean": float(means.mean()), "sem": sem(means),
            "fewer": int((all_diffs < 0).sum()), "more": int((all_diffs > 0).sum()),
            "pairs": int(all_diffs.size)}


def markdown_table(summary: dict[str, dict]) -> str:
    """One row per task and variant (mean ± standard error)."""
    lines = ["| task | variant | SR | collisions / episode | per seed | difference from SFT "
             "(paired) | fewer / more than SFT | route completion | episodes (seeds) |",
             "|---|---|---|---|---|---|---|---|---|"]
    tasks = sorted({task for per_task in summary.values() for task in per_task})
    variants = sorted(summary, key=lambda v: v != "sft")  # the baseline first
    for task in tasks:
        for variant in variants:
            per_task = summary[variant]
            if task not in per_task:
                continue
            e = per_task[task]
            per_seed = " / ".join(f"{s['collisions']:.2f}" for s in e["seeds"].values())
            paired, counts = "", ""
            if "vs_sft" in e:
                d = e["vs_sft"]
                paired = f"{d['mean']:+.3f} ± {d['sem']:.3f}"
                counts = f"{d['fewer']} / {d['more']} of {d['pairs']}"
            lines.append(f"| {task} | {variant} | {e['success']:.2f} ± {e['success_sem']:.2f} | "
                         f"{e['collisions']:.2f} ± {e['collisions_sem']:.2f} | {per_seed} | "
                         f"{paired} | {counts} | {e['route_completion']:.2f} ± "
                         f"{e['route_completion_sem']:.2f} | {e['num_episodes']} "
                         f"({len(e['seeds'])}) |")
    return "\n".join(lines) + "\n"


def training_curves(run_dir: Path, collision_per_event: float) -> dict[str, tuple[np.ndarray,
                                                                                   np.ndarray]]:
    """Per-window training-episode statistics of a run (see :data:`CURVES`).

    Returns:
        ``{curve: (env_steps (N,), values (N,))}``: each point is the episode-count weighted
        mean of :data:`CURVE_WINDOW_UPDATES` updates (fewer in a shorter run), at the
        window's last step; updates in which no training episode ended are left out.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()

    def series(tag: str) -> dict[int, float]:
        return {e.step: e.value for e in acc.Scalars(tag)}

    if "episode/count" not in acc.Tags()["scalars"]:  # no training episode has ended yet
        return {name: (np.zeros(0, dtype=np.int64), np.zeros(0)) for name in CURVES}

    counts = series("episode/count")
    raw = {"collision_share": {k: v / collision_per_event
                               for k, v in series("episode/term_collision").items()},
           "success": series("episode/success"), "return": series("episode/return")}
    steps = np.array(sorted(counts))
    size = min(CURVE_WINDOW_UPDATES, len(steps))  # a short run still gets one point
    curves = {}
    for name, values in raw.items():
        xs, ys = [], []
        for i in range(0, len(steps) - size + 1, size):
            window = steps[i:i + size]
            weights = np.array([counts[s] for s in window])
            xs.append(window[-1])
            ys.append(float(np.average([values[s] for s in window], weights=weights)))
        curves[name] = (np.array(xs), np.array(ys))
    return curves


def plot_curves(run_dirs: dict[str, dict[int, Path]], collision_per_event: float,
                path: Path) -> None:
    """Training curves of every RL variant (mean ± standard error over seeds)."""
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(CURVES))
    per_run = {variant: [training_curves(d, collision_per_event) for d in runs.values()]
               for variant, runs in run_dirs.items()}
    for ax, (name, label) in zip(axes, CURVES.items(), strict=True):
        for variant, runs in per_run.items():
            length = min(len(run[name][0]) for run in runs)
            if length == 0:
                continue
            steps = runs[0][name][0][:length]
            values = np.stack([run[name][1][:length] for run in runs])
            mean = values.mean(axis=0)
            err = np.array([sem(values[:, j]) for j in range(length)])
            seeds = f"{len(runs)} seed" + ("s" if len(runs) != 1 else "")
            (line,) = ax.plot(steps, mean, marker="o", label=f"{variant} ({seeds})")
            ax.fill_between(steps, mean - err, mean + err, color=line.get_color(),
                            alpha=SEM_ALPHA)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
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
    parser.add_argument("--heldout-episodes", type=int, default=DEFAULT_HELDOUT_EPISODES,
                        help="held-out episodes per task of the final comparison")
    parser.add_argument("--heldout-seed", type=int, default=DEFAULT_HELDOUT_SEED,
                        help="episode seed of the final comparison")
    parser.add_argument("--heldout-render-width", type=int,
                        default=SimConfig().render_width_px,
                        help="camera width (px) of the final comparison (default: "
                             "`s2e navbench`'s)")
    parser.add_argument("--eval-episodes", type=int,
                        help="overrides eval.episodes (the runs' own periodic evaluation)")
    parser.add_argument("--eval-every", type=int, help="overrides eval.every_updates")
    parser.add_argument("--reuse-only", action="store_true",
                        help="train nothing: summarise the finished runs, leave out the rest")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.init is None:
        args.init = shipped_checkpoint_path()
    checkpoints = run_all(args)
    summary = summarise(evaluate_heldout(checkpoints, args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(summary, indent=1))
    table = markdown_table(summary)
    (args.out / "results.md").write_text(table)
    run_dirs = {variant: {seed: args.out / variant / f"seed_{seed}" for seed in runs}
                for variant, runs in checkpoints.items() if variant != "sft" and runs}
    if run_dirs:
        collision = RLConfig.from_yaml(args.config).env.reward.collision_per_event
        plot_curves(run_dirs, collision, args.out / "learning_curves.png")
    print(table)
    print(f"wrote {args.out / 'results.json'}, results.md, learning_curves.png")


if __name__ == "__main__":
    main()
