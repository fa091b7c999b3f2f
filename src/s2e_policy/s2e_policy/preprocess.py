"""The one image preprocessing step of the policy, shared by training and the onboard runtime.

Definition (deterministic, numpy in, numpy out):

1. Centre-crop the ``H x W`` RGB image to a square of side ``min(H, W)``; when the excess
   ``|H - W|`` is odd the extra row/column is dropped from the bottom/right.
2. Resize the square to ``size x size`` with Pillow's bilinear filter (``Image.BILINEAR``);
   Pillow widens the filter support when downscaling, so it also anti-aliases (area-like).
3. Scale to float32 in ``[0, 1]`` (``value / 255``) and move channels first.

Training data adapters and the ROS node both call :func:`preprocess_image`, so the model sees
bit-identical inputs in both places.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from s2e_policy.errors import S2EError

UINT8_MAX = 255.0
"""Scale from uint8 pixel values to ``[0, 1]``."""

RESAMPLE_FILTER = Image.Resampling.BILINEAR
"""The resize filter of the definition above."""


def center_crop_square(image: np.ndarray) -> np.ndarray:
    """Centre-crop ``(H, W, C)`` to ``(s, s, C)`` with ``s = min(H, W)`` (a view, no copy)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top = (height - side) // 2
    left = (width - side) // 2
    return image[top : top + side, left : left + side]


def preprocess_image(image: np.ndarray, size: int) -> np.ndarray:
    """Turn one camera frame into the policy's input tensor.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame (as returned by :mod:`s2e_policy.msgconv`).
        size: output side ``S`` in pixels (the ONNX contract's input size, paper: 256).

    Returns:
        float32 ``(3, S, S)`` RGB, channels first, values in ``[0, 1]``.

    Raises:
        S2EError: when the image is not ``(H, W, 3)`` uint8 or ``size`` is not positive.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        dtype = getattr(image, "dtype", type(image).__name__)
        raise S2EError(f"preprocess_image: expected a uint8 (H, W, 3) RGB array, got {dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
        raise S2EError(
            f"preprocess_image: expected a non-empty (H, W, 3) RGB array, got {image.shape}"
        )
    if int(size) <= 0:
        raise S2EError(f"preprocess_image: size must be a positive pixel count, got {size}")
    square = np.ascontiguousarray(center_crop_square(image))
    if square.shape[0] != size:
        square = np.asarray(
            Image.fromarray(square).resize((size, size), RESAMPLE_FILTER)
        )
    return np.ascontiguousarray(square.transpose(2, 0, 1), dtype=np.float32) / np.float32(
        UINT8_MAX
    )
