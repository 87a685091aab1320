"""A spec's norm remedies show the spec's own sizes (specsweep13: the batch_norm and layer_norm
snippets of a spec still read ``nn.Linear(n_in, n_out)``, a NameError when pasted)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth.library import check_architecture

_SPEC = {"input": {"shape": [32]}, "loss": {"type": "mse"},
         "layers": [{"type": "linear", "out_features": 64, "activation": "sigmoid", "repeat": 12},
                    {"type": "linear", "out_features": 1}]}


@pytest.mark.parametrize(("rid", "norm"), [("batch_norm", nn.BatchNorm1d), ("layer_norm", nn.LayerNorm)])
def test_a_specs_norm_snippet_runs_with_its_first_layers_sizes(rid: str, norm: type) -> None:
    doc = check_architecture(_SPEC, verify=False)
    [remedy] = [r for f in doc.findings for r in f.remedies if r.id == rid][:1]
    code = next(line for line in remedy.snippet.splitlines() if line.startswith("nn.Sequential("))
    block = eval(code, {"nn": nn, "activation": nn.Sigmoid()})  # noqa: S307 (our own generated snippet)
    linear, made_norm = block[0], block[1]
    # the spec's first layer reads the 32 input features into 64
    assert (linear.in_features, linear.out_features) == (32, 64)
    assert isinstance(made_norm, norm)
    assert block(torch.randn(4, 32)).shape == (4, 64)
    assert "Linear(64, 64)" in remedy.snippet  # the repeated copies' own size is named
