"""Configuration of AGDM pretraining: one :class:`TrainConfig`, strictly loaded from YAML.

A training YAML has these top-level keys, all required (unknown ones are refused)::

    model:    {preset: small, <ModelConfig field>: override, ...}   -> ModelConfig
    data:     {<SampleConfig field>: value, ...}                   -> SampleConfig
    augment:  {<AugmentConfig field>: value, ...} or null          -> AugmentConfig | None
    loss:     {<AGDMLossConfig field>: value, ...}                 -> AGDMLossConfig
    optim:    {lr, weight_decay, grad_clip_norm}                   -> OptimConfig
    steps, batch_size, num_workers, checkpoint_every_steps, log_every_steps, seed

The anchor kind is ``model.anchor_kind`` (``kmeans``: fitted to the training trajectories'
future waypoints; ``uniform``: a fixed fan); it lives in the model config because it travels
with the model into the ONNX contract.

The data section must agree with the model: the fields the two share (frame size, context
length, waypoint count, and both time steps, context and waypoint, which must equal
``model.waypoint_dt_s``) may be left out of ``data`` and are then taken from the model; when
given they must match, and a mismatch raises :class:`TrainConfigError` naming both keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from s2e_policy.errors import S2EError
from s2e_policy.yaml_files import read_yaml
from s2e_training.data.augment import AugmentConfig
from s2e_training.data.sample import SampleConfig
from s2e_training.losses import AGDMLossConfig
from s2e_training.model.config import ModelConfig, dataclass_from_dict

SECTION_KEYS = ("model", "data", "augment", "loss", "optim")
SCALAR_KEYS = (
    "steps",
    "batch_size",
    "num_workers",
    "checkpoint_every_steps",
    "log_every_steps",
    "seed",
)


class TrainConfigError(S2EError):
    """A training configuration is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class OptimConfig:
    """AdamW settings.

    Attributes:
        lr: learning rate (constant over the run).
        weight_decay: AdamW decoupled weight decay.
        grad_clip_norm: the global gradient L2 norm is clipped to this before each step.
    """

    lr: float
    weight_decay: float
    grad_clip_norm: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0.0):
            raise TrainConfigError(f"'optim.lr' must be a finite number > 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0.0):
            raise TrainConfigError(
                f"'optim.weight_decay' must be a finite number >= 0, got {self.weight_decay!r}"
            )
        if not (math.isfinite(self.grad_clip_norm) and self.grad_clip_norm > 0.0):
            raise TrainConfigError(
                f"'optim.grad_clip_norm' must be a finite number > 0, got {self.grad_clip_norm!r}"
            )


# SampleConfig fields that are model properties: data key -> model key.
_SHARED_WITH_MODEL = {
    "image_size_px": "image_size",
    "context_frames": "context_frames",
    "num_waypoints": "waypoints",
    "waypoint_dt_s": "waypoint_dt_s",
    "context_dt_s": "waypoint_dt_s",
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one pretraining run depends on (see the module docstring for the YAML).

    Attributes:
        model: the network (its ``anchor_kind`` picks uniform or k-means anchors).
        data: how samples are cut; agrees with ``model`` (checked).
        augment: training augmentations, or ``None`` for none.
        loss: AGDM (or regression baseline) weights.
        optim: AdamW settings.
        steps: total optimiser steps of the run.
        batch_size: samples per step.
        num_workers: DataLoader worker processes (0 loads in the training process).
        checkpoint_every_steps: a checkpoint is written after every this many steps (and at
            the end).
        log_every_steps: TensorBoard scalars are written every this many steps.
        seed: seeds network initialisation, k-means anchors, batch order and augmentation.
    """

    model: ModelConfig
    data: SampleConfig
    augment: AugmentConfig | None
    loss: AGDMLossConfig
    optim: OptimConfig
    steps: int
    batch_size: int
    num_workers: int
    checkpoint_every_steps: int
    log_every_steps: int
    seed: int

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "checkpoint_every_steps", "log_every_steps"):
            value = getattr(self, key)
            if value < 1:
                raise TrainConfigError(f"'{key}' must be an integer >= 1, got {value!r}")
        if self.num_workers < 0:
            raise TrainConfigError(f"'num_workers' must be an integer >= 0, got {self.num_workers}")
        for data_key, model_key in _SHARED_WITH_MODEL.items():
            data_value = getattr(self.data, data_key)
            model_value = getattr(self.model, model_key)
            if data_value != model_value:
                raise TrainConfigError(
                    f"'data.{data_key}' ({data_value!r}) must equal 'model.{model_key}' "
                    f"({model_value!r}): the network is trained on what the data section cuts "
                    f"(leave 'data.{data_key}' out to take the model's value)"
                )

    @property
    def anchor_kind(self) -> str:
        """``uniform`` or ``kmeans`` (``model.anchor_kind``)."""
        return self.model.anchor_kind

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "train config") -> TrainConfig:
        """Build a config from a mapping (parsed YAML), strictly validated.

        Args:
            data: the top-level mapping (see the module docstring).
            source: where it came from (a file name), used in error messages.

        Raises:
            TrainConfigError, ModelConfigError: an unknown or missing key (named with its
                dotted path), a wrong type, a bad value or a data/model mismatch.
        """
        if not isinstance(data, Mapping):
            raise TrainConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        known = SECTION_KEYS + SCALAR_KEYS
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise TrainConfigError(
                f"{source}: unknown key '{unknown[0]}' (expected: {', '.join(known)})"
            )
        missing = [key for key in known if key not in data]
        if missing:
            raise TrainConfigError(f"{source}: missing required key '{missing[0]}'")
        try:
            model = ModelConfig.from_dict(_section(data, "model", source), f"{source} (model)")
            sample_values = dict(_section(data, "data", source))
            for data_key, model_key in _SHARED_WITH_MODEL.items():
                sample_values.setdefault(data_key, getattr(model, model_key))
            sample = dataclass_from_dict(SampleConfig, sample_values, source, prefix="data.")
            augment = (
                None
                if data["augment"] is None
                else dataclass_from_dict(AugmentConfig, data["augment"], source, "augment.")
            )
            loss = dataclass_from_dict(AGDMLossConfig, _section(data, "loss", source), source,
                                       prefix="loss.")
            optim = dataclass_from_dict(OptimConfig, _section(data, "optim", source), source,
                                        prefix="optim.")
            for key in SCALAR_KEYS:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TrainConfigError(f"'{key}' must be an integer, got {value!r}")
            return cls(model=model, data=sample, augment=augment, loss=loss, optim=optim,
                       **{key: data[key] for key in SCALAR_KEYS})
        except S2EError as exc:
            if str(exc).startswith(source):
                raise
            raise TrainConfigError(f"{source}: {exc}") from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Load a config from a YAML file (see :meth:`from_dict`)."""
        data = read_yaml(path, "training config", TrainConfigError)
        return cls.from_dict(data if data is not None else {}, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (YAML/JSON serialisable) that :meth:`from_dict` reads back."""
        return {
            "model": self.model.to_dict(),
            "data": dataclasses.asdict(self.data),
            "augment": None if self.augment is None else dataclasses.asdict(self.augment),
            "loss": dataclasses.asdict(self.loss),
            "optim": dataclasses.asdict(self.optim),
            **{key: getattr(self, key) for key in SCALAR_KEYS},
        }

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict` (keys in declaration order)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _section(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data[key]
    if not isinstance(value, Mapping):
        raise TrainConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
    return value
