"""The runtime's FrameBuffer gives exactly the context training's make_sample gives.

A FrameBuffer configured like the training SampleConfig (same T, frame spacing, image size
and tolerance) is fed a real trajectory's frames in order; at every instant where training
cuts a sample, the buffer's context must be bit-identical to ``make_sample(...).context``,
and where training finds no full context the buffer must report none.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from s2e_policy.runtime import FrameBuffer
from s2e_training.data import SampleConfig, make_sample, read_gnm_trajectory
from s2e_training.data.sample import Trajectory, sample_indices

CONFIG = SampleConfig(image_size_px=32, context_frames=4, context_dt_s=0.25, num_waypoints=4,
                      waypoint_dt_s=0.25, goal_min_s=1.0, goal_max_s=2.0,
                      frame_tolerance_s=0.03)


@pytest.fixture(scope="module")
def trajectory(fixtures_dir) -> Trajectory:
    return read_gnm_trajectory(fixtures_dir / "gnm" / "euroc_cam1", 20.0)


def irregular(trajectory: Trajectory, seed: int) -> Trajectory:
    """The same recording with ~25% of frames dropped and +-8 ms stamp jitter."""
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(rng.random(len(trajectory)) > 0.25)
    keep = keep[(keep > 0) & (keep < len(trajectory) - 1)]
    stamps = trajectory.frame_stamps_ns[keep] + rng.integers(-8_000_000, 8_000_000, len(keep))
    return dataclasses.replace(trajectory, frame_stamps_ns=stamps,
                               frames=[trajectory.frames[int(i)] for i in keep],
                               frame_ids=trajectory.frame_ids[keep])


def assert_parity(trajectory: Trajectory) -> tuple[int, int]:
    """Feed every frame; compare at each instant. Returns (#equal contexts, #incomplete)."""
    buffer = FrameBuffer(CONFIG.context_frames, CONFIG.context_dt_s, CONFIG.image_size_px,
                         tolerance_s=CONFIG.frame_tolerance_s)
    valid = set(sample_indices(trajectory, CONFIG).tolist())
    stamps = trajectory.frame_stamps_ns
    horizon_ns = round(max(CONFIG.waypoint_horizon_s, CONFIG.goal_min_s) * 1e9)
    equal = incomplete = 0
    for index in range(len(trajectory)):
        assert buffer.push(int(stamps[index]), trajectory.frames[index])
        context = buffer.context()
        if index in valid:
            expected = make_sample(trajectory, index, CONFIG, np.random.default_rng(0)).context
            assert context is not None, f"frame {index}: training has a context, runtime none"
            assert context.dtype == expected.dtype
            np.testing.assert_array_equal(context, expected, err_msg=f"frame {index}")
            equal += 1
        elif stamps[index] + horizon_ns <= trajectory.pose_stamps_ns[-1]:
            # Training skips this instant only for lack of a full context: so must the buffer.
            assert context is None, f"frame {index}: runtime has a context, training none"
            incomplete += 1
    return equal, incomplete


def test_regular_recording_parity(trajectory) -> None:
    equal, incomplete = assert_parity(trajectory)
    assert equal > 40 and incomplete == 15  # the first 0.75 s of a 20 Hz recording


@pytest.mark.parametrize("seed", [1, 2])
def test_irregular_recording_parity(trajectory, seed) -> None:
    equal, incomplete = assert_parity(irregular(trajectory, seed))
    assert equal > 5 and incomplete > 15  # drops leave gaps wider than the tolerance
