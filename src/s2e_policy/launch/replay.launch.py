r"""Live replay: play a rosbag2 into the policy node on sim time and record what it publishes.

The bag is played with ``ros2 bag play --clock`` (it publishes ``/clock``); the policy node
(package ``s2e_policy``, executable ``policy_node``) runs with ``use_sim_time`` and its inputs
remapped to the bag's topics; ``ros2 bag record --use-sim-time`` writes the node's outputs
(``cmd_vel``, ``policy_node/waypoints``, ``/diagnostics``) into ``out``. Everything stops when
the bag has been played. The goal comes from the bag (``goal_topic``) or from the user::

    ros2 launch s2e_policy replay.launch.py bag:=/data/run1 model:=/models/s2e.onnx \
        image_topic:=/camera/image_raw/compressed compressed_image:=true \
        odom_topic:=/odom goal_topic:=/goal_pose out:=runs/run1_live

Offline (no ROS), ``s2e replay`` measures the same runtime on the same bag.
"""

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    RegisterEventHandler,
    TimerAction,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

NODE_NAME = "policy_node"
RECORDED_TOPICS = ("/cmd_vel", f"/{NODE_NAME}/waypoints", "/diagnostics")
"""What the recorder keeps: the node's command, its waypoints and its diagnostics."""

ARGUMENTS = (
    ("bag", "", "rosbag2 folder to play"),
    ("model", "", "exported .onnx policy (the node's model_path)"),
    ("embodiment", "wheeled", "wheeled | go2 | path to an embodiment YAML"),
    ("image_topic", "/camera/image_raw", "the bag's camera topic"),
    ("compressed_image", "false", "the camera topic is sensor_msgs/CompressedImage"),
    ("odom_topic", "/odom", "the bag's nav_msgs/Odometry topic"),
    ("goal_topic", "/goal_pose", "geometry_msgs/PoseStamped goal topic"),
    ("out", "replay_outputs", "folder of the recorded outputs (must not exist)"),
    ("rate", "1.0", "playback rate (1.0: real time)"),
    ("start_delay_s", "2.0", "seconds between starting the node and playing the bag"),
)


def generate_launch_description() -> LaunchDescription:
    """The node, the recorder and (after ``start_delay_s``) the bag player."""
    arg = {name: LaunchConfiguration(name) for name, _default, _help in ARGUMENTS}
    policy = Node(
        package="s2e_policy",
        executable="policy_node",
        name=NODE_NAME,
        output="screen",
        parameters=[{
            "use_sim_time": True,
            "model_path": arg["model"],
            "embodiment": arg["embodiment"],
            "compressed_image": ParameterValue(arg["compressed_image"], value_type=bool),
        }],
        remappings=[("image", arg["image_topic"]), ("odom", arg["odom_topic"]),
                    ("goal_pose", arg["goal_topic"])],
    )
    record = ExecuteProcess(
        cmd=["ros2", "bag", "record", "--use-sim-time", "-s", "mcap", "-o", arg["out"],
             *RECORDED_TOPICS],
        output="screen",
    )
    play = ExecuteProcess(
        cmd=["ros2", "bag", "play", arg["bag"], "--clock", "--rate", arg["rate"]],
        output="screen",
    )
    stop_after_play = RegisterEventHandler(
        OnProcessExit(target_action=play, on_exit=[EmitEvent(event=Shutdown(
            reason="bag played to the end"))]))
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, default, text in ARGUMENTS),
        policy,
        record,
        TimerAction(period=arg["start_delay_s"], actions=[play]),
        stop_after_play,
    ])
