# Robot image: ROS 2 Jazzy + the onboard policy node (s2e_policy), built with colcon.
#   docker build -f docker/robot.Dockerfile -t s2e-robot .
#   docker run --rm --net=host -v $PWD/models:/models s2e-robot \
#       ros2 launch s2e_policy robot.launch.py model:=/models/policy.onnx embodiment:=go2
# The default command launches robot.launch.py with /models/policy.onnx (mount it).
#
# ONNX Runtime: the CPU wheel by default. On an x86 robot with CUDA, build FROM an image that
# has ROS 2 Jazzy on the CUDA runtime and pass --build-arg ORT=onnxruntime-gpu==1.23.2; on
# Jetson use NVIDIA's aarch64 onnxruntime-gpu wheel for the board's JetPack
# (--build-arg ORT=<wheel URL from NVIDIA's Jetson builds>).
#
# Python packages: apt provides numpy/yaml/pillow/transforms3d built for the ROS Python (so
# cv_bridge keeps its NumPy ABI); only what has no Debian package comes from pip.
FROM ros:jazzy-ros-base
ARG ORT=onnxruntime==1.23.2
ARG ROSBAGS=rosbags==0.10.11
SHELL ["/bin/bash", "-c"]
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-numpy python3-yaml python3-pil python3-transforms3d \
        python3-colcon-common-extensions \
        ros-jazzy-rclpy ros-jazzy-launch-ros ros-jazzy-cv-bridge ros-jazzy-tf2-ros \
        ros-jazzy-tf2-ros-py ros-jazzy-tf2-msgs ros-jazzy-diagnostic-msgs ros-jazzy-std-srvs \
        ros-jazzy-sensor-msgs ros-jazzy-nav-msgs ros-jazzy-geometry-msgs \
        ros-jazzy-rmw-cyclonedds-cpp \
    && rm -rf /var/lib/apt/lists/*
RUN pip3 install --no-cache-dir --break-system-packages "${ORT}" "${ROSBAGS}"
WORKDIR /ws
COPY src/s2e_policy src/s2e_policy
RUN source /opt/ros/jazzy/setup.bash && colcon build --packages-select s2e_policy
# Cyclone DDS, so the robot also talks to ROS-less machines running the DDS adapter
# (s2e policy-node / s2e navbench-bridge) on the same ROS_DOMAIN_ID.
ENV RMW_IMPLEMENTATION=rmw_cyclonedds_cpp
RUN printf '#!/bin/bash\nset -e\nsource /opt/ros/jazzy/setup.bash\nsource /ws/install/setup.bash\nexec "$@"\n' \
        > /s2e_entrypoint.sh && chmod +x /s2e_entrypoint.sh
ENTRYPOINT ["/s2e_entrypoint.sh"]
CMD ["ros2", "launch", "s2e_policy", "robot.launch.py", "model:=/models/policy.onnx"]
