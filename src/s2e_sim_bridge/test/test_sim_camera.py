"""NavBenchSim camera sizes: the embodiment's aspect by default, or an explicit height."""

from __future__ import annotations

from s2e_policy.embodiment import load_embodiment
from s2e_sim_bridge.navbench.runner import episode_set_for
from s2e_sim_bridge.navbench.sim import NavBenchSim, SimConfig
from s2e_sim_bridge.scene import generate_street_scene


def test_square_camera_keeps_the_horizontal_fov() -> None:
    scene, _ = generate_street_scene(7, length_m=30.0, width_m=14.0, num_gaussians=5000)
    wheeled = load_embodiment("wheeled")
    aspect = NavBenchSim(scene, wheeled, SimConfig(render_width_px=64))
    square = NavBenchSim(scene, wheeled, SimConfig(render_width_px=64, render_height_px=64))
    assert (aspect.width_px, aspect.height_px) == (64, 48)  # the camera's 4:3
    assert square.K[0, 0] == aspect.K[0, 0]  # same horizontal field of view
    ep_set = episode_set_for(square, "empty", 1, 0)
    obs = square.reset(ep_set.episodes[0], ep_set.task)
    assert obs.rgb.shape == (64, 64, 3)
