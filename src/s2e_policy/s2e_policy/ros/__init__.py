"""ROS 2 adapters of the onboard runtime.

ROS stays at the edge of the stack: the node logic is plain Python, driven by adapters.

* :mod:`s2e_policy.ros.dds`: a ROS 2 wire adapter over Cyclone DDS that needs no ROS install
  (``pip install s2e_policy[dds]``); speaks ROS 2 topic names, type names and CDR payloads.

Importing this package imports nothing from ``rclpy``.
"""
