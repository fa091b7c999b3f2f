"""Anchor trajectories in the speed-normalised motion space (numpy in, numpy out).

Frames and units: trajectories are waypoints in the robot frame at the current time
(REP-103: x forward, y left), metres, shape ``(..., W, 2)`` or ``(..., W, 3)`` with a heading
column (radians, counter-clockwise from +x) that is ignored on input.

The normalised motion space (one definition used everywhere, the loss included):
the *step length* of a trajectory is its mean distance between consecutive waypoints, the
robot's current position (the origin) counting as waypoint 0::

    step_m = mean_i || p_i - p_{i-1} ||,   p_0 = (0, 0),  i = 1..W

and its normalised form is ``p / max(step_m, min_step_m)``, so a normalised trajectory has a
mean step of exactly 1 (a straight line at constant speed is ``(1, 0), (2, 0), ..., (W, 0)``)
whatever the speed it was driven at. ``step_m / waypoint_dt_s`` is the mean speed in m/s; a
network predicts a normalised trajectory plus a speed and scales it back to metres with
``p = p_norm * speed_mps * waypoint_dt_s``. That is what lets one model serve embodiments of
different speeds.

The heading of waypoint i is the direction of the chord arriving at it,
``atan2(p_i - p_{i-1})`` with ``p_0`` the origin; a zero-length chord keeps the previous
heading (0 before the first motion). :func:`waypoint_headings` is the one implementation.
"""

from __future__ import annotations

import math

import numpy as np

from s2e_policy.errors import S2EError

MIN_STEP_M = 1e-3
"""Floor on the step length (m) used for normalising (near-)stationary trajectories."""

DEFAULT_MAX_HEADING_RAD = math.pi / 4
"""Default half-span of the uniform fan's initial headings (rad)."""

DEFAULT_MAX_TURN_RAD = math.pi / 2
"""Default half-span of the uniform fan's total heading change over the horizon (rad)."""

KMEANS_MAX_ITERATIONS = 100
_CHORD_EPS = 1e-9  # chords shorter than this (normalised units or m) carry the previous heading


class AnchorError(S2EError):
    """Bad trajectories or anchor parameters; the message names the argument."""


def _xy(trajs: np.ndarray, name: str) -> np.ndarray:
    """Validate ``(..., W, 2|3)`` finite trajectories and return the XY part as float64."""
    arr = np.asarray(trajs)
    if arr.ndim < 2 or arr.shape[-1] not in (2, 3) or arr.shape[-2] < 1:
        raise AnchorError(f"{name}: expected shape (..., W, 2) or (..., W, 3), got {arr.shape}")
    xy = arr[..., :2].astype(np.float64)
    if not np.all(np.isfinite(xy)):
        raise AnchorError(f"{name}: trajectories contain NaN or inf")
    return xy


def step_lengths(trajs: np.ndarray) -> np.ndarray:
    """Mean step length of each trajectory.

    Args:
        trajs: ``(..., W, 2|3)`` waypoints (metres or normalised units), origin excluded.

    Returns:
        ``(...)`` float64 mean distance between consecutive waypoints, origin included.
    """
    xy = _xy(trajs, "trajs")
    prev = np.concatenate([np.zeros_like(xy[..., :1, :]), xy[..., :-1, :]], axis=-2)
    return np.linalg.norm(xy - prev, axis=-1).mean(axis=-1)


def normalise_trajectories(
    trajs: np.ndarray, min_step_m: float = MIN_STEP_M
) -> tuple[np.ndarray, np.ndarray]:
    """Map metric trajectories to the speed-normalised motion space.

    Args:
        trajs: ``(..., W, 2|3)`` waypoints in metres (robot frame); a heading column is ignored.
        min_step_m: floor (m) on the step length so stationary trajectories stay finite.

    Returns:
        ``(traj_norm, step_m)``: ``(..., W, 2)`` float32 normalised XY and ``(...)`` float32
        step lengths in metres (before the floor).
    """
    xy = _xy(trajs, "trajs")
    step = step_lengths(xy)
    norm = xy / np.maximum(step, min_step_m)[..., None, None]
    return norm.astype(np.float32), step.astype(np.float32)


def waypoint_headings(xy: np.ndarray) -> np.ndarray:
    """Heading (rad) of each waypoint: the direction of the chord arriving at it.

    Args:
        xy: ``(..., W, 2)`` waypoints (any scale), origin excluded.

    Returns:
        ``(..., W)`` float32 headings in (-pi, pi]; a zero-length chord repeats the previous
        heading (0 when the trajectory has not moved yet).
    """
    xy = _xy(xy, "xy")
    prev = np.concatenate([np.zeros_like(xy[..., :1, :]), xy[..., :-1, :]], axis=-2)
    chord = xy - prev
    moving = np.linalg.norm(chord, axis=-1) > _CHORD_EPS
    heading = np.arctan2(chord[..., 1], chord[..., 0])
    out = np.zeros(heading.shape, dtype=np.float64)
    last = np.zeros(heading.shape[:-1], dtype=np.float64)
    for i in range(heading.shape[-1]):
        last = np.where(moving[..., i], heading[..., i], last)
        out[..., i] = last
    return out.astype(np.float32)


def with_headings(xy: np.ndarray) -> np.ndarray:
    """Append :func:`waypoint_headings` to ``(..., W, 2)`` waypoints -> ``(..., W, 3)`` float32."""
    xy = _xy(xy, "xy")
    return np.concatenate([xy, waypoint_headings(xy)[..., None]], axis=-1).astype(np.float32)


def _fan_shape(num_anchors: int) -> tuple[int, int]:
    """Split K into (headings, curvatures) with curvatures the largest divisor <= sqrt(K)."""
    n_curv = max(d for d in range(1, math.isqrt(num_anchors) + 1) if num_anchors % d == 0)
    return num_anchors // n_curv, n_curv


def _symmetric_grid(count: int, half_span: float) -> np.ndarray:
    """``count`` evenly spaced values over [-half_span, half_span] (0 when count == 1)."""
    if count == 1:
        return np.zeros(1)
    return np.linspace(-half_span, half_span, count)


def arc_trajectories(
    initial_heading_rad: np.ndarray, total_turn_rad: np.ndarray, num_waypoints: int
) -> np.ndarray:
    """Constant-curvature arcs with unit arc length per step, starting at the origin.

    Args:
        initial_heading_rad: ``(N,)`` heading of the tangent at the origin.
        total_turn_rad: ``(N,)`` heading change over the whole horizon (curvature x W).
        num_waypoints: W.

    Returns:
        ``(N, W, 2)`` float64 waypoints at arc lengths 1..W (not yet normalised: chords of a
        curved arc are slightly shorter than 1).
    """
    psi0 = np.asarray(initial_heading_rad, dtype=np.float64)[:, None]
    kappa = np.asarray(total_turn_rad, dtype=np.float64)[:, None] / num_waypoints
    s = np.arange(1, num_waypoints + 1, dtype=np.float64)[None, :]
    turn = kappa * s
    # Chord of an arc of length s and turn kappa*s: length s*sinc(turn/2) at the mid heading.
    chord = s * np.sinc(turn / (2 * np.pi))
    mid = psi0 + turn / 2
    return np.stack([chord * np.cos(mid), chord * np.sin(mid)], axis=-1)


def uniform_anchors(
    num_anchors: int,
    num_waypoints: int,
    max_heading_rad: float = DEFAULT_MAX_HEADING_RAD,
    max_turn_rad: float = DEFAULT_MAX_TURN_RAD,
) -> np.ndarray:
    """A regular fan of constant-curvature arcs in the normalised motion space.

    K is split into ``H`` initial headings x ``C`` total turns (``C`` the largest divisor of K
    not above sqrt(K); K = 64 gives 8 x 8, K = 24 gives 6 x 4), each spread evenly over
    ``[-max, +max]``. Anchor ``h * C + c`` has heading index h and turn index c.

    Args:
        num_anchors: K >= 1.
        num_waypoints: W >= 1.
        max_heading_rad: half-span of the initial headings.
        max_turn_rad: half-span of the total heading change over the horizon.

    Returns:
        ``(K, W, 3)`` float32 anchors ``(x, y, heading)``, normalised (mean step 1).
    """
    if num_anchors < 1 or num_waypoints < 1:
        raise AnchorError(
            f"uniform_anchors: num_anchors and num_waypoints must be >= 1, got "
            f"{num_anchors}, {num_waypoints}"
        )
    n_head, n_curv = _fan_shape(num_anchors)
    psi, turn = np.meshgrid(
        _symmetric_grid(n_head, max_heading_rad), _symmetric_grid(n_curv, max_turn_rad),
        indexing="ij",
    )
    arcs = arc_trajectories(psi.ravel(), turn.ravel(), num_waypoints)
    norm, _ = normalise_trajectories(arcs)
    return with_headings(norm)


def _sq_dists(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(M, D) x (K, D) -> (M, K) squared Euclidean distances."""
    return ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)


def _kmeans_pp_init(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur and Vassilvitskii 2007): (M, D) -> (k, D) initial centres."""
    centres = [points[rng.integers(len(points))]]
    d2 = _sq_dists(points, centres[0][None])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0.0:  # every point coincides with a centre: pick uniformly
            idx = rng.integers(len(points))
        else:
            idx = rng.choice(len(points), p=d2 / total)
        centres.append(points[idx])
        d2 = np.minimum(d2, _sq_dists(points, points[idx][None])[:, 0])
    return np.stack(centres)


def kmeans_anchors(
    trajs: np.ndarray, num_anchors: int, seed: int = 0, max_iterations: int = KMEANS_MAX_ITERATIONS
) -> np.ndarray:
    """Anchors as k-means cluster centres of normalised training trajectories.

    Trajectories are normalised (:func:`normalise_trajectories`), flattened to ``2W`` vectors
    and clustered with k-means++ seeding and Lloyd iterations (until assignments stop changing
    or ``max_iterations``). An empty cluster is re-seeded with the point farthest from its
    centre. Centres are returned sorted by the angle of their final waypoint (right to left),
    so the result is deterministic for a given seed.

    Args:
        trajs: ``(M, W, 2|3)`` metric trajectories (robot frame), M >= K.
        num_anchors: K >= 1.
        seed: seed of the k-means++ initialisation.
        max_iterations: Lloyd iteration cap.

    Returns:
        ``(K, W, 3)`` float32 anchors ``(x, y, heading)`` in the normalised space.
    """
    xy = _xy(trajs, "trajs")
    if xy.ndim != 3:
        raise AnchorError(f"trajs: expected shape (M, W, 2|3), got {np.shape(trajs)}")
    if num_anchors < 1 or len(xy) < num_anchors:
        raise AnchorError(
            f"kmeans_anchors: need 1 <= num_anchors <= number of trajectories, got "
            f"num_anchors={num_anchors} for {len(xy)} trajectories"
        )
    norm, _ = normalise_trajectories(xy)
    points = norm.reshape(len(norm), -1).astype(np.float64)
    rng = np.random.default_rng(seed)
    centres = _kmeans_pp_init(points, num_anchors, rng)
    labels = np.full(len(points), -1)
    for _ in range(max_iterations):
        d2 = _sq_dists(points, centres)
        new_labels = d2.argmin(axis=1)
        for k in range(num_anchors):
            members = new_labels == k
            if members.any():
                centres[k] = points[members].mean(axis=0)
            else:
                far = d2[np.arange(len(points)), new_labels].argmax()
                centres[k] = points[far]
                new_labels[far] = k
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    centres_xy = centres.reshape(num_anchors, -1, 2)
    end_angle = np.arctan2(centres_xy[:, -1, 1], centres_xy[:, -1, 0])
    order = np.lexsort((centres_xy[:, -1, 0], end_angle))
    return with_headings(centres_xy[order])


def anchor_distances(traj_norm: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Winner-take-all criterion: distance of normalised trajectories to every anchor.

    The distance is the mean over waypoints of the Euclidean distance between a normalised
    trajectory and an anchor (an ADE in the normalised space). The AGDM loss takes the anchor
    with the smallest distance as the positive mode.

    Args:
        traj_norm: ``(M, W, 2|3)`` normalised trajectories (see :func:`normalise_trajectories`).
        anchors: ``(K, W, 2|3)`` normalised anchors.

    Returns:
        ``(M, K)`` float32 distances in normalised units.
    """
    t = _xy(traj_norm, "traj_norm")
    a = _xy(anchors, "anchors")
    if t.ndim != 3 or a.ndim != 3 or t.shape[1] != a.shape[1]:
        raise AnchorError(
            f"anchor_distances: expected (M, W, 2|3) and (K, W, 2|3) with the same W, got "
            f"{np.shape(traj_norm)} and {np.shape(anchors)}"
        )
    return np.linalg.norm(t[:, None] - a[None], axis=-1).mean(axis=-1).astype(np.float32)


def build_anchors(
    kind: str,
    num_anchors: int,
    num_waypoints: int,
    trajs: np.ndarray | None = None,
    seed: int = 0,
    max_heading_rad: float = DEFAULT_MAX_HEADING_RAD,
    max_turn_rad: float = DEFAULT_MAX_TURN_RAD,
) -> np.ndarray:
    """Anchors of the configured kind (``ModelConfig.anchor_kind``).

    Args:
        kind: ``uniform`` (:func:`uniform_anchors`) or ``kmeans`` (:func:`kmeans_anchors`).
        num_anchors: K.
        num_waypoints: W.
        trajs: ``(M, W, 2|3)`` metric training trajectories; required for ``kmeans``.
        seed: k-means++ seed.
        max_heading_rad: uniform fan half-span of initial headings.
        max_turn_rad: uniform fan half-span of total turning.

    Returns:
        ``(K, W, 3)`` float32 normalised anchors.
    """
    if kind == "uniform":
        return uniform_anchors(num_anchors, num_waypoints, max_heading_rad, max_turn_rad)
    if kind == "kmeans":
        if trajs is None:
            raise AnchorError("anchor_kind 'kmeans' needs training trajectories (trajs)")
        if np.shape(trajs)[-2] != num_waypoints:
            raise AnchorError(
                f"trajs: expected {num_waypoints} waypoints per trajectory, got shape "
                f"{np.shape(trajs)}"
            )
        return kmeans_anchors(trajs, num_anchors, seed=seed)
    raise AnchorError(f"anchor kind must be 'uniform' or 'kmeans', got {kind!r}")
