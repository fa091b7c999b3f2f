"""Replay of a real rosbag2 (EuRoC camera + odometry) through the onboard loop.

The EuRoC MCAP fixture has a 20 Hz camera (mono8, 376 x 240) and 50 Hz odometry; messages
are fed in stamp order into a :class:`Pilot` running the analytic goal seeker (context of 3
frames at 4 Hz), which is stepped at every camera frame. Expectations follow from the
graph's definition: the chosen ray is the one nearest the goal bearing seen from the latest
odometry pose.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from s2e_policy.bags import iter_images, read_odometry
from s2e_policy.embodiment import load_embodiment
from s2e_policy.runtime import Pilot, PolicyRuntime, StopReason, goal_in_robot

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_models as om

GOAL_AHEAD_M = np.array([3.0, 1.0])  # goal in the start robot frame (m)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> PolicyRuntime:
    path = om.save(om.goal_seeker(speed_mps=0.5), tmp_path_factory.mktemp("replay") / "p.onnx")
    return PolicyRuntime.from_file(path)


def test_bag_replay_through_the_pilot(mcap_bag: Path, runtime: PolicyRuntime) -> None:
    odom = read_odometry(mcap_bag, "/odom")
    frames = list(iter_images(mcap_bag, "/camera/image_raw"))
    start = odom.poses[0]
    c, s = np.cos(start[2]), np.sin(start[2])
    goal = start[:2] + np.array([[c, -s], [s, c]]) @ GOAL_AHEAD_M
    events = sorted([(int(t), 0, i) for i, t in enumerate(odom.stamps_ns)]
                    + [(f.stamp_ns, 1, i) for i, f in enumerate(frames)])
    pilot = Pilot(runtime, load_embodiment("wheeled"))
    pilot.on_goal(int(odom.stamps_ns[0]), goal)
    headings, _ = om.ray_fan(7, 5, 1.2)
    latest_pose = None
    outputs = []
    for stamp, kind, i in events:
        if kind == 0:
            latest_pose = odom.poses[i]
            assert pilot.on_odometry(stamp, latest_pose)
            continue
        assert pilot.on_image(stamp, frames[i].rgb)
        if latest_pose is None:
            continue
        out = pilot.step(stamp)
        outputs.append((stamp, out))
        if out.decision is not None:
            expected = goal_in_robot(latest_pose, goal)
            assert out.decision.goal.distance_m == pytest.approx(expected.distance_m)
            assert out.decision.mode == int(np.argmin(np.abs(headings - expected.bearing_rad)))
            assert out.safe.reasons == ()
            assert abs(out.command[0]) <= 2.0 and abs(out.command[2]) <= 2.0
    ready = [stamp for stamp, out in outputs if out.decision is not None]
    # The context spans 0.5 s; with the default tolerance (half the 0.25 s period) the oldest
    # wanted time may be 0.125 s before the first frame: on the 20 Hz grid, 0.4 s after it.
    tolerance_s = pilot.frames.tolerance_s
    wait_s = np.ceil((0.5 - tolerance_s) * 20 - 1e-6) / 20
    assert (ready[0] - frames[0].stamp_ns) / 1e9 == pytest.approx(wait_s, abs=2e-3)
    assert all(out.safe.reasons == (StopReason.CONTEXT_INCOMPLETE,)
               for stamp, out in outputs if stamp < ready[0])
    assert len(ready) == len([o for o in outputs if o[0] >= ready[0]]) > 70
