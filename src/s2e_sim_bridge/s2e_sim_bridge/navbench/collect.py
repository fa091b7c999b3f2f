"""Expert rollouts in NavBench-GS recorded as a GNM-format dataset (``s2e navbench collect``).

Each episode becomes one GNM trajectory folder of camera images at the simulator's control
rate and the robot's world poses, so pretraining reads simulator data with the same adapter
as real GNM datasets (``s2e_training.data.gnm``); the folders are written by
:func:`s2e_sim_bridge.navbench.gnm_format.write_gnm`, the project's one GNM writer.

Dataset layout written by :func:`collect_rollouts` (flat, so the dataset root is a "folder of
GNM folders"):

- ``<scene>_<episode_id>/``: one GNM folder per kept episode (e.g.
  ``street_seed3_obstacle-004``);
- ``episodes_<scene>_<task>.json``: the episode set of each scene and task (re-used on
  resume);
- ``collect.json``: what happened to each episode (``written`` / ``dropped``, frames, end,
  perturbed steps), rewritten atomically after every episode.

Collection resumes: an episode whose folder holds ``traj_data.pkl`` or that ``collect.json``
lists as dropped is not run again.

Action noise (for imitation data with recoveries, as in DAgger-style data augmentation): at
each control step, with probability ``noise_probability`` and while no burst is running, a
burst of ``burst_steps`` steps starts with a constant perturbation drawn from
``N(0, noise_std^2)`` per axis, in units of the embodiment's velocity limits. The executed
command is the expert's plus the perturbation, clipped to the limits; the recorded poses are
those the robot actually reached, so the expert's corrections after a burst are in the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from s2e_policy.embodiment import Embodiment, load_embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench.agents import NavAgent, make_agent
from s2e_sim_bridge.navbench.gnm_format import TRAJ_DATA_FILE, write_gnm
from s2e_sim_bridge.navbench.runner import episode_set_for, run_episode
from s2e_sim_bridge.navbench.sim import NavBenchSim, Observation, SimConfig
from s2e_sim_bridge.navbench.tasks import TASKS
from s2e_sim_bridge.scene import GaussianScene, generate_street_scene, load_scene

MANIFEST_FILE = "collect.json"
"""Per-episode outcome file at the dataset root."""

DEFAULT_TASKS = ("empty", "obstacle")
"""Tasks collected when none are named."""


@dataclass(frozen=True)
class NoiseConfig:
    """Action-noise bursts injected into the expert's commands (see the module docstring).

    Attributes:
        probability: chance per control step that a burst starts (0 disables noise).
        std: standard deviation of a burst's perturbation per axis ``(vx, vy, wz)``, as a
            fraction of the embodiment's velocity limits.
        burst_steps: control steps a burst lasts.
    """

    probability: float = 0.0
    std: float = 0.3
    burst_steps: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise S2EError(f"noise probability must be in [0, 1], got {self.probability}")
        if not (np.isfinite(self.std) and self.std >= 0.0):
            raise S2EError(f"noise std must be a finite number >= 0, got {self.std}")
        if self.burst_steps < 1:
            raise S2EError(f"noise burst_steps must be >= 1, got {self.burst_steps}")


class PerturbedAgent:
    """Runs ``agent`` and adds :class:`NoiseConfig` bursts to the commands it returns.

    Args:
        agent: the driving agent (the expert).
        noise: burst settings.
        rng: the episode's noise generator (seeded per episode for reproducible data).
    """

    def __init__(self, agent: NavAgent, noise: NoiseConfig, rng: np.random.Generator) -> None:
        self.agent = agent
        self.noise = noise
        self.rng = rng
        self.name = f"{agent.name}+noise"
        self.needs_images = agent.needs_images
        self.perturbed_steps = 0

    def reset(self, sim: NavBenchSim, obs: Observation) -> None:
        """Reset the wrapped agent and end any burst."""
        self.agent.reset(sim, obs)
        e: Embodiment = sim.embodiment
        self._limits = np.array([e.max_linear_mps, e.max_lateral_mps, e.max_angular_radps])
        self._holonomic = e.is_holonomic
        self._left = 0
        self._offset = np.zeros(3)
        self.perturbed_steps = 0

    def act(self, obs: Observation) -> np.ndarray:
        """The agent's command plus the running burst's perturbation, clipped to the limits."""
        command = np.asarray(self.agent.act(obs), dtype=np.float64)
        if self._left == 0 and self.rng.random() < self.noise.probability:
            self._left = self.noise.burst_steps
            self._offset = self.rng.normal(0.0, self.noise.std, 3) * self._limits
            if not self._holonomic:
                self._offset[1] = 0.0
        if self._left == 0:
            return command
        self._left -= 1
        self.perturbed_steps += 1
        return np.clip(command + self._offset, -self._limits, self._limits)


@dataclass(frozen=True)
class CollectConfig:
    """What :func:`collect_rollouts` records.

    Attributes:
        tasks: NavBench-GS task names.
        episodes_per_task: episodes sampled per scene and task.
        seed: episode sampling seed (noise is seeded from it too).
        scene_path: a scene file, or None for generated streets.
        num_scenes: generated streets (ignored with ``scene_path``).
        scene_seed: seed of the first generated street; the others follow it.
        embodiment: embodiment name or YAML path (its camera mount is what gets recorded).
        render_width_px: camera image width (height from the camera's aspect).
        successful_only: keep only episodes the expert finished successfully.
        noise: action-noise bursts.
    """

    tasks: tuple[str, ...] = DEFAULT_TASKS
    episodes_per_task: int = 10
    seed: int = 0
    scene_path: Path | None = None
    num_scenes: int = 1
    scene_seed: int = 0
    embodiment: str = "wheeled"
    render_width_px: int = 128
    successful_only: bool = True
    noise: NoiseConfig = field(default_factory=NoiseConfig)

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or unknown:
            raise S2EError(f"collect tasks {list(self.tasks)}: expected one or more of "
                           f"{sorted(TASKS)}")
        for name in ("episodes_per_task", "num_scenes", "render_width_px"):
            if getattr(self, name) < 1:
                raise S2EError(f"collect {name} must be >= 1, got {getattr(self, name)}")
        if self.scene_path is not None and self.num_scenes != 1:
            raise S2EError("collect: a scene file is one scene; --scenes applies to generated "
                           "streets only")


def _scenes(config: CollectConfig) -> Iterable[GaussianScene]:
    """The scenes to collect in, loaded one at a time."""
    if config.scene_path is not None:
        yield load_scene(config.scene_path)
        return
    for k in range(config.num_scenes):
        yield generate_street_scene(config.scene_seed + k)[0]


def _read_manifest(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return dict(data["episodes"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise S2EError(f"{path}: not a collect manifest ({exc}); expected "
                       "{\"episodes\": {folder: outcome}}") from exc


def _write_manifest(path: Path, episodes: dict[str, dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"episodes": episodes}, indent=1, sort_keys=True))
    tmp.replace(path)


def collect_rollouts(out_dir: Path, config: CollectConfig, progress: bool = True
                     ) -> dict[str, int]:
    """Drive the expert through sampled episodes and write one GNM folder per kept episode.

    Args:
        out_dir: dataset root (layout in the module docstring).
        config: scenes, tasks, episode counts, camera and noise.
        progress: show a progress bar.

    Returns:
        Counts: ``written``, ``skipped_existing``, ``dropped_failed`` episodes and ``frames``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST_FILE
    manifest = _read_manifest(manifest_path)
    embodiment = load_embodiment(config.embodiment)
    counts = {"written": 0, "skipped_existing": 0, "dropped_failed": 0, "frames": 0}
    total = config.num_scenes * len(config.tasks) * config.episodes_per_task
    bar = tqdm(total=total, desc="collect", unit="ep", disable=not progress)
    for scene_index, scene in enumerate(_scenes(config)):
        sim = NavBenchSim(scene, embodiment, SimConfig(render_width_px=config.render_width_px))
        name = scene.info.name
        for task_index, task in enumerate(dict.fromkeys(config.tasks)):
            ep_set = episode_set_for(sim, task, config.episodes_per_task, config.seed,
                                     cache=out_dir / f"episodes_{name}_{task}.json")
            for i, episode in enumerate(ep_set.episodes):
                bar.set_postfix_str(f"{name} {episode.episode_id}")
                key = f"{name}_{episode.episode_id}"
                folder = out_dir / key
                if (folder / TRAJ_DATA_FILE).is_file() or \
                        manifest.get(key, {}).get("status") == "dropped":
                    counts["skipped_existing"] += 1
                    bar.update()
                    continue
                rng = np.random.default_rng([config.seed, scene_index, task_index, i])
                agent = PerturbedAgent(make_agent("expert"), config.noise, rng)
                camera: list[np.ndarray] = []
                metrics, poses, _ = run_episode(sim, ep_set, i, agent, camera=camera)
                outcome = {"scene": name, "task": task, "episode_id": episode.episode_id,
                           "termination": metrics.termination,
                           "perturbed_steps": agent.perturbed_steps}
                if config.successful_only and not metrics.success:
                    counts["dropped_failed"] += 1
                    manifest[key] = outcome | {"status": "dropped", "frames": 0}
                else:
                    frames = write_gnm(folder, camera, poses)
                    counts["frames"] += frames
                    counts["written"] += 1
                    manifest[key] = outcome | {"status": "written", "frames": frames}
                _write_manifest(manifest_path, manifest)
                bar.update()
    bar.close()
    return counts


def parse_tasks(names: Sequence[str] | None) -> tuple[str, ...]:
    """Task names from the command line (``all`` expands; default :data:`DEFAULT_TASKS`)."""
    if not names:
        return DEFAULT_TASKS
    if "all" in names:
        return tuple(TASKS)
    return tuple(dict.fromkeys(names))
