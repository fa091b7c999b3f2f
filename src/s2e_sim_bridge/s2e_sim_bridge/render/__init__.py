"""Gaussian-splatting renderer: one set of conventions (gsplat classic), two backends.

``cpu`` is a numba tile rasteriser (the default; no GPU needed), ``cuda`` wraps
``gsplat.rasterization`` (imported only when chosen). See :mod:`.renderer` for the outputs and
:mod:`.conventions` for the exact rasterisation rules.
"""

import os

# Numba's OpenMP worker threads spin while waiting for work by default; on a machine shared
# with other processes (a 2-core CI runner, a vector env beside the physics) the spinning
# steals the cores and each parallel region of the cpu backend cost ~10 ms here instead of
# well under 1 ms. libgomp reads this when numba first starts its threads, so it only takes
# effect if no numba parallel code ran earlier in the process; a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from s2e_sim_bridge.render.camera import (
    camera_centre,
    camera_from_pose,
    intrinsics_from_fov,
    look_at,
)
from s2e_sim_bridge.render.images import colourise_depth, rgb_to_uint8, save_png
from s2e_sim_bridge.render.renderer import BACKENDS, RenderResult, render, render_batch
from s2e_sim_bridge.render.validation import RenderError

__all__ = [
    "BACKENDS",
    "RenderError",
    "RenderResult",
    "camera_centre",
    "camera_from_pose",
    "colourise_depth",
    "intrinsics_from_fov",
    "look_at",
    "render",
    "render_batch",
    "rgb_to_uint8",
    "save_png",
]
