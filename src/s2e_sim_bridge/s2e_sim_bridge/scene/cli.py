"""``s2e scene``: inspect scene files and generate procedural street scenes.

``s2e scene info PATH [--yaml FILE]`` prints what a capture holds once aligned;
``s2e scene generate --seed S --out scene.ply [--num-gaussians N] [--size L W]`` writes a
street scene as ``scene.ply`` + ``scene.yaml``; ``s2e scene map`` (the occupancy map) is
contributed by :mod:`s2e_sim_bridge.world.cli`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.loading import load_scene, save_scene
from s2e_sim_bridge.scene.street import StreetConfig, generate_street_scene

_PERCENTILES = (0, 50, 100)


def _stats(values: np.ndarray) -> str:
    lo, mid, hi = np.percentile(values, _PERCENTILES)
    return f"min {lo:.4g}  median {mid:.4g}  max {hi:.4g}"


def describe_scene(scene: GaussianScene, path: Path) -> list[str]:
    """Human-readable lines about a loaded scene (used by ``s2e scene info``)."""
    info = scene.info
    lo, hi = scene.means.min(axis=0), scene.means.max(axis=0)
    lines = [
        f"file: {path} ({path.stat().st_size / 1e6:.2f} MB, {scene.meta.get('format', '?')})",
        f"gaussians: {len(scene)}",
        f"sh degree: {scene.sh_degree}",
        "bounds (world, m): "
        f"x [{lo[0]:.3f}, {hi[0]:.3f}]  y [{lo[1]:.3f}, {hi[1]:.3f}]  z [{lo[2]:.3f}, {hi[2]:.3f}]",
        f"opacity: {_stats(scene.opacities)}",
        f"scale (m): {_stats(scene.scales)}",
    ]
    if info is not None:
        a = info.alignment
        if a.is_identity:
            applied = "none (identity)"
        else:
            applied = f"rotation {np.round(a.rotation, 4).tolist()}, scale {a.scale:g}, "
            applied += f"translation {a.translation.tolist()}"
        (xmin, ymin), (xmax, ymax) = info.navigable_bounds_m
        lines += [
            f"name: {info.name}",
            f"scene yaml: {info.yaml_path or 'none (floor and bounds derived from the centres)'}",
            f"alignment applied: {applied}",
            f"floor height (m): {info.floor_height_m:.3f}",
            f"navigable bounds (m): x [{xmin:.2f}, {xmax:.2f}]  y [{ymin:.2f}, {ymax:.2f}]",
        ]
    return lines


def _info(args: argparse.Namespace) -> int:
    scene = load_scene(args.path, args.yaml)
    print("\n".join(describe_scene(scene, Path(args.path))))
    return 0


def _generate(args: argparse.Namespace) -> int:
    overrides: dict = {"num_gaussians": args.num_gaussians, "sh_degree": args.sh_degree}
    if args.size is not None:
        overrides["length_m"], overrides["width_m"] = args.size
    scene, _ = generate_street_scene(args.seed, StreetConfig(), **overrides)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ply_path, yaml_path = save_scene(scene, out)
    print(f"wrote {ply_path} ({len(scene)} Gaussians) and {yaml_path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scene`` command (``info``, ``generate``, ``map``) to the ``s2e`` command line."""
    from s2e_sim_bridge.world.cli import add_map_command  # world builds on scene: import late

    parser = subparsers.add_parser("scene", help="inspect and generate 3DGS scenes")
    sub = parser.add_subparsers(dest="scene_command", metavar="SUBCOMMAND", required=True)
    info = sub.add_parser("info", help="summarise a .ply / .splat scene (after alignment)")
    info.add_argument("path", help="scene file (.ply or .splat)")
    info.add_argument("--yaml", default=None, help="scene YAML (default: PATH with .yaml)")
    info.set_defaults(func=_info)
    defaults = StreetConfig()
    gen = sub.add_parser("generate", help="write a procedural street scene (PLY + YAML)")
    gen.add_argument("--seed", type=int, required=True, help="layout seed")
    gen.add_argument("--out", required=True, help="output .ply (the .yaml goes beside it)")
    gen.add_argument(
        "--num-gaussians", type=int, default=defaults.num_gaussians, help="target count"
    )
    gen.add_argument(
        "--size",
        type=float,
        nargs=2,
        metavar=("LENGTH_M", "WIDTH_M"),
        default=None,
        help=f"street length and width (default {defaults.length_m:g} {defaults.width_m:g})",
    )
    gen.add_argument("--sh-degree", type=int, default=defaults.sh_degree, help="SH degree 0-3")
    gen.set_defaults(func=_generate)
    add_map_command(sub)
