"""NavBench-GS metrics against hand-computed values on scripted trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from s2e_sim_bridge.navbench.metrics import (
    EpisodeRecord,
    aggregate,
    episode_metrics,
    personal_space_time_s,
)


def record(poses, geo, success, peds=None, static=0, ped_coll=0, shortest=10.0,
           termination=None) -> EpisodeRecord:
    poses = np.asarray(poses, float)
    n = len(poses)
    return EpisodeRecord(
        episode_id="e0", task="empty", times_s=np.arange(n) * 0.2, poses=poses,
        geodesic_to_goal_m=np.asarray(geo, float),
        nearest_pedestrian_m=np.full(n, np.inf) if peds is None else np.asarray(peds, float),
        shortest_path_m=shortest, static_collisions=static, pedestrian_collisions=ped_coll,
        success=success, termination=termination or ("success" if success else "timeout"))


def test_straight_success_has_spl_one() -> None:
    xs = np.linspace(0, 10, 51)
    poses = np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], 1)
    m = episode_metrics(record(poses, 10 - xs, True))
    assert m.success == 1.0 and m.spl == pytest.approx(1.0)
    assert m.soft_spl == pytest.approx(1.0)
    assert m.route_completion == 1.0
    assert m.path_length_m == pytest.approx(10.0)
    assert m.time_s == pytest.approx(10.0)
    assert m.mean_speed_mps == pytest.approx(1.0)


def test_detour_success_spl_is_ratio() -> None:
    # 10 m shortest path, driven as a 5 m + 5 m + 5 m U: p = 15 -> SPL = 10 / 15.
    poses = [[0, 0, 0], [0, 5, 0], [5, 5, 0], [5, 0, 0]]
    m = episode_metrics(record(poses, [10, 8, 3, 0], True, shortest=10.0))
    assert m.path_length_m == pytest.approx(15.0)
    assert m.spl == pytest.approx(10.0 / 15.0)
    assert m.soft_spl == pytest.approx(10.0 / 15.0)


def test_failure_has_zero_spl_but_partial_progress() -> None:
    # Got to 4 m from the goal at best, ended 6 m away, drove 7 m.
    poses = [[0, 0, 0], [3, 0, 0], [6, 0, 0], [4, 0, 0]]
    m = episode_metrics(record(poses, [10, 7, 4, 6], False, shortest=10.0))
    assert m.success == 0.0 and m.spl == 0.0
    assert m.route_completion == pytest.approx(0.6)
    assert m.soft_spl == pytest.approx((1 - 6 / 10) * 10 / 10)
    assert m.termination == "timeout"


def test_collisions_and_personal_space() -> None:
    poses = np.zeros((6, 3))
    peds = [3.0, 0.9, 0.5, 0.8, 2.0, 0.1]  # the last row's interval does not exist
    m = episode_metrics(record(poses, np.full(6, 5.0), False, peds=peds, static=2,
                               ped_coll=1))
    assert m.collisions == 3 and m.static_collisions == 2 and m.pedestrian_collisions == 1
    assert m.personal_space_time_s == pytest.approx(3 * 0.2)
    assert personal_space_time_s(np.arange(6) * 0.2, peds, 0.6) == pytest.approx(0.2)


def test_aggregate_means_and_sem() -> None:
    xs = np.linspace(0, 10, 11)
    poses = np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], 1)
    ok = episode_metrics(record(poses, 10 - xs, True, static=1))
    bad = episode_metrics(record(poses[:2], [10, 9], False, static=3))
    agg = aggregate([ok, bad])
    assert agg["episodes"] == 2
    assert agg["success"] == pytest.approx(0.5)
    assert agg["success_sem"] == pytest.approx(np.std([1, 0], ddof=1) / np.sqrt(2))
    assert agg["collisions"] == pytest.approx(2.0)
    assert agg["terminations"] == {"success": 1, "timeout": 1}
