"""Sim-in-the-loop NavBench-GS over ROS 2: the sim bridge, the policy node, optionally a bag.

    ros2 launch s2e_sim_bridge navbench.launch.py model:=/models/s2e.onnx task:=empty \
        episodes:=5 embodiment:=wheeled out:=runs/navbench_ros record:=true

The bridge publishes the sim clock and steps the simulator with the policy node's cmd_vel
(lockstep); the policy node runs with use_sim_time. When the bridge has written its report
(``out``) it exits and the launch shuts down.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, TextSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARGUMENTS = {
    "model": (None, "exported .onnx policy file (required)"),
    "scene": ("", "scene PLY/.splat with its scene YAML ('': the generated street)"),
    "task": ("empty", "comma-separated tasks: empty, obstacle, pedestrian, obstacle_pedestrian"),
    "episodes": ("5", "episodes per task"),
    "seed": ("0", "episode sampling seed"),
    "embodiment": ("wheeled", "robot: wheeled or go2"),
    "render_width": ("128", "camera width in pixels"),
    "backend": ("cpu", "renderer backend: cpu or cuda"),
    "out": ("runs/navbench_ros", "output folder of metrics and report"),
    "policy_params_file": (None, "policy node params (default: s2e_policy "
                                 "config/<embodiment>.yaml)"),
    "record": ("false", "record the run with ros2 bag"),
    "bag": ("runs/navbench_ros_bag", "bag output folder (with record:=true)"),
}
"""Launch arguments: name -> (default, description); ``model`` is required."""

RECORDED_TOPICS = ["/clock", "/tf", "/tf_static", "/odom", "/camera/image_raw",
                   "/camera/camera_info", "/model_states", "/goal_pose", "/cmd_vel",
                   "/policy_node/waypoints", "/diagnostics"]
"""Topics ``record:=true`` writes to the bag (the depth stream is left out for size)."""


def generate_launch_description() -> LaunchDescription:
    """Bridge + policy node (sim time) + optional ``ros2 bag record``."""
    arg = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    policy_params = PathJoinSubstitution([
        FindPackageShare("s2e_policy"), "config",
        [arg["embodiment"], TextSubstitution(text=".yaml")]])
    bridge = Node(
        package="s2e_sim_bridge", executable="navbench_bridge", name="navbench_bridge",
        output="screen",
        parameters=[{"out": arg["out"], "scene": arg["scene"], "tasks": arg["task"],
                     "episodes": arg["episodes"], "seed": arg["seed"],
                     "embodiment": arg["embodiment"], "render_width_px": arg["render_width"],
                     "backend": arg["backend"], "policy_name": arg["model"]}],
    )
    policy = Node(
        package="s2e_policy", executable="policy_node", name="policy_node", output="screen",
        parameters=[arg["policy_params_file"],
                    {"model_path": arg["model"], "embodiment": arg["embodiment"],
                     "use_sim_time": True}],
        remappings=[("image", "camera/image_raw")],
    )
    record = ExecuteProcess(cmd=["ros2", "bag", "record", "-o", arg["bag"], *RECORDED_TOPICS],
                            output="screen", condition=IfCondition(arg["record"]))
    stop_when_done = RegisterEventHandler(OnProcessExit(
        target_action=bridge, on_exit=[EmitEvent(event=Shutdown(reason="navbench finished"))]))
    defaults = {"policy_params_file": policy_params}
    declared = [DeclareLaunchArgument(name, default_value=defaults.get(name, default),
                                      description=description)
                for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription([*declared, bridge, policy, record, stop_when_done])
