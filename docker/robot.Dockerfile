# Robot image: ROS 2 Humble + the onboard runtime (s2e_policy) and the sim bridge,
# built with colcon. The policy runs on ONNX Runtime; pass --build-arg ORT=onnxruntime-gpu
# on robots with CUDA (Jetson: use NVIDIA's aarch64 onnxruntime-gpu wheel instead).
#   docker build -f docker/robot.Dockerfile -t s2e-robot .
#   docker run --rm --net=host s2e-robot ros2 launch s2e_policy robot.launch.py
FROM ros:humble-ros-base
ARG ORT=onnxruntime
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip ros-humble-cv-bridge ros-humble-tf2-ros ros-humble-gazebo-msgs \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /ws
COPY src ./src
RUN pip3 install --no-cache-dir -e src/s2e_policy -e src/s2e_sim_bridge "${ORT}"
RUN . /opt/ros/humble/setup.sh && colcon build --packages-select s2e_policy s2e_sim_bridge
RUN echo "source /ws/install/setup.bash" >> /root/.bashrc
CMD ["bash"]
