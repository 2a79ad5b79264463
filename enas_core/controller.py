"""The ENAS controller: one LSTM policy, in E's layout; each space adds its rollout.

Parameters (E's names): a 1-layer LSTM without bias (`lstm`), `g_emb` (1, H), `w_emb`
(num_ops, H), `w_soft` (H -> num_ops), then a space's own parameters (`b_soft` (num_ops) for
micro), attention `attn_w1`, `attn_w2` (H -> H) and `attn_v` (H -> 1). Counts: micro 41,733 and
macro 41,856 at H = 64; rnn 101,000 at H = 100.

`Controller(space, config, generator)` builds the space's subclass (its plugin's `controller`,
in `enas_core.zoo.<name>.controller`), which implements `_rollout` (the order of decisions and
what feeds the LSTM between them) and may add parameters in `_space_parameters`.

`sample(n)` draws n architectures as one batch (batch dimension n, no grad, no host sync per
decision); `evaluate(tokens)` teacher-forces stored decisions with grad. Both run the same
rollout code, so evaluate reproduces sample's log-probs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.spaces import Space, get_plugin, load


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
    """The LSTM policy over one space's decisions (the base of each space's controller).

    Args:
        space: a configured space with a controller in its plugin.
        config: ControllerConfig.
        generator: seeds the U(-init_range, init_range) initialisation (None: global RNG).

    `Controller(space, ...)` returns an instance of the space's subclass. A subclass sets
    `choice_param` (the space parameter that counts the op/activation choices), implements
    `_rollout` and may override `_space_parameters` / `reset_parameters`.
    """

    choices: Tensor  # (num_tokens,) buffer: the number of choices of each decision
    choice_param: ClassVar[str] = "num_ops"

    def __new__(cls, *args: Any, **kwargs: Any) -> Controller:
        if cls is Controller:  # pick the space's subclass; unpickling names the subclass itself
            space = args[0] if args else kwargs["space"]
            cls = load(get_plugin(space.name).controller)
        return super().__new__(cls)

    def __init__(
        self, space: Space, config: ControllerConfig | None = None, generator: torch.Generator | None = None
    ):
        super().__init__()
        self.space, self.config = space, config or ControllerConfig()
        h = self.config.hidden
        num_ops = space.params[self.choice_param]
        self.lstm = nn.LSTMCell(h, h, bias=False)
        self.g_emb = nn.Parameter(torch.empty(1, h))
        self.w_emb = nn.Embedding(num_ops, h)
        self.w_soft = nn.Linear(h, num_ops, bias=False)
        self._space_parameters(num_ops)  # here, so that the initialisation order stays E's
        self.attn_w1 = nn.Linear(h, h, bias=False)
        self.attn_w2 = nn.Linear(h, h, bias=False)
        self.attn_v = nn.Linear(h, 1, bias=False)
        self.register_buffer("choices", torch.tensor([d.choices for d in space.decisions]), persistent=False)
        self.reset_parameters(generator)

    def _space_parameters(self, num_ops: int) -> None:
        """Add the space's own parameters (registered between `w_soft` and the attention)."""

    def _rollout(self, ro: _Rollout) -> None:
        """Make every decision of the space, in token order, through `ro.decide`."""
        raise NotImplementedError

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        r = self.config.init_range
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-r, r, generator=generator)

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

    # --- helpers of the rollouts --------------------------------------------------------------
    def _run(self, ro: _Rollout) -> _Rollout:
        self._rollout(ro)
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
