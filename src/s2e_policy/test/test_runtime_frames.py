"""FrameBuffer: timestamp selection from irregular streams, drops, duplicates, bad frames."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2e_policy.preprocess import preprocess_image
from s2e_policy.runtime import FrameBuffer, FrameError

MS = 1_000_000  # nanoseconds per millisecond
PERIOD_S = 0.25


def coded_frame(index: int, height: int = 24, width: int = 32) -> np.ndarray:
    """A frame whose pixels encode ``index`` (so the selected frames can be read back)."""
    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[..., 0] = index % 256
    return image


def brute_force(stamps: list[int], periods: int, period_ns: int, tol_ns: int) -> list[int] | None:
    """Nearest stored stamp (ties -> earlier) to each wanted time, or None beyond tolerance."""
    out = []
    for k in range(periods - 1, -1, -1):
        wanted = stamps[-1] - k * period_ns
        errors = [abs(s - wanted) for s in stamps]
        best = min(range(len(stamps)), key=lambda i: (errors[i], i))
        if errors[best] > tol_ns:
            return None
        out.append(best)
    return out


def test_regular_stream_gives_the_last_frames_preprocessed() -> None:
    buf = FrameBuffer(context_frames=4, frame_period_s=PERIOD_S, image_size=16)
    frames = [coded_frame(i) for i in range(6)]
    for i, frame in enumerate(frames):
        assert buf.push(i * 250 * MS, frame)
        context = buf.context()
        if i < 3:
            assert context is None  # not enough history yet
    expected = np.stack([preprocess_image(f, 16) for f in frames[2:]])
    assert context.dtype == np.float32 and context.shape == (4, 3, 16, 16)
    np.testing.assert_array_equal(context, expected)


def test_fast_jittery_stream_picks_nearest_frames_at_the_contract_rate() -> None:
    rng = np.random.default_rng(1)
    stamps = np.cumsum(rng.uniform(25, 41, 120)).astype(np.int64) * MS  # ~30 Hz with jitter
    buf = FrameBuffer(context_frames=5, frame_period_s=PERIOD_S, image_size=8)
    for i, stamp in enumerate(stamps):
        buf.push(int(stamp), coded_frame(i, 8, 8))
    context = buf.context()
    kept = stamps[-len(buf):].tolist()
    chosen = brute_force(kept, 5, 250 * MS, buf._tolerance_ns)
    first = len(stamps) - len(buf)
    expected = np.stack([preprocess_image(coded_frame(first + i, 8, 8), 8) for i in chosen])
    np.testing.assert_array_equal(context, expected)
    # Memory stays bounded to the context span plus the tolerance.
    assert stamps[-1] - kept[0] <= (4 * PERIOD_S + buf.tolerance_s) * 1e9


def test_duplicates_and_out_of_order_frames_are_dropped() -> None:
    buf = FrameBuffer(context_frames=2, frame_period_s=PERIOD_S, image_size=8)
    assert buf.push(0, coded_frame(0, 8, 8))
    assert buf.push(250 * MS, coded_frame(1, 8, 8))
    assert not buf.push(250 * MS, coded_frame(7, 8, 8))  # duplicate stamp
    assert not buf.push(100 * MS, coded_frame(8, 8, 8))  # late, out of order
    assert buf.dropped_stale == 2 and len(buf) == 2
    expected = np.stack([preprocess_image(coded_frame(i, 8, 8), 8) for i in (0, 1)])
    np.testing.assert_array_equal(buf.context(), expected)


def test_camera_drop_makes_the_context_incomplete_until_refilled() -> None:
    buf = FrameBuffer(context_frames=3, frame_period_s=PERIOD_S, image_size=8)
    for i in range(4):
        buf.push(i * 250 * MS, coded_frame(i, 8, 8))
    assert buf.context() is not None
    buf.push(1500 * MS, coded_frame(9, 8, 8))  # frames at 1.0 s and 1.25 s were lost
    assert buf.select() is None and buf.context() is None
    buf.push(1750 * MS, coded_frame(10, 8, 8))
    assert buf.context() is None  # 1.25 s still missing
    buf.push(2000 * MS, coded_frame(11, 8, 8))
    assert buf.select() == [len(buf) - 3, len(buf) - 2, len(buf) - 1]


def test_slower_stream_within_tolerance_is_accepted() -> None:
    """A 5 Hz stream (the simulator's rate) feeds a 4 Hz contract: nearest frames, <= 0.1 s off."""
    buf = FrameBuffer(context_frames=3, frame_period_s=PERIOD_S, image_size=8)
    for i in range(8):
        buf.push(i * 200 * MS, coded_frame(i, 8, 8))
    # Newest 1.4 s; wanted 0.9 s (nearest 0.8, ties to earlier) and 1.15 s (nearest 1.2).
    stamps = [s for s in range(0, 1600, 200)][-len(buf):]
    assert [stamps[i] for i in buf.select()] == [800, 1200, 1400]


def test_bad_frames_raise_frame_error(caplog) -> None:
    buf = FrameBuffer(context_frames=2, frame_period_s=PERIOD_S, image_size=16)
    with pytest.raises(FrameError, match=r"uint8 \(H, W, 3\).*float32"):
        buf.push(0, np.zeros((24, 32, 3), np.float32))
    with pytest.raises(FrameError, match=r"\(24, 32\).*msgconv"):
        buf.push(0, np.zeros((24, 32), np.uint8))  # mono8 not converted
    with pytest.raises(FrameError, match=r"\(24, 32, 4\)"):
        buf.push(0, np.zeros((24, 32, 4), np.uint8))  # RGBA
    with pytest.raises(FrameError, match="list"):
        buf.push(0, [[0, 0, 0]])
    with caplog.at_level(logging.WARNING, logger="s2e_policy.runtime"):
        buf.push(0, np.zeros((12, 20, 3), np.uint8))
    assert "upsampled" in caplog.text
    with pytest.raises(FrameError, match="size changed from 20x12 to 32x24"):
        buf.push(MS, np.zeros((24, 32, 3), np.uint8))
    buf.clear()
    assert buf.push(2 * MS, np.zeros((24, 32, 3), np.uint8))


def test_invalid_construction() -> None:
    with pytest.raises(Exception, match="frame_period_s"):
        FrameBuffer(3, 0.0, 16)
    with pytest.raises(Exception, match="tolerance_s"):
        FrameBuffer(3, 0.25, 16, tolerance_s=-1.0)


@settings(max_examples=60, deadline=None)
@given(gaps_ms=st.lists(st.integers(1, 400), min_size=1, max_size=40),
       periods=st.integers(1, 5), tol_ms=st.integers(0, 150))
def test_selection_equals_brute_force_nearest(gaps_ms, periods, tol_ms) -> None:
    buf = FrameBuffer(periods, PERIOD_S, 4, tolerance_s=tol_ms / 1000)
    stamps = np.cumsum(gaps_ms).astype(np.int64) * MS
    frame = np.zeros((4, 4, 3), np.uint8)
    for s in stamps:
        buf.push(int(s), frame)
    kept = stamps[len(stamps) - len(buf):].tolist()
    # Eviction never changes the answer: compare against all frames ever pushed.
    full = brute_force(stamps.tolist(), periods, 250 * MS, tol_ms * MS)
    got = buf.select()
    if full is None:
        assert got is None
    else:
        offset = len(stamps) - len(buf)
        assert got is not None and [kept[i] for i in got] == [int(stamps[i]) for i in full]
        assert min(full) >= offset


def test_clock_jumping_back_restarts_the_buffer(caplog) -> None:
    buf = FrameBuffer(context_frames=2, frame_period_s=PERIOD_S, image_size=8)
    for i in range(4):
        buf.push(10 * 1000 * MS + i * 250 * MS, coded_frame(i, 8, 8))
    assert buf.context() is not None
    with caplog.at_level(logging.WARNING, logger="s2e_policy.runtime"):
        assert buf.push(0, coded_frame(5, 8, 8))  # simulation restarted at t = 0
    assert "jumped back" in caplog.text
    assert len(buf) == 1 and buf.context() is None
    assert buf.push(250 * MS, coded_frame(6, 8, 8))
    expected = np.stack([preprocess_image(coded_frame(i, 8, 8), 8) for i in (5, 6)])
    np.testing.assert_array_equal(buf.context(), expected)
