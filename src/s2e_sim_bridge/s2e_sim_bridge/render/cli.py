"""``s2e render``: render one view of a scene file to PNG.

Example::

    s2e render scene.ply --pose 0 0 1.2 0 10 --out view.png --depth-out depth.png
"""

from __future__ import annotations

import argparse
import logging
import math
import time

from s2e_sim_bridge.render.camera import camera_from_pose, intrinsics_from_fov
from s2e_sim_bridge.render.images import colourise_depth, rgb_to_uint8, save_png
from s2e_sim_bridge.render.renderer import BACKENDS, render

LOG = logging.getLogger(__name__)

DEFAULT_SIZE_PX = 256
DEFAULT_HFOV_DEG = 90.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``render`` subcommand to the ``s2e`` command line."""
    parser = subparsers.add_parser(
        "render",
        help="render a view of a scene (.ply / .splat) to PNG",
        description="Render one camera view of a Gaussian scene to a PNG (and optionally depth).",
    )
    parser.add_argument(
        "scene", help="scene file (.ply or .splat; a scene YAML beside it is applied)"
    )
    parser.add_argument(
        "--pose",
        nargs=5,
        type=float,
        required=True,
        metavar=("X", "Y", "Z", "YAW_DEG", "PITCH_DEG"),
        help="camera position (metres, robot world, z up), yaw about +z and pitch "
        "(positive looks down), both in degrees",
    )
    parser.add_argument("--width", type=int, default=DEFAULT_SIZE_PX, help="image width (pixels)")
    parser.add_argument("--height", type=int, default=DEFAULT_SIZE_PX, help="image height (pixels)")
    parser.add_argument(
        "--fov", type=float, default=DEFAULT_HFOV_DEG, help="horizontal field of view (degrees)"
    )
    parser.add_argument("--out", required=True, help="output colour PNG")
    parser.add_argument(
        "--depth-out", help="optional output PNG of the colour-mapped expected depth"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="cpu", help="renderer backend")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``s2e render``; returns the exit status."""
    from s2e_sim_bridge.scene import load_scene

    scene = load_scene(args.scene)
    x, y, z, yaw_deg, pitch_deg = args.pose
    viewmat = camera_from_pose(x, y, z, math.radians(yaw_deg), math.radians(pitch_deg))
    K = intrinsics_from_fov(args.width, args.height, args.fov)
    start = time.perf_counter()
    result = render(scene, viewmat, K, args.width, args.height, backend=args.backend)
    LOG.info(
        "rendered %d Gaussians at %dx%d in %.3f s (%s)",
        len(scene), args.width, args.height, time.perf_counter() - start, args.backend,
    )  # fmt: skip
    print(save_png(args.out, rgb_to_uint8(result.rgb)))
    if args.depth_out:
        print(save_png(args.depth_out, colourise_depth(result.depth, result.alpha)))
    return 0
