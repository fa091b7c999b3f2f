"""The fork experiment: why a multi-modal loss (AGDM) beats single-mode regression.

Synthetic data where the observation cannot tell which way to go: a round obstacle stands
on the straight line to a goal straight ahead, and each demonstration detours around it to
the left or to the right with probability 1/2, independently of what the camera sees. The
best single-mode (MSE) prediction is the mean of the two detours, i.e. straight through the
obstacle; a mixture trained with AGDM should keep both detours as separate modes.

Scene (robot frame, REP-103: x forward, y left, metres): the obstacle is a vertical cylinder
of radius ``obstacle_radius_m`` centred at ``(x_o, 0)`` with ``x_o`` drawn uniformly from
``obstacle_distance_m``; detour ``s`` (+1 left, -1 right) has waypoints
``x_i = speed * dt * i``, ``y_i = s * detour_offset_m * sin^2(pi x_i / (2 x_o))`` for
``x_i <= 2 x_o`` (0 beyond): a bump that is widest beside the obstacle. The context frames
are rendered with a pinhole camera: a checkerboard floor, a sky gradient and the obstacle;
earlier frames are taken from further back along the approach.

The regression baseline is the same network with a single query (K = 1, a neutral straight
or mean anchor, :func:`regression_model`) trained with the ``regression`` loss (MSE).

Metrics on held-out observations (both branches evaluated for each):
    ``ade_m``: min-over-modes ADE (AGDM) / single-mode ADE (regression), metres, against a
        branch drawn at random per sample.
    ``inside_obstacle_rate``: fraction whose *mean prediction* (regression: mode 0; AGDM:
        the top-scored mode) passes inside the obstacle (the waypoint polyline from the robot
        comes closer to the obstacle centre than its radius).
    ``top2_covers_both_rate``: fraction where the two top-scored modes include one matching
        each branch (a mode matches a branch when its ADE to that branch is below
        ``cover_ade_m`` and below its ADE to the other branch).
    ``min_branch_probability``: mean over observations of the smaller of the two branches'
        probability mass (the summed softmax scores of all modes matching the branch); 0.5
        means a perfectly balanced mixture, 0 that one branch was lost.

Run: ``python -m s2e_training.experiments.fork --out runs/fork`` writes ``metrics.json`` and
``fork.png`` (predictions vs the two branches) into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from s2e_policy.errors import S2EError
from s2e_policy.geometry import encode_goal
from s2e_training.losses import REGRESSION_MODE_INDEX, AGDMLossConfig, agdm_loss
from s2e_training.model.anchors import build_anchors
from s2e_training.model.config import ModelConfig, preset
from s2e_training.model.network import S2EPolicyNet

LOG = logging.getLogger(__name__)

CAMERA_HEIGHT_M = 0.5
"""Camera height above the floor for the synthetic renders."""
CAMERA_HFOV_RAD = np.pi / 2
"""Horizontal field of view of the synthetic pinhole camera."""
OBSTACLE_HEIGHT_M = 1.2
FLOOR_TILE_M = 0.5
SKY_TOP_RGB = (0.35, 0.55, 0.85)
SKY_HORIZON_RGB = (0.75, 0.85, 0.95)
FLOOR_LIGHT_RGB = (0.62, 0.60, 0.56)
FLOOR_DARK_RGB = (0.45, 0.44, 0.42)
OBSTACLE_RGB = (0.80, 0.25, 0.15)
LEFT, RIGHT = 1.0, -1.0


@dataclass(frozen=True)
class ForkConfig:
    """Everything the fork experiment depends on (units in the names).

    Attributes:
        model: the network trained for both losses (anchor kind from ``model.anchor_kind``).
        steps: optimiser steps per model.
        batch_size: samples per step.
        learning_rate: AdamW learning rate.
        eval_samples: held-out observations (each evaluated against both branches).
        seed: seeds data, anchors and network initialisation.
        speed_mps: demonstration speed.
        obstacle_distance_m: (min, max) distance of the obstacle centre ahead.
        obstacle_radius_m: obstacle radius.
        detour_offset_m: lateral offset of a detour beside the obstacle.
        goal_distance_m: the goal lies straight ahead at this distance.
        cover_ade_m: ADE below which a predicted mode counts as matching a branch.
        kmeans_fit_samples: trajectories used to fit k-means anchors (``kmeans`` only).
    """

    model: ModelConfig = field(
        default_factory=lambda: dataclasses.replace(preset("small"), anchor_kind="uniform")
    )
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-3
    eval_samples: int = 64
    seed: int = 0
    speed_mps: float = 1.0
    obstacle_distance_m: tuple[float, float] = (1.2, 1.8)
    obstacle_radius_m: float = 0.3
    detour_offset_m: float = 0.7
    goal_distance_m: float = 6.0
    cover_ade_m: float = 0.2
    kmeans_fit_samples: int = 512

    def __post_init__(self) -> None:
        lo, hi = self.obstacle_distance_m
        if not 0.0 < lo <= hi:
            raise S2EError(f"obstacle_distance_m: expected 0 < min <= max, got {(lo, hi)}")
        if self.detour_offset_m <= self.obstacle_radius_m:
            raise S2EError(
                f"detour_offset_m ({self.detour_offset_m}) must exceed obstacle_radius_m "
                f"({self.obstacle_radius_m}) so the detours are collision-free"
            )
        for key in ("steps", "batch_size", "eval_samples"):
            if getattr(self, key) < 1:
                raise S2EError(f"{key}: expected an integer >= 1, got {getattr(self, key)}")


def detour_waypoints(
    obstacle_x_m: np.ndarray, side: np.ndarray, cfg: ForkConfig
) -> np.ndarray:
    """Demonstrated detours: (N,) obstacle distances, (N,) sides (+1 left) -> (N, W, 2) m."""
    model = cfg.model
    x = cfg.speed_mps * model.waypoint_dt_s * np.arange(1, model.waypoints + 1)[None, :]
    phase = np.clip(x / (2.0 * obstacle_x_m[:, None]), 0.0, 1.0)
    y = side[:, None] * cfg.detour_offset_m * np.sin(np.pi * phase) ** 2
    return np.stack([np.broadcast_to(x, y.shape), y], axis=-1).astype(np.float32)


def render_observations(obstacle_x_m: np.ndarray, cfg: ForkConfig) -> np.ndarray:
    """Context frames of the approach to the obstacle.

    Args:
        obstacle_x_m: (N,) obstacle distance at the current (last) frame.
        cfg: the experiment config (image size, context length, speed).

    Returns:
        (N, T, 3, S, S) float32 RGB in [0, 1]; frame t is taken
        ``(T - 1 - t) * speed * waypoint_dt_s`` metres further back.
    """
    model = cfg.model
    s, t_frames = model.image_size, model.context_frames
    focal = (s / 2) / np.tan(CAMERA_HFOV_RAD / 2)
    centre = (s - 1) / 2
    u = np.arange(s)[None, :] - centre  # (1, S) columns, + right
    v = np.arange(s)[:, None] - centre  # (S, 1) rows, + down
    back_m = cfg.speed_mps * model.waypoint_dt_s * np.arange(t_frames - 1, -1, -1)
    dist = obstacle_x_m[:, None] + back_m[None, :]  # (N, T)

    sky_w = np.clip(-v / centre, 0.0, 1.0)[..., None]  # 1 at the top, 0 at the horizon
    sky = sky_w * np.array(SKY_TOP_RGB) + (1 - sky_w) * np.array(SKY_HORIZON_RGB)
    below = v > 0.5
    ground_x = np.where(below, focal * CAMERA_HEIGHT_M / np.maximum(v, 0.5), 0.0)
    tile_y = np.floor(-u * ground_x / focal / FLOOR_TILE_M)
    # The floor scrolls towards the camera as the robot advances: one background per frame.
    backgrounds = np.empty((t_frames, s, s, 3))
    for t in range(t_frames):
        light = (np.floor((ground_x - back_m[t]) / FLOOR_TILE_M) + tile_y) % 2 == 0
        floor = np.where(light[..., None], FLOOR_LIGHT_RGB, FLOOR_DARK_RGB)
        backgrounds[t] = np.where(below[..., None], floor, sky)
    half_w = focal * cfg.obstacle_radius_m / dist  # (N, T) pixels
    top = -focal * (OBSTACLE_HEIGHT_M - CAMERA_HEIGHT_M) / dist
    bottom = focal * CAMERA_HEIGHT_M / dist
    uu, vv = u[None, None], v[None, None]  # (1, 1, 1, S), (1, 1, S, 1)
    mask = (
        (np.abs(uu) <= half_w[..., None, None])
        & (vv >= top[..., None, None])
        & (vv <= bottom[..., None, None])
    )  # (N, T, S, S)
    shade = 1.0 - 0.4 * np.clip(np.abs(uu) / half_w[..., None, None], 0.0, 1.0) ** 2
    obstacle = shade[..., None] * np.array(OBSTACLE_RGB)  # (N, T, 1, S, 3)
    out = np.where(mask[..., None], obstacle, backgrounds[None])
    return np.ascontiguousarray(out.transpose(0, 1, 4, 2, 3), dtype=np.float32)


def _goals(n: int, cfg: ForkConfig) -> np.ndarray:
    goal = encode_goal(np.array([cfg.goal_distance_m, 0.0]))
    return np.repeat(goal[None], n, axis=0)


def path_hits_obstacle(traj_m: np.ndarray, obstacle_x_m: np.ndarray, radius_m: float) -> np.ndarray:
    """Whether each path enters the obstacle.

    Args:
        traj_m: (N, W, 2|3) waypoints in metres (robot frame); the path is the polyline from
            the origin through the waypoints.
        obstacle_x_m: (N,) obstacle centre x (the centre is on the x axis).
        radius_m: obstacle radius.

    Returns:
        (N,) bool: the polyline comes closer than ``radius_m`` to the centre.
    """
    xy = traj_m[..., :2]
    pts = np.concatenate([np.zeros_like(xy[:, :1]), xy], axis=1)
    a, b = pts[:, :-1], pts[:, 1:]
    c = np.stack([obstacle_x_m, np.zeros_like(obstacle_x_m)], axis=-1)[:, None, :]
    ab = b - a
    denom = np.maximum((ab**2).sum(-1), 1e-12)
    tt = np.clip(((c - a) * ab).sum(-1) / denom, 0.0, 1.0)
    closest = a + tt[..., None] * ab
    return np.linalg.norm(closest - c, axis=-1).min(axis=1) < radius_m


def _ade(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(..., W, 2+) x (..., W, 2+) -> (...) mean waypoint distance (m)."""
    return np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1).mean(-1)


def _sample_batch(
    rng: np.random.Generator, n: int, cfg: ForkConfig, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lo, hi = cfg.obstacle_distance_m
    obstacle_x = rng.uniform(lo, hi, n)
    side = np.where(rng.random(n) < 0.5, LEFT, RIGHT)
    frames = render_observations(obstacle_x, cfg)
    return (
        torch.from_numpy(frames).to(device),
        torch.from_numpy(_goals(n, cfg)).to(device),
        torch.from_numpy(detour_waypoints(obstacle_x, side, cfg)).to(device),
    )


def train(
    net: S2EPolicyNet, loss_config: AGDMLossConfig, cfg: ForkConfig, device: torch.device
) -> list[float]:
    """Train ``net`` (on ``device``) with fresh fork batches; returns per-step total losses."""
    rng = np.random.default_rng(cfg.seed + 1)
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate)
    net.train()
    losses = []
    for step in range(cfg.steps):
        frames, goal, target = _sample_batch(rng, cfg.batch_size, cfg, device)
        terms = agdm_loss(net(frames, goal), target, net.anchors, net.config, loss_config)
        optimiser.zero_grad(set_to_none=True)
        terms.total.backward()
        optimiser.step()
        losses.append(float(terms.total.detach()))
        if step % 50 == 0 or step == cfg.steps - 1:
            LOG.info("%s step %d: %s", loss_config.mode, step, terms.as_floats())
    return losses


@dataclass
class ForkEvaluation:
    """Held-out predictions of one model.

    Attributes:
        obstacle_x_m: (N,) obstacle distances.
        branches_m: (N, 2, W, 2) left and right demonstrations for each observation.
        traj_m: (N, K, W, 3) predicted modes in metres.
        probs: (N, K) mode probabilities (softmax of the scores).
        mean_index: (N,) index of the mean prediction (regression: mode 0; AGDM: top score).
        metrics: the scalar metrics (see the module docstring).
    """

    obstacle_x_m: np.ndarray
    branches_m: np.ndarray
    traj_m: np.ndarray
    probs: np.ndarray
    mean_index: np.ndarray
    metrics: dict[str, float]


@torch.no_grad()
def evaluate(
    net: S2EPolicyNet, mode: str, cfg: ForkConfig, device: torch.device
) -> ForkEvaluation:
    """Evaluate on ``cfg.eval_samples`` held-out observations (seeded apart from training)."""
    rng = np.random.default_rng(cfg.seed + 2)
    n = cfg.eval_samples
    obstacle_x = rng.uniform(*cfg.obstacle_distance_m, n)
    left = detour_waypoints(obstacle_x, np.full(n, LEFT), cfg)
    right = detour_waypoints(obstacle_x, np.full(n, RIGHT), cfg)
    branches = np.stack([left, right], axis=1)
    net.eval()
    frames = torch.from_numpy(render_observations(obstacle_x, cfg)).to(device)
    out = net(frames, torch.from_numpy(_goals(n, cfg)).to(device))
    traj = out.traj_m.cpu().numpy()
    probs = torch.softmax(out.scores, dim=-1).cpu().numpy()
    rows = np.arange(n)
    if mode == "regression":
        mean_index = np.full(n, REGRESSION_MODE_INDEX)
        candidates = traj[:, REGRESSION_MODE_INDEX : REGRESSION_MODE_INDEX + 1]
        top2 = np.full((n, 2), REGRESSION_MODE_INDEX)
    else:
        order = np.argsort(-probs, axis=1)
        mean_index = order[:, 0]
        candidates = traj
        top2 = order[:, :2]
    drawn = rng.integers(0, 2, n)
    ade = _ade(candidates, branches[rows, drawn][:, None]).min(axis=1)
    inside = path_hits_obstacle(traj[rows, mean_index], obstacle_x, cfg.obstacle_radius_m)
    # (N, 2 top modes, 2 branches) ADE; a mode matches the branch it is close to and nearer.
    top_traj = traj[rows[:, None], top2]
    ade_tb = _ade(top_traj[:, :, None], branches[:, None])
    matches = (ade_tb < cfg.cover_ade_m) & (ade_tb < ade_tb[:, :, ::-1])
    covers = matches.any(axis=1).all(axis=1)
    # Probability mass of all modes matching each branch; its minimum is 0.5 at best.
    ade_kb = _ade(traj[:, :, None], branches[:, None])  # (N, K, 2)
    match_kb = (ade_kb < cfg.cover_ade_m) & (ade_kb < ade_kb[:, :, ::-1])
    branch_mass = (probs[:, :, None] * match_kb).sum(axis=1)  # (N, 2)
    metrics = {
        "ade_m": float(ade.mean()),
        "inside_obstacle_rate": float(inside.mean()),
        "top2_covers_both_rate": float(covers.mean()),
        "min_branch_probability": float(branch_mass.min(axis=1).mean()),
        "mean_prediction_lateral_m": float(np.abs(traj[rows, mean_index, :, 1]).max(1).mean()),
    }
    return ForkEvaluation(obstacle_x, branches, traj, probs, mean_index, metrics)


def _fork_anchors(cfg: ForkConfig, m: ModelConfig) -> np.ndarray:
    """Anchors for model ``m``: its kind, fitted to fork demonstrations for ``kmeans``."""
    trajs = None
    if m.anchor_kind == "kmeans":
        rng = np.random.default_rng(cfg.seed)
        n = cfg.kmeans_fit_samples
        side = np.where(rng.random(n) < 0.5, LEFT, RIGHT)
        trajs = detour_waypoints(rng.uniform(*cfg.obstacle_distance_m, n), side, cfg)
    return build_anchors(
        m.anchor_kind, m.num_anchors, m.waypoints, trajs, cfg.seed,
        m.anchor_max_heading_rad, m.anchor_max_turn_rad,
    )


def regression_model(model: ModelConfig) -> ModelConfig:
    """The single-mode baseline: the same network with one query (K = 1).

    Its one anchor is neutral: the straight line for ``uniform`` anchors, the mean
    demonstration for ``kmeans``; the regression loss fits that mode by MSE.
    """
    return dataclasses.replace(model, num_anchors=1)


def run_fork(cfg: ForkConfig, device: str = "cpu") -> dict[str, object]:
    """Train AGDM and regression models on the fork data and evaluate both.

    Args:
        cfg: the experiment.
        device: torch device to train on (``cpu``, ``cuda``); data is rendered on the CPU.

    Returns:
        ``{"agdm": ForkEvaluation, "regression": ForkEvaluation, "metrics": dict}`` where
        ``metrics`` is what ``metrics.json`` holds.
    """
    torch_device = torch.device(device)
    results: dict[str, object] = {}
    metrics: dict[str, object] = {
        "config": _jsonable(dataclasses.asdict(cfg)),
        "device": str(torch_device),
        "torch_threads": torch.get_num_threads(),
    }
    for mode in ("agdm", "regression"):
        model = cfg.model if mode == "agdm" else regression_model(cfg.model)
        net = S2EPolicyNet(model, _fork_anchors(cfg, model), seed=cfg.seed).to(torch_device)
        start = time.perf_counter()
        losses = train(net, AGDMLossConfig(mode=mode), cfg, torch_device)
        train_s = time.perf_counter() - start
        evaluation = evaluate(net, mode, cfg, torch_device)
        results[mode] = evaluation
        metrics[mode] = {
            **evaluation.metrics,
            "final_loss": float(np.mean(losses[-10:])),
            "train_s": round(train_s, 2),
        }
    results["metrics"] = metrics
    return results


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def plot_fork(results: dict[str, object], path: Path, cfg: ForkConfig, sample: int = 0) -> None:
    """Top-down plot of one held-out observation: branches, regression, AGDM modes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agdm: ForkEvaluation = results["agdm"]  # type: ignore[assignment]
    reg: ForkEvaluation = results["regression"]  # type: ignore[assignment]
    fig, (ax_img, ax) = plt.subplots(1, 2, figsize=(11, 5), width_ratios=(1, 1.4))
    frame = render_observations(agdm.obstacle_x_m[sample : sample + 1], cfg)[0, -1]
    ax_img.imshow(frame.transpose(1, 2, 0))
    ax_img.set_title("current frame (same for both branches)")
    ax_img.axis("off")
    ox = agdm.obstacle_x_m[sample]
    ax.add_patch(plt.Circle((-0.0, ox), cfg.obstacle_radius_m, color="0.3", alpha=0.6,
                            label="obstacle"))
    # Plot with x forward pointing up and y (left) pointing left: screen = (-y, x).
    for b in range(2):
        br = agdm.branches_m[sample, b]
        ax.plot(-br[:, 1], br[:, 0], "k--", lw=2, label="demonstrations" if b == 0 else None)
    probs = agdm.probs[sample]
    for k in np.argsort(probs):
        t = agdm.traj_m[sample, k]
        alpha = float(np.clip(0.15 + 0.85 * probs[k] / probs.max(), 0.0, 1.0))
        ax.plot(-t[:, 1], t[:, 0], "-", color="tab:blue", alpha=alpha, lw=1)
    for rank, k in enumerate(np.argsort(-probs)[:2]):
        t = agdm.traj_m[sample, k]
        ax.plot(-t[:, 1], t[:, 0], "o-", color="tab:green", lw=2.5,
                label=f"AGDM top-{rank + 1} (p={probs[k]:.2f})")
    t = reg.traj_m[sample, reg.mean_index[sample]]
    ax.plot(-t[:, 1], t[:, 0], "s-", color="tab:red", lw=2.5, label="regression (MSE)")
    ax.plot(0, 0, "k^", ms=10)
    ax.set_aspect("equal")
    ax.set_xlabel("-y (m, right is +)")
    ax.set_ylabel("x forward (m)")
    a, r = results["metrics"]["agdm"], results["metrics"]["regression"]  # type: ignore[index]
    ax.set_title(
        f"AGDM: top-2 cover both {a['top2_covers_both_rate']:.2f}, "
        f"inside {a['inside_obstacle_rate']:.2f} | "
        f"regression: inside {r['inside_obstacle_rate']:.2f}"
    )
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m s2e_training.experiments.fork --out runs/fork``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--steps", type=int, default=ForkConfig.steps, help="steps per model")
    parser.add_argument("--batch-size", type=int, default=ForkConfig.batch_size)
    parser.add_argument("--seed", type=int, default=ForkConfig.seed)
    parser.add_argument("--anchors", choices=("uniform", "kmeans"), default="uniform",
                        help="anchor kind of the small model")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model = dataclasses.replace(preset("small"), anchor_kind=args.anchors)
    try:
        cfg = ForkConfig(model=model, steps=args.steps, batch_size=args.batch_size,
                         seed=args.seed)
    except S2EError as exc:
        print(f"fork: error: {exc}", file=sys.stderr)
        return 2
    results = run_fork(cfg, args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    metrics = results["metrics"]
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_fork(results, args.out / "fork.png", cfg)
    for mode in ("agdm", "regression"):
        print(mode, json.dumps(metrics[mode]))  # type: ignore[index]
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'fork.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
