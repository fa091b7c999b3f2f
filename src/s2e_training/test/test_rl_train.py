"""`s2e train rl` end to end on a tiny policy pretrained on simulator rollouts.

Covers: the CLI, TensorBoard scalars (every reward term, evaluation SR/collisions, PPO
statistics), atomic checkpoints, Ctrl-C and resume, held-out evaluation through the
NavBench-GS metrics, 2 asynchronous rollout workers, the ``sft`` baseline and bad input.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from s2e_policy.cli import main
from s2e_policy.embodiment import load_embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.navbench import report
from s2e_sim_bridge.navbench.agents import make_agent
from s2e_sim_bridge.navbench.metrics import EpisodeMetrics
from s2e_sim_bridge.navbench.runner import DEFAULT_SCENE_SEED, episode_set_for, run_episode
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.scene import generate_street_scene, load_scene, save_scene
from s2e_training.data.sample import Trajectory
from s2e_training.export.onnx_export import random_inputs
from s2e_training.export.parity import max_abs_errors, open_session
from s2e_training.export.settings import FP32_PARITY_ATOL
from s2e_training.pretrained import shipped_checkpoint_path
from s2e_training.rl import RLConfig, load_rl_checkpoint, train_rl
from s2e_training.rl import runner as rl_runner
from s2e_training.rl.config import env_config
from s2e_training.rl.runner import EVAL_DIR, EVAL_EPISODES_FILE, EVAL_POLICY_FILE, eval_dir
from s2e_training.train import CheckpointError, TrainConfig, load_checkpoint, pretrain
from s2e_training.train.checkpoint import list_checkpoints

SIM_RATE_HZ = 5.0
RENDER_WIDTH_PX = 48
# A short street with few Gaussians: environments build in about a second.
STREET = {"length_m": 30.0, "num_gaussians": 20_000}
# Held-out evaluation episodes are cut to this many seconds (10 control steps) for speed.
EVAL_TIME_LIMIT_S = 2.0
PRETRAIN = {
    "model": {
        "preset": "small", "image_size": 32, "context_frames": 2, "num_anchors": 6,
        "waypoints": 4, "d_model": 32, "heads": 4, "fusion_layers": 1, "decoder_layers": 2,
        "ffn_dim": 64, "encoder": {"kind": "cnn", "channels": [8, 16]}, "waypoint_dt_s": 0.2,
        "anchor_kind": "kmeans",
    },
    "data": {"goal_min_s": 0.4, "goal_max_s": 4.0},
    "augment": None,
    "loss": {"mode": "agdm"},
    "optim": {"lr": 3.0e-3, "weight_decay": 0.01, "grad_clip_norm": 1.0},
    "steps": 4, "batch_size": 8, "num_workers": 0, "checkpoint_every_steps": 4,
    "log_every_steps": 4, "seed": 3,
}
RL = {
    "policy": {"variant": "ram", "value_hidden": 32},
    "env": {"task": "empty", "render_width_px": RENDER_WIDTH_PX, "num_envs": 2,
            "asynchronous": False, "episode_pool_size": 2},
    "ppo": {"steps_per_rollout": 8, "epochs": 2, "minibatches": 2, "lr": 1.0e-3},
    "eval": {"tasks": ["empty"], "episodes": 1, "seed": 100, "every_updates": 2,
             "at_start": True},
    "total_env_steps": 48,
    "checkpoint_every_updates": 1,
    "seed": 0,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small street scene and a tiny policy pretrained (AGDM) on an expert episode in it."""
    root = tmp_path_factory.mktemp("rl")
    scene, _ = generate_street_scene(0, **STREET)
    ply, _ = save_scene(scene, root / "street.ply")
    sim = NavBenchSim(load_scene(ply), load_embodiment("wheeled"),
                      SimConfig(control_rate_hz=SIM_RATE_HZ, render_width_px=RENDER_WIDTH_PX))
    camera: list = []
    metrics, poses, _ = run_episode(sim, episode_set_for(sim, "empty", 1, seed=0), 0,
                                    make_agent("expert"), camera=camera)
    assert metrics.success == 1.0
    stamps = np.arange(len(poses), dtype=np.int64) * round(1e9 / SIM_RATE_HZ)
    expert = Trajectory(source="navbench", trajectory_id="expert-empty-000",
                        frame_stamps_ns=stamps, frames=camera, pose_stamps_ns=stamps,
                        poses=poses, frame_ids=np.arange(len(poses), dtype=np.int64))
    result = pretrain(TrainConfig.from_dict(PRETRAIN), [expert], root / "pretrain",
                      progress=False)
    return {"root": root, "scene": ply, "init": result.checkpoint}


def rl_config(world: dict[str, Path], tmp_path: Path, **overrides: object) -> Path:
    data = copy.deepcopy(RL)
    data["env"]["scene"] = data["eval"]["scene"] = str(world["scene"])
    for key, value in overrides.items():
        if isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def short_held_out_episodes(world: dict[str, Path], run_dir: Path,
                            path: Path | None = None) -> None:
    """Write the held-out episode set the run will reuse, each episode cut short.

    ``path`` overrides where (default: the run's own evaluation folder).
    """
    sim = NavBenchSim(load_scene(world["scene"]), load_embodiment("wheeled"),
                      SimConfig(render=False))
    episodes = episode_set_for(sim, "empty", RL["eval"]["episodes"], RL["eval"]["seed"])
    episodes.episodes = [dataclasses.replace(e, time_limit_s=EVAL_TIME_LIMIT_S)
                         for e in episodes.episodes]
    episodes.save(path or run_dir / EVAL_DIR / EVAL_EPISODES_FILE.format(task="empty"))


def scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_cli_trains_logs_evaluates_and_resumes_after_ctrl_c(world, tmp_path, monkeypatch,
                                                             capsys) -> None:
    config = rl_config(world, tmp_path)
    out = tmp_path / "run"
    short_held_out_episodes(world, out)
    # Ctrl-C during the second of three updates: the update finishes, is checkpointed, and
    # the run stops (KeyboardInterrupt, which the CLI reports).
    calls = []
    real_update = rl_runner.ppo_update

    def interrupted_update(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_update(*args, **kwargs)

    monkeypatch.setattr(rl_runner, "ppo_update", interrupted_update)
    assert main(["train", "rl", "--init", str(world["init"]), "--config", str(config),
                 "--out", str(out), "--no-progress"]) == 130  # the CLI's "interrupted" status
    assert "interrupted" in capsys.readouterr().err
    assert [step for step, _ in list_checkpoints(out)] == [1, 2]
    monkeypatch.setattr(rl_runner, "ppo_update", real_update)

    # Without --resume the run folder is refused; with it the run finishes.
    assert main(["train", "rl", "--init", str(world["init"]), "--config", str(config),
                 "--out", str(out), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "rl", "--config", str(config), "--out", str(out), "--resume",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "update 3, env steps 48" in printed and "eval: empty SR" in printed
    assert [step for step, _ in list_checkpoints(out)] == [1, 2, 3]

    logged = scalars(out)
    for term in ("progress", "arrival", "collision", "sidewalk_centring", "social",
                 "smoothness", "clearance", "overspeed"):
        assert sorted(logged[f"reward/{term}"]) == [16, 32, 48], term
    for tag in ("loss/policy_loss", "loss/value_loss", "policy/approx_kl", "policy/entropy",
                "policy/mode_entropy", "policy/clip_fraction", "policy/log_std"):
        assert sorted(logged[tag]) == [16, 32, 48], tag
    # Evaluation before training (the pretrained policy), every 2 updates and at the end.
    assert sorted(logged["eval/empty/success"]) == [0, 32, 48]
    assert sorted(logged["eval/empty/collisions"]) == [0, 32, 48]
    finished = report.read_finished(eval_dir(out, 3))
    assert len(finished) == 1 and finished[0].time_s <= EVAL_TIME_LIMIT_S + 1e-6
    assert (eval_dir(out, 3) / "metrics.json").is_file()

    policy, loaded_config, train_config, anchors, updates = load_rl_checkpoint(out)
    assert updates == 3 and loaded_config == RLConfig.from_yaml(config)
    base, _, _, _ = load_checkpoint(world["init"])
    for name, value in base.state_dict().items():  # the RAM variant leaves the base alone
        assert torch.equal(policy.base.state_dict()[name], value), name
    assert any(block.zero_out.weight.abs().max() > 0 for block in policy.ram.blocks)
    assert anchors.shape == (6, 4, 3) and train_config.model == base.config

    # `s2e export` takes the RL run folder: the file is the RAM-augmented policy.
    onnx_path = tmp_path / "rl.onnx"
    assert main(["export", str(out), "--out", str(onnx_path)]) == 0
    printed = capsys.readouterr().out
    assert "parity check passed" in printed and "checkpoint_step: 3" in printed
    frames, goal = random_inputs(policy, 2, seed=1)
    errors = max_abs_errors(policy, open_session(onnx_path), frames.numpy(), goal.numpy())
    assert max(errors.values()) < FP32_PARITY_ATOL
    errors_vs_base = max_abs_errors(base, open_session(onnx_path), frames.numpy(),
                                    goal.numpy())
    assert errors_vs_base["traj_m"] > FP32_PARITY_ATOL  # not the pretrained network
    # Each evaluation drove the policy of its update, exported as the robot would run it.
    for update, network in ((0, base), (3, policy)):
        evaluated = open_session(eval_dir(out, update) / EVAL_POLICY_FILE)
        errors = max_abs_errors(network, evaluated, frames.numpy(), goal.numpy())
        assert max(errors.values()) < FP32_PARITY_ATOL, update

    # A finished run has nothing left to do; more steps continue it.
    result = train_rl(RLConfig.from_yaml(config), out, resume=True, progress=False)
    assert result.updates == 3 and list_checkpoints(out)[-1][0] == 3


def test_two_asynchronous_rollout_workers(world, tmp_path, monkeypatch) -> None:
    # Full fine-tuning with the privileged critic: the rollout stores each observation's
    # frames, goal and critic state, and PPO's minibatches hand the state to the critic.
    # Exploration noise held for the whole rollout at a high mode temperature: each env
    # keeps following the mode its Gumbel variables pick.
    seen: list[torch.Tensor] = []
    modes: list[torch.Tensor] = []
    real_update = rl_runner.ppo_update

    def recording_update(policy, optimizer, storage, *args, **kwargs):
        seen.append(storage.inputs["critic_state"].clone())
        modes.append(storage.mode.clone())
        return real_update(policy, optimizer, storage, *args, **kwargs)

    monkeypatch.setattr(rl_runner, "ppo_update", recording_update)
    config = RLConfig.from_yaml(rl_config(
        world, tmp_path, policy={"variant": "full", "value_hidden": 32,
                                 "privileged_critic": True, "mode_temperature": 10.0,
                                 "noise_hold_steps": 8},
        env={"asynchronous": True}, eval={"at_start": False, "every_updates": 0},
        total_env_steps=16))
    out = tmp_path / "async"
    short_held_out_episodes(world, out)
    result = train_rl(config, out, init=world["init"], progress=False)
    assert result.updates == 1 and result.env_steps == 16
    assert result.evaluation["empty"]["episodes"] == 1
    policy, *_ = load_rl_checkpoint(result.checkpoint)
    base, *_ = load_checkpoint(world["init"])
    moved = [n for n, v in base.state_dict().items()
             if not torch.equal(policy.base.state_dict()[n], v)]
    assert any(n.startswith("encoder.") for n in moved)  # full fine-tuning reaches the encoder
    assert policy.value_head.state_dim == 4
    (states,) = seen
    assert states.shape == (8, 2, 4)
    assert states.min() >= 0.0 and states.max() <= 1.0
    # Geodesic distance and elapsed time vary along the episodes: the rollout stored them.
    assert states[..., 0].std() > 0 and states[..., 3].std() > 0
    (mode,) = modes  # (steps, envs); with fresh noise every step they vary within an env
    assert mode.shape == (8, 2) and torch.equal(mode, mode[:1].expand(8, 2))


def test_sft_baseline_only_evaluates(world, tmp_path) -> None:
    config = RLConfig.from_yaml(rl_config(world, tmp_path, policy={"variant": "sft"}))
    out = tmp_path / "sft"
    short_held_out_episodes(world, out)
    result = train_rl(config, out, init=world["init"], progress=False)
    assert result.updates == 0 and result.checkpoint is None
    assert set(result.evaluation) == {"empty"}
    assert (eval_dir(out, 0) / "metrics.json").is_file()
    assert list_checkpoints(out) == []


def test_bad_input_is_refused(world, tmp_path) -> None:
    config = rl_config(world, tmp_path)
    with pytest.raises(S2EError, match=r"--init: a pretrained checkpoint"):
        train_rl(RLConfig.from_yaml(config), tmp_path / "x", progress=False)
    with pytest.raises(S2EError, match=r"--resume: .* has no checkpoint"):
        train_rl(RLConfig.from_yaml(config), tmp_path / "x", resume=True, progress=False)
    with pytest.raises(CheckpointError, match=r"not an RL checkpoint"):
        load_rl_checkpoint(world["init"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**RL, "ppo": {"learning_rate": 1.0}}))
    with pytest.raises(S2EError, match=r"bad.yaml: unknown key 'ppo.learning_rate'"):
        RLConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({**RL, "policy": {"min_sigma_m": -0.1}}))
    with pytest.raises(S2EError, match=r"'policy.min_sigma_m' must be >= 0"):
        RLConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({**RL, "policy": {"mode_temperature": 0.0}}))
    with pytest.raises(S2EError, match=r"'policy.mode_temperature' must be a finite number > 0"):
        RLConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({**RL, "policy": {"sampled_waypoints": -1}}))
    with pytest.raises(S2EError, match=r"'policy.sampled_waypoints' must be >= 0"):
        RLConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({**RL, "policy": {"noise_hold_steps": 0}}))
    with pytest.raises(S2EError, match=r"'policy.noise_hold_steps' must be >= 1"):
        RLConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({**RL, "eval": {"tasks": ["stairs"]}}))
    with pytest.raises(S2EError, match=r"unknown task 'stairs'"):
        RLConfig.from_yaml(bad)
    # training on several streets must leave the held-out one out
    bad.write_text(yaml.safe_dump({**RL, "env": {"scene_seed": 0, "scenes": 3},
                                   "eval": {"scene_seed": 2}}))
    with pytest.raises(S2EError, match=r"'eval.scene_seed' 2 is one of the training streets"):
        RLConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({**RL, "env": {"scene": "a.ply", "scenes": 2}}))
    with pytest.raises(S2EError, match=r"'env.scenes' is 2 with 'env.scene' 'a.ply'"):
        RLConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({**RL, "env": {"scenes": 0}}))
    with pytest.raises(S2EError, match=r"'env.scenes' must be >= 1"):
        RLConfig.from_yaml(bad)
    # 32 px wide renders 32x24 frames: the 32x32 policy input would be upsampled
    with pytest.raises(S2EError, match=r"'env.render_width_px' 32 renders 32x24 frames.*"
                                       r"render at least 43 px wide"):
        train_rl(RLConfig.from_yaml(rl_config(world, tmp_path, env={"render_width_px": 32})),
                 tmp_path / "x", init=world["init"], progress=False)
    with pytest.raises(S2EError, match=r"--env-steps must be >= 1"):
        train_rl(RLConfig.from_yaml(config), tmp_path / "x", init=world["init"],
                 total_env_steps=0)


def test_cli_starts_from_the_shipped_checkpoint_by_default(world, tmp_path, monkeypatch,
                                                          capsys) -> None:
    seen = {}

    def recording_train_rl(config, run_dir, *, init=None, resume=False, **kwargs):
        seen.update(init=init, resume=resume)
        return rl_runner.RLResult(Path(run_dir), 0, 0, None, {}, "digest")

    monkeypatch.setattr(rl_runner, "train_rl", recording_train_rl)
    config = str(rl_config(world, tmp_path))
    assert main(["train", "rl", "--config", config, "--out", str(tmp_path / "a")]) == 0
    assert seen == {"init": shipped_checkpoint_path(), "resume": False}
    assert "shipped policy's pretraining checkpoint" in capsys.readouterr().out
    assert main(["train", "rl", "--config", config, "--out", str(tmp_path / "a"),
                 "--resume"]) == 0
    assert seen == {"init": None, "resume": True}  # a resumed run needs no init


def test_shipped_rl_config_loads_and_fits_the_shipped_policy() -> None:
    config_dir = Path(__file__).resolve().parents[3] / "config" / "train"
    assert sorted(p.name for p in config_dir.glob("rl_*.yaml")) == ["rl_small.yaml"]
    config = RLConfig.from_yaml(config_dir / "rl_small.yaml")
    # the recipe the README's RL results come from
    assert (config.policy.variant, config.env.task) == ("ram", "obstacle_pedestrian")
    assert config.policy.mode_temperature == 0.3 and config.policy.min_sigma_m == 0.02
    assert config.policy.sampled_waypoints == 1
    # four training streets, none of them the held-out one or the default benchmark street
    assert (config.env.scene_seed, config.env.scenes, config.env.episode_pool_size) == (2, 4, 32)
    assert config.eval.scene_seed == 1 and DEFAULT_SCENE_SEED not in range(2, 6)
    assert config.total_env_steps == 20480
    assert (config.ppo.lr, config.ppo.value_lr, config.ppo.value_warmup_updates,
            config.ppo.clip_value_loss) == (1.0e-4, 1.0e-3, 10, False)
    # it renders the camera the shipped policy was pretrained on, not upsampled frames
    _, train_config, _, _ = load_checkpoint(shipped_checkpoint_path())
    env = env_config(config.env, train_config.model)
    assert env.sim.render_width_px == 128 and env.image_size_px == train_config.model.image_size


def load_ablation_script():
    """``benchmarks/rl_ablation.py`` as a module (benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "rl_ablation.py"
    spec = importlib.util.spec_from_file_location("rl_ablation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_script_trains_pairs_with_sft_and_reuses_runs(world, tmp_path, monkeypatch,
                                                               capsys) -> None:
    ablation = load_ablation_script()
    config = rl_config(world, tmp_path, eval={"at_start": False, "every_updates": 0},
                       total_env_steps=32)
    out = tmp_path / "ablation"
    for seed in (0, 1):  # the runs' own final evaluations, cut short
        short_held_out_episodes(world, out / "ram" / f"seed_{seed}")
    heldout = out / ablation.HELDOUT_DIR
    short_held_out_episodes(world, out, heldout / "episodes_empty.json")  # the shared set
    argv = ["rl_ablation.py", "--init", str(world["init"]), "--config", str(config),
            "--out", str(out), "--variants", "sft", "ram", "--seeds", "0", "1",
            "--heldout-episodes", "1", "--heldout-seed", str(RL["eval"]["seed"]),
            "--heldout-render-width", str(RENDER_WIDTH_PX), "--no-progress"]
    monkeypatch.setattr("sys.argv", argv)
    ablation.main()
    assert "ram seed 1: trained" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"sft", "ram"} and set(results["ram"]["empty"]["seeds"]) == {"0", "1"}
    assert "vs_sft" not in results["sft"]["empty"]
    # the paired difference, by hand from the evaluations' CSVs
    sft_ep = report.read_finished(out / "heldout" / "sft_seed_0")
    ram_eps = [report.read_finished(out / "heldout" / f"ram_seed_{s}") for s in (0, 1)]
    assert len(sft_ep) == 1 and all(len(e) == 1 for e in ram_eps)
    diffs = [e[0].collisions - sft_ep[0].collisions for e in ram_eps]
    paired = results["ram"]["empty"]["vs_sft"]
    assert paired["mean"] == pytest.approx(np.mean(diffs)) and paired["pairs"] == 2
    assert paired["fewer"] == sum(d < 0 for d in diffs)
    assert paired["more"] == sum(d > 0 for d in diffs)
    assert "| empty | ram |" in (out / "results.md").read_text()
    assert (out / "learning_curves.png").stat().st_size > 0

    # A second call reuses the runs and the evaluations.
    reused = [list_checkpoints(out / "ram" / "seed_0")[-1][1], heldout / "ram_seed_0.onnx",
              heldout / "sft_seed_0" / "episodes.csv"]
    stamps = [path.stat().st_mtime_ns for path in reused]
    ablation.main()
    assert "trained" not in capsys.readouterr().out
    assert [path.stat().st_mtime_ns for path in reused] == stamps
    assert json.loads((out / "results.json").read_text()) == results
    # --reuse-only summarises what exists and trains nothing (seed 2 has no run)
    monkeypatch.setattr("sys.argv", [*argv[:11], "0", "1", "2", *argv[13:], "--reuse-only"])
    ablation.main()
    assert "ram seed 2: no finished run" in capsys.readouterr().out
    assert not (out / "ram" / "seed_2").exists()
    assert json.loads((out / "results.json").read_text()) == results
    monkeypatch.setattr("sys.argv", argv)

    # A run folder of another recipe is refused, not silently compared.
    (tmp_path / "other").mkdir()
    other = rl_config(world, tmp_path / "other", ppo={"lr": 5.0e-4},
                      eval={"at_start": False, "every_updates": 0}, total_env_steps=32)
    monkeypatch.setattr("sys.argv", [*argv[:4], str(other), *argv[5:]])
    with pytest.raises(S2EError, match=r"ram/seed_0: trained with another config .*ppo"):
        ablation.main()


def test_ablation_learning_curves_weight_updates_by_their_episodes(tmp_path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    ablation = load_ablation_script()
    writer = SummaryWriter(str(tmp_path / "tensorboard"))
    # 12 updates of 100 steps; update u ends u % 3 + 1 episodes, collision penalty -5 * share
    for u in range(12):
        step = 100 * (u + 1)
        writer.add_scalar("episode/count", u % 3 + 1, step)
        writer.add_scalar("episode/term_collision", -5.0 * (u % 2), step)
        writer.add_scalar("episode/success", 1.0 - u % 2, step)
        writer.add_scalar("episode/return", float(u), step)
    writer.close()
    curves = ablation.training_curves(tmp_path, -5.0)
    steps, share = curves["collision_share"]
    assert list(steps) == [1000]  # one full window of 10 updates; the last 2 are left over
    counts = np.array([u % 3 + 1 for u in range(10)])
    odd = np.array([u % 2 for u in range(10)])
    assert share[0] == pytest.approx(np.sum(counts * odd) / counts.sum())
    assert curves["success"][1][0] == pytest.approx(1.0 - share[0])
    assert curves["return"][1][0] == pytest.approx(np.sum(counts * np.arange(10)) / counts.sum())


def test_ablation_pairs_every_episode_with_sft() -> None:
    ablation = load_ablation_script()

    def episodes(collisions: list[int]) -> list[EpisodeMetrics]:
        return [EpisodeMetrics(f"pedestrian-{i:03d}", "pedestrian", float(c == 0), 0.0, 0.0,
                               0.5, c, 0, c, 0.0, 1.0, 1.0, 1.0, 1.0, "timeout")
                for i, c in enumerate(collisions)]

    results = {"sft": {0: episodes([1, 0, 2])},
               "ram": {0: episodes([0, 0, 2]), 1: episodes([1, 1, 0])}}
    summary = ablation.summarise(results)
    paired = summary["ram"]["pedestrian"]["vs_sft"]
    per_episode = np.array([-0.5, 0.5, -1.0])  # seed-averaged differences of episodes 0-2
    assert paired["mean"] == pytest.approx(per_episode.mean())
    assert paired["sem"] == pytest.approx(per_episode.std(ddof=1) / np.sqrt(3))
    assert (paired["fewer"], paired["more"], paired["pairs"]) == (2, 1, 6)
    entry = summary["ram"]["pedestrian"]
    assert entry["collisions"] == pytest.approx(4 / 6) and entry["num_episodes"] == 6
    assert entry["seeds"][1]["collisions"] == pytest.approx(2 / 3)
    table = ablation.markdown_table(summary)
    assert "| pedestrian | ram | 0.50 ± 0.22 | 0.67 ± 0.33 | 0.67 / 0.67 | -0.333 ± 0.441 | " \
           "2 / 1 of 6 |" in table
    results["ram"][1] = episodes([1, 1, 0, 3])  # an episode SFT never drove
    with pytest.raises(S2EError, match=r"pedestrian-003 of pedestrian has no SFT result"):
        ablation.summarise(results)
