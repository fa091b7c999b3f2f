"""NavBench-GS: 3D Gaussian Splatting scenes, renderer, physics, pedestrians, tasks, metrics."""

__version__ = "0.1.0"
