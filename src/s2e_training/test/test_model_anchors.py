"""Anchors: the normalised motion space, headings, uniform fans and k-means centres."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2e_training.model.anchors import (
    AnchorError,
    anchor_distances,
    arc_trajectories,
    build_anchors,
    kmeans_anchors,
    normalise_trajectories,
    step_lengths,
    uniform_anchors,
    waypoint_headings,
)

W = 10


def _straight(speed_step_m: float, heading: float = 0.0, w: int = W) -> np.ndarray:
    i = np.arange(1, w + 1)[:, None]
    return i * speed_step_m * np.array([math.cos(heading), math.sin(heading)])


def test_straight_line_normalises_to_integer_steps() -> None:
    norm, step = normalise_trajectories(_straight(0.3)[None])
    np.testing.assert_allclose(step, [0.3], rtol=1e-6)
    np.testing.assert_allclose(norm[0, :, 0], np.arange(1, W + 1), rtol=1e-6)
    np.testing.assert_allclose(norm[0, :, 1], 0.0, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(0.01, 50.0), seed=st.integers(0, 1000))
def test_normalisation_is_scale_invariant(scale: float, seed: int) -> None:
    traj = np.cumsum(np.random.default_rng(seed).normal(size=(W, 2)) + np.array([1.0, 0.0]), axis=0)
    a, step_a = normalise_trajectories(traj)
    b, step_b = normalise_trajectories(traj * scale)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert step_b == pytest.approx(step_a * scale, rel=1e-5)
    assert step_lengths(a) == pytest.approx(1.0, rel=1e-5)


def test_heading_column_is_ignored_and_batches_keep_shape() -> None:
    traj = np.zeros((2, 3, W, 3))
    traj[..., :2] = _straight(0.5)
    traj[..., 2] = 99.0
    norm, step = normalise_trajectories(traj)
    assert norm.shape == (2, 3, W, 2) and step.shape == (2, 3)


def test_stationary_trajectory_stays_finite() -> None:
    norm, step = normalise_trajectories(np.zeros((1, W, 2)))
    assert np.all(norm == 0.0) and step[0] == 0.0


def test_bad_trajectories_raise() -> None:
    with pytest.raises(AnchorError, match="NaN"):
        normalise_trajectories(np.full((1, W, 2), np.nan))
    with pytest.raises(AnchorError, match=r"\(\.\.\., W, 2\)"):
        normalise_trajectories(np.zeros((W, 4)))


def test_headings_follow_the_chords_and_carry_over_stops() -> None:
    xy = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(
        waypoint_headings(xy), [0.0, math.pi / 2, math.pi / 2, math.pi], atol=1e-6
    )
    np.testing.assert_allclose(waypoint_headings(np.zeros((3, 2))), 0.0)
    np.testing.assert_allclose(waypoint_headings(_straight(1.0, 0.7)), 0.7, atol=1e-6)


def test_arc_chords_lie_on_a_circle() -> None:
    arcs = arc_trajectories(np.array([0.0]), np.array([math.pi / 2]), W)[0]
    radius = W / (math.pi / 2)  # unit arc length per step: kappa = turn / W
    centre = np.array([0.0, radius])
    np.testing.assert_allclose(np.linalg.norm(arcs - centre, axis=-1), radius, rtol=1e-9)
    np.testing.assert_allclose(arcs[-1], [radius, radius], rtol=1e-9)  # quarter circle


@pytest.mark.parametrize(("k", "shape"), [(64, (8, 8)), (24, (6, 4)), (7, (7, 1))])
def test_uniform_fan_grid(k: int, shape: tuple[int, int]) -> None:
    anchors = uniform_anchors(k, W, max_heading_rad=math.pi / 4, max_turn_rad=math.pi / 2)
    assert anchors.shape == (k, W, 3) and anchors.dtype == np.float32
    np.testing.assert_allclose(step_lengths(anchors), 1.0, rtol=1e-5)
    n_head, n_curv = shape
    first_heading = np.arctan2(anchors[:, 0, 1], anchors[:, 0, 0]).reshape(n_head, n_curv)
    # Heading index varies along rows: the first chord turns by half a step's turn.
    assert np.all(np.diff(first_heading, axis=0) > 0)
    # The fan is mirror symmetric: anchor (h, c) mirrors to (H-1-h, C-1-c).
    mirrored = anchors[::-1].copy()
    mirrored[..., 1] *= -1
    mirrored[..., 2] *= -1
    np.testing.assert_allclose(mirrored, anchors, atol=1e-5)


def test_uniform_headings_match_chord_rule() -> None:
    anchors = uniform_anchors(24, W)
    np.testing.assert_allclose(anchors[..., 2], waypoint_headings(anchors[..., :2]), atol=1e-6)


def _two_branches(n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.arange(1, W + 1) * 0.3
    side = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    y = side[:, None] * 0.8 * np.sin(np.pi * x / 6.0) ** 2 + rng.normal(0, 0.01, (n, W))
    return np.stack([np.broadcast_to(x, y.shape), y], axis=-1)


def test_kmeans_recovers_two_branches_sorted_right_to_left() -> None:
    rng = np.random.default_rng(3)
    trajs = _two_branches(200, rng)
    anchors = kmeans_anchors(trajs, 2, seed=0)
    norm, _ = normalise_trajectories(trajs)
    right, left = norm[1::2].mean(0), norm[0::2].mean(0)
    np.testing.assert_allclose(anchors[0, :, :2], right, atol=1e-4)
    np.testing.assert_allclose(anchors[1, :, :2], left, atol=1e-4)
    np.testing.assert_array_equal(kmeans_anchors(trajs, 2, seed=0), anchors)


def test_kmeans_single_cluster_is_the_mean_and_handles_duplicates() -> None:
    trajs = np.repeat(_straight(0.4)[None], 5, axis=0)
    anchors = kmeans_anchors(trajs, 3, seed=1)
    np.testing.assert_allclose(anchors[..., 0], np.tile(np.arange(1, W + 1), (3, 1)), rtol=1e-5)
    mean = kmeans_anchors(_two_branches(10, np.random.default_rng(0)), 1)
    assert np.abs(mean[0, :, 1]).max() < 0.05


def test_kmeans_needs_enough_trajectories() -> None:
    with pytest.raises(AnchorError, match="num_anchors=4 for 3 trajectories"):
        kmeans_anchors(np.ones((3, W, 2)), 4)
    with pytest.raises(AnchorError, match="needs training trajectories"):
        build_anchors("kmeans", 4, W)
    with pytest.raises(AnchorError, match="expected 10 waypoints"):
        build_anchors("kmeans", 2, W, trajs=np.ones((5, 8, 2)))


def test_anchor_distances_pick_the_matching_anchor() -> None:
    anchors = uniform_anchors(24, W)
    dist = anchor_distances(anchors[[5, 17]], anchors)
    assert dist.shape == (2, 24)
    np.testing.assert_array_equal(dist.argmin(1), [5, 17])
    assert dist[0, 5] == pytest.approx(0.0, abs=1e-6)
