"""s2e_policy: the onboard runtime (numpy + onnxruntime only, never torch)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "s2e_policy"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["embodiments/*.yaml", "models/*.onnx"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy==2.2.6",
        "pyyaml==6.0.3",
        "pillow==11.3.0",
        "transforms3d==0.4.2",
        "rosbags==0.10.11",
        "onnxruntime==1.23.2",
    ],
    extras_require={
        # onnx builds the test policies (onnx.helper); the runtime itself never imports it.
        "test": ["pytest==8.4.2", "onnx==1.19.1"],
        # CUDA/TensorRT providers. The GPU wheel provides the same `onnxruntime` module:
        # uninstall the CPU wheel after installing this extra (`pip uninstall onnxruntime`).
        "gpu": ["onnxruntime-gpu==1.23.2"],
        # ROS 2 wire adapter for machines without ROS (s2e_policy.ros.dds).
        "dds": ["cyclonedds==11.0.1"],
        # Plots of `s2e replay` (the evaluation itself needs only the core dependencies).
        "replay": ["matplotlib==3.10.7"],
    },
    zip_safe=True,
    maintainer="S2E maintainers",
    maintainer_email="maintainers@s2e-nav.dev",
    description="Onboard runtime of the S2E visual navigation policy.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "s2e = s2e_policy.cli:main",
            # ROS 2 executables (ros2 run s2e_policy policy_node); need rclpy.
            "policy_node = s2e_policy.ros.policy_node:main",
        ],
        "s2e.commands": [
            "replay = s2e_policy.replay.cli:register",
            "policy-node = s2e_policy.ros.node_cli:register",
        ],
    },
)
