"""The controller of the macro space: E's whole-network sampler with the KL skip penalty (torch)."""

from __future__ import annotations

import torch
from torch import Tensor

from enas_core.controller import Controller, _Rollout
from enas_core.zoo.macro.space import MacroSpace, layer_offset


class MacroController(Controller):
    """E's macro policy: the common LSTM and attention, no parameters of its own."""

    space: MacroSpace

    def _rollout(self, ro: _Rollout) -> None:
        """E's macro sampler: per layer an op step, then a skip step whose h is the layer's
        anchor; skip logits 2-way [-q, q]; next input = sum_j s_j h_j / (1 + sum_j s_j).
        Sets the rollout's skip penalty: the KL averaged over layers (n,)."""
        n, cfg, space = ro.n, self.config, self.space
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
        if kls:
            ro.skip_penalty = torch.stack(kls, dim=1).mean(dim=1)
