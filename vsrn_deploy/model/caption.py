"""The caption generator behind the generation loss L_G: an S2VT-style attention seq2seq model
that reads the reasoned region features V* and is trained with teacher forcing.

Its weights are not part of the authors' released checkpoints; it only shapes training.
"""

from __future__ import annotations

import torch
from torch import nn

from vsrn_deploy.model.config import VSRNConfig


class Attention(nn.Module):
    """Additive attention over encoder steps: softmax(w^T tanh(W [h; e_i])) weighted sum of e_i."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim * 2, dim)
        self.linear2 = nn.Linear(dim, 1, bias=False)

    def forward(self, hidden: torch.Tensor, encoder_outputs: torch.Tensor) -> torch.Tensor:
        steps = encoder_outputs.shape[1]
        query = hidden.unsqueeze(1).expand(-1, steps, -1)  # (B, k, H)
        scores = self.linear2(torch.tanh(self.linear1(torch.cat([encoder_outputs, query], dim=2))))
        weights = torch.softmax(scores.squeeze(2), dim=1)  # (B, k)
        return torch.bmm(weights.unsqueeze(1), encoder_outputs).squeeze(1)  # (B, H)


class CaptionGenerator(nn.Module):
    """V* (B, k, D) + caption ids (B, T) -> log-probabilities (B, T-1, vocab) of tokens 1..T-1."""

    def __init__(self, config: VSRNConfig) -> None:
        super().__init__()
        h = config.caption_hidden
        self.config = config
        self.vid2hid = nn.Linear(config.embed_size, h)
        self.input_dropout = nn.Dropout(config.caption_dropout)
        self.encoder_rnn = nn.GRU(h, h, batch_first=True)
        self.embedding = nn.Embedding(config.vocab_size, config.word_dim)
        self.attention = Attention(h)
        self.decoder_rnn = nn.GRU(config.word_dim + h, h, batch_first=True)
        self.out = nn.Linear(h, config.vocab_size)

    def forward(self, regions: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        enc_in = self.input_dropout(self.vid2hid(regions))  # (B, k, H)
        encoder_outputs, hidden = self.encoder_rnn(enc_in)  # (B, k, H), (1, B, H)
        words = self.embedding(token_ids[:, :-1])  # (B, T-1, W): teacher forcing
        logprobs = []
        for t in range(words.shape[1]):  # a loop over time steps, not over samples
            context = self.attention(hidden[-1], encoder_outputs)  # (B, H)
            step_in = torch.cat([words[:, t], context], dim=1).unsqueeze(1)
            output, hidden = self.decoder_rnn(step_in, hidden)
            logprobs.append(torch.log_softmax(self.out(output.squeeze(1)), dim=1))
        return torch.stack(logprobs, dim=1)
