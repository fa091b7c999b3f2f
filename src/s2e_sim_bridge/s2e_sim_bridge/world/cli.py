"""``s2e scene map SCENE --out map.png``: the occupancy map of a scene as a PNG."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from s2e_sim_bridge.world.occupancy import OccupancyConfig, build_occupancy
from s2e_sim_bridge.world.plot import plot_map

LOG = logging.getLogger(__name__)
_DEFAULTS = OccupancyConfig()


def add_map_command(scene_subparsers: argparse._SubParsersAction) -> None:
    """Add the ``map`` subcommand to the ``s2e scene`` subparsers."""
    parser = scene_subparsers.add_parser(
        "map",
        help="rasterise a scene's obstacles into an occupancy map and plot it",
        description="Occupancy grid of the Gaussians in the robot's height band over the "
        "scene's navigable bounds (from its scene YAML), written as a PNG.",
    )
    parser.add_argument(
        "scene", metavar="SCENE", help=".ply or .splat scene (its scene YAML beside it)"
    )
    parser.add_argument("--yaml", default=None, help="scene YAML (default: SCENE with .yaml)")
    parser.add_argument("--out", default="map.png", help="output PNG (default: %(default)s)")
    parser.add_argument(
        "--resolution-m",
        type=float,
        default=_DEFAULTS.resolution_m,
        help="cell size in metres (default: %(default)s)",
    )
    parser.add_argument(
        "--height-band-m",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=_DEFAULTS.height_band_m,
        help="robot height band above the floor in metres (default: %(default)s)",
    )
    parser.add_argument(
        "--opacity-threshold",
        type=float,
        default=_DEFAULTS.opacity_threshold,
        help="minimum opacity of an obstacle Gaussian (default: %(default)s)",
    )
    parser.set_defaults(func=run_map_command)


def run_map_command(args: argparse.Namespace) -> int:
    """Load the scene, build its occupancy map and write the PNG; returns the exit status."""
    from s2e_sim_bridge.scene.loading import load_scene

    config = OccupancyConfig(
        resolution_m=args.resolution_m,
        height_band_m=tuple(args.height_band_m),
        opacity_threshold=args.opacity_threshold,
    )
    scene = load_scene(Path(args.scene), args.yaml)
    occupancy = build_occupancy(scene, config=config)
    name = scene.info.name if scene.info else Path(args.scene).stem
    out = plot_map(occupancy, args.out, title=f"{name}: occupancy at {config.resolution_m:g} m")
    rows, cols = occupancy.shape
    print(
        f"{out}: {cols} x {rows} cells, {100 * occupancy.grid.mean():.1f}% occupied, "
        f"bounds {occupancy.bounds_m}"
    )
    return 0
