"""newuser13 #5: every remedy snippet a check gives for the bundled examples runs as pasted into a
training script (torch, nn, math, ``model`` and ``optimizer`` defined), where it names nothing else;
the relu_family_activation snippet is one of them (it named n_in and n_out, and raised NameError),
and it does what it says: ReLU in the hidden layers, Kaiming-normal weights, the output's sigmoid kept."""

from __future__ import annotations

import ast
import builtins
import math
from importlib import resources

import pytest
import torch
import yaml
from torch import nn

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core import remedies as R

EXAMPLES = sorted(p.name for p in (resources.files("gradhealth") / "examples").iterdir() if p.name.endswith(".yaml"))
SCRIPT_NAMES = {"torch", "nn", "math", "model", "optimizer"}


def _free_names(code: str) -> set[str]:
    tree = ast.parse(code)
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - bound - set(dir(builtins))


def _script() -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1), nn.Sigmoid())
    return {"torch": torch, "nn": nn, "math": math, "model": model,
            "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)}


@pytest.fixture(scope="module")
def snippets() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name in EXAMPLES:
        raw = yaml.safe_load((resources.files("gradhealth") / "examples" / name).read_text())
        raw["seeds"] = 1
        doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits()))
        for f in doc.findings:
            for r in f.remedies:
                if r.snippet:
                    found.setdefault(r.snippet, set()).add(f"{name}: {f.code} -> {r.id}")
    return found


def test_each_snippet_that_names_only_a_scripts_objects_runs(snippets):
    ran = set()
    for code, where in snippets.items():
        if _free_names(code) <= SCRIPT_NAMES:
            exec(compile(code, str(sorted(where)), "exec"), _script())  # noqa: S102 - our own snippets
            ran |= {w.rsplit(" -> ", 1)[1] for w in where}
    assert "relu_family_activation" in ran  # deep_sigmoid_mlp's vanishing gradient offers it


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_the_activation_snippet_swaps_and_initialises(activation):
    code = R.relu_family_activation("the hidden layers", activation).snippet
    assert _free_names(code) <= {"nn", "model"}
    ns = _script()
    if activation == "leaky_relu":
        ns["model"][1] = nn.ReLU()
    exec(code, ns)  # noqa: S102 - our own snippet
    model = ns["model"]
    want = nn.ReLU if activation == "relu" else nn.LeakyReLU
    assert isinstance(model[1], want) and isinstance(model[5], nn.Sigmoid)  # the output's kept
    if activation == "relu":
        assert isinstance(model[3], nn.ReLU)
    gain2 = 2.0 if activation == "relu" else 2.0 / (1 + 0.01 ** 2)  # He: Var(w) = gain^2 / fan_in
    assert float(model[2].weight.detach().var()) == pytest.approx(gain2 / 64, rel=0.1)
    assert bool((model[2].bias == 0).all())
