"""modsweep35 u04: a hand-written Post-LN encoder-decoder Transformer (jadore801120's layout) is
counted layer by layer as torch's nn.Transformer is: an encoder layer's two Add & Norm and a
decoder layer's three (self-attention, cross-attention, feed-forward) are one layer each, grouped by
the layer module that owns them, and the encoder and decoder are two stacks (``stacks``), the
depth the deeper one's, where 6 + 6 layers were counted as one stack of 15."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth.analysis.module_check import check_module
from gradhealth.analysis.thresholds import Thresholds


class _Attention(nn.Module):
    """Single-head attention whose output is added back and normalised inside it (Post-LN)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w_q, self.w_k, self.w_v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.fc = nn.Linear(d, d)
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        att = torch.softmax(self.w_q(q) @ self.w_k(kv).transpose(-1, -2) / q.shape[-1] ** 0.5, -1)
        return self.layer_norm(q + self.fc(att @ self.w_v(kv)))


class _FeedForward(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x + self.w_2(torch.relu(self.w_1(x))))


class _EncoderLayer(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.slf_attn, self.pos_ffn = _Attention(d), _FeedForward(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_ffn(self.slf_attn(x, x))


class _DecoderLayer(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.slf_attn, self.enc_attn, self.pos_ffn = _Attention(d), _Attention(d), _FeedForward(d)

    def forward(self, y: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.pos_ffn(self.enc_attn(self.slf_attn(y, y), memory))


class _Seq2Seq(nn.Module):
    def __init__(self, enc: int, dec: int, d: int = 16, vocab: int = 40) -> None:
        super().__init__()
        self.src_emb, self.trg_emb = nn.Embedding(vocab, d), nn.Embedding(vocab, d)
        self.encoder = nn.ModuleList(_EncoderLayer(d) for _ in range(enc))
        self.decoder = nn.ModuleList(_DecoderLayer(d) for _ in range(dec))
        self.prj = nn.Linear(d, vocab)

    def forward(self, src: torch.Tensor, trg: torch.Tensor) -> torch.Tensor:
        x = self.src_emb(src)
        for layer in self.encoder:
            x = layer(x)
        y = self.trg_emb(trg)
        for layer in self.decoder:
            y = layer(y, x)
        return self.prj(y).mean(1)


class _TorchSeq2Seq(nn.Module):
    def __init__(self, enc: int, dec: int, d: int = 16, vocab: int = 40) -> None:
        super().__init__()
        self.src_emb, self.trg_emb = nn.Embedding(vocab, d), nn.Embedding(vocab, d)
        self.transformer = nn.Transformer(d, 2, num_encoder_layers=enc, num_decoder_layers=dec,
                                          dim_feedforward=32, dropout=0.0, batch_first=True)
        self.prj = nn.Linear(d, vocab)

    def forward(self, src: torch.Tensor, trg: torch.Tensor) -> torch.Tensor:
        return self.prj(self.transformer(self.src_emb(src), self.trg_emb(trg))).mean(1)


def _risk(model: nn.Module, thresholds: Thresholds | None = None) -> dict[str, object]:
    torch.manual_seed(0)
    ids = (torch.randint(0, 40, (4, 7)), torch.randint(0, 40, (4, 5)))
    doc = check_module(model, ids, seeds=1, verify=False, thresholds=thresholds)
    [f] = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    return {"severity": f.severity, "summary": f.summary, **f.evidence.model_dump()}


@pytest.mark.parametrize("make", [_Seq2Seq, _TorchSeq2Seq], ids=["by_hand", "torch"])
def test_an_encoder_decoder_is_two_stacks_of_its_layers(make: type[nn.Module]) -> None:
    # 2 + 2 layers (a decoder layer's three Add & Norm are one layer): two stacks of 2, 2 deep,
    # judged with a bar of 2 here; the hand-written blocks as torch's nn.Transformer
    torch.manual_seed(0)
    ev = _risk(make(2, 2), Thresholds(post_ln_depth=2))
    assert ev["stacks"] == [2, 2] and ev["depth"] == 2, ev
    assert "stacks of 2 and 2 layers" in str(ev["summary"])


def test_a_6_plus_6_hand_written_encoder_decoder_is_6_deep() -> None:
    # 12 encoder sums + 18 decoder sums: 6 + 6 layers (not one stack of 15), a warning at depth 6
    torch.manual_seed(0)
    ev = _risk(_Seq2Seq(6, 6))
    assert ev["severity"] == "warning" and ev["stacks"] == [6, 6] and ev["depth"] == 6, ev
    assert "stacks of 6 and 6 layers" in str(ev["summary"])


def test_a_shallower_decoder_is_judged_on_the_deeper_stack() -> None:
    # 6 + 3: the encoder is 6 deep (a warning); the decoder alone would not be, and is no stack of 6
    torch.manual_seed(0)
    ev = _risk(_Seq2Seq(6, 3))
    assert ev["stacks"] == [6] and ev["depth"] == 6, ev
