"""Configuration of the S2E policy network: dataclasses, presets, strict YAML loading.

A config is plain data (no torch): it travels into checkpoints and into the ONNX contract.
Two presets exist: ``paper`` (the figures of the S2E paper: 11 frames at 256x256, 64 anchors,
a 6-layer decoder) and ``small`` (a CPU-trainable model for tests and experiments).

YAML/dict loading is strict: an unknown key or a missing required key raises
:class:`ModelConfigError` naming the key (with its dotted path, e.g. ``encoder.kind``) and
what was expected. A mapping may start from a preset with the key ``preset``; every other key
then overrides that preset's value (nested sections are merged key by key).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from s2e_policy.errors import S2EError
from s2e_policy.yaml_files import read_yaml
from s2e_training.model.anchors import DEFAULT_MAX_HEADING_RAD, DEFAULT_MAX_TURN_RAD

ENCODER_KINDS = ("cnn", "vit", "timm")
ANCHOR_KINDS = ("uniform", "kmeans")
PRESET_KEY = "preset"


class ModelConfigError(S2EError):
    """A model or loss configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class EncoderConfig:
    """Per-frame image encoder.

    Attributes:
        kind: ``cnn`` (small strided CNN, global-average pooled), ``vit`` (a small ViT trained
            from scratch, class token) or ``timm`` (a timm backbone, e.g. DINOv2, whose weights
            are loaded from ``weights_path``; never downloaded; timm must be installed).
        width: output feature size of the ``vit`` encoder (its embedding dim); ignored by
            ``cnn`` (whose width is ``channels[-1]``) and ``timm`` (the backbone's own size).
        channels: output channels of each stride-2 conv stage of the ``cnn`` encoder.
        patch_size: ``vit`` patch side in pixels; ``image_size`` must be divisible by it.
        depth: number of ``vit`` transformer layers.
        heads: ``vit`` attention heads; ``width`` must be divisible by it.
        timm_model: timm architecture name (``kind == "timm"``), e.g.
            ``vit_small_patch14_dinov2``.
        weights_path: local weights file (a torch state dict) for ``timm``; required there.
    """

    kind: str = "cnn"
    width: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 64)
    patch_size: int = 16
    depth: int = 2
    heads: int = 4
    timm_model: str | None = None
    weights_path: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    """Shape and conventions of one S2E policy network.

    Attributes:
        context_frames: T, number of RGB frames in the context (newest last).
        image_size: S, frames are square S x S pixels, RGB float in [0, 1].
        num_anchors: K, number of anchor trajectories / output modes.
        waypoints: W, future waypoints per trajectory.
        d_model: width of the fusion encoder and the anchor decoder.
        heads: attention heads of the fusion encoder and decoder; divides ``d_model``.
        fusion_layers: self-attention layers fusing frame tokens and the goal token.
        decoder_layers: cross-attention decoder layers (paper: 6).
        ffn_dim: hidden size of every transformer MLP.
        dropout: dropout probability inside transformer layers (0 disables it).
        encoder: the per-frame image encoder.
        anchor_kind: ``uniform`` (fan of constant-curvature arcs) or ``kmeans`` (cluster
            centres of the training trajectories).
        anchor_max_heading_rad: the uniform fan's initial headings span
            [-anchor_max_heading_rad, +anchor_max_heading_rad].
        anchor_max_turn_rad: the uniform fan's total turning over the horizon spans
            [-anchor_max_turn_rad, +anchor_max_turn_rad] (curvature x horizon arc length).
        waypoint_scale_m: nominal step length in metres between consecutive waypoints; the
            speed head is expressed in units of ``waypoint_scale_m / waypoint_dt_s`` (the
            released export scales XY by 0.25 m, i.e. a speed factor of 1).
        waypoint_dt_s: time between consecutive waypoints in seconds.
    """

    context_frames: int
    image_size: int
    num_anchors: int
    d_model: int
    heads: int
    fusion_layers: int
    decoder_layers: int
    ffn_dim: int
    waypoints: int = 10
    dropout: float = 0.0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    anchor_kind: str = "kmeans"
    anchor_max_heading_rad: float = DEFAULT_MAX_HEADING_RAD
    anchor_max_turn_rad: float = DEFAULT_MAX_TURN_RAD
    waypoint_scale_m: float = 0.25
    waypoint_dt_s: float = 0.25

    def __post_init__(self) -> None:
        validate_model_config(self)

    @property
    def nominal_speed_mps(self) -> float:
        """Speed (m/s) at which one waypoint interval covers ``waypoint_scale_m``."""
        return self.waypoint_scale_m / self.waypoint_dt_s

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model config") -> ModelConfig:
        """Build a config from a mapping (e.g. parsed YAML), strictly validated.

        Args:
            data: field values; nested ``encoder`` mapping; optional ``preset`` naming a
                preset whose values the other keys override.
            source: where the mapping came from (a file name), used in error messages.

        Raises:
            ModelConfigError: unknown key, missing required key, wrong type or bad value.
        """
        if not isinstance(data, Mapping):
            raise ModelConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        if PRESET_KEY in data:
            name = data.pop(PRESET_KEY)
            base = dataclasses.asdict(preset(name))
            base = _merge(base, data)
            return dataclass_from_dict(cls, base, source)
        return dataclass_from_dict(cls, data, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelConfig:
        """Load a config from a YAML file (see :meth:`from_dict`)."""
        data = read_yaml(path, "model config", ModelConfigError)
        return cls.from_dict(data if data is not None else {}, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (YAML/JSON serialisable) that :meth:`from_dict` reads back."""
        out = dataclasses.asdict(self)
        out["encoder"]["channels"] = list(self.encoder.channels)
        return out


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (nested dicts key by key)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Strictly build dataclass ``cls`` from ``data``.

    Unknown keys, missing required keys (fields without a default) and values of the wrong
    type raise :class:`ModelConfigError` naming ``source`` and the dotted key. Supported field
    types: ``int``, ``float`` (ints accepted), ``str``, ``bool``, ``X | None``,
    ``tuple[int, ...]`` (from a list) and nested dataclasses (from a mapping).
    """
    if not isinstance(data, Mapping):
        where = prefix.rstrip(".") or "<root>"
        raise ModelConfigError(f"{source}: '{where}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ModelConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}' (expected one of: "
            f"{', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, fld in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            required = (
                fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING
            )
            if required:
                raise ModelConfigError(f"{source}: missing required key '{key}'")
            continue
        kwargs[name] = _coerce(hints[name], data[name], source, key)
    try:
        return cls(**kwargs)
    except ModelConfigError as exc:
        raise ModelConfigError(f"{source}: {exc}") from exc


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    """Check/convert one value against its annotation; raise naming the key otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, source, key)
    if dataclasses.is_dataclass(tp):
        return dataclass_from_dict(tp, value, source, prefix=f"{key}.")
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ModelConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        return tuple(_coerce(item_tp, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ModelConfigError(f"{source}: '{key}' must be true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ModelConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ModelConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {tp!r} for '{key}'")


def _require(condition: bool, key: str, expectation: str, value: Any) -> None:
    if not condition:
        raise ModelConfigError(f"'{key}' must be {expectation}, got {value!r}")


def validate_model_config(cfg: ModelConfig) -> None:
    """Check value ranges and cross-field constraints; raise :class:`ModelConfigError`."""
    for key in (
        "context_frames",
        "image_size",
        "num_anchors",
        "waypoints",
        "d_model",
        "heads",
        "decoder_layers",
        "ffn_dim",
    ):
        value = getattr(cfg, key)
        _require(isinstance(value, int) and value >= 1, key, "an integer >= 1", value)
    _require(cfg.fusion_layers >= 0, "fusion_layers", "an integer >= 0", cfg.fusion_layers)
    _require(cfg.waypoints >= 2, "waypoints", "an integer >= 2", cfg.waypoints)
    _require(
        cfg.d_model % cfg.heads == 0, "d_model", f"divisible by heads={cfg.heads}", cfg.d_model
    )
    _require(0.0 <= cfg.dropout < 1.0, "dropout", "in [0, 1)", cfg.dropout)
    _require(cfg.anchor_kind in ANCHOR_KINDS, "anchor_kind", f"one of {ANCHOR_KINDS}",
             cfg.anchor_kind)
    _require(0.0 <= cfg.anchor_max_heading_rad <= math.pi, "anchor_max_heading_rad",
             "in [0, pi]", cfg.anchor_max_heading_rad)
    _require(0.0 <= cfg.anchor_max_turn_rad <= 2 * math.pi, "anchor_max_turn_rad",
             "in [0, 2 pi]", cfg.anchor_max_turn_rad)
    _require(cfg.waypoint_scale_m > 0, "waypoint_scale_m", "> 0 metres", cfg.waypoint_scale_m)
    _require(cfg.waypoint_dt_s > 0, "waypoint_dt_s", "> 0 seconds", cfg.waypoint_dt_s)
    enc = cfg.encoder
    _require(enc.kind in ENCODER_KINDS, "encoder.kind", f"one of {ENCODER_KINDS}", enc.kind)
    if enc.kind == "cnn":
        _require(len(enc.channels) >= 1 and all(c >= 1 for c in enc.channels),
                 "encoder.channels", "a non-empty list of positive integers", enc.channels)
    if enc.kind == "vit":
        for key in ("width", "patch_size", "depth", "heads"):
            value = getattr(enc, key)
            _require(value >= 1, f"encoder.{key}", "an integer >= 1", value)
        _require(cfg.image_size % enc.patch_size == 0, "encoder.patch_size",
                 f"a divisor of image_size={cfg.image_size}", enc.patch_size)
        _require(enc.width % enc.heads == 0, "encoder.width",
                 f"divisible by encoder.heads={enc.heads}", enc.width)
    if enc.kind == "timm":
        _require(bool(enc.timm_model), "encoder.timm_model",
                 "a timm architecture name for kind 'timm'", enc.timm_model)
        _require(bool(enc.weights_path), "encoder.weights_path",
                 "a local weights file for kind 'timm' (weights are never downloaded)",
                 enc.weights_path)


PRESETS: dict[str, ModelConfig] = {
    # The paper's figures. The encoder is a ViT-S/16-sized ViT from scratch so the preset
    # builds anywhere; to use DINO weights set encoder.kind=timm, encoder.timm_model and
    # encoder.weights_path (a local file).
    "paper": ModelConfig(
        context_frames=11,
        image_size=256,
        num_anchors=64,
        waypoints=10,
        d_model=256,
        heads=8,
        fusion_layers=4,
        decoder_layers=6,
        ffn_dim=1024,
        dropout=0.1,
        encoder=EncoderConfig(kind="vit", width=384, patch_size=16, depth=12, heads=6),
        anchor_kind="kmeans",
    ),
    # Trains on a laptop CPU: a 4-stage CNN on 96x96 frames, 24 anchors, 2 decoder layers.
    "small": ModelConfig(
        context_frames=5,
        image_size=96,
        num_anchors=24,
        waypoints=10,
        d_model=64,
        heads=4,
        fusion_layers=1,
        decoder_layers=2,
        ffn_dim=128,
        dropout=0.0,
        encoder=EncoderConfig(kind="cnn", channels=(16, 32, 64, 64)),
        anchor_kind="kmeans",
    ),
}


def preset(name: str) -> ModelConfig:
    """Return the named preset (``paper`` or ``small``)."""
    if name not in PRESETS:
        raise ModelConfigError(f"unknown model preset {name!r} (expected one of {sorted(PRESETS)})")
    return PRESETS[name]
