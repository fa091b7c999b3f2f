"""Gaussian-splatting renderer: one set of conventions (gsplat classic), two backends.

``cpu`` is a numba rasteriser (the default; no GPU needed), ``cuda`` wraps
``gsplat.rasterization`` (imported only when chosen). See :mod:`.renderer` for the outputs and
:mod:`.conventions` for the exact rasterisation rules.
"""


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
