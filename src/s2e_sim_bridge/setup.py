"""s2e_sim_bridge: NavBench-GS (scenes, renderer, physics, pedestrians, tasks, metrics)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "s2e_sim_bridge"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["config/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "s2e_policy",
        "numpy==2.2.6",
        "pyyaml==6.0.3",
        "numba==0.62.1",
        "pillow==11.3.0",
        "tqdm==4.67.1",
        "scipy==1.15.3",
        "mujoco==3.3.7",
        "matplotlib==3.10.7",
        "rich==14.1.0",
        "gymnasium==1.2.2",
    ],
    extras_require={"cuda": ["gsplat==1.5.3"], "test": ["pytest==8.4.2"]},
    zip_safe=False,
    maintainer="S2E maintainers",
    maintainer_email="maintainers@s2e-nav.dev",
    description="NavBench-GS: closed-loop benchmark in 3D Gaussian Splatting scenes.",
    license="Apache-2.0",
    entry_points={
        "s2e.commands": [
            "scene = s2e_sim_bridge.scene.cli:register",
            "render = s2e_sim_bridge.render.cli:register",
            "navbench = s2e_sim_bridge.navbench.cli:register",
            "navbench-bridge = s2e_sim_bridge.ros.bridge_cli:register",
        ],
        # ROS 2 executable (ros2 run s2e_sim_bridge navbench_bridge); needs rclpy.
        "console_scripts": ["navbench_bridge = s2e_sim_bridge.ros.bridge_node:main"],
    },
)
