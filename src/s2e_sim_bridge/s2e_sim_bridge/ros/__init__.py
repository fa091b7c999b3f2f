"""ROS 2 adapters of NavBench-GS: the sim bridge node.

* :mod:`~s2e_sim_bridge.ros.bridge_core`: the bridge logic in plain Python (episodes,
  lockstep, messages, report);
* :mod:`~s2e_sim_bridge.ros.dds_bridge_node`: the bridge over Cyclone DDS (no ROS install);
* :mod:`~s2e_sim_bridge.ros.bridge_node`: the rclpy node (imports rclpy; ROS 2 only).

Importing this package imports nothing from ``rclpy``.
"""
