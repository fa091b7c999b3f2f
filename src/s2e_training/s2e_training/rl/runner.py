"""RL post-training of a pretrained S2E policy: rollouts, PPO updates, evaluation, logging.

One run (:func:`train_rl`), top to bottom:

1. the policy: the pretrained network of ``--init`` (:func:`load_checkpoint`) inside a
   :class:`~s2e_training.rl.ram.RamPolicy` of the configured variant, and Adam over its
   trainable parameters; on ``resume`` both come from the run's latest checkpoint;
2. ``num_envs`` NavBench-GS environments per process (:func:`make_vector_env`, one
   subprocess each when ``env.asynchronous``), shaped by the model (:func:`env_config`);
3. per update: a rollout of ``steps_per_rollout`` steps per env (:func:`collect_rollout`:
   sample a mode and waypoints per env from its exploration noise, which each env keeps
   for ``policy.noise_hold_steps`` steps (:class:`~s2e_training.rl.distribution.HeldNoise`),
   the env turns them into a velocity command with the paper's controller), GAE and the PPO
   epochs (:mod:`s2e_training.rl.ppo`);
4. logging (process 0): a tqdm bar over environment steps; TensorBoard scalars at the
   environment step count (``loss/*``, ``policy/*`` (entropies, KL, clip fraction, log-std),
   ``reward/<term>`` (every reward term separately, mean per step), ``episode/*`` (return,
   length, success rate, collision penalty of the training episodes that ended),
   ``eval/<task>/*`` (SR, collisions per episode, route completion, SPL));
5. evaluation (process 0) on held-out episodes (:class:`Evaluator`): the policy is exported
   to ``<run>/eval/update_<n>/policy.onnx`` and driven as ``s2e navbench --policy`` drives
   it (ONNX Runtime, deterministic: the top-scored mode's mean trajectory, what the robot
   runs), each episode to its end; per-episode CSV and ``metrics.json`` are written next to
   it;
6. checkpoints every ``checkpoint_every_updates`` updates, at the end and on Ctrl-C, with
   the project's atomic writer (:func:`save_checkpoint`): ``step`` is the number of PPO
   updates, ``model`` the whole :class:`RamPolicy` state, ``config``/``anchors`` those of the
   pretrained network, and ``data`` the RL state (:data:`RL_CHECKPOINT_KIND`, RL config,
   environment steps, init checkpoint). :func:`load_rl_checkpoint` rebuilds the policy.

Resume (``resume=True``) restores the policy, optimiser, update and environment-step
counters and the torch generator states, and continues the TensorBoard curves from the
checkpoint. The simulator state and the held exploration noise are not checkpointed: the
resumed session starts fresh episodes and noise (pools seeded as before, episode draws
seeded by ``(seed, update)``), so a resumed run is a faithful continuation but not
bit-identical to an uninterrupted one.

The ``sft`` variant trains nothing: the run evaluates the pretrained policy (the supervised
baseline of the ablation) and writes no checkpoint.

Several processes (``torchrun --nproc_per_node=P -m s2e_policy.cli train rl ...``, or
``--nnodes``/``--rdzv-endpoint`` for several machines): every rank runs its own
``num_envs`` environments (episode pools seeded per rank), computes GAE on its rollout and
averages gradients with the other ranks before every optimiser step
(:func:`s2e_training.rl.ppo.all_reduce_gradients`, over the process group of
:func:`s2e_training.train.pretraining.process_group`: gloo on the CPU, NCCL on GPUs), so
the weights stay identical (checked at the end with :func:`parameter_digest`). Rank 0 alone
logs, evaluates and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.envs import CRITIC_STATE, make_vector_env
from s2e_sim_bridge.navbench import report
from s2e_sim_bridge.navbench.agents import make_agent
from s2e_sim_bridge.navbench.episodes import EpisodeSet
from s2e_sim_bridge.navbench.metrics import EpisodeMetrics, aggregate
from s2e_sim_bridge.navbench.runner import episode_set_for, load_navbench_scene, run_episode_set
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_training.export.onnx_export import export_network
from s2e_training.model.network import S2EPolicyNet
from s2e_training.rl import distribution
from s2e_training.rl.config import RLConfig, env_config
from s2e_training.rl.distribution import Exploration, HeldNoise
from s2e_training.rl.ppo import compute_gae, ppo_update
from s2e_training.rl.ram import RamPolicy, count_parameters
from s2e_training.rl.storage import RolloutStorage
from s2e_training.train.checkpoint import (
    RL_CHECKPOINT_KIND,
    CheckpointError,
    build_model,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    parameter_digest,
    read_checkpoint,
    resolve_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from s2e_training.train.config import TrainConfig
from s2e_training.train.pretraining import (
    DistributedContext,
    _check_ranks_agree,
    _resolve_device,
    _summary_writer,
    deferred_sigint,
    process_group,
)

LOG = logging.getLogger(__name__)

RL_CONFIG_FILE = "rl_config.yaml"
"""The resolved RL config, written into the run folder."""
EVAL_DIR = "eval"
"""Sub-folder of a run folder with one NavBench-GS result folder per evaluation."""
EVAL_EPISODES_FILE = "episodes_{task}.json"
"""Held-out episode set of a task, saved in ``<run>/eval/`` (reused on resume)."""
EVAL_METRICS = ("success", "collisions", "route_completion", "spl", "pedestrian_collisions")
"""Aggregated NavBench-GS metrics logged to TensorBoard as ``eval/<task>/<metric>``."""
DEFAULT_TORCH_THREADS = 1
"""Intra-op threads of the learner process by default (see :func:`train_rl`)."""
ADAM_EPS = 1e-5
"""Adam's epsilon (CleanRL's PPO value; PyTorch's default 1e-8 is for supervised training)."""
EVAL_POLICY_FILE = "policy.onnx"
"""The policy an evaluation drove, exported into its ``eval/update_<n>/`` folder."""


def eval_dir(run_dir: Path, update: int) -> Path:
    """``<run_dir>/eval/update_<update, 8 digits>``: one evaluation's NavBench-GS folder."""
    return Path(run_dir) / EVAL_DIR / f"update_{update:08d}"


def build_policy(base: S2EPolicyNet, config: RLConfig) -> RamPolicy:
    """The :class:`RamPolicy` of ``config.policy`` around the pretrained ``base``."""
    p = config.policy
    return RamPolicy(base, p.variant, p.value_hidden, p.learn_log_std, seed=config.seed,
                     exploration=Exploration(p.min_sigma_m, p.mode_temperature,
                                             p.sampled_waypoints, p.noise_hold_steps),
                     critic_state_dim=len(CRITIC_STATE) if p.privileged_critic else 0)


def make_optimizer(policy: RamPolicy, config: RLConfig) -> torch.optim.Adam:
    """Adam (:data:`ADAM_EPS`) over the policy's trainable parameters in two groups.

    Group 0: the actor's (``ppo.lr``); group 1: the value head's (``ppo.value_lr``, or
    ``ppo.lr`` when it is null).
    """
    ppo = config.ppo
    critic = {id(p) for p in policy.value_head.parameters()}
    trainable = policy.trainable_parameters()
    return torch.optim.Adam(
        [{"params": [p for p in trainable if id(p) not in critic], "lr": ppo.lr},
         {"params": [p for p in trainable if id(p) in critic],
          "lr": ppo.lr if ppo.value_lr is None else ppo.value_lr}], eps=ADAM_EPS)


def load_rl_checkpoint(path: Path) -> tuple[RamPolicy, RLConfig, TrainConfig, np.ndarray, int]:
    """Rebuild the RL policy from an RL checkpoint (file or run folder).

    Returns:
        ``(policy, rl_config, train_config, anchors, updates)``: the :class:`RamPolicy` on
        the CPU in eval mode (an ONNX export takes it like an :class:`S2EPolicyNet`), the
        run's :class:`RLConfig`, the pretrained network's :class:`TrainConfig` and
        ``(K, W, 3)`` anchors, and the number of PPO updates done.

    Raises:
        CheckpointError: not an RL checkpoint, or one that does not fit its configs.
    """
    path = resolve_checkpoint(path)
    payload = read_checkpoint(path)
    data = payload["data"]
    if not isinstance(data, dict) or data.get("kind") != RL_CHECKPOINT_KIND:
        raise CheckpointError(f"{path}: not an RL checkpoint (a pretraining checkpoint? load "
                              "it with s2e_training.train.load_checkpoint)")
    try:
        config = RLConfig.from_dict(data["rl_config"], source=f"{path} (rl_config)")
    except S2EError as exc:
        raise CheckpointError(str(exc)) from exc
    policy = build_policy(build_model(payload["config"], payload["anchors"]), config)
    try:
        policy.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: policy weights do not fit its config ({exc})") from exc
    policy.eval()
    return policy, config, payload["config"], payload["anchors"], int(payload["step"])


def _to_tensors(obs: dict[str, np.ndarray], device: torch.device) -> tuple[torch.Tensor, ...]:
    """``(frames, goal, critic_state)`` tensors of a vector env's observations (E, ...).

    ``critic_state`` (E, 4) is the privileged state :func:`_with_critic_state` added.
    """
    return (torch.as_tensor(obs["frames"], device=device),
            torch.as_tensor(obs["goal"], device=device),
            torch.as_tensor(obs["critic_state"], device=device))


def _with_critic_state(obs: dict[str, np.ndarray], info: dict[str, Any]) -> dict[str, np.ndarray]:
    """The observations with the environments' privileged ``info["critic_state"]`` (E, 4)."""
    return {**obs, "critic_state": info["critic_state"]}


class Evaluator:
    """Held-out NavBench-GS evaluation of a policy as it ships.

    The policy is exported to ONNX (:meth:`export`) and driven by the runner of
    ``s2e navbench --policy FILE.onnx`` (ONNX Runtime, the onboard preprocessing and
    controller, the benchmark's rules: collisions are counted and the episode goes on). One
    simulator on the held-out street (``eval.scene``, or the generated street of
    ``eval.scene_seed``) and one episode set per task, saved as ``episodes_<task>.json`` in
    ``episodes_dir`` and reused from there, so a resumed run, or another policy, drives the
    same episodes.

    Args:
        config: the RL config: ``eval`` (tasks, street, episode count and seed) and ``env``
            (embodiment, camera width).
        episodes_dir: folder of the saved episode sets.
        tasks: overrides ``eval.tasks``.
        episodes: overrides ``eval.episodes`` (per task).
        seed: overrides ``eval.seed`` (the episode seed).
        render_width_px: overrides ``env.render_width_px`` (the camera's width).
    """

    def __init__(self, config: RLConfig, episodes_dir: Path, *,
                 tasks: Sequence[str] | None = None, episodes: int | None = None,
                 seed: int | None = None, render_width_px: int | None = None) -> None:
        ev = config.eval
        self.embodiment = config.env.embodiment
        scene = load_navbench_scene(ev.scene, ev.scene_seed)
        width = config.env.render_width_px if render_width_px is None else render_width_px
        self.sim = NavBenchSim(scene, load_embodiment(self.embodiment),
                               SimConfig(render_width_px=width))
        count = ev.episodes if episodes is None else episodes
        episode_seed = ev.seed if seed is None else seed
        self.sets: dict[str, EpisodeSet] = {
            task: episode_set_for(self.sim, task, count, episode_seed,
                                  cache=Path(episodes_dir) / EVAL_EPISODES_FILE.format(task=task))
            for task in (ev.tasks if tasks is None else tasks)}

    def export(self, policy: RamPolicy | S2EPolicyNet, out: Path, train_config: TrainConfig,
               update: int) -> Path:
        """Write ``policy`` as the ONNX policy ``out`` (its contract names the embodiment)."""
        export_network(policy, out, embodiment=self.embodiment, train_config=train_config,
                       checkpoint_step=update)
        return out

    def evaluate(self, policy_file: Path, out_dir: Path, meta: dict[str, Any] | None = None,
                 progress: bool = False) -> dict[str, list[EpisodeMetrics]]:
        """Run every held-out episode not yet finished in ``out_dir``; results go there.

        Args:
            policy_file: an ONNX policy (:meth:`export`).
            out_dir: NavBench-GS result folder (per-episode CSV and trajectories; with
                ``meta``, also ``metrics.json`` with the aggregates per task).
            meta: what ``metrics.json`` records about the run, or None to write none.
            progress: show a progress bar per task.

        Returns:
            ``{task: episodes}``, in episode-set order.
        """
        agent = make_agent(policy_file)
        results = {task: run_episode_set(self.sim, episode_set, agent, out_dir, num_videos=0,
                                         progress=progress)
                   for task, episode_set in self.sets.items()}
        if meta is not None:
            report.write_metrics(out_dir, {task: r.aggregate for task, r in results.items()},
                                 meta)
        return {task: r.episodes for task, r in results.items()}


@dataclass
class EpisodeTracker:
    """Per-env running sums of the training episodes, and the episodes that ended."""

    num_envs: int
    returns: np.ndarray = field(init=False)
    lengths: np.ndarray = field(init=False)
    terms: dict[str, np.ndarray] = field(init=False, default_factory=dict)
    finished: list[dict[str, float]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.returns = np.zeros(self.num_envs)
        self.lengths = np.zeros(self.num_envs, dtype=np.int64)

    def add(self, reward: np.ndarray, info: dict[str, Any], valid: np.ndarray,
            ended: np.ndarray) -> None:
        """Account one vector step (``valid``: not an autoreset step; ``ended``: done)."""
        self.returns += np.where(valid, reward, 0.0)
        self.lengths += valid
        for name, values in info.get("reward_terms", {}).items():
            if name.startswith("_"):
                continue
            mask = info["reward_terms"][f"_{name}"] & valid
            sums = self.terms.setdefault(name, np.zeros(self.num_envs))
            sums += np.where(mask, values, 0.0)
        terminations = info.get("termination", np.full(self.num_envs, None))
        for i in np.flatnonzero(ended & valid):
            self.finished.append({
                "return": float(self.returns[i]), "length": float(self.lengths[i]),
                "success": float(terminations[i] == "success"),
                **{f"term_{n}": float(v[i]) for n, v in self.terms.items()},
            })
            self.returns[i] = 0.0
            self.lengths[i] = 0
            for sums in self.terms.values():
                sums[i] = 0.0

    def pop_finished(self) -> list[dict[str, float]]:
        """The episodes that ended since the last call."""
        done, self.finished = self.finished, []
        return done


@torch.no_grad()
def collect_rollout(
    policy: RamPolicy,
    envs: Any,
    storage: RolloutStorage,
    obs: dict[str, np.ndarray],
    autoreset: np.ndarray,
    tracker: EpisodeTracker,
    waypoint_dt_s: float,
    generator: torch.Generator,
    noise: HeldNoise,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """Fill ``storage`` with one rollout from the vector env ``envs``.

    Args:
        policy: acts by :func:`distribution.sample` (mode, then waypoints).
        envs: a gymnasium vector env of ``NavBenchGS-v0`` with the ``waypoints`` action.
        storage: emptied and filled with ``storage.num_steps`` steps.
        obs: the current observations (E envs).
        autoreset: (E,) bool, the envs whose next step is an autoreset step.
        tracker: episode accounting.
        waypoint_dt_s: the model's waypoint time step (s).
        generator: for the action draws.
        noise: every env's exploration noise, held for ``policy.exploration.hold_steps``
            steps and renewed when an episode ends.

    Returns:
        ``(obs, autoreset, reward_means)``: the state to continue from and the mean per
        valid step of every reward term.
    """
    storage.reset()
    device = storage.value.device
    term_sums: dict[str, float] = {}
    valid_steps = 0
    for _ in range(storage.num_steps):
        inputs = policy.rollout_inputs(*_to_tensors(obs, device))
        output, value = policy.policy_and_value_from(inputs)
        held = noise.next(output.traj_norm.shape[1], output.traj_norm.shape[2], autoreset,
                          generator)
        action = distribution.sample(output, waypoint_dt_s, generator, policy.exploration,
                                     held)
        obs, reward, terminated, truncated, info = envs.step(
            action.waypoints_m.cpu().numpy().astype(np.float32))
        obs = _with_critic_state(obs, info)
        valid = ~autoreset
        storage.add(inputs=inputs, mode=action.mode, waypoints_m=action.waypoints_m,
                    log_prob=action.log_prob, value=value,
                    reward=torch.as_tensor(np.where(valid, reward, 0.0), dtype=torch.float32),
                    terminated=torch.as_tensor(terminated & valid),
                    truncated=torch.as_tensor(truncated & valid),
                    valid=torch.as_tensor(valid))
        ended = terminated | truncated
        tracker.add(reward, info, valid, ended)
        valid_steps += int(valid.sum())
        for name, values in info.get("reward_terms", {}).items():
            if not name.startswith("_"):
                mask = info["reward_terms"][f"_{name}"] & valid
                term_sums[name] = term_sums.get(name, 0.0) + float(np.sum(values[mask]))
        autoreset = ended & valid
    frames, goal, critic_state = _to_tensors(obs, device)
    storage.next_value.copy_(policy.policy_and_value(frames, goal, critic_state)[1])
    return obs, autoreset, {k: v / max(valid_steps, 1) for k, v in term_sums.items()}


@dataclass(frozen=True)
class RLResult:
    """What :func:`train_rl` did.

    Attributes:
        run_dir: the run folder.
        updates: PPO updates done (over all sessions of the run).
        env_steps: environment steps done (all processes).
        checkpoint: the latest checkpoint (None for ``sft``).
        evaluation: the last evaluation, ``{task: aggregate}`` (empty when none ran).
        digest: :func:`parameter_digest` of the final policy (equal on every rank).
        rank: this process's rank; ``world_size``: number of processes.
    """

    run_dir: Path
    updates: int
    env_steps: int
    checkpoint: Path | None
    evaluation: dict[str, dict]
    digest: str
    rank: int = 0
    world_size: int = 1


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (independent streams for (seed, rank, update, ...))."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def _resume(config: RLConfig, run_dir: Path) -> dict[str, Any]:
    """The latest RL checkpoint of ``run_dir``, checked against ``config``."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise S2EError(f"--resume: {run_dir} has no checkpoint to resume from")
    state = read_checkpoint(latest)
    data = state["data"]
    if not isinstance(data, dict) or data.get("kind") != RL_CHECKPOINT_KIND:
        raise S2EError(f"--resume: {latest} is not an RL checkpoint")
    saved = RLConfig.from_dict(data["rl_config"], source=f"{latest} (rl_config)")
    differences = saved.differences(config, ignore=("total_env_steps",))
    if differences:
        raise S2EError(f"--resume: the config differs from the checkpoint {latest} in "
                       f"{', '.join(differences)}; only 'total_env_steps' may change when "
                       "resuming")
    return {**state, "path": latest}


def train_rl(
    config: RLConfig,
    run_dir: Path,
    *,
    init: Path | None = None,
    resume: bool = False,
    total_env_steps: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    torch_threads: int | None = DEFAULT_TORCH_THREADS,
) -> RLResult:
    """RL post-training (see the module docstring).

    Under torchrun every rank calls this with the same arguments.

    Args:
        config: the run's configuration (on resume, equal to the checkpoint's apart from
            ``total_env_steps``).
        run_dir: run folder (``rl_config.yaml``, ``checkpoints/``, ``tensorboard/``,
            ``eval/``).
        init: the pretrained checkpoint (file or run folder); required unless resuming.
        resume: continue from the latest checkpoint in ``run_dir``.
        total_env_steps: overrides ``config.total_env_steps``.
        device: ``cpu`` or ``cuda``.
        progress: show a progress bar (rank 0).
        torch_threads: intra-op threads of this process (``torch.set_num_threads``);
            ``None`` keeps torch's default. The policy runs on batches of ``num_envs``
            observations while the environments use the other cores, and on a loaded
            machine torch's default (one thread per core) measured 30x slower per forward
            pass than one thread.

    Returns:
        :class:`RLResult`.

    Raises:
        S2EError: bad arguments, a run folder that already holds checkpoints without
            ``resume``, a config that differs from the checkpoint's, a non-finite loss, or
            ranks that diverged.
        KeyboardInterrupt: after Ctrl-C, once the checkpoint of the last update is written.
    """
    if total_env_steps is not None:
        if total_env_steps < 1:
            raise S2EError(f"--env-steps must be >= 1, got {total_env_steps}")
        config = dataclasses.replace(config, total_env_steps=total_env_steps)
    if torch_threads is not None:
        if torch_threads < 1:
            raise S2EError(f"--torch-threads must be >= 1, got {torch_threads}")
        torch.set_num_threads(torch_threads)
    distributed = DistributedContext.from_env()
    torch_device = _resolve_device(device, distributed)
    with process_group(distributed, torch_device):
        return _train_rl(config, Path(run_dir), init, resume, torch_device, progress,
                         distributed)


def _initial_state(config: RLConfig, run_dir: Path, init: Path | None, resume: bool,
                   ) -> tuple[RamPolicy, TrainConfig, np.ndarray, dict[str, Any] | None, str]:
    """Policy, pretrained config/anchors, the resume state (or None) and the init source."""
    if resume:
        state = _resume(config, run_dir)
        train_config, anchors = state["config"], state["anchors"]
        policy = build_policy(build_model(train_config, anchors), config)
        policy.load_state_dict(state["model"])
        return policy, train_config, anchors, state, str(state["data"]["init_checkpoint"])
    if init is None:
        raise S2EError("--init: a pretrained checkpoint (file or run folder) is required for a "
                       "new run")
    existing = latest_checkpoint(run_dir)
    if existing is not None:
        raise S2EError(f"{run_dir} already holds checkpoints (latest {existing.name}); pass "
                       "--resume to continue that run or choose another --out")
    base, train_config, anchors, _step = load_checkpoint(init)
    return build_policy(base, config), train_config, anchors, None, str(init)


def _train_rl(config: RLConfig, run_dir: Path, init: Path | None, resume: bool,
              device: torch.device, progress: bool,
              distributed: DistributedContext) -> RLResult:
    """:func:`train_rl` inside its process group."""
    policy, train_config, anchors, state, init_source = _initial_state(config, run_dir, init,
                                                                       resume)
    policy.to(device)
    ppo = config.ppo
    env_count = config.env.num_envs
    steps_per_update = ppo.steps_per_rollout * env_count * distributed.world_size
    total_updates = math.ceil(config.total_env_steps / steps_per_update)
    start = 0 if state is None else int(state["step"])
    env_steps = 0 if state is None else int(state["data"]["env_steps"])
    distributed.barrier()
    if distributed.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RL_CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")
    trainable = policy.trainable_parameters()
    if distributed.is_main:
        LOG.info("%s: variant %s, %d trainable of %d parameters, updates %d -> %d of %d env "
                 "steps each", run_dir, config.policy.variant, count_parameters(trainable),
                 count_parameters(list(policy.parameters())), start, total_updates,
                 steps_per_update)
    meta = {"variant": config.policy.variant, "init_checkpoint": init_source}
    evaluator = Evaluator(config, run_dir / EVAL_DIR) if distributed.is_main else None
    writer = _summary_writer(run_dir, env_steps) if distributed.is_main else None
    last_eval: dict[str, dict] = {}

    def evaluate(update: int, steps_done: int) -> None:
        nonlocal last_eval
        if evaluator is None:
            return
        out = eval_dir(run_dir, update)
        episodes = evaluator.evaluate(
            evaluator.export(policy, out / EVAL_POLICY_FILE, train_config, update), out,
            {**meta, "update": update, "env_steps": steps_done})
        last_eval = {task: aggregate(done) for task, done in episodes.items()}
        for task, agg in last_eval.items():
            for key in EVAL_METRICS:
                writer.add_scalar(f"eval/{task}/{key}", agg[key], steps_done)
        writer.flush()

    try:
        if config.policy.variant == "sft":
            evaluate(0, 0)
            return RLResult(run_dir, 0, 0, None, last_eval, parameter_digest(policy),
                            distributed.rank, distributed.world_size)
        optimizer = make_optimizer(policy, config)
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            restore_rng_state(state["rng"])
        elif config.eval.at_start:
            evaluate(0, 0)
        if start >= total_updates:
            LOG.info("%s: already at update %d of %d, nothing to do", run_dir, start,
                     total_updates)
            return RLResult(run_dir, start, env_steps, state["path"] if state else None,
                            last_eval, parameter_digest(policy), distributed.rank,
                            distributed.world_size)
        result = _loop(config, run_dir, policy, optimizer, train_config, anchors, start,
                       total_updates, env_steps, device, progress, distributed, writer,
                       evaluate, init_source)
        return dataclasses.replace(result, evaluation=last_eval)
    finally:
        if writer is not None:
            writer.close()


def _loop(config: RLConfig, run_dir: Path, policy: RamPolicy, optimizer: torch.optim.Optimizer,
          train_config: TrainConfig, anchors: np.ndarray, start: int, total_updates: int,
          env_steps: int, device: torch.device, progress: bool,
          distributed: DistributedContext, writer: Any, evaluate: Callable[[int, int], None],
          init_source: str) -> RLResult:
    """The update loop of :func:`train_rl` (rollout, PPO, logging, evaluation, checkpoints)."""
    model = train_config.model
    ppo = config.ppo
    env_count = config.env.num_envs
    steps_per_update = ppo.steps_per_rollout * env_count * distributed.world_size
    envs = make_vector_env(env_count, config.env.asynchronous, config.env.scene,
                           env_config(config.env, model),
                           seed=config.seed + distributed.rank * env_count)
    generator = torch.Generator().manual_seed(_seed(config.seed, distributed.rank, start))
    storage = RolloutStorage(ppo.steps_per_rollout, env_count, policy.rollout_input_shapes(),
                             model.waypoints, device)
    tracker = EpisodeTracker(env_count)
    noise = HeldNoise(env_count, policy.exploration.hold_steps)
    update, saved_update, saved = start, start, None

    def checkpoint() -> Path:
        path = checkpoint_path(run_dir, update)
        distributed.barrier()
        if distributed.is_main:
            save_checkpoint(path, model=policy, optimizer=optimizer, step=update,
                            config=train_config, anchors=anchors, data={
                                "kind": RL_CHECKPOINT_KIND, "rl_config": config.to_dict(),
                                "env_steps": env_steps, "init_checkpoint": init_source})
        distributed.barrier()
        return path

    bar = tqdm(total=total_updates * steps_per_update, initial=env_steps, unit="step",
               desc=f"rl {config.policy.variant}", dynamic_ncols=True,
               disable=not (progress and distributed.is_main))
    try:
        obs, info = envs.reset(seed=_seed(config.seed, distributed.rank, start) % 2**31)
        obs = _with_critic_state(obs, info)
        autoreset = np.zeros(env_count, dtype=bool)
        policy.train()
        with deferred_sigint() as interrupted:
            while update < total_updates:
                obs, autoreset, reward_means = collect_rollout(
                    policy, envs, storage, obs, autoreset, tracker, model.waypoint_dt_s,
                    generator, noise)
                compute_gae(storage, ppo.gamma, ppo.gae_lambda)
                stats = ppo_update(policy, optimizer, storage, ppo, model.waypoint_dt_s,
                                   generator, distributed,
                                   train_policy=update >= ppo.value_warmup_updates)
                update += 1
                env_steps += steps_per_update
                episodes = tracker.pop_finished()
                bar.update(steps_per_update)
                bar.set_postfix(kl=f"{stats.get('approx_kl', 0.0):.4f}",
                                ret=f"{np.mean([e['return'] for e in episodes]):.2f}"
                                if episodes else "-")
                if writer is not None:
                    _log_update(writer, env_steps, stats, reward_means, episodes, policy)
                every = config.eval.every_updates
                if (every and update % every == 0) or update == total_updates:
                    evaluate(update, env_steps)
                if update % config.checkpoint_every_updates == 0 or update == total_updates:
                    saved, saved_update = checkpoint(), update
                if distributed.any(interrupted.is_set(), device):
                    if saved_update != update:
                        saved, saved_update = checkpoint(), update
                    LOG.warning("interrupted at update %d; checkpoint %s", update, saved)
                    raise KeyboardInterrupt
    finally:
        bar.close()
        envs.close()
    digest = parameter_digest(policy)
    _check_ranks_agree(digest, distributed)
    return RLResult(run_dir, update, env_steps, saved, {}, digest, distributed.rank,
                    distributed.world_size)


def _log_update(writer: Any, env_steps: int, stats: dict[str, float],
                reward_means: dict[str, float], episodes: Sequence[dict[str, float]],
                policy: RamPolicy) -> None:
    """TensorBoard scalars of one update, at ``env_steps``."""
    groups = {"loss": ("policy_loss", "value_loss", "explained_variance"),
              "policy": ("entropy", "mode_entropy", "gaussian_entropy", "approx_kl",
                         "clip_fraction", "grad_norm", "minibatch_steps", "early_stop",
                         "stop_kl")}
    for group, keys in groups.items():
        for key in keys:
            if key in stats and math.isfinite(stats[key]):
                writer.add_scalar(f"{group}/{key}", stats[key], env_steps)
    writer.add_scalar("policy/log_std", float(policy.log_std.detach()), env_steps)
    for name, value in reward_means.items():
        writer.add_scalar(f"reward/{name}", value, env_steps)
    if episodes:
        for key in episodes[0]:
            writer.add_scalar(f"episode/{key}", float(np.mean([e[key] for e in episodes])),
                              env_steps)
        writer.add_scalar("episode/count", len(episodes), env_steps)
