"""The controller of the micro space: E's cell sampler (torch)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from enas_core.controller import Controller, _Rollout
from enas_core.zoo.micro.space import MicroSpace


class MicroController(Controller):
    """E's micro policy: the common LSTM and attention plus `b_soft`, a trainable op bias."""

    space: MicroSpace
    op_bias_fixed: Tensor  # (num_ops,) buffer

    def _space_parameters(self, num_ops: int) -> None:
        self.b_soft = nn.Parameter(torch.empty(num_ops))
        fixed = [0.25, 0.25] + [-0.25] * (num_ops - 2)
        self.register_buffer("op_bias_fixed", torch.tensor(fixed[:num_ops]), persistent=False)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        super().reset_parameters(generator)
        with torch.no_grad():
            self.b_soft.zero_()
            if self.config.op_bias:
                self.b_soft[:2] = 10.0

    def _rollout(self, ro: _Rollout) -> None:
        """E's micro sampler: per cell 2 anchor steps, then per node 2 index steps (attention
        pointer, next input = anchor[index]), 2 op steps, 1 anchor step; 27 steps per cell for
        5 nodes; the reduction cell continues the normal cell's LSTM state."""
        n, cfg, space = ro.n, self.config, self.space
        state = self._zero_state(n)
        g = self.g_emb.expand(n, -1)  # (n, H)
        rows = torch.arange(n, device=self.device)
        op_tanh = None if cfg.tanh_constant is None else cfg.tanh_constant / cfg.op_tanh_reduce
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
