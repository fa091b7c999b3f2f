"""Keep the policy's context frames from an irregular camera stream, by timestamp.

A camera delivers frames at its own rate, with jitter, drops and the odd duplicate or
out-of-order message; the policy wants ``T`` frames exactly ``1 / frame_rate_hz`` apart,
ending at the newest one. :class:`FrameBuffer` stores the recent stream and picks, for each
wanted time ``t_k = t_newest - k * period`` (``k = T-1 .. 0``, oldest first), the frame whose
stamp is nearest (ties go to the earlier frame). A wanted time with no frame within
``tolerance_s`` means the context is incomplete (after start-up or a camera drop) and
:meth:`FrameBuffer.context` returns ``None``.

This is the selection rule of training (``s2e_training.data.sample.make_sample``) and every
selected frame goes through :func:`s2e_policy.preprocess.preprocess_image`, so the runtime's
context equals the training context bit for bit (tested in
``s2e_training/test/test_runtime_training_parity.py``).

Timestamps are integer nanoseconds (ROS ``builtin_interfaces/Time`` or sim time).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from s2e_policy.contract import PolicyContract
from s2e_policy.errors import S2EError
from s2e_policy.preprocess import preprocess_image

log = logging.getLogger("s2e_policy.runtime")

NS_PER_S = 1_000_000_000
"""Nanoseconds per second."""

DEFAULT_TOLERANCE_FRACTION = 0.5
"""Default ``tolerance_s`` as a fraction of the context frame period: any stream at least as
fast as the contract's frame rate then always has a frame near each wanted time."""


class FrameError(S2EError):
    """A camera frame has the wrong type, encoding or size."""


@dataclass
class _Frame:
    stamp_ns: int
    image: np.ndarray | None
    tensor: np.ndarray | None = None


class FrameBuffer:
    """The last ``T`` context frames of a camera stream at the contract's rate.

    Args:
        context_frames: ``T``, frames per context (contract ``context_frames``).
        frame_period_s: time between context frames (contract ``1 / frame_rate_hz``).
        image_size: ``S``, side of the preprocessed square frames (contract ``image_size``).
        tolerance_s: largest allowed distance between a wanted time and the frame used for
            it (default :data:`DEFAULT_TOLERANCE_FRACTION` of the period).

    Frames are preprocessed lazily, once, when a context first selects them.
    """

    def __init__(self, context_frames: int, frame_period_s: float, image_size: int,
                 tolerance_s: float | None = None) -> None:
        if int(context_frames) < 1 or int(image_size) < 1:
            raise S2EError(f"FrameBuffer: context_frames and image_size must be >= 1, got "
                           f"{context_frames} and {image_size}")
        if not np.isfinite(frame_period_s) or frame_period_s <= 0:
            raise S2EError(f"FrameBuffer: frame_period_s must be > 0, got {frame_period_s}")
        if tolerance_s is None:
            tolerance_s = DEFAULT_TOLERANCE_FRACTION * frame_period_s
        if not np.isfinite(tolerance_s) or tolerance_s < 0:
            raise S2EError(f"FrameBuffer: tolerance_s must be >= 0, got {tolerance_s}")
        self.context_frames = int(context_frames)
        self.image_size = int(image_size)
        self.frame_period_s = float(frame_period_s)
        self.tolerance_s = float(tolerance_s)
        offsets = np.arange(self.context_frames - 1, -1, -1, dtype=np.float64)
        self._offsets_ns = np.round(offsets * self.frame_period_s * NS_PER_S).astype(np.int64)
        self._tolerance_ns = round(self.tolerance_s * NS_PER_S)
        self._keep_ns = int(self._offsets_ns[0]) + self._tolerance_ns
        self._frames: deque[_Frame] = deque()
        self._image_shape: tuple[int, ...] | None = None
        self._warned_small = False
        self.dropped_stale = 0
        """Frames refused because their stamp was not newer than the newest one."""

    @classmethod
    def for_contract(cls, contract: PolicyContract, tolerance_s: float | None = None
                     ) -> FrameBuffer:
        """A buffer with the contract's context length, frame rate and image size."""
        return cls(contract.context_frames, contract.frame_period_s, contract.image_size,
                   tolerance_s)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def newest_stamp_ns(self) -> int | None:
        """Stamp of the newest frame, or ``None`` when empty."""
        return self._frames[-1].stamp_ns if self._frames else None

    def clear(self) -> None:
        """Forget every frame (a new episode, or the camera was restarted)."""
        self._frames.clear()
        self._image_shape = None

    def push(self, stamp_ns: int, image: np.ndarray) -> bool:
        """Add one camera frame.

        Args:
            stamp_ns: capture time, nanoseconds.
            image: uint8 ``(H, W, 3)`` RGB (``s2e_policy.msgconv.image_to_rgb`` converts ROS
                images); every frame of a stream has the same ``H x W``. The array is kept
                by reference until it is preprocessed: do not modify it afterwards.

        Returns:
            ``True`` when stored; ``False`` for a duplicate or out-of-order stamp (not newer
            than the newest frame), which is dropped and counted in ``dropped_stale``. A
            stamp older than the newest by more than the buffer's whole window is a clock
            that jumped back (a restarted simulation or bag): the buffer restarts from it.

        Raises:
            FrameError: not a uint8 ``(H, W, 3)`` array, or a size that differs from the
                stream's earlier frames.
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != 3 or min(image.shape[:2]) == 0:
            what = (f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray)
                    else type(image).__name__)
            raise FrameError(f"camera frame: expected a uint8 (H, W, 3) RGB array, got {what} "
                             "(convert ROS images with s2e_policy.msgconv.image_to_rgb)")
        if self._image_shape is None:
            self._image_shape = image.shape
            if min(image.shape[:2]) < self.image_size and not self._warned_small:
                self._warned_small = True
                log.warning("camera frames are %dx%d, smaller than the policy's %d px input: "
                            "they are upsampled", image.shape[1], image.shape[0],
                            self.image_size)
        elif image.shape != self._image_shape:
            raise FrameError(f"camera frame: size changed from {self._image_shape[1]}x"
                             f"{self._image_shape[0]} to {image.shape[1]}x{image.shape[0]} "
                             "(W x H) within one stream; call clear() after a camera change")
        stamp_ns = int(stamp_ns)
        newest = self.newest_stamp_ns
        if newest is not None and stamp_ns < newest - self._keep_ns:
            log.warning("camera clock jumped back %.3f s: context frames restart",
                        (newest - stamp_ns) / NS_PER_S)
            self._frames.clear()
        elif newest is not None and stamp_ns <= newest:
            self.dropped_stale += 1
            return False
        self._frames.append(_Frame(stamp_ns, image))
        horizon = stamp_ns - self._keep_ns
        while self._frames[0].stamp_ns < horizon:
            self._frames.popleft()
        return True

    def select(self) -> list[int] | None:
        """Indices into the stored frames of the context, oldest first, or ``None``.

        ``None`` when empty or when some wanted time has no frame within ``tolerance_s``.
        """
        if not self._frames:
            return None
        stamps = np.fromiter((f.stamp_ns for f in self._frames), np.int64, len(self._frames))
        wanted = stamps[-1] - self._offsets_ns
        if len(stamps) == 1:
            nearest = np.zeros_like(wanted)
        else:
            right = np.clip(np.searchsorted(stamps, wanted), 1, len(stamps) - 1)
            left = right - 1
            nearest = np.where(np.abs(stamps[left] - wanted) <= np.abs(stamps[right] - wanted),
                               left, right)
        if np.any(np.abs(stamps[nearest] - wanted) > self._tolerance_ns):
            return None
        return nearest.tolist()

    def context(self) -> np.ndarray | None:
        """float32 ``(T, 3, S, S)`` RGB in ``[0, 1]``, oldest first, ending at the newest frame.

        Returns ``None`` while the context is incomplete (see :meth:`select`).
        """
        indices = self.select()
        if indices is None:
            return None
        out = np.empty((self.context_frames, 3, self.image_size, self.image_size), np.float32)
        for row, i in enumerate(indices):
            frame = self._frames[i]
            if frame.tensor is None:
                frame.tensor = preprocess_image(frame.image, self.image_size)
                frame.image = None  # only the preprocessed frame is needed from now on
            out[row] = frame.tensor
        return out
