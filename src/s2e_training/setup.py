"""s2e_training: model, AGDM pretraining, RAM + PPO post-training, ONNX export (torch)."""

from setuptools import find_packages, setup

PACKAGE = "s2e_training"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["pretrained/*.pt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    python_requires=">=3.10",
    install_requires=[
        "s2e_policy",
        "s2e_sim_bridge",
        "numpy==2.2.6",
        "pyyaml==6.0.3",
        "torch==2.13.0",
        "tqdm==4.67.1",
        "opencv-python-headless==4.12.0.88",
        "matplotlib==3.10.7",
        "tensorboard==2.20.0",
        "onnx==1.19.1",
        "onnxruntime==1.23.2",
    ],
    extras_require={"test": ["pytest==8.4.2"]},
    zip_safe=False,
    maintainer="S2E maintainers",
    maintainer_email="maintainers@s2e-nav.dev",
    description="Training for the S2E visual navigation policy.",
    license="Apache-2.0",
    entry_points={
        "s2e.commands": [
            "data = s2e_training.data.cli:register",
            "train = s2e_training.train.cli:register",
            "export = s2e_training.export.cli:register",
        ]
    },
)
