"""The ENAS controller: one LSTM policy for the micro, macro and rnn spaces, in E's layout.

Parameters (E's names): a 1-layer LSTM without bias (`lstm`), `g_emb` (1, H), `w_emb`
(num_ops, H), `w_soft` (H -> num_ops), `b_soft` (num_ops, micro only), attention `attn_w1`,
`attn_w2` (H -> H) and `attn_v` (H -> 1). Counts: micro 41,733 and macro 41,856 at H = 64;
rnn 101,000 at H = 100.

`sample(n)` draws n architectures as one batch (batch dimension n, no grad, no host sync per
decision); `evaluate(tokens)` teacher-forces stored decisions with grad. Both run the same
rollout code, so evaluate reproduces sample's log-probs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.spaces import MacroSpace, MicroSpace, RnnSpace, Space
from enas_core.spaces.macro import layer_offset


@dataclass(frozen=True)
class ControllerConfig:
    """Policy shape and logit shaping.

    tanh_constant: logits -> c * tanh(logits / temperature) (None: no tanh).
    op_tanh_reduce: micro op logits use tanh_constant / op_tanh_reduce.
    op_bias: micro op logits get a trainable bias initialised [10, 10, 0, 0, 0] inside the tanh,
        plus a fixed [.25, .25, -.25, -.25, -.25] for the normal cell (False: bias starts at zero,
        no fixed part; the parameter exists either way).
    skip_target, skip_weight: macro KL skip penalty (weight used by the trainer's loss).
    """

    hidden: int = 64
    tanh_constant: float | None = 1.1
    op_tanh_reduce: float = 2.5
    temperature: float | None = None
    op_bias: bool = True
    skip_target: float = 0.4
    skip_weight: float = 0.8
    init_range: float = 0.1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ControllerConfig:
        """Build from a spec section; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class SampleBatch:
    """n sampled architectures: tokens (n, T) int64; log_prob, entropy, skip_penalty (n,)."""

    tokens: Tensor
    log_prob: Tensor
    entropy: Tensor
    skip_penalty: Tensor


@dataclass
class EvalResult:
    """Teacher-forced statistics with grad: log_prob (sum over decisions), entropy (sum of the
    full distributions' entropies), skip_penalty (macro KL, zeros otherwise); each (n,)."""

    log_prob: Tensor
    entropy: Tensor
    skip_penalty: Tensor


class _Rollout:
    """Accumulates decisions of one batched pass: samples them, or reads forced ones."""

    def __init__(
        self,
        n: int,
        num_tokens: int,
        device: torch.device,
        forced: Tensor | None,
        generator: torch.Generator | None,
        keep_probs: bool,
    ) -> None:
        self.n, self.forced, self.generator = n, forced, generator
        self.tokens = (
            forced if forced is not None else torch.zeros(n, num_tokens, dtype=torch.long, device=device)
        )
        self.log_prob = torch.zeros(n, device=device)
        self.entropy = torch.zeros(n, device=device)
        self.skip_penalty = torch.zeros(n, device=device)
        self.probs: dict[int, Tensor] | None = {} if keep_probs else None

    def decide(self, logits: Tensor, start: int, count: int = 1) -> Tensor:
        """logits (n, K) for one decision at `start`, or (n, count, K) for `count` consecutive
        ones; returns the choices, (n,) or (n, count)."""
        logp = F.log_softmax(logits, dim=-1)  # (n, [count,] K)
        probs = logp.exp()
        if self.forced is None:
            flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=self.generator)
            choice = flat.view(logits.shape[:-1])  # (n, [count])
            self.tokens[:, start : start + count] = choice.view(self.n, count)
        else:
            choice = self.forced[:, start : start + count].reshape(logits.shape[:-1])
        lp = logp.gather(-1, choice.unsqueeze(-1)).squeeze(-1)  # (n, [count])
        ent = -(probs * logp).sum(dim=-1)  # (n, [count])
        if count > 1 or lp.dim() > 1:
            lp, ent = lp.sum(dim=1), ent.sum(dim=1)
        self.log_prob = self.log_prob + lp
        self.entropy = self.entropy + ent
        if self.probs is not None:
            per_token = probs.view(self.n, count, -1)
            for i in range(count):
                self.probs[start + i] = per_token[:, i].detach()
        return choice


class Controller(nn.Module):
    """The LSTM policy over one space's decisions.

    Args:
        space: a MicroSpace, MacroSpace or RnnSpace.
        config: ControllerConfig.
        generator: seeds the U(-init_range, init_range) initialisation (None: global RNG).
    """

    op_bias_fixed: Tensor  # (num_ops,) buffer
    choices: Tensor  # (num_tokens,) buffer: the number of choices of each decision

    def __init__(
        self, space: Space, config: ControllerConfig | None = None, generator: torch.Generator | None = None
    ):
        super().__init__()
        if not isinstance(space, MicroSpace | MacroSpace | RnnSpace):
            raise TypeError(f"no controller program for space {space.name!r}")
        self.space, self.config = space, config or ControllerConfig()
        h = self.config.hidden
        num_ops = _num_choices(space)
        self.lstm = nn.LSTMCell(h, h, bias=False)
        self.g_emb = nn.Parameter(torch.empty(1, h))
        self.w_emb = nn.Embedding(num_ops, h)
        self.w_soft = nn.Linear(h, num_ops, bias=False)
        self.b_soft = nn.Parameter(torch.empty(num_ops)) if isinstance(space, MicroSpace) else None
        self.attn_w1 = nn.Linear(h, h, bias=False)
        self.attn_w2 = nn.Linear(h, h, bias=False)
        self.attn_v = nn.Linear(h, 1, bias=False)
        fixed = [0.25, 0.25] + [-0.25] * (num_ops - 2)
        self.register_buffer("op_bias_fixed", torch.tensor(fixed[:num_ops]), persistent=False)
        self.register_buffer("choices", torch.tensor([d.choices for d in space.decisions]), persistent=False)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        r = self.config.init_range
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-r, r, generator=generator)
            if self.b_soft is not None:
                self.b_soft.zero_()
                if self.config.op_bias:
                    self.b_soft[:2] = 10.0

    @property
    def device(self) -> torch.device:
        return self.g_emb.device

    # --- public API ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> SampleBatch:
        """Sample n architectures in one batched pass (generator on the controller's device)."""
        ro = self._run(_Rollout(n, self.space.num_tokens, self.device, None, generator, False))
        return SampleBatch(ro.tokens, ro.log_prob, ro.entropy, ro.skip_penalty)

    def evaluate(self, tokens: Tensor) -> EvalResult:
        """Teacher-force tokens (n, T) -> log_prob, entropy, skip_penalty (n,) with grad.

        Raises:
            ValueError: wrong shape or a token out of its decision's range.
        """
        tokens = self._check_tokens(tokens)
        ro = self._run(_Rollout(tokens.shape[0], self.space.num_tokens, self.device, tokens, None, False))
        return EvalResult(ro.log_prob, ro.entropy, ro.skip_penalty)

    @torch.no_grad()
    def decision_probs(self, tokens: Tensor) -> dict[int, Tensor]:
        """The policy's full distribution (n, K) at every token position, teacher-forcing tokens."""
        tokens = self._check_tokens(tokens)
        ro = self._run(_Rollout(tokens.shape[0], self.space.num_tokens, self.device, tokens, None, True))
        assert ro.probs is not None
        return ro.probs

    def _check_tokens(self, tokens: Tensor) -> Tensor:
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=self.device)
        if tokens.dim() != 2 or tokens.shape[1] != self.space.num_tokens:
            raise ValueError(f"tokens must be (n, {self.space.num_tokens}), got {tuple(tokens.shape)}")
        if bool(((tokens < 0) | (tokens >= self.choices)).any()):
            raise ValueError("a token is out of its decision's range")
        return tokens

    # --- rollouts -----------------------------------------------------------------------------
    def _run(self, ro: _Rollout) -> _Rollout:
        if isinstance(self.space, MicroSpace):
            self._micro(ro, self.space)
        elif isinstance(self.space, MacroSpace):
            ro.skip_penalty = self._macro(ro, self.space)
        else:
            assert isinstance(self.space, RnnSpace)
            self._rnn(ro, self.space)
        return ro

    def _shape(self, logits: Tensor, tanh_constant: float | None) -> Tensor:
        if self.config.temperature is not None:
            logits = logits / self.config.temperature
        if tanh_constant is not None:
            logits = tanh_constant * torch.tanh(logits)
        return logits

    def _attend(self, keys: list[Tensor], h: Tensor) -> Tensor:
        """Pointer logits v^T tanh(W1 h_j + W2 h) over the stored keys -> (n, len(keys))."""
        query = torch.tanh(torch.stack(keys, dim=1) + self.attn_w2(h)[:, None])  # (n, J, H)
        return self.attn_v(query).squeeze(-1)  # (n, J)

    def _zero_state(self, n: int) -> tuple[Tensor, Tensor]:
        z = torch.zeros(n, self.config.hidden, device=self.device)
        return z, z

    def _micro(self, ro: _Rollout, space: MicroSpace) -> None:
        """E's micro sampler: per cell 2 anchor steps, then per node 2 index steps (attention
        pointer, next input = anchor[index]), 2 op steps, 1 anchor step; 27 steps per cell for
        5 nodes; the reduction cell continues the normal cell's LSTM state."""
        n, cfg = ro.n, self.config
        state = self._zero_state(n)
        g = self.g_emb.expand(n, -1)  # (n, H)
        rows = torch.arange(n, device=self.device)
        op_tanh = None if cfg.tanh_constant is None else cfg.tanh_constant / cfg.op_tanh_reduce
        assert self.b_soft is not None
        for cell in range(2):
            inp, anchors, keys = g, [torch.zeros_like(g), torch.zeros_like(g)], list[Tensor]()
            for _ in range(2):
                state = self.lstm(inp, state)
                keys.append(self.attn_w1(state[0]))  # (n, H)
            for k in range(space.num_nodes):
                base = 4 * space.num_nodes * cell + 4 * k
                anchor_stack = torch.stack(anchors, dim=1)  # (n, k+2, H)
                for slot in range(2):
                    state = self.lstm(inp, state)
                    logits = self._shape(self._attend(keys, state[0]), cfg.tanh_constant)  # (n, k+2)
                    idx = ro.decide(logits, base + 2 * slot)
                    inp = anchor_stack[rows, idx]  # (n, H)
                for slot in range(2):
                    state = self.lstm(inp, state)
                    logits = self._shape(self.w_soft(state[0]) + self.b_soft, op_tanh)  # (n, num_ops)
                    if cell == 0 and cfg.op_bias:
                        logits = logits + self.op_bias_fixed
                    inp = self.w_emb(ro.decide(logits, base + 2 * slot + 1))  # (n, H)
                state = self.lstm(inp, state)
                anchors.append(state[0])
                keys.append(self.attn_w1(state[0]))
                inp = g

    def _macro(self, ro: _Rollout, space: MacroSpace) -> Tensor:
        """E's macro sampler: per layer an op step, then a skip step whose h is the layer's
        anchor; skip logits 2-way [-q, q]; next input = sum_j s_j h_j / (1 + sum_j s_j).
        Returns the KL skip penalty averaged over layers (n,)."""
        n, cfg = ro.n, self.config
        state = self._zero_state(n)
        g = self.g_emb.expand(n, -1)  # (n, H)
        targets = torch.tensor([1.0 - cfg.skip_target, cfg.skip_target], device=self.device)
        inp = g
        anchors: list[Tensor] = []
        keys: list[Tensor] = []
        kls: list[Tensor] = []
        for i in range(space.num_layers):
            offset = layer_offset(i)
            state = self.lstm(inp, state)
            logits = self._shape(self.w_soft(state[0]), cfg.tanh_constant)  # (n, num_ops)
            inp = self.w_emb(ro.decide(logits, offset))  # (n, H)
            state = self.lstm(inp, state)
            if i > 0:
                q = self._attend(keys, state[0])  # (n, i)
                logits = self._shape(torch.stack([-q, q], dim=-1), cfg.tanh_constant)  # (n, i, 2)
                skip = ro.decide(logits, offset + 1, count=i).float()  # (n, i)
                p = torch.sigmoid(logits)  # (n, i, 2)
                kls.append((p * torch.log(p / targets)).sum(dim=(1, 2)))  # (n,)
                inp = torch.bmm(skip[:, None], torch.stack(anchors, dim=1)).squeeze(1)  # (n, H)
                inp = inp / (1.0 + skip.sum(dim=1, keepdim=True))
            else:
                inp = g
            anchors.append(state[0])
            keys.append(self.attn_w1(state[0]))
        if not kls:
            return torch.zeros(n, device=self.device)
        return torch.stack(kls, dim=1).mean(dim=1)

    def _rnn(self, ro: _Rollout, space: RnnSpace) -> None:
        """E's PTB sampler: per node a step whose h is the node's anchor; node l > 0 points at
        j < l with logits - (l-j)^2/6, next input = h_j / (0.1 + l - j); then an activation step."""
        n, cfg = ro.n, self.config
        state = self._zero_state(n)
        g = self.g_emb.expand(n, -1)  # (n, H)
        rows = torch.arange(n, device=self.device)
        inp = g
        hs: list[Tensor] = []
        keys: list[Tensor] = []
        for node in range(space.num_nodes):
            state = self.lstm(inp, state)
            hs.append(state[0])
            keys.append(self.attn_w1(state[0]))
            if node > 0:
                logits = self._shape(self._attend(keys[:-1], state[0]), cfg.tanh_constant)  # (n, node)
                dist = node - torch.arange(node, device=self.device, dtype=torch.float32)  # (node,)
                j = ro.decide(logits - dist**2 / 6.0, 2 * node - 1)  # (n,)
                inp = torch.stack(hs[:-1], dim=1)[rows, j] / (0.1 + (node - j).float())[:, None]  # (n, H)
            else:
                inp = g
            state = self.lstm(inp, state)
            logits = self._shape(self.w_soft(state[0]), cfg.tanh_constant)  # (n, num_funcs)
            inp = self.w_emb(ro.decide(logits, 0 if node == 0 else 2 * node))  # (n, H)


def _num_choices(space: Space) -> int:
    if isinstance(space, MicroSpace | MacroSpace):
        return space.num_ops
    assert isinstance(space, RnnSpace)
    return space.num_funcs
