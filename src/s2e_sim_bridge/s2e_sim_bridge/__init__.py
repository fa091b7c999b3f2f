"""NavBench-GS: 3D Gaussian Splatting scenes, renderer, physics, pedestrians, tasks, metrics."""

import os

# Numba's OpenMP worker threads spin while waiting for work by default; on a machine shared
# with other processes (a 2-core CI runner, a vector env beside the physics) the spinning
# steals the cores and each parallel region of the cpu renderer cost ~10 ms here instead of
# well under 1 ms. Set on package import, before any numba kernel runs; libgomp reads it
# when numba first starts its threads, and a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
