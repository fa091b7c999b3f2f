"""The onboard policy runtime: numpy + onnxruntime, no torch, no ROS.

- :mod:`~s2e_policy.runtime.session`: :class:`PolicyRuntime` loads one exported ``.onnx``
  file, checks it against its contract and runs it (:class:`PolicyPrediction`).
- :mod:`~s2e_policy.runtime.frames`: :class:`FrameBuffer` keeps the context frames of an
  irregular camera stream at the contract's rate, preprocessed exactly as in training.
- :mod:`~s2e_policy.runtime.navigator`: :class:`Navigator` turns (time, odometry pose, goal,
  context) into a :class:`Decision` (goal handling, mode selection, controller, limits).
- :mod:`~s2e_policy.runtime.safety`: :class:`SafetyCore` (watchdog, NaN guard, latched
  e-stop, goal reached, velocity envelope) with explicit :class:`StopReason` values.
- :mod:`~s2e_policy.runtime.pilot`: :class:`Pilot` runs the three in the one safe order
  (used by the ROS node and by NavBench-GS's ONNX agent).

Example:
    >>> runtime = PolicyRuntime.from_file("policy.onnx")          # doctest: +SKIP
    >>> pilot = Pilot(runtime, load_embodiment("wheeled"))        # doctest: +SKIP
    >>> pilot.on_image(t_ns, rgb); pilot.on_odometry(t_ns, pose)  # doctest: +SKIP
    >>> pilot.on_goal(t_ns, goal_xy); pilot.step(t_ns).command    # doctest: +SKIP
"""

from s2e_policy.runtime.frames import FrameBuffer, FrameError
from s2e_policy.runtime.navigator import (
    Decision,
    GoalInRobot,
    Navigator,
    NavigatorConfig,
    goal_in_robot,
)
from s2e_policy.runtime.pilot import Pilot, PilotOutput
from s2e_policy.runtime.safety import SafeCommand, SafetyConfig, SafetyCore, StopReason
from s2e_policy.runtime.session import (
    PolicyFileError,
    PolicyPrediction,
    PolicyRuntime,
    select_providers,
)

__all__ = [
    "Decision",
    "FrameBuffer",
    "FrameError",
    "GoalInRobot",
    "Navigator",
    "NavigatorConfig",
    "Pilot",
    "PilotOutput",
    "PolicyFileError",
    "PolicyPrediction",
    "PolicyRuntime",
    "SafeCommand",
    "SafetyConfig",
    "SafetyCore",
    "StopReason",
    "goal_in_robot",
    "select_providers",
]
