"""The controller of the recurrent-cell space: E's PTB sampler (torch)."""

from __future__ import annotations

import torch
from torch import Tensor

from enas_core.controller import Controller, _Rollout
from enas_core.zoo.rnn.space import RnnSpace


class RnnController(Controller):
    """E's PTB policy: the common LSTM and attention over activations (`num_funcs` choices)."""

    space: RnnSpace
    choice_param = "num_funcs"

    def _rollout(self, ro: _Rollout) -> None:
        """E's PTB sampler: per node a step whose h is the node's anchor; node l > 0 points at
        j < l with logits - (l-j)^2/6, next input = h_j / (0.1 + l - j); then an activation step."""
        n, cfg, space = ro.n, self.config, self.space
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
