"""The S2E policy network: frames + goal -> K scored, speed-scaled trajectory modes.

Data flow (shapes with B batch, T context frames, S image side, K anchors, W waypoints,
D = ``config.d_model``)::

    frames (B,T,3,S,S) in [0,1] --image encoder (per frame)--> (B,T,D) + time embedding
    goal (B,3) = [clip(d,0.1,200)/200, cos th, sin th] --linear--> goal token (B,1,D)
    [frame tokens, goal token] --self-attention fusion--> memory (B,T+1,D)   (keys/values)
    anchors (K,W,2) --MLP--> + learned query (K,D) --> queries (B,K,D)
    queries --N x [self-attn, cross-attn to memory, MLP]--> features (B,K,D)
    features --heads--> scores (B,K), offsets (B,K,W,2), gaussian (B,K,W,3), speed (B,K)

Outputs are in the robot frame at the current time (REP-103: x forward, y left). The
trajectory of mode k in the normalised motion space (see :mod:`.anchors`) is
``traj_norm = anchors[k] + offsets[:, k]``; the speed head predicts the mode's mean speed in
m/s, which scales it back to metres::

    traj_m[..., :2] = traj_norm * speed_mps[..., None, None] * config.waypoint_dt_s

(``speed_mps * waypoint_dt_s`` is the mean step length in metres). An embodiment that runs
at another speed rescales ``traj_norm`` with its own speed the same way. Headings are derived
from the predicted waypoints with the chord rule of :func:`.anchors.waypoint_headings`.

Every op used exports to ONNX opset 17. The decoder is written as explicit modules:
:attr:`S2EPolicyNet.decoder` ``.layers`` is the list of cross-attention layers and
``forward(..., decoder_residual=fn)`` adds ``fn(i, layer_input, memory)`` to the output of
layer ``i`` (the hook the residual-attention module of RL post-training uses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from s2e_policy.errors import S2EError
from s2e_training.model.config import EncoderConfig, ModelConfig, ModelConfigError

GOAL_DIM = 3
"""Goal encoding size: [clip(d, 0.1, 200) / 200, cos(theta), sin(theta)]."""

PIXEL_CENTRE = 0.5
"""Inputs in [0, 1] are shifted by this before the from-scratch encoders (zero-mean-ish)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel RGB normalisation that timm/DINO backbones were trained with."""

LOG_SIGMA_MIN = -5.0
LOG_SIGMA_MAX = 2.0
"""Range of the per-waypoint log standard deviations (normalised units), soft-bounded."""

RHO_MAX = 0.95
"""Bound on |correlation| of the per-waypoint Gaussians (keeps the covariance invertible)."""

INITIAL_SPEED_FACTOR = 1.0
"""At initialisation every mode predicts ``INITIAL_SPEED_FACTOR * nominal_speed_mps``."""

_MAX_NORM_GROUPS = 8
_CHORD_EPS = 1e-9

DecoderResidual = Callable[[int, Tensor, Tensor], Tensor]
"""``fn(layer_index, layer_input (B,K,D), memory (B,M,D)) -> (B,K,D)`` added to a layer output."""


class PolicyOutput(NamedTuple):
    """Everything the network predicts (robot frame, REP-103).

    Attributes:
        scores: (B, K) float32 mode logits (softmax gives mode probabilities).
        offsets: (B, K, W, 2) normalised offsets added to the anchors.
        traj_norm: (B, K, W, 2) normalised trajectories ``anchors + offsets``.
        heading: (B, K, W) waypoint headings in radians (chord rule).
        gaussian: (B, K, W, 3) per-waypoint ``[log sigma_x, log sigma_y, rho]`` of a 2D
            Gaussian over ``traj_norm`` (normalised units; rho in (-RHO_MAX, RHO_MAX)).
        speed_mps: (B, K) predicted mean speed of each mode in m/s (softplus, >= 0).
        traj_m: (B, K, W, 3) ``(x m, y m, heading rad)``: ``traj_norm * speed_mps * dt``.
    """

    scores: Tensor
    offsets: Tensor
    traj_norm: Tensor
    heading: Tensor
    gaussian: Tensor
    speed_mps: Tensor
    traj_m: Tensor


def chord_headings(xy: Tensor) -> Tensor:
    """Torch twin of :func:`.anchors.waypoint_headings`: (..., W, 2) -> (..., W) radians."""
    prev = torch.cat([torch.zeros_like(xy[..., :1, :]), xy[..., :-1, :]], dim=-2)
    chord = xy - prev
    moving = chord.square().sum(-1) > _CHORD_EPS**2
    raw = torch.atan2(chord[..., 1], chord[..., 0])
    last = torch.zeros_like(raw[..., 0])
    out = []
    for i in range(xy.shape[-2]):
        last = torch.where(moving[..., i], raw[..., i], last)
        out.append(last)
    return torch.stack(out, dim=-1)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(_MAX_NORM_GROUPS, channels), channels)


class CNNEncoder(nn.Module):
    """Small strided CNN: (N,3,S,S) in [0,1] -> (N, channels[-1]) pooled features.

    Each stage is conv3x3 stride 2 -> GroupNorm -> GELU (so ``len(channels)`` stages shrink
    the image by ``2 ** len(channels)``); the last feature map is averaged over space.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        in_ch = 3
        for out_ch in cfg.channels:
            stages += [
                nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1),
                _group_norm(out_ch),
                nn.GELU(),
            ]
            in_ch = out_ch
        self.body = nn.Sequential(*stages)
        self.out_dim = in_ch

    def forward(self, images: Tensor) -> Tensor:
        """(N,3,S,S) float in [0,1] -> (N, out_dim)."""
        return self.body(images - PIXEL_CENTRE).mean(dim=(2, 3))


class ViTEncoder(nn.Module):
    """A small ViT trained from scratch: (N,3,S,S) in [0,1] -> (N, width) class token."""

    def __init__(self, cfg: EncoderConfig, image_size: int, dropout: float) -> None:
        super().__init__()
        num_patches = (image_size // cfg.patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + num_patches, cfg.width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.width, cfg.heads, 4 * cfg.width, dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.out_dim = cfg.width

    def forward(self, images: Tensor) -> Tensor:
        """(N,3,S,S) float in [0,1] -> (N, width)."""
        x = self.patch_embed(images - PIXEL_CENTRE).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


class TimmEncoder(nn.Module):
    """A timm backbone (e.g. DINOv2) with weights from a local file; pooled features.

    ``timm`` is optional and never a dependency; weights are never downloaded. Inputs in
    [0,1] are normalised with the ImageNet mean/std the DINO family was trained with.
    """

    def __init__(self, cfg: EncoderConfig, image_size: int) -> None:
        super().__init__()
        try:
            import timm
        except ImportError as exc:
            raise ModelConfigError(
                "encoder.kind 'timm' needs the timm package, which is not installed "
                "(pip install timm; s2e_training does not depend on it)"
            ) from exc
        path = Path(str(cfg.weights_path))
        if not path.is_file():
            raise ModelConfigError(f"encoder.weights_path: no such weights file {path}")
        try:
            backbone = timm.create_model(
                cfg.timm_model, pretrained=False, num_classes=0, img_size=image_size
            )
        except TypeError:  # architectures without an img_size argument (CNNs)
            backbone = timm.create_model(cfg.timm_model, pretrained=False, num_classes=0)
        except RuntimeError as exc:  # timm: unknown model name
            raise ModelConfigError(f"encoder.timm_model: {exc}") from exc
        state = _load_state_dict(path)
        missing, unexpected = backbone.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("head")]
        if missing:
            raise ModelConfigError(
                f"{path}: weights do not fit timm model {cfg.timm_model!r}: {len(missing)} "
                f"missing keys, e.g. {missing[:3]} ({len(unexpected)} unexpected)"
            )
        self.backbone = backbone
        self.out_dim = int(backbone.num_features)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, images: Tensor) -> Tensor:
        """(N,3,S,S) float in [0,1] -> (N, num_features)."""
        return self.backbone((images - self.mean) / self.std)


def _load_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a torch state dict (``.pt``/``.pth``/``.bin``, or ``.safetensors``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelConfigError(f"{path}: cannot read weights ({exc})") from exc
    for key in ("model", "state_dict", "teacher"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelConfigError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def build_encoder(cfg: ModelConfig) -> nn.Module:
    """The per-frame image encoder of ``cfg.encoder.kind``; it has an ``out_dim`` attribute."""
    kind = cfg.encoder.kind
    if kind == "cnn":
        return CNNEncoder(cfg.encoder)
    if kind == "vit":
        return ViTEncoder(cfg.encoder, cfg.image_size, cfg.dropout)
    return TimmEncoder(cfg.encoder, cfg.image_size)


class DecoderLayer(nn.Module):
    """One pre-norm anchor-decoder layer: query self-attention, cross-attention, MLP.

    Self-attention among the K queries, cross-attention from the queries to the fused memory
    (keys/values), then an MLP; each sub-block adds its result to a residual stream.
    """

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        """(B,K,D) queries attending to (B,M,D) memory -> (B,K,D)."""
        q = self.self_norm(queries)
        x = queries + self.dropout(self.self_attn(q, q, q, need_weights=False)[0])
        q = self.cross_norm(x)
        x = x + self.dropout(self.cross_attn(q, memory, memory, need_weights=False)[0])
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class AnchorDecoder(nn.Module):
    """N :class:`DecoderLayer` s with a residual hook after each, then a final LayerNorm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.d_model, cfg.heads, cfg.ffn_dim, cfg.dropout)
            for _ in range(cfg.decoder_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(
        self, queries: Tensor, memory: Tensor, residual: DecoderResidual | None = None
    ) -> Tensor:
        """(B,K,D) queries, (B,M,D) memory -> (B,K,D) features.

        ``residual(i, layer_input, memory)``, when given, is added to layer ``i``'s output.
        """
        x = queries
        for i, layer in enumerate(self.layers):
            out = layer(x, memory)
            if residual is not None:
                out = out + residual(i, x, memory)
            x = out
        return self.norm(x)


class S2EPolicyNet(nn.Module):
    """The S2E policy (see the module docstring for the data flow and conventions).

    Args:
        config: the network configuration.
        anchors: ``(K, W, 2|3)`` normalised anchors (``model.anchors``); the heading column
            is ignored. Stored as the buffer ``anchors`` (K, W, 2) float32.
        seed: parameters are initialised from this seed without touching the global RNG,
            so two networks built with the same config, anchors and seed are identical.
    """

    def __init__(self, config: ModelConfig, anchors: np.ndarray, seed: int = 0) -> None:
        super().__init__()
        anchors = np.asarray(anchors, dtype=np.float32)
        expected = (config.num_anchors, config.waypoints)
        if anchors.ndim != 3 or anchors.shape[:2] != expected or anchors.shape[2] not in (2, 3):
            raise ModelConfigError(
                f"anchors: expected shape ({expected[0]}, {expected[1]}, 2|3) for num_anchors="
                f"{expected[0]}, waypoints={expected[1]}, got {anchors.shape}"
            )
        if not np.all(np.isfinite(anchors)):
            raise ModelConfigError("anchors: contain NaN or inf")
        self.config = config
        d, k, w = config.d_model, config.num_anchors, config.waypoints
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.register_buffer("anchors", torch.from_numpy(anchors[..., :2].copy()))
            self.encoder = build_encoder(config)
            self.frame_proj = nn.Linear(self.encoder.out_dim, d)
            self.time_embed = nn.Parameter(torch.randn(config.context_frames, d) * 0.02)
            self.goal_proj = nn.Linear(GOAL_DIM, d)
            self.goal_embed = nn.Parameter(torch.randn(d) * 0.02)
            if config.fusion_layers > 0:
                layer = nn.TransformerEncoderLayer(
                    d, config.heads, config.ffn_dim, config.dropout, activation="gelu",
                    batch_first=True, norm_first=True,
                )
                self.fusion: nn.Module = nn.TransformerEncoder(
                    layer, config.fusion_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False
                )
            else:
                self.fusion = nn.LayerNorm(d)
            self.anchor_embed = nn.Sequential(nn.Linear(2 * w, d), nn.GELU(), nn.Linear(d, d))
            self.query_embed = nn.Parameter(torch.randn(k, d) * 0.02)
            self.decoder = AnchorDecoder(config)
            self.score_head = nn.Linear(d, 1)
            self.offset_head = nn.Linear(d, 2 * w)
            self.gaussian_head = nn.Linear(d, 3 * w)
            self.speed_head = nn.Linear(d, 1)
            # Start at the anchors, uniform scores, unit-ish sigmas and the nominal speed.
            for head in (self.offset_head, self.score_head, self.gaussian_head):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
            nn.init.zeros_(self.speed_head.weight)
            nn.init.constant_(self.speed_head.bias, math.log(math.expm1(INITIAL_SPEED_FACTOR)))

    def _check_inputs(self, frames: Tensor, goal: Tensor) -> None:
        if torch.jit.is_tracing():  # ONNX export traces with fixed, already valid shapes
            return
        cfg = self.config
        s = cfg.image_size
        if frames.dim() != 5 or tuple(frames.shape[1:]) != (cfg.context_frames, 3, s, s):
            raise S2EError(
                f"frames: expected shape (B, {cfg.context_frames}, 3, {s}, {s}) float in [0, 1], "
                f"got {tuple(frames.shape)}"
            )
        if goal.dim() != 2 or goal.shape[1] != GOAL_DIM or goal.shape[0] != frames.shape[0]:
            raise S2EError(
                f"goal: expected shape ({frames.shape[0]}, {GOAL_DIM}) "
                f"[clip(d,0.1,200)/200, cos, sin], got {tuple(goal.shape)}"
            )

    def encode(self, frames: Tensor, goal: Tensor) -> Tensor:
        """Fuse frames (B,T,3,S,S) in [0,1] and goal (B,3) into memory (B,T+1,D)."""
        self._check_inputs(frames, goal)
        b, t = frames.shape[:2]
        feats = self.encoder(frames.flatten(0, 1))
        tokens = self.frame_proj(feats).view(b, t, -1) + self.time_embed
        goal_token = (self.goal_proj(goal) + self.goal_embed).unsqueeze(1)
        return self.fusion(torch.cat([tokens, goal_token], dim=1))

    def decode(self, memory: Tensor, decoder_residual: DecoderResidual | None = None) -> Tensor:
        """Anchor queries attend to memory (B,M,D) -> per-mode features (B,K,D)."""
        queries = self.anchor_embed(self.anchors.flatten(1)) + self.query_embed
        queries = queries.unsqueeze(0).expand(memory.shape[0], -1, -1)
        return self.decoder(queries, memory, decoder_residual)

    def heads(self, features: Tensor) -> PolicyOutput:
        """Per-mode features (B,K,D) -> :class:`PolicyOutput`."""
        b, k = features.shape[:2]
        w = self.config.waypoints
        scores = self.score_head(features).squeeze(-1)
        offsets = self.offset_head(features).view(b, k, w, 2)
        traj_norm = self.anchors + offsets
        raw = self.gaussian_head(features).view(b, k, w, 3)
        log_sigma = LOG_SIGMA_MIN + (LOG_SIGMA_MAX - LOG_SIGMA_MIN) * torch.sigmoid(raw[..., :2])
        rho = RHO_MAX * torch.tanh(raw[..., 2:])
        gaussian = torch.cat([log_sigma, rho], dim=-1)
        speed_factor = nn.functional.softplus(self.speed_head(features).squeeze(-1))
        speed_mps = speed_factor * self.config.nominal_speed_mps
        heading = chord_headings(traj_norm)
        xy_m = traj_norm * (speed_mps * self.config.waypoint_dt_s)[..., None, None]
        traj_m = torch.cat([xy_m, heading.unsqueeze(-1)], dim=-1)
        return PolicyOutput(scores, offsets, traj_norm, heading, gaussian, speed_mps, traj_m)

    def forward(
        self, frames: Tensor, goal: Tensor, decoder_residual: DecoderResidual | None = None
    ) -> PolicyOutput:
        """Predict K trajectory modes.

        Args:
            frames: (B, T, 3, S, S) float32 RGB in [0, 1], oldest frame first.
            goal: (B, 3) float32 ``[clip(d, 0.1, 200) / 200, cos(theta), sin(theta)]``,
                the goal's distance and bearing in the current robot frame.
            decoder_residual: optional hook added to each decoder layer's output.

        Returns:
            :class:`PolicyOutput` (robot frame, metres / radians / m/s).
        """
        return self.heads(self.decode(self.encode(frames, goal), decoder_residual))
