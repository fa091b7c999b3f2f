"""Training augmentations of :class:`~s2e_training.data.sample.NavSample` (numpy).

* :func:`hflip`: mirror the images left-right and the trajectory with them (REP-103 robot
  frame: ``y -> -y``, ``heading -> -heading``, goal ``sin(theta) -> -sin(theta)``). It is an
  involution: ``hflip(hflip(s)) == s``.
* :func:`colour_jitter`: one random brightness/contrast/saturation change applied to every
  frame of the context (the same change for all frames, so motion cues stay consistent).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from s2e_policy.errors import S2EError
from s2e_training.data.sample import NavSample

# ITU-R BT.601 luma weights for (R, G, B).
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths.

    Attributes:
        flip_probability: chance of :func:`hflip`, in ``[0, 1]``.
        brightness: brightness factor drawn from ``[1 - b, 1 + b]``.
        contrast: contrast factor drawn from ``[1 - c, 1 + c]`` (about the mean grey).
        saturation: saturation factor drawn from ``[1 - s, 1 + s]`` (about the pixel grey).
    """

    flip_probability: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_probability <= 1.0:
            raise S2EError(
                f"AugmentConfig.flip_probability: expected [0, 1], got {self.flip_probability}"
            )
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise S2EError(f"AugmentConfig.{name}: expected [0, 1), got {value}")


def hflip(sample: NavSample) -> NavSample:
    """Mirror a sample left-right (images, waypoints, goal); see the module docstring."""
    waypoints = sample.waypoints.copy()
    waypoints[:, 1:] *= -1.0
    goal = sample.goal.copy()
    goal[2] = -goal[2]
    return replace(
        sample,
        context=np.ascontiguousarray(sample.context[..., ::-1]),
        waypoints=waypoints,
        goal=goal,
    )


def colour_jitter(
    context: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> np.ndarray:
    """Randomly change brightness, contrast and saturation of a whole context.

    Args:
        context: float32 ``(T, 3, S, S)`` RGB in ``[0, 1]``.
        rng: source of the three factors.
        config: strengths.

    Returns:
        float32 ``(T, 3, S, S)`` in ``[0, 1]`` (a new array).
    """
    brightness, contrast, saturation = (
        np.float32(rng.uniform(1.0 - strength, 1.0 + strength))
        for strength in (config.brightness, config.contrast, config.saturation)
    )
    out = context * brightness  # new float32 array, edited in place below
    mean_grey = _luma(out).mean(axis=(2, 3), keepdims=True)  # (T, 1, 1, 1)
    out -= mean_grey
    out *= contrast
    out += mean_grey
    grey = _luma(out)  # (T, 1, S, S)
    out -= grey
    out *= saturation
    out += grey
    return np.clip(out, 0.0, 1.0, out=out)


def _luma(context: np.ndarray) -> np.ndarray:
    """float32 ``(T, 1, S, S)`` BT.601 grey of a ``(T, 3, S, S)`` RGB context."""
    red, green, blue = LUMA_WEIGHTS
    return (red * context[:, 0] + green * context[:, 1] + blue * context[:, 2])[:, None]


def augment(sample: NavSample, rng: np.random.Generator, config: AugmentConfig) -> NavSample:
    """Apply colour jitter, then a horizontal flip with probability ``flip_probability``."""
    jittered = replace(sample, context=colour_jitter(sample.context, rng, config))
    if rng.random() < config.flip_probability:
        return hflip(jittered)
    return jittered
