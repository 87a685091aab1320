"""specsweep15: a ``transformer_encoder`` takes ``init``, ``bias_init`` and ``residual_init_scale``,
so published Transformer inits can be transcribed: BERT's truncated normal of std 0.02 on every
Linear, GPT-2's normal of std 0.02 with the residual projections scaled by 1/sqrt(2 n_layer).
Without them the layer always had PyTorch's init, which stays the default."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gradhealth.analysis.model import TransformerUnit, build_network
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import SpecError
from gradhealth.library import check_architecture

D, HEADS, FF = 64, 4, 256
#: The std of N(0, 1) cut at +-2 std: 0.8796 (computed below from the normal's pdf and cdf).
TRUNC = math.sqrt(1 - 2 * 2 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2)))


def _spec(**fields: object) -> dict:
    enc = {"type": "transformer_encoder", "d_model": D, "heads": HEADS, "ff_width": FF, "num_layers": 2} | fields
    return {"input": {"shape": [8, D]}, "batch_size": 4, "seeds": 1, "loss": {"type": "mse"},
            "layers": [enc, {"type": "pool"}, {"type": "linear", "out_features": 1}]}


def _blocks(spec: dict, seed: int = 0) -> list[nn.TransformerEncoderLayer]:
    torch.manual_seed(seed)
    net = build_network(make_plan(parse_spec(spec)))
    return [u.block for u in net.modules() if isinstance(u, TransformerUnit)]


def _matrices(block: nn.TransformerEncoderLayer) -> dict[str, torch.Tensor]:
    w = block.self_attn.in_proj_weight.detach()
    return {"q": w[:D], "k": w[D:2 * D], "v": w[2 * D:], "out_proj": block.self_attn.out_proj.weight.detach(),
            "linear1": block.linear1.weight.detach(), "linear2": block.linear2.weight.detach()}


def test_the_truncated_normal_constant_is_the_textbook_one() -> None:
    assert math.isclose(TRUNC, 0.87962566, abs_tol=1e-7)


def test_bert_truncated_normal_reaches_every_weight_matrix_of_every_layer() -> None:
    blocks = _blocks(_spec(init={"scheme": "truncated_normal", "std": 0.02}))
    assert len(blocks) == 2
    for block in blocks:
        for name, w in _matrices(block).items():
            # 4,096 to 16,384 draws: the sample std is within about 1.1% of 0.02 * 0.8796
            assert w.std().item() == pytest.approx(0.02 * TRUNC, rel=0.05), name
            assert w.abs().max().item() <= 0.04 + 1e-7, name  # cut at 2 std


def test_gpt2_scales_the_two_residual_projections_by_residual_init_scale() -> None:
    scale = 1 / math.sqrt(2 * 12)  # GPT-2 small: 12 layers, 0.2041
    block = _blocks(_spec(init={"scheme": "normal", "std": 0.02}, residual_init_scale=scale, bias_init="zeros"))[0]
    stds = {name: w.std().item() for name, w in _matrices(block).items()}
    for name in ("q", "k", "v", "linear1"):
        assert stds[name] == pytest.approx(0.02, rel=0.05), name
    for name in ("out_proj", "linear2"):
        assert stds[name] == pytest.approx(0.02 * 0.2041, rel=0.05), name
    for bias in (block.self_attn.in_proj_bias, block.self_attn.out_proj.bias, block.linear1.bias, block.linear2.bias):
        assert torch.count_nonzero(bias).item() == 0


def test_the_packed_projection_is_three_matrices_unless_stacked() -> None:
    # xavier_normal: Var = 2 / (fan_in + fan_out); query, key and value apart have fans 64 and 64,
    # the packed [192, 64] matrix (PyTorch's convention, stacked: true) has 64 and 192
    apart = _blocks(_spec(init="xavier_normal"))[0].self_attn.in_proj_weight.detach()
    packed = _blocks(_spec(init={"scheme": "xavier_normal", "stacked": True}))[0].self_attn.in_proj_weight.detach()
    assert apart.var().item() == pytest.approx(2 / (D + D), rel=0.05)
    assert packed.var().item() == pytest.approx(2 / (D + 3 * D), rel=0.05)
    ortho = _blocks(_spec(init="orthogonal"))[0].self_attn.in_proj_weight.detach().double()
    for part in ortho.chunk(3, 0):
        assert torch.allclose(part @ part.T, torch.eye(D, dtype=torch.float64), atol=1e-5)


def test_the_default_is_pytorchs_own_encoder_layer_init() -> None:
    # the same draws as nn.TransformerEncoderLayer from the same seed, and its statistics: xavier_uniform
    # of the packed in_proj (Var = 2 / (64 + 192)), zero attention biases, kaiming_uniform(a=sqrt(5))
    # of the Linears (U(+-1/sqrt(fan_in)): Var = 1 / (3 fan_in))
    block = _blocks(_spec(num_layers=1), seed=3)[0]
    torch.manual_seed(3)
    ref = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True)
    for (name, mine), theirs in zip(block.named_parameters(), ref.parameters(), strict=True):
        assert torch.allclose(mine.detach().float(), theirs.detach().float()), name
    m = _matrices(block)
    assert block.self_attn.in_proj_weight.var().item() == pytest.approx(2 / (D + 3 * D), rel=0.05)
    assert m["out_proj"].var().item() == pytest.approx(1 / (3 * D), rel=0.06)
    assert m["linear1"].var().item() == pytest.approx(1 / (3 * D), rel=0.05)
    assert m["linear2"].var().item() == pytest.approx(1 / (3 * FF), rel=0.05)
    assert torch.count_nonzero(block.self_attn.in_proj_bias).item() == 0
    assert block.linear1.bias.abs().max().item() <= 1 / math.sqrt(D)


@pytest.mark.parametrize(("fields", "pointer", "words"), [
    ({"init": {"scheme": "truncated_nromal", "std": 0.02}}, "/layers/0/init/scheme", "did you mean 'truncated_normal'"),
    ({"init": {"scheme": "truncated_normal"}}, "/layers/0/init", "needs `std`"),
    ({"bias_init": {"scheme": "normal"}}, "/layers/0/bias_init", "needs `std`"),
    ({"residual_init_scale": 0}, "/layers/0/residual_init_scale", "greater than 0"),
])
def test_a_bad_transformer_init_is_refused_at_its_pointer(fields: dict, pointer: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_spec(**fields))
    assert pointer in [p.pointer for p in info.value.problems]
    assert words in info.value.detail


def test_a_bad_transformer_init_exits_2_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gradhealth.cli import main

    path = tmp_path / "enc.json"
    path.write_text(json.dumps(_spec(init={"scheme": "trunc_normal", "std": 0.02})))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "/layers/0/init/scheme" in err and "Traceback" not in err


def test_an_init_remedy_reaches_a_transformer_whose_spec_sets_its_init(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # N(0, 1) weights at d 64 (64 times Glorot's variance) blow the gradient up through a Post-LN
    # stack; the spec's init is the cause, so xavier_init patches it, and `gradhealth fix` writes it
    import json

    from gradhealth.cli import main

    spec = _spec(init={"scheme": "normal", "std": 1.0}, num_layers=6)
    spec["input"] = {"tokens": {"vocab_size": 100, "seq_len": 16}}
    spec["layers"].insert(0, {"type": "embedding", "embedding_dim": D})
    spec["layers"].insert(1, {"type": "layernorm"})
    doc = check_architecture(spec, verify=False)
    exploding = next(f for f in doc.findings if f.code == "exploding_gradient")
    remedy = next(r for r in exploding.remedies if r.id == "xavier_init")
    assert remedy.patch == [{"op": "add", "path": "/layers/2/init", "value": {"scheme": "xavier_normal"}}]
    path = tmp_path / "enc.json"
    path.write_text(json.dumps(spec))
    assert main(["fix", str(path), "--remedy", "xavier_init", "-o", str(tmp_path / "fixed.json")]) == 0
    fixed = json.loads((tmp_path / "fixed.json").read_text())
    assert fixed["layers"][2]["init"] == {"scheme": "xavier_normal"}
    assert fixed["layers"][2]["num_layers"] == 6


def test_a_bert_like_spec_with_its_init_still_reports_post_ln_depth_risk() -> None:
    # BERT's shape (google-research/bert: 12 Post-LN layers, ffn 4 x hidden, gelu, every weight
    # truncated normal 0.02, sequence 128) at the width of its L-12/H-128 miniature (2 heads, ffn 512)
    # and a vocabulary of 1,000, to stay light (BERT-Base at d 768 and vocabulary 30,522, batch 4,
    # float32: the same warning in 50 s on 2 cores)
    tn = {"scheme": "truncated_normal", "std": 0.02}
    spec = {"input": {"tokens": {"vocab_size": 1000, "seq_len": 128}}, "batch_size": 4, "seeds": 1,
            "precision": "float32", "loss": {"type": "cross_entropy", "classes": 2},
            "layers": [{"type": "embedding", "embedding_dim": 128, "init": tn}, {"type": "layernorm"},
                       {"type": "transformer_encoder", "d_model": 128, "heads": 2, "ff_width": 512,
                        "num_layers": 12, "norm_first": False, "activation": "gelu", "init": tn, "bias_init": "zeros"},
                       {"type": "pool"}, {"type": "linear", "out_features": 128, "activation": "tanh", "init": tn},
                       {"type": "linear", "out_features": 2, "init": tn}]}
    doc = check_architecture(spec, verify=False)
    risk = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    assert [f.severity for f in risk] == ["warning"]
    assert risk[0].evidence.stacks == [12]
