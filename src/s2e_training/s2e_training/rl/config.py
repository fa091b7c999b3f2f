"""Configuration of RL post-training (RAM + PPO): one :class:`RLConfig`, strict YAML.

A file has these top-level keys (unknown keys are refused; sections may leave fields out to
take the defaults documented on each dataclass)::

    policy:  {variant: ram|decoder|full|sft, value_hidden, learn_log_std, min_sigma_m,
              mode_temperature, sampled_waypoints, noise_hold_steps,
              privileged_critic}
                                                                           -> PolicyConfig
    env:     {task, embodiment, scene, scene_seed, scenes, render_width_px, num_envs,
              asynchronous,
              episode_pool_size, terminate_on_collision,
              reward: {<RewardConfig field>: weight}}                     -> RolloutEnvConfig
    ppo:     {<PPOConfig field>: value}                                   -> PPOConfig
    eval:    {tasks, episodes, seed, scene, scene_seed, every_updates, at_start} -> EvalConfig
    total_env_steps, checkpoint_every_updates, seed                        (required)

The environment's observation and action shapes are not configured here: they come from the
pretrained model (frame count and size, waypoint count) and its waypoint time step sets the
simulator's control rate, so the policy always sees what it was trained on
(:func:`env_config`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_policy.yaml_files import read_yaml
from s2e_sim_bridge.envs import EnvConfig, RewardConfig
from s2e_sim_bridge.navbench.sim import SimConfig
from s2e_sim_bridge.navbench.tasks import get_task
from s2e_training.model.config import ModelConfig, dataclass_from_dict
from s2e_training.rl.ppo import PPOConfig
from s2e_training.rl.ram import VARIANTS

SCALAR_KEYS = ("total_env_steps", "checkpoint_every_updates", "seed")
SECTION_KEYS = ("policy", "env", "ppo", "eval")


class RLConfigError(S2EError):
    """An RL configuration is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class PolicyConfig:
    """Which parameters train, and the heads RL adds (see :mod:`s2e_training.rl.ram`).

    Attributes:
        variant: ``ram`` | ``decoder`` | ``full`` | ``sft``.
        value_hidden: hidden width of the value MLP.
        learn_log_std: train the global log-std shift of the waypoint Gaussians.
        min_sigma_m: exploration floor (metres): isotropic noise of this standard deviation
            is added to every sampled waypoint (its variance to the predicted covariance,
            :mod:`s2e_training.rl.distribution`). Pretrained S2E policies predict waypoint
            Gaussians as narrow as millimetres, where a PPO step that moves a mean by a
            centimetre changes log-probabilities by tens of nats; the floor keeps the
            density of the executed action smooth. It shapes exploration only: the
            deterministic policy (the robot, the evaluation, the ONNX export) is unchanged.
        mode_temperature: ``tau`` of the mode probabilities ``softmax(scores / tau)`` while
            training (> 0; 1 = the network's own). AGDM-pretrained scores spread over many
            anchors (the shipped policy's mode entropy is 2.2 nats, its top mode only a third
            of the probability), so at 1 most training actions follow modes the deterministic
            policy never runs; ``tau < 1`` concentrates rollouts on the top modes, so what PPO
            improves is what the robot executes. Shapes exploration only, like the floor.
        sampled_waypoints: the leading waypoints an action draws from the Gaussians and
            PPO scores (0: all). The environment's controller steers by the first waypoint
            alone, so with 1 the log-probability is of what the robot executes; with all of
            them, the other waypoints' noise enters every ratio without any effect on the
            rewards (:mod:`s2e_training.rl.distribution`).
        noise_hold_steps: control steps a training environment keeps its exploration noise
            (the mode's Gumbel variables and the waypoints' normal ones; 1: fresh every
            step). Each action is still drawn from the same distribution, but the robot
            follows one anchor and one steering offset for that long, so exploration can
            find detours that take seconds of steering one way
            (:class:`s2e_training.rl.distribution.HeldNoise`). Shapes exploration only.
        privileged_critic: the critic also takes the simulator's privileged state
            (:data:`s2e_sim_bridge.envs.CRITIC_STATE`: geodesic distance to the goal,
            clearance to static obstacles, nearest pedestrian, elapsed share of the time
            limit), an asymmetric actor-critic: the value of a state a collision is about to
            end no longer has to be read off the camera. The actor, the evaluation and the
            export are unchanged.
    """

    variant: str = "ram"
    value_hidden: int = 128
    learn_log_std: bool = True
    min_sigma_m: float = 0.1
    mode_temperature: float = 1.0
    sampled_waypoints: int = 0
    noise_hold_steps: int = 1
    privileged_critic: bool = False

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise RLConfigError(f"'policy.variant' must be one of {VARIANTS}, got "
                                f"{self.variant!r}")
        if self.value_hidden < 1:
            raise RLConfigError(f"'policy.value_hidden' must be >= 1, got {self.value_hidden}")
        if not self.min_sigma_m >= 0.0:
            raise RLConfigError(f"'policy.min_sigma_m' must be >= 0 (metres), got "
                                f"{self.min_sigma_m}")
        if not (math.isfinite(self.mode_temperature) and self.mode_temperature > 0.0):
            raise RLConfigError(f"'policy.mode_temperature' must be a finite number > 0, got "
                                f"{self.mode_temperature}")
        if self.sampled_waypoints < 0:
            raise RLConfigError(f"'policy.sampled_waypoints' must be >= 0 (0: all), got "
                                f"{self.sampled_waypoints}")
        if self.noise_hold_steps < 1:
            raise RLConfigError(f"'policy.noise_hold_steps' must be >= 1 (control steps), got "
                                f"{self.noise_hold_steps}")


@dataclass(frozen=True)
class RolloutEnvConfig:
    """The training environments (NavBench-GS, gymnasium vector env).

    Attributes:
        task: NavBench-GS task of the training episodes.
        embodiment: embodiment name or YAML path.
        scene: scene file (PLY/.splat with its scene YAML), or ``null`` for the generated
            street(s) of ``scene_seed``.
        scene_seed: seed of the (first) generated street.
        scenes: generated streets every environment trains on (seeds ``scene_seed``,
            ``scene_seed + 1``, ...); each reset draws from all of their episodes. The
            held-out street (``eval.scene_seed``) may not be one of them.
        render_width_px: camera image width (px) before the policy's preprocessing (centre
            square crop, resize to the model's ``image_size``); by default the benchmark's
            (``s2e navbench``). Frames whose crop is smaller than ``image_size`` are refused
            (:func:`env_config`): the policy would see upsampled, blurred frames it never
            saw in pretraining.
        num_envs: environments per process.
        asynchronous: step the environments in parallel, in one group per core at most,
            the first in the runner's process and the others in worker processes
            (:class:`s2e_sim_bridge.envs.vector.GroupedAsyncVectorEnv`).
        episode_pool_size: episodes sampled per environment and street; resets draw from
            them.
        reward: weights of the reward terms.
        terminate_on_collision: end a training episode at its first collision
            (:class:`~s2e_sim_bridge.envs.EnvConfig`); held-out evaluation always follows
            the task's rule (collisions counted, the episode goes on).
    """

    task: str = "obstacle"
    embodiment: str = "wheeled"
    scene: str | None = None
    scene_seed: int = 0
    scenes: int = 1
    render_width_px: int = SimConfig().render_width_px
    num_envs: int = 2
    asynchronous: bool = True
    episode_pool_size: int = 16
    reward: RewardConfig = field(default_factory=RewardConfig)
    terminate_on_collision: bool = True

    def __post_init__(self) -> None:
        get_task(self.task)
        for key in ("render_width_px", "num_envs", "episode_pool_size", "scenes"):
            if getattr(self, key) < 1:
                raise RLConfigError(f"'env.{key}' must be >= 1, got {getattr(self, key)}")
        if self.scene is not None and self.scenes != 1:
            raise RLConfigError(f"'env.scenes' is {self.scenes} with 'env.scene' "
                                f"{self.scene!r}: several scenes are generated streets only "
                                "(scene: null)")


@dataclass(frozen=True)
class EvalConfig:
    """Periodic closed-loop evaluation on held-out NavBench-GS episodes (process 0 only).

    Attributes:
        tasks: tasks evaluated, each on its own episode set.
        episodes: episodes per task.
        seed: episode sampling seed; differs from the training pools' seeds
            (``seed + i``, ``i`` < environments), so the episodes are held out.
        scene: scene file for evaluation, or ``null`` for the generated street of
            ``scene_seed`` (a seed other than the training one holds the scene out too).
        scene_seed: seed of the generated evaluation street.
        every_updates: evaluate after every this many PPO updates (and after the last);
            0 evaluates after the last update only.
        at_start: also evaluate the initial (pretrained) policy before any update.
    """

    tasks: tuple[str, ...] = ("obstacle",)
    episodes: int = 5
    seed: int = 1000
    scene: str | None = None
    scene_seed: int = 1
    every_updates: int = 10
    at_start: bool = True

    def __post_init__(self) -> None:
        if not self.tasks:
            raise RLConfigError("'eval.tasks' must name at least one task")
        for task in self.tasks:
            get_task(task)
        if self.episodes < 1:
            raise RLConfigError(f"'eval.episodes' must be >= 1, got {self.episodes}")
        if self.every_updates < 0:
            raise RLConfigError(f"'eval.every_updates' must be >= 0, got {self.every_updates}")


@dataclass(frozen=True)
class RLConfig:
    """Everything one RL post-training run depends on (see the module docstring).

    Attributes:
        policy: variant and heads.
        env: training environments.
        ppo: PPO hyperparameters.
        eval: held-out evaluation.
        total_env_steps: environment steps of the whole run (all processes together); the
            run does ``ceil(total / (steps_per_rollout * num_envs * processes))`` updates.
        checkpoint_every_updates: write a checkpoint after every this many updates (and at
            the end).
        seed: seeds the value head, action sampling, minibatch order and episode pools.
    """

    policy: PolicyConfig
    env: RolloutEnvConfig
    ppo: PPOConfig
    eval: EvalConfig
    total_env_steps: int
    checkpoint_every_updates: int
    seed: int

    def __post_init__(self) -> None:
        for key in ("total_env_steps", "checkpoint_every_updates"):
            if getattr(self, key) < 1:
                raise RLConfigError(f"'{key}' must be an integer >= 1, got {getattr(self, key)}")
        env, ev = self.env, self.eval
        training_streets = range(env.scene_seed, env.scene_seed + env.scenes)
        if env.scene is None and ev.scene is None and ev.scene_seed in training_streets:
            raise RLConfigError(
                f"'eval.scene_seed' {ev.scene_seed} is one of the training streets "
                f"('env.scene_seed' {env.scene_seed}, 'env.scenes' {env.scenes}: seeds "
                f"{training_streets.start}-{training_streets.stop - 1}); held-out evaluation "
                "needs a street the policy did not train on")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "RL config") -> RLConfig:
        """Build a config from a mapping (parsed YAML), strictly validated.

        Raises:
            RLConfigError: unknown or missing key (dotted), wrong type or bad value.
        """
        if not isinstance(data, Mapping):
            raise RLConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        known = SECTION_KEYS + SCALAR_KEYS
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise RLConfigError(f"{source}: unknown key '{unknown[0]}' (expected: "
                                f"{', '.join(known)})")
        missing = [key for key in SCALAR_KEYS if key not in data]
        if missing:
            raise RLConfigError(f"{source}: missing required key '{missing[0]}'")
        try:
            return dataclass_from_dict(cls, {key: data.get(key, {}) if key in SECTION_KEYS
                                             else data[key] for key in known}, source)
        except S2EError as exc:
            if str(exc).startswith(source):
                raise RLConfigError(str(exc)) from exc
            raise RLConfigError(f"{source}: {exc}") from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> RLConfig:
        """Load a config from a YAML file (see :meth:`from_dict`)."""
        data = read_yaml(path, "RL config", RLConfigError)
        return cls.from_dict(data if data is not None else {}, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (YAML/JSON serialisable) that :meth:`from_dict` reads back."""
        out = dataclasses.asdict(self)
        out["eval"]["tasks"] = list(self.eval.tasks)
        return out

    def differences(self, other: RLConfig, ignore: tuple[str, ...] = ()) -> list[str]:
        """Top-level fields (sections, scalars) in which ``other`` differs, but ``ignore``."""
        return [f.name for f in dataclasses.fields(RLConfig)
                if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)]

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def env_config(section: RolloutEnvConfig, model: ModelConfig, task: str | None = None,
               episode_pool_size: int | None = None, training: bool = True) -> EnvConfig:
    """The gymnasium env config that serves ``model``: its frames, waypoints and time step.

    The simulator's control period is the model's ``waypoint_dt_s``, so the first sampled
    waypoint is where the robot should be after one control step, as the paper's controller
    (:func:`s2e_policy.controller.direct_command`) assumes. ``training=False`` (held-out
    evaluation) keeps the task's collision rule instead of ``section.terminate_on_collision``.

    Raises:
        RLConfigError: ``section.render_width_px`` renders frames whose centre square is
            smaller than the model's ``image_size`` (the policy would see them upsampled).
    """
    camera = load_embodiment(section.embodiment).camera
    height_px = max(1, round(section.render_width_px * camera.image_height_px
                             / camera.image_width_px))
    if min(section.render_width_px, height_px) < model.image_size:
        raise RLConfigError(
            f"'env.render_width_px' {section.render_width_px} renders "
            f"{section.render_width_px}x{height_px} frames, whose centre square is smaller "
            f"than the policy's {model.image_size}x{model.image_size} input: it would see "
            "upsampled, blurred frames unlike its pretraining data; render at least "
            f"{math.ceil(model.image_size * camera.image_width_px / camera.image_height_px)} "
            "px wide")
    sim = SimConfig(control_rate_hz=1.0 / model.waypoint_dt_s,
                    render_width_px=section.render_width_px)
    return EnvConfig(
        task=task or section.task, embodiment=section.embodiment, scene_seed=section.scene_seed,
        scenes=section.scenes,
        context_frames=model.context_frames, image_size_px=model.image_size,
        action_type="waypoints", num_waypoints=model.waypoints,
        episode_pool_size=episode_pool_size or section.episode_pool_size, sim=sim,
        reward=section.reward,
        terminate_on_collision=section.terminate_on_collision if training else None,
    )
