"""Launch the S2E policy node on a robot.

    ros2 launch s2e_policy robot.launch.py embodiment:=go2 model:=/models/s2e.onnx \
        image_topic:=/camera/image_raw/compressed odom_topic:=/odom cmd_vel_topic:=/cmd_vel

Arguments (``ros2 launch s2e_policy robot.launch.py --show-args``): the embodiment picks the
params file ``config/<embodiment>.yaml`` unless ``params_file`` is given; topic arguments
remap the node's ``image``, ``odom``, ``goal_pose``, ``e_stop`` and ``cmd_vel``; with
``publish_camera_tf:=true`` a static_transform_publisher publishes base_link -> camera.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, TextSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARGUMENTS = {
    "embodiment": ("wheeled", "robot: wheeled or go2 (selects config/<embodiment>.yaml)"),
    "model": (None, "exported .onnx policy file (required)"),
    "params_file": (None, "ROS 2 params file (default: config/<embodiment>.yaml of s2e_policy)"),
    "namespace": ("", "namespace of the policy node"),
    "use_sim_time": ("false", "follow /clock"),
    "image_topic": ("image", "camera topic (sensor_msgs/Image or CompressedImage)"),
    "odom_topic": ("odom", "nav_msgs/Odometry topic"),
    "goal_topic": ("goal_pose", "geometry_msgs/PoseStamped goal topic"),
    "e_stop_topic": ("e_stop", "std_msgs/Bool e-stop topic"),
    "cmd_vel_topic": ("cmd_vel", "velocity command topic"),
    "publish_camera_tf": ("false", "publish a static base_link -> camera transform"),
    "camera_frame": ("camera_optical_frame", "child frame of the static camera transform"),
    "base_frame": ("base_link", "parent frame of the static camera transform"),
    "camera_x": ("0.25", "camera position in base_link, x (m)"),
    "camera_y": ("0.0", "camera position in base_link, y (m)"),
    "camera_z": ("0.65", "camera position in base_link, z (m)"),
    "camera_roll": ("-1.5708", "camera orientation, roll (rad; optical frame: z forward)"),
    "camera_pitch": ("0.0", "camera orientation, pitch (rad)"),
    "camera_yaw": ("-1.5708", "camera orientation, yaw (rad)"),
}
"""Launch arguments: name -> (default, description); ``model`` is required and
``params_file`` defaults to the embodiment's config file."""


def generate_launch_description() -> LaunchDescription:
    """The policy node (with its params file and remaps) and the optional camera transform."""
    arg = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    default_params = PathJoinSubstitution([
        FindPackageShare("s2e_policy"), "config",
        [arg["embodiment"], TextSubstitution(text=".yaml")]])
    policy = Node(
        package="s2e_policy", executable="policy_node", name="policy_node",
        namespace=arg["namespace"], output="screen",
        parameters=[arg["params_file"],
                    {"model_path": arg["model"], "use_sim_time": arg["use_sim_time"]}],
        remappings=[("image", arg["image_topic"]), ("odom", arg["odom_topic"]),
                    ("goal_pose", arg["goal_topic"]), ("e_stop", arg["e_stop_topic"]),
                    ("cmd_vel", arg["cmd_vel_topic"])],
    )
    camera_tf = Node(
        package="tf2_ros", executable="static_transform_publisher",
        name="camera_static_tf", condition=IfCondition(arg["publish_camera_tf"]),
        arguments=["--x", arg["camera_x"], "--y", arg["camera_y"], "--z", arg["camera_z"],
                   "--roll", arg["camera_roll"], "--pitch", arg["camera_pitch"],
                   "--yaw", arg["camera_yaw"], "--frame-id", arg["base_frame"],
                   "--child-frame-id", arg["camera_frame"]],
    )
    defaults = {"params_file": default_params}
    declared = [DeclareLaunchArgument(name, default_value=defaults.get(name, default),
                                      description=description)
                for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription([*declared, policy, camera_tf])
