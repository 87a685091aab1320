"""peersweep23 (DeepDiagnosis' AUTOTRAINER models): #1 ``small_updates`` under Adam proposed
raising the rate to thousands where the gradients had vanished below Adam's eps (the step is then
lr g / eps, not lr); #2 he_init "FIXED" on 5-wide ReLU layers already He-initialised (a new draw of
the same init); #4 dead_units named a bare module index and said "1 layers". Every model is built
here; the expected figures come from the Adam update rule or the weights, computed in the test."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.analysis import spec as S
from gradhealth.analysis.simulate import saturated_step

LR, EPS = 1e-3, 1e-7  # Keras' Adam() defaults, as the sweep's items assumed


def _narrow_relu(init_range: float | None, depth: int = 9, seed: int = 0) -> nn.Sequential:
    """depth x [Linear(5) + ReLU] from 2 inputs, then Linear(1): AUTOTRAINER's circle model, its
    kernels uniform in +-init_range (Keras' RandomUniform(-0.05, 0.05)), or He's where None."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = 2
    for _ in range(depth):
        lin = nn.Linear(width, 5)
        if init_range is None:
            nn.init.kaiming_uniform_(lin.weight, nonlinearity="relu")
        else:
            nn.init.uniform_(lin.weight, -init_range, init_range)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
        width = 5
    out = nn.Linear(5, 1)  # he_uniform, bias 0 (the model's Dense(1, he_uniform))
    nn.init.kaiming_uniform_(out.weight, nonlinearity="relu")
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


def _adam_step_per_weight(net: nn.Sequential, x: torch.Tensor, name: str) -> tuple[float, float]:
    """(the RMS of Adam's first step on layer ``name``'s weight, the RMS of its gradient), from
    Adam's rule with empty state: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected to g and g^2,
    so delta = lr g / (|g| + eps). Targets: random 0/1 labels under BCE-with-logits."""
    net = net.double()
    torch.manual_seed(1)
    y = torch.randint(0, 2, (x.shape[0], 1)).double()
    loss = nn.functional.binary_cross_entropy_with_logits(net(x.double()), y)
    w = dict(net.named_modules())[name].weight
    (g,) = torch.autograd.grad(loss, w)
    step = LR * g / (g.abs() + EPS)
    return float(step.pow(2).mean().sqrt()), float(g.pow(2).mean().sqrt())


def test_saturated_step_is_the_rate_per_weight_as_torch_steps_it() -> None:
    # torch.optim's own first step on one weight with a gradient far above eps: lr per weight
    # (Adam, AdamW), lr / sqrt(1 - alpha) (RMSprop's first), lr (Adagrad's first, accumulator 0)
    for kind, opt_cls, kw in (("adam", torch.optim.Adam, {}), ("adamw", torch.optim.AdamW, {"weight_decay": 0.0}),
                              ("rmsprop", torch.optim.RMSprop, {}), ("adagrad", torch.optim.Adagrad, {})):
        p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        p.grad = torch.full((1,), 3.0, dtype=torch.float64)
        opt_cls([p], lr=LR, **kw).step()
        assert saturated_step(S.OptimizerSpec(type=kind, lr=LR)) == pytest.approx(abs(float(p.detach())), rel=1e-6), kind
    assert saturated_step(S.OptimizerSpec(type="sgd", lr=LR)) is None


def test_adam_steps_small_from_gradients_below_eps_propose_no_rate() -> None:
    net = _narrow_relu(0.05)
    torch.manual_seed(0)
    x = torch.rand(128, 2) * 2 - 1
    doc = gradhealth.check_module(net, x, loss="binary_cross_entropy", input_range=(-1.0, 1.0),
                                  optimizer={"type": "adam", "lr": LR, "eps": EPS}, verify=False)
    codes = {f.code: f for f in doc.findings}
    small = codes["small_updates"]
    ev = small.evidence.model_extra or {}
    assert small.evidence.layers
    where = small.evidence.layers[0]
    step, g_rms = _adam_step_per_weight(net, x, where)
    # the Adam rule, computed here: this layer's gradients are far below eps, so its step is
    # lr g / eps, a tiny share of the lr a gradient above eps steps
    assert g_rms < 1e-3 * EPS and step < 1e-3 * LR
    assert ev["gradient_under_eps"] is True
    assert ev["saturated_step_per_weight"] == pytest.approx(LR, rel=1e-6)
    # the tool's step per weight is the rule's lr g / eps, to the spread of the draws and labels
    assert abs(math.log10(ev["step_per_weight"] / step)) < 1.5
    assert "eps" in small.summary and "not the rate's" in small.explanation
    # and no rate is proposed anywhere (the sweep's Adam 0.001 -> 2.07)
    assert not any(r.id == "raise_learning_rate" for f in doc.findings for r in f.remedies)
    assert "vanishing_gradient" in codes


def test_a_rate_really_too_small_for_adam_is_still_raised() -> None:
    # the same network He-initialised (gradients far above eps) at Adam lr 1e-8: Adam steps about
    # lr per weight, 1e-8 / rms(W) ~ 1e-8 of the weights' norm: the rate is what is small
    net = _narrow_relu(None, depth=3)
    torch.manual_seed(0)
    x = torch.rand(128, 2) * 2 - 1
    doc = gradhealth.check_module(net, x, loss="binary_cross_entropy", input_range=(-1.0, 1.0),
                                  optimizer={"type": "adam", "lr": 1e-8, "eps": EPS}, verify=False)
    small = next(f for f in doc.findings if f.code == "small_updates")
    ev = small.evidence.model_extra or {}
    assert ev["gradient_under_eps"] is False
    assert ev["step_per_weight"] == pytest.approx(1e-8, rel=0.5)
    assert any(r.id == "raise_learning_rate" for r in small.remedies)


def test_dead_units_names_the_layer_and_counts_its_units() -> None:
    # 4 of the 5 units after the second Linear read only non-negative inputs (a ReLU's) through
    # non-positive weights and a bias of -0.1: off for every input by construction; the fifth is not
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 1))
    with torch.no_grad():
        net[0].bias.fill_(0.1)
        net[2].weight[:4] = -net[2].weight[:4].abs()
        net[2].bias[:4] = -0.1
    x = torch.rand(128, 2) * 2 - 1
    with torch.no_grad():
        off = (net[:3](x) <= 0).all(dim=0)
    assert off.tolist() == [True] * 4 + [False]
    doc = gradhealth.check_module(net, x, loss="mse", verify=False)
    dead = next(f for f in doc.findings if f.code == "dead_units")
    # the layer named as vanishing_gradient names it, the units counted, "1 layer" in the singular
    assert dead.summary == "80% of the units after 2 (Linear) (4 of 5) are zero for the whole batch (1 layer affected)"


def _he_variance_ratio(net: nn.Sequential) -> tuple[float, int]:
    """The weights' mean square over He's 2 / fan_in, pooled over the Linear layers by their
    weight counts, and the count of weights."""
    lins = [m for m in net if isinstance(m, nn.Linear)]
    n = sum(m.weight.numel() for m in lins)
    pooled = sum(float(m.weight.detach().pow(2).sum()) / (2 / m.in_features) for m in lins) / n
    return pooled, n


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_he_init_is_not_offered_to_layers_already_he_initialised(scale: float) -> None:
    # 15 x [Linear(5) + ReLU] He-uniform with zero biases (AUTOTRAINER's circle model): a dead
    # layer there is bad luck of the draw; kaiming_normal has the same variance, so he_init is a
    # re-draw. Scaled by 0.5 (a quarter of He's variance) the same units are dead (ReLU with zero
    # biases is positively homogeneous) and he_init is a real change, offered.
    net = _narrow_relu(None, depth=15)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(scale)
    pooled, n = _he_variance_ratio(net)
    if scale == 1.0:
        assert abs(pooled - 1) < 3 * math.sqrt(2 / n)  # drawn from He's variance, to its sampling spread
    else:
        assert abs(pooled - 0.25) < 3 * math.sqrt(2 / n) * 0.25
    torch.manual_seed(0)
    x = torch.rand(128, 2) * 2 - 1
    doc = gradhealth.check_module(net, x, loss="binary_cross_entropy", input_range=(-1.0, 1.0),
                                  optimizer={"type": "adam", "lr": LR, "eps": EPS}, verify=False)
    dead = next(f for f in doc.findings if f.code == "dead_units")
    offered = any(r.id == "he_init" for r in dead.remedies)
    assert offered is (scale != 1.0)
    assert ("a new random draw of the same init" in dead.explanation) is (scale == 1.0)


def test_a_verdict_judged_by_logit_std_on_one_layer_says_so() -> None:
    # earlier sweep (carried in peersweep23's brief): one Linear on inputs far from unit scale
    # fires exploding_gradient on its logits' std, which normalise_inputs fixed, yet its verdict
    # read "the changed network has nothing this metric measures"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x = torch.rand(64, 1, 28, 28) * 255 + 200
    with torch.no_grad():
        before = float(net(x).std())  # over every logit of the batch
    assert before > 100  # over the logit bar of 100
    doc = gradhealth.check_module(net, x, loss="cross_entropy", input_range=(200.0, 455.0))
    found = next(f for f in doc.findings if f.code == "exploding_gradient")
    fix = next(r for r in found.remedies if r.id == "normalise_inputs")
    v = fix.verified
    assert v is not None and v.fixed and v.judged is not None and v.judged.metric == "logit_std"
    assert v.judged.before == pytest.approx(before, rel=0.05)
    # standardised inputs through torch's default U(+-1/sqrt(784)): Var = 784 x 1/(3 x 784) = 1/3
    assert v.judged.after == pytest.approx(math.sqrt(1 / 3), rel=0.25)
    assert v.note is not None and "nothing this metric measures" not in v.note
    assert "judged by the figure the finding fires on, logit_std" in v.note
