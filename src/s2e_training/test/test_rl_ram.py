"""The Residual-Attention Module: exact identity at initialisation, gradient routing, export."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from s2e_policy.errors import S2EError
from s2e_training.export.onnx_export import export_network
from s2e_training.export.parity import max_abs_errors, open_session
from s2e_training.model import ModelConfig, S2EPolicyNet
from s2e_training.model.anchors import build_anchors
from s2e_training.model.network import PolicyOutput
from s2e_training.rl.ram import DECODER_HEADS, VARIANTS, RamPolicy

TINY_MODEL = {
    "preset": "small", "image_size": 32, "context_frames": 2, "num_anchors": 6, "waypoints": 4,
    "d_model": 32, "heads": 4, "fusion_layers": 1, "decoder_layers": 2, "ffn_dim": 64,
    "encoder": {"kind": "cnn", "channels": [8, 16]}, "waypoint_dt_s": 0.2, "dropout": 0.1,
}
BATCH = 3
# Weights are redrawn with this std so that every head (zero at construction) is non-trivial:
# "equal to the pretrained model" must then hold for real predictions, not for zeros.
PRETRAINED_STD = 0.3
FLOAT_ROUNDING = 1e-5
PARITY_TOLERANCE = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pretrained_net() -> S2EPolicyNet:
    config = ModelConfig.from_dict(TINY_MODEL)
    net = S2EPolicyNet(config, build_anchors("uniform", 6, 4), seed=1)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * PRETRAINED_STD)
    return net.eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    frames = torch.rand((BATCH, 2, 3, 32, 32), generator=generator)
    angle = torch.rand(BATCH, generator=generator) * 6.28
    goal = torch.stack([torch.full((BATCH,), 0.05), angle.cos(), angle.sin()], dim=1)
    return frames, goal


def max_abs_diffs(a: PolicyOutput, b: PolicyOutput) -> dict[str, float]:
    return {name: float((x - y).abs().max()) for name, x, y in zip(a._fields, a, b, strict=True)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_policy_equals_the_pretrained_network_at_initialisation(variant: str) -> None:
    base = pretrained_net()
    frames, goal = inputs()
    policy = RamPolicy(base, variant)
    # PyTorch picks its attention kernels by train/eval mode and by whether the weights
    # require gradients (frozen layers in eval mode take the fused inference path). With the
    # same choice on both sides the outputs are bit-identical; across kernels they differ by
    # float rounding only.
    reference = copy.deepcopy(base)
    frozen = dict(policy.base.named_parameters())
    for name, param in reference.named_parameters():
        param.requires_grad_(frozen[name].requires_grad)
    with torch.no_grad():
        expected = reference(frames, goal)
        diffs = max_abs_diffs(policy.eval()(frames, goal), expected)
        print(f"{variant}: max abs diff per output {diffs}")
        assert max(diffs.values()) == 0.0, diffs
        # Other kernels: the policy in train mode (dropout is off in the RL policy), the
        # pretrained network with trainable weights.
        for other in (policy.train()(frames, goal), base(frames, goal)):
            diffs = max_abs_diffs(other, expected)
            print(f"{variant} (other attention kernels): max abs diff per output {diffs}")
            assert max(diffs.values()) < FLOAT_ROUNDING, diffs
    assert expected.scores.std() > 0.05 and expected.offsets.abs().max() > 0.1


def test_gradients_reach_only_ram_value_and_log_std() -> None:
    base = pretrained_net()
    policy = RamPolicy(base, "ram").train()
    frames, goal = inputs()
    output, value = policy.policy_and_value(frames, goal)
    loss = sum(t.float().square().mean() for t in output) + value.square().mean()
    loss.backward()
    for name, param in policy.base.named_parameters():
        assert param.grad is None, name
        assert not param.requires_grad, name
    trainable = {name for name, p in policy.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in policy.named_parameters()
                         if name.startswith(("ram.", "value_head.")) or name == "log_std"}
    # ControlNet start: only the zero-initialised output layers (and value, log-std) get a
    # gradient; the copies behind them receive one once zero_out has moved.
    for i in range(len(policy.ram.blocks)):
        assert policy.ram.blocks[i].zero_out.weight.grad.abs().max() > 0
    assert policy.value_head[-1].weight.grad.abs().max() > 0
    assert policy.log_std.grad.abs() > 0


def test_privileged_critic_sees_the_state_and_the_actor_does_not() -> None:
    base = pretrained_net()
    frames, goal = inputs()
    plain = RamPolicy(base, "ram")
    # Without privileged state the critic's parameters keep their earlier names and shapes.
    assert [n for n, _ in plain.value_head.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    assert "critic_state" not in plain.rollout_input_shapes()
    policy = RamPolicy(base, "ram", critic_state_dim=4)
    assert policy.rollout_input_shapes()["critic_state"] == (4,)
    near, far = torch.zeros(BATCH, 4), torch.ones(BATCH, 4)
    with torch.no_grad():
        out_near, value_near = policy.policy_and_value(frames, goal, near)
        out_far, value_far = policy.policy_and_value(frames, goal, far)
        stored = policy.rollout_inputs(frames, goal, near)
        assert set(stored) == {"memory", "critic_state"}
        _, value_stored = policy.policy_and_value_from(stored)
        out_plain = plain(frames, goal)
    assert max(max_abs_diffs(out_near, out_far).values()) == 0.0  # the actor never sees it
    assert max(max_abs_diffs(out_near, out_plain).values()) == 0.0
    assert (value_near - value_far).abs().min() > 0
    torch.testing.assert_close(value_stored, value_near)
    # It trains like the rest of the critic, and a missing or wrong state is refused.
    _, value = policy.policy_and_value(frames, goal, far)
    value.sum().backward()
    assert policy.value_head[1].weight.grad[:, -4:].abs().max() > 0
    with pytest.raises(S2EError, match="privileged state of 4"):
        policy.policy_and_value(frames, goal)
    with pytest.raises(S2EError, match="privileged state of 4"):
        policy.policy_and_value(frames, goal, torch.zeros(BATCH, 3))
    with pytest.raises(S2EError, match="critic_state_dim"):
        RamPolicy(base, "ram", critic_state_dim=-1)


def test_one_step_moves_only_the_residual_path() -> None:
    base = pretrained_net()
    policy = RamPolicy(base, "ram").train()
    before = {k: v.clone() for k, v in policy.base.state_dict().items()}
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=1e-2)
    frames, goal = inputs()
    for _ in range(2):
        optimizer.zero_grad()
        policy(frames, goal).scores[:, 0].sum().neg().backward()
        optimizer.step()
    for name, value in policy.base.state_dict().items():
        assert torch.equal(value, before[name]), name
    with torch.no_grad():
        assert (policy(frames, goal).scores[:, 0] > base(frames, goal).scores[:, 0]).all()
        assert policy.ram.blocks[0].zero_in.weight.abs().max() > 0  # the copies train too


def test_variants_select_their_parameters() -> None:
    base = pretrained_net()
    names = {v: {n for n, p in RamPolicy(base, v).named_parameters() if p.requires_grad}
             for v in VARIANTS}
    rl_heads = {n for n in names["full"] if n.startswith("value_head.")} | {"log_std"}
    assert names["sft"] == set()
    assert names["full"] == {f"base.{n}" for n, _ in base.named_parameters()} | rl_heads
    decoder = {f"base.{n}" for n, _ in base.named_parameters()
               if n.startswith(("decoder.", *(f"{h}." for h in DECODER_HEADS)))}
    assert names["decoder"] == decoder | rl_heads
    assert not any(n.startswith("base.encoder") for n in names["decoder"])
    assert RamPolicy(base, "ram").ram is not None and RamPolicy(base, "full").ram is None
    # The caller's network is copied, never frozen or changed.
    assert all(p.requires_grad for p in base.parameters())
    frozen_log_std = RamPolicy(base, "ram", learn_log_std=False)
    assert "log_std" not in {n for n, p in frozen_log_std.named_parameters() if p.requires_grad}


def test_bad_settings_are_refused() -> None:
    with pytest.raises(S2EError, match=r"variant 'lora'.*expected one of"):
        RamPolicy(pretrained_net(), "lora")
    with pytest.raises(S2EError, match=r"value_hidden must be >= 1"):
        RamPolicy(pretrained_net(), "ram", value_hidden=0)
    with pytest.raises(S2EError, match=r"frames: expected shape"):
        RamPolicy(pretrained_net())(torch.zeros(1, 2, 3, 16, 16), torch.zeros(1, 3))


def test_ram_policy_exports_with_the_project_exporter(tmp_path) -> None:
    policy = RamPolicy(pretrained_net(), "ram")
    with torch.no_grad():  # a trained RAM: the residual must be in the exported graph
        for block in policy.ram.blocks:
            block.zero_out.weight.normal_(0.0, 0.2)
            block.zero_in.weight.normal_(0.0, 0.2)
        policy.log_std.fill_(0.3)
    policy.eval()
    assert policy.config is policy.base.config and policy.anchors is policy.base.anchors
    contract = export_network(policy, tmp_path / "ram.onnx")
    assert contract.num_anchors == 6 and contract.waypoints == 4
    session = open_session(tmp_path / "ram.onnx")
    frames, goal = inputs()
    errors = max_abs_errors(policy, session, frames.numpy(), goal.numpy())
    print(f"RAM policy, ONNX Runtime vs torch: max abs error per output {errors}")
    assert max(errors.values()) < PARITY_TOLERANCE, errors
    # The export is the RAM-augmented policy, not the pretrained network.
    with torch.no_grad():
        base_scores = policy.base(frames, goal).scores.numpy()
    exported_scores = session.run(["scores"], {"frames": frames.numpy(),
                                               "goal": goal.numpy()})[0]
    assert np.abs(exported_scores - base_scores).max() > 100 * PARITY_TOLERANCE
