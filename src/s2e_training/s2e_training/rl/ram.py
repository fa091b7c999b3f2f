"""The Residual-Attention Module (RAM) and the RL policy around a pretrained S2E network.

RAM (ControlNet style, one block per decoder layer ``i``)::

    residual_i(x, memory) = zero_out_i( attn_i( norm_i(x), kv, kv ) ),
    kv = memory + zero_in_i(memory)

``norm_i``/``attn_i`` are trainable copies of decoder layer ``i``'s ``cross_norm`` and
``cross_attn`` (initialised from the pretrained weights), ``zero_in_i`` and ``zero_out_i``
are ``Linear(D, D)`` layers initialised to zero (weights and biases). The residual is added
to layer ``i``'s output through the network's ``decoder_residual`` hook
(:meth:`S2EPolicyNet.forward`), so at initialisation it is exactly zero and the policy's
outputs equal the pretrained network's bit for bit. ``zero_in`` lets RAM re-project the keys
and values (the fused observation) it attends to; ``zero_out`` gates what it adds. Shapes:
``x`` (B, K, D) the layer's input queries, ``memory`` (B, T+1, D).

:class:`RamPolicy` holds the pretrained network, the RAM (variant ``ram`` only), a value head
and a learnable log-std shift. Variants (the paper's ablation, chosen by config):

- ``ram``: the base network is frozen; RAM, value head and log-std train.
- ``decoder``: no RAM; the base network's anchor decoder and output heads (score, offset,
  Gaussian, speed) train with the value head and log-std; encoder and fusion are frozen.
- ``full``: every parameter of the base network trains (with value head and log-std).
- ``sft``: nothing trains: the supervised (pretrained) policy as it is, the baseline.

Value head: an MLP on the mean over the memory tokens (the fused frames + goal, (B, D)),
**detached** from the policy network. The critic therefore never changes the features the
actor uses, in every variant alike (with ``full``/``decoder`` a value loss on shared
features would otherwise rewrite pretrained features with a noisy regression target), and
the ablation compares the actors' parametrisations only.

Log-std: one learnable scalar (``policy.learn_log_std``) added to every predicted
``log sigma`` (normalised units), initialised to 0, so PPO can widen or narrow exploration
globally; it is part of :attr:`PolicyOutput.gaussian` and thus of the export.

RL runs the network without dropout (dropout layers are switched off on construction): the
PPO ratio compares the same deterministic forward pass before and after an update.

Rollout inputs: for every variant but ``full`` the observation encoder is frozen, so a
rollout stores each observation's fused memory (:meth:`RamPolicy.rollout_inputs`) instead of
its frames, and PPO's epochs re-run only the decoder, RAM and heads on it
(:meth:`RamPolicy.policy_and_value_from`): the image encoder runs once per environment step.

Export: :class:`RamPolicy` has ``forward(frames, goal) -> PolicyOutput``, ``config`` and
``anchors`` exactly like :class:`S2EPolicyNet`, so the ONNX exporter takes it as it is.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from s2e_policy.errors import S2EError
from s2e_training.model.config import ModelConfig
from s2e_training.model.network import GOAL_DIM, PolicyOutput, S2EPolicyNet
from s2e_training.rl.distribution import NO_EXPLORATION, Exploration

VARIANTS = ("ram", "decoder", "full", "sft")
"""Which parameters RL post-training updates (see the module docstring)."""

DECODER_HEADS = ("score_head", "offset_head", "gaussian_head", "speed_head")
"""Output heads of :class:`S2EPolicyNet` that the ``decoder`` variant trains with the decoder."""


class RamBlock(nn.Module):
    """The RAM block of one decoder layer (see the module docstring).

    Args:
        cross_norm: the pretrained layer's pre-attention LayerNorm (copied).
        cross_attn: the pretrained layer's cross-attention (copied).
    """

    def __init__(self, cross_norm: nn.LayerNorm, cross_attn: nn.MultiheadAttention) -> None:
        super().__init__()
        d_model = cross_attn.embed_dim
        self.norm = copy.deepcopy(cross_norm)
        self.attn = copy.deepcopy(cross_attn)
        self.zero_in = nn.Linear(d_model, d_model)
        self.zero_out = nn.Linear(d_model, d_model)
        for layer in (self.zero_in, self.zero_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        """(B,K,D) layer input queries, (B,M,D) memory -> (B,K,D) residual."""
        kv = memory + self.zero_in(memory)
        attended = self.attn(self.norm(queries), kv, kv, need_weights=False)[0]
        return self.zero_out(attended)


class ResidualAttentionModule(nn.Module):
    """One :class:`RamBlock` per decoder layer of ``base``; a ``decoder_residual`` hook.

    Args:
        base: the pretrained network whose decoder layers are copied (not modified).
    """

    def __init__(self, base: S2EPolicyNet) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            RamBlock(layer.cross_norm, layer.cross_attn) for layer in base.decoder.layers
        )

    def forward(self, layer_index: int, queries: Tensor, memory: Tensor) -> Tensor:
        """The residual of decoder layer ``layer_index``: (B,K,D), (B,M,D) -> (B,K,D)."""
        return self.blocks[layer_index](queries, memory)


def _disable_dropout(module: nn.Module) -> None:
    """Set every dropout probability in ``module`` to 0 (in place)."""
    for sub in module.modules():
        if isinstance(sub, nn.Dropout):
            sub.p = 0.0
        elif isinstance(sub, nn.MultiheadAttention):
            sub.dropout = 0.0


class ValueHead(nn.Sequential):
    """The critic: a tanh MLP on the normalised pooled memory (+ privileged state).

    ``LayerNorm`` of the pooled fused memory, optionally joined by the privileged state,
    then one hidden tanh layer.

    Args:
        d_model: D of the memory.
        hidden: hidden width.
        state_dim: size of the privileged state joined after the norm (0: none; then the
            parameters are those of the plain ``Sequential`` earlier checkpoints hold).
    """

    def __init__(self, d_model: int, hidden: int, state_dim: int = 0) -> None:
        super().__init__(nn.LayerNorm(d_model), nn.Linear(d_model + state_dim, hidden),
                         nn.Tanh(), nn.Linear(hidden, 1))
        self.state_dim = state_dim

    def forward(self, pooled: Tensor, state: Tensor | None = None) -> Tensor:
        """(B, D) pooled memory [+ (B, state_dim) state] -> (B,) values.

        With ``state_dim`` 0 a given state is not used, so callers may always pass it.
        """
        x = self[0](pooled)
        if self.state_dim:
            if state is None or state.shape[-1] != self.state_dim:
                raise S2EError(f"the critic takes a privileged state of {self.state_dim} "
                               f"values, got {None if state is None else tuple(state.shape)}")
            x = torch.cat([x, state.to(x.dtype)], dim=-1)
        return self[3](self[2](self[1](x))).squeeze(-1)


class RamPolicy(nn.Module):
    """Pretrained S2E network + RAM + value head + log-std, for PPO and for export.

    Args:
        base: the pretrained network; it is deep-copied, so the caller's copy is untouched.
        variant: one of :data:`VARIANTS`.
        value_hidden: hidden width of the value MLP.
        learn_log_std: train the global log-std shift (else it stays 0).
        seed: initialises the value head without touching the global RNG (the RAM is a copy
            plus zeros, so the whole policy is a function of ``base`` and ``seed``).
        exploration: how RL's behaviour distribution widens (floor) and sharpens (mode
            temperature) the network's (:class:`s2e_training.rl.distribution.Exploration`);
            kept as :attr:`exploration`, it does not change :meth:`forward` (what is
            exported).
        critic_state_dim: size of the privileged state the critic also takes (0: the
            critic sees only what the actor sees). The environment's ``info["critic_state"]``
            (:data:`s2e_sim_bridge.envs.CRITIC_STATE`) is stored with each observation
            (:meth:`rollout_inputs`); the actor and the export never see it.

    Raises:
        S2EError: unknown variant or ``value_hidden < 1``.
    """

    def __init__(self, base: S2EPolicyNet, variant: str = "ram", value_hidden: int = 128,
                 learn_log_std: bool = True, seed: int = 0,
                 exploration: Exploration = NO_EXPLORATION, critic_state_dim: int = 0) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise S2EError(f"policy variant {variant!r}: expected one of {VARIANTS}")
        if value_hidden < 1:
            raise S2EError(f"policy.value_hidden must be >= 1, got {value_hidden}")
        if critic_state_dim < 0:
            raise S2EError(f"critic_state_dim must be >= 0, got {critic_state_dim}")
        self.variant = variant
        self.exploration = exploration
        self.base = copy.deepcopy(base)
        _disable_dropout(self.base)
        self.ram = ResidualAttentionModule(self.base) if variant == "ram" else None
        d_model = self.base.config.d_model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.value_head = ValueHead(d_model, value_hidden, critic_state_dim)
        self.log_std = nn.Parameter(torch.zeros(()), requires_grad=learn_log_std)
        for param in self.base.parameters():
            param.requires_grad_(False)
        if variant == "full":
            self.base.requires_grad_(True)
        elif variant == "decoder":
            self.base.decoder.requires_grad_(True)
            for name in DECODER_HEADS:
                getattr(self.base, name).requires_grad_(True)
        if variant == "sft":
            self.value_head.requires_grad_(False)
            self.log_std.requires_grad_(False)

    @property
    def config(self) -> ModelConfig:
        """The base network's :class:`ModelConfig` (what the ONNX contract records)."""
        return self.base.config

    @property
    def anchors(self) -> Tensor:
        """(K, W, 2) float32 normalised anchors of the base network."""
        return self.base.anchors

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters PPO updates (empty for ``sft``)."""
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def encoder_frozen(self) -> bool:
        """True when no parameter of :meth:`S2EPolicyNet.encode` trains (all but ``full``).

        The encoder is the image encoder, the frame and goal projections and embeddings and
        the fusion; when it is frozen, the fused memory of an observation is fixed.
        """
        base = self.base
        encode_params = [base.time_embed, base.goal_embed, *base.encoder.parameters(),
                         *base.frame_proj.parameters(), *base.goal_proj.parameters(),
                         *base.fusion.parameters()]
        return not any(p.requires_grad for p in encode_params)

    def rollout_input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-observation shapes of what :meth:`rollout_inputs` returns (without the batch)."""
        cfg = self.config
        state = ({"critic_state": (self.value_head.state_dim,)}
                 if self.value_head.state_dim else {})
        if self.encoder_frozen:
            return {"memory": (cfg.context_frames + 1, cfg.d_model)} | state
        return {"frames": (cfg.context_frames, 3, cfg.image_size, cfg.image_size),
                "goal": (GOAL_DIM,)} | state

    def rollout_inputs(self, frames: Tensor, goal: Tensor,
                       critic_state: Tensor | None = None) -> dict[str, Tensor]:
        """What a rollout stores per observation to re-evaluate the policy in PPO's epochs.

        With a frozen encoder (:attr:`encoder_frozen`) that is the fused memory
        ``{"memory": (B, T+1, D)}``, computed here once: PPO's epochs then run only the
        decoder, RAM and heads, and the stored memory is exactly what the rollout acted on.
        Otherwise (``full``) it is the observation ``{"frames": (B,T,3,S,S), "goal": (B,3)}``.
        With a privileged critic, ``critic_state`` (B, critic_state_dim) is stored too.
        """
        state = {"critic_state": critic_state} if self.value_head.state_dim else {}
        if self.encoder_frozen:
            with torch.no_grad():
                return {"memory": self.base.encode(frames, goal)} | state
        return {"frames": frames, "goal": goal} | state

    def policy_and_value_from(self, inputs: dict[str, Tensor]) -> tuple[PolicyOutput, Tensor]:
        """:meth:`policy_and_value` from :meth:`rollout_inputs` (memory or observation)."""
        memory = inputs.get("memory")
        if memory is None:
            memory = self.base.encode(inputs["frames"], inputs["goal"])
        output = self._policy_from_memory(memory)
        return output, self.value_head(memory.mean(dim=1).detach(), inputs.get("critic_state"))

    def _policy_from_memory(self, memory: Tensor) -> PolicyOutput:
        output = self.base.heads(self.base.decode(memory, self.ram))
        # + 0 at initialisation: float addition of zero leaves the outputs bit-identical.
        shifted = torch.cat(
            [output.gaussian[..., :2] + self.log_std, output.gaussian[..., 2:]], dim=-1
        )
        return output._replace(gaussian=shifted)

    def forward(self, frames: Tensor, goal: Tensor) -> PolicyOutput:
        """The RAM-augmented policy, same signature and output as :class:`S2EPolicyNet`.

        Args:
            frames: (B, T, 3, S, S) float32 RGB in [0, 1], oldest frame first.
            goal: (B, 3) float32 ``[clip(d, 0.1, 200) / 200, cos(theta), sin(theta)]``.

        Returns:
            :class:`PolicyOutput` (robot frame, metres / radians / m/s).
        """
        return self._policy_from_memory(self.base.encode(frames, goal))

    def policy_and_value(self, frames: Tensor, goal: Tensor,
                         critic_state: Tensor | None = None) -> tuple[PolicyOutput, Tensor]:
        """The policy output and the state value (B,) for the inputs of :meth:`forward`.

        ``critic_state`` (B, critic_state_dim) is the critic's privileged state (required
        when ``critic_state_dim`` > 0).
        """
        inputs = {"frames": frames, "goal": goal}
        if critic_state is not None:
            inputs["critic_state"] = critic_state
        return self.policy_and_value_from(inputs)


def count_parameters(params: list[nn.Parameter]) -> int:
    """Number of scalars in ``params``."""
    return int(sum(math.prod(p.shape) for p in params))
