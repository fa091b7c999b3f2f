"""S2EPolicyNet: shapes, metric scaling, determinism, the decoder hook, encoders, errors."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from s2e_policy.errors import S2EError
from s2e_training.model.anchors import uniform_anchors, waypoint_headings
from s2e_training.model.config import EncoderConfig, ModelConfig, ModelConfigError, preset
from s2e_training.model.network import S2EPolicyNet, chord_headings

TINY = ModelConfig(
    context_frames=2,
    image_size=32,
    num_anchors=6,
    waypoints=5,
    d_model=32,
    heads=4,
    fusion_layers=1,
    decoder_layers=2,
    ffn_dim=64,
    encoder=EncoderConfig(kind="cnn", channels=(8, 16)),
    anchor_kind="uniform",
)


def _net(cfg: ModelConfig = TINY, seed: int = 0) -> S2EPolicyNet:
    return S2EPolicyNet(cfg, uniform_anchors(cfg.num_anchors, cfg.waypoints), seed=seed)


def _inputs(cfg: ModelConfig = TINY, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(
        batch, cfg.context_frames, 3, cfg.image_size, cfg.image_size, generator=gen
    )
    bearing = torch.rand(batch, generator=gen) * 6.28
    goal = torch.stack([torch.full((batch,), 0.05), bearing.cos(), bearing.sin()], dim=1)
    return frames, goal


def test_output_shapes_and_ranges() -> None:
    out = _net()(*_inputs())
    b, k, w = 3, TINY.num_anchors, TINY.waypoints
    assert out.scores.shape == (b, k)
    assert out.offsets.shape == out.traj_norm.shape == (b, k, w, 2)
    assert out.heading.shape == (b, k, w)
    assert out.gaussian.shape == (b, k, w, 3) and out.traj_m.shape == (b, k, w, 3)
    assert out.speed_mps.shape == (b, k) and bool((out.speed_mps >= 0).all())
    assert bool((out.gaussian[..., 2].abs() < 1).all())
    assert all(bool(torch.isfinite(t).all()) for t in out)


def test_initial_prediction_is_the_anchors_at_nominal_speed() -> None:
    net = _net()
    out = net(*_inputs())
    torch.testing.assert_close(out.traj_norm, net.anchors.expand_as(out.traj_norm))
    torch.testing.assert_close(
        out.speed_mps, torch.full_like(out.speed_mps, TINY.nominal_speed_mps)
    )


def test_metric_trajectory_is_normalised_times_speed_times_dt() -> None:
    net = _net()
    with torch.no_grad():
        net.offset_head.bias.normal_()
        net.speed_head.weight.normal_()
    out = net(*_inputs())
    expected = out.traj_norm * out.speed_mps[..., None, None] * TINY.waypoint_dt_s
    torch.testing.assert_close(out.traj_m[..., :2], expected)
    torch.testing.assert_close(out.traj_m[..., 2], out.heading)
    np.testing.assert_allclose(
        out.heading.detach().numpy(),
        waypoint_headings(out.traj_norm.detach().numpy()),
        atol=1e-5,
    )


def test_chord_headings_carry_over_zero_chords() -> None:
    xy = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    torch.testing.assert_close(
        chord_headings(xy), torch.tensor([0.0, torch.pi / 2, torch.pi / 2, torch.pi])
    )


def test_same_seed_same_network_other_seed_differs_and_global_rng_untouched() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = _net(seed=7)
    assert torch.rand(1) == before  # construction did not consume the global RNG
    b, c = _net(seed=7), _net(seed=8)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)
    pairs = zip(a.parameters(), c.parameters(), strict=True)
    assert any(not torch.equal(pa, pc) for pa, pc in pairs)


def test_decoder_layers_are_exposed_and_the_residual_hook_adds_to_each_layer() -> None:
    net = _net()
    assert len(net.decoder.layers) == TINY.decoder_layers
    frames, goal = _inputs()
    base = net(frames, goal)
    calls: list[int] = []

    def zero(i: int, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        calls.append(i)
        assert x.shape == (3, TINY.num_anchors, TINY.d_model)
        assert memory.shape == (3, TINY.context_frames + 1, TINY.d_model)
        return torch.zeros_like(x)

    same = net(frames, goal, decoder_residual=zero)
    assert calls == list(range(TINY.decoder_layers))
    torch.testing.assert_close(same.scores, base.scores)
    with torch.no_grad():
        net.score_head.weight.normal_()
    base = net(frames, goal)
    gen = torch.Generator().manual_seed(1)
    bump = torch.randn(3, TINY.num_anchors, TINY.d_model, generator=gen)
    shifted = net(frames, goal, decoder_residual=lambda i, x, m: bump if i == 0 else 0 * bump)
    assert not torch.allclose(shifted.scores, base.scores, atol=1e-3)
    # Equivalent to adding the residual to the first layer's output by hand.
    memory = net.encode(frames, goal)
    x = (net.anchor_embed(net.anchors.flatten(1)) + net.query_embed).expand(3, -1, -1)
    x = net.decoder.layers[0](x, memory) + bump
    x = net.decoder.layers[1](x, memory)
    torch.testing.assert_close(net.heads(net.decoder.norm(x)).scores, shifted.scores)


def test_gradients_reach_every_parameter() -> None:
    net = _net()
    with torch.no_grad():
        for head in (net.score_head, net.offset_head, net.gaussian_head):
            head.weight.normal_(std=0.1)
    out = net(*_inputs())
    (out.scores.sum() + out.traj_m.sum() + out.gaussian.sum()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_vit_encoder_forward() -> None:
    cfg = dataclasses.replace(
        TINY, encoder=EncoderConfig(kind="vit", width=32, patch_size=8, depth=1, heads=4)
    )
    out = _net(cfg)(*_inputs(cfg, batch=2))
    assert out.traj_m.shape == (2, cfg.num_anchors, cfg.waypoints, 3)


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_encoder_without_timm_is_a_clear_error(tmp_path) -> None:
    weights = tmp_path / "dino.pt"
    weights.write_bytes(b"")
    cfg = dataclasses.replace(
        TINY,
        encoder=EncoderConfig(kind="timm", timm_model="vit_small_patch14_dinov2",
                              weights_path=str(weights)),
    )
    with pytest.raises(ModelConfigError, match="needs the timm package"):
        _net(cfg)


def test_bad_inputs_and_anchors_raise() -> None:
    net = _net()
    frames, goal = _inputs()
    with pytest.raises(S2EError, match=r"frames: expected shape \(B, 2, 3, 32, 32\)"):
        net(frames[:, :1], goal)
    with pytest.raises(S2EError, match=r"goal: expected shape \(3, 3\)"):
        net(frames, goal[:, :2])
    with pytest.raises(ModelConfigError, match=r"anchors: expected shape \(6, 5, 2\|3\)"):
        S2EPolicyNet(TINY, uniform_anchors(4, TINY.waypoints))
    bad = uniform_anchors(TINY.num_anchors, TINY.waypoints)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ModelConfigError, match="NaN"):
        S2EPolicyNet(TINY, bad)


def test_paper_preset_builds_with_the_paper_shapes() -> None:
    cfg = preset("paper")
    net = S2EPolicyNet(cfg, uniform_anchors(cfg.num_anchors, cfg.waypoints))
    assert len(net.decoder.layers) == 6 and net.anchors.shape == (64, 10, 2)
    assert net.time_embed.shape == (11, cfg.d_model)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_exports_to_onnx_and_matches_torch(tmp_path, dynamo: bool) -> None:
    ort = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    net = _net().eval()
    with torch.no_grad():
        for head in (net.score_head, net.offset_head, net.gaussian_head, net.speed_head):
            head.weight.normal_(std=0.1)
    frames, goal = _inputs(batch=2)
    path = tmp_path / "policy.onnx"
    names = ["scores", "offsets", "traj_norm", "heading", "gaussian", "speed_mps", "traj_m"]
    torch.onnx.export(
        net, (frames, goal), str(path), input_names=["frames", "goal"], output_names=names,
        opset_version=17, dynamo=dynamo,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"frames": frames.numpy(), "goal": goal.numpy()})
    with torch.no_grad():
        want = net(frames, goal)
    for name, g, w in zip(names, got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_timm_encoder_loads_local_weights(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    arch = "vit_tiny_patch16_224"
    source = timm.create_model(arch, pretrained=False, num_classes=0, img_size=TINY.image_size)
    weights = tmp_path / "backbone.pth"
    torch.save({"model": source.state_dict()}, weights)
    cfg = dataclasses.replace(
        TINY, encoder=EncoderConfig(kind="timm", timm_model=arch, weights_path=str(weights))
    )
    net = _net(cfg)
    for name, value in source.state_dict().items():
        torch.testing.assert_close(net.encoder.backbone.state_dict()[name], value, msg=name)
    assert net(*_inputs(cfg, batch=1)).traj_m.shape == (1, cfg.num_anchors, cfg.waypoints, 3)
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), other)
    bad = dataclasses.replace(
        cfg, encoder=dataclasses.replace(cfg.encoder, weights_path=str(other))
    )
    with pytest.raises(ModelConfigError, match="weights do not fit"):
        _net(bad)
