"""The controller's rollout for the NASNet space: ENAS's micro sampler plus a combine step.

Per cell: 2 anchor steps (the cell inputs' keys; their anchors are zeros); per block: 2 input steps
(attention pointer over the states made so far, next input = that state's anchor), 2 op steps
(softmax over the 13 ops, logits (tanh_constant / op_tanh_reduce) * tanh(w_soft h + b_soft)),
1 combine step (its own 2-way head `w_combine`, logits tanh_constant * tanh(w_combine h); next
input = `combine_emb[choice]`), then 1 anchor step (the block's anchor and key). 32 LSTM steps per
cell for B = 5; the reduction cell continues the normal cell's LSTM state. The paper's sampling
order is the token order: idx1, idx2, op1, op2, combine.

Parameters: the base's (lstm, g_emb, w_emb and w_soft over 13 ops, attention) plus `b_soft` (13,
trainable, starts at zero: ENAS's [10, 10, 0, 0, 0] op prior belongs to the micro op list, so
`op_bias` is not used here), `w_combine` (H -> 2) and `combine_emb` (2, H).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from enas_core.controller import Controller, _Rollout
from enas_core.zoo.nasnet.space import COMBINE_METHODS, TOKENS_PER_BLOCK, NasnetSpace


class NasnetController(Controller):
    """The LSTM policy over a NasnetSpace's decisions: the common LSTM and attention plus `b_soft`,
    `w_combine` and `combine_emb`."""

    space: NasnetSpace

    def _space_parameters(self, num_ops: int) -> None:
        if not isinstance(self.space, NasnetSpace):
            raise TypeError(f"NasnetController needs a nasnet space, got {self.space.name!r}")
        h = self.config.hidden
        self.b_soft = nn.Parameter(torch.empty(num_ops))
        self.w_combine = nn.Linear(h, len(COMBINE_METHODS), bias=False)
        self.combine_emb = nn.Embedding(len(COMBINE_METHODS), h)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        super().reset_parameters(generator)
        with torch.no_grad():
            self.b_soft.zero_()

    def _rollout(self, ro: _Rollout) -> None:
        space = self.space
        state = self._zero_state(ro.n)
        for cell in range(2):
            g = self.g_emb.expand(ro.n, -1)  # (n, H)
            anchors, keys = [torch.zeros_like(g), torch.zeros_like(g)], list[Tensor]()
            for _ in range(2):
                state = self.lstm(g, state)
                keys.append(self.attn_w1(state[0]))  # (n, H)
            for k in range(space.num_blocks):
                start = TOKENS_PER_BLOCK * (space.num_blocks * cell + k)
                state = self._block(ro, start, state, anchors, keys)
                anchors.append(state[0])
                keys.append(self.attn_w1(state[0]))

    def _block(
        self,
        ro: _Rollout,
        start: int,
        state: tuple[Tensor, Tensor],
        anchors: list[Tensor],
        keys: list[Tensor],
    ) -> tuple[Tensor, Tensor]:
        """One block's five decisions from token `start`, then its anchor step; returns the state."""
        cfg = self.config
        op_tanh = None if cfg.tanh_constant is None else cfg.tanh_constant / cfg.op_tanh_reduce
        rows = torch.arange(ro.n, device=self.device)
        inp = self.g_emb.expand(ro.n, -1)  # (n, H)
        anchor_stack = torch.stack(anchors, dim=1)  # (n, k + 2, H)
        for slot in range(2):
            state = self.lstm(inp, state)
            logits = self._shape(self._attend(keys, state[0]), cfg.tanh_constant)  # (n, k + 2)
            inp = anchor_stack[rows, ro.decide(logits, start + slot)]  # (n, H)
        for slot in range(2):
            state = self.lstm(inp, state)
            logits = self._shape(self.w_soft(state[0]) + self.b_soft, op_tanh)  # (n, 13)
            inp = self.w_emb(ro.decide(logits, start + 2 + slot))  # (n, H)
        state = self.lstm(inp, state)
        logits = self._shape(self.w_combine(state[0]), cfg.tanh_constant)  # (n, 2)
        inp = self.combine_emb(ro.decide(logits, start + 4))  # (n, H)
        return self.lstm(inp, state)  # the anchor step
