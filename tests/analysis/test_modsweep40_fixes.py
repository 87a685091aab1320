"""modsweep40: sparse example inputs (a GCN's torch.spmm adjacency) are kept and simulated, never a
raw dispatcher traceback; float inputs that are structure (a normalised adjacency, a bag of words,
masks, one-hot encodings) are kept as given, not redrawn N(0, 1); the init remedies' snippets loop
over every layer kind the verification re-initialises (a ConvTranspose2d too), drawing as it does."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.module_check import _init_edit, _zero_bias_edit, check_module, input_specs
from gradhealth.core.remedies import SNIPPETS


class _GCN(nn.Module):
    """Kipf & Welling's two-layer GCN as bmsookim/graph-cnn.pytorch writes it (``torch.spmm(adj,
    x W)``, or ``adj @ x W``), returning its training loss (nll on the first nodes' labels)."""

    def __init__(self, n_in: int, labels: torch.Tensor, spmm: bool = True) -> None:
        super().__init__()
        self.gc1, self.gc2 = nn.Linear(n_in, 32), nn.Linear(32, 3)
        self.spmm = spmm
        self.register_buffer("labels", labels)

    def prop(self, adj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.spmm(adj, h) if self.spmm else adj @ h

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.prop(adj, self.gc1(x)))
        out = F.log_softmax(self.prop(adj, self.gc2(h)), dim=1)
        return F.nll_loss(out[: self.labels.numel()], self.labels)


def _graph(n: int, edges: int, seed: int = 0) -> torch.Tensor:
    """A random graph's row-normalised D^-1 (A + I), dense."""
    g = torch.Generator().manual_seed(seed)
    a = torch.eye(n)
    s, d = torch.randint(0, n, (edges,), generator=g), torch.randint(0, n, (edges,), generator=g)
    a[s, d] = 1.0
    a[d, s] = 1.0
    return a / a.sum(1, keepdim=True)


def _bag_of_words(n: int, width: int, words: int, seed: int = 1) -> torch.Tensor:
    """Row-normalised bag-of-words features: ``words`` of ``width`` per row (Cora's 18 of 1433)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, width)
    x.scatter_(1, torch.randint(0, width, (n, words), generator=g), 1.0)
    return x / x.sum(1, keepdim=True)


def _sgd_ratios(model: nn.Module, x: torch.Tensor, adj: torch.Tensor, lr: float) -> dict[str, float]:
    """One SGD step's ||lr g|| / ||W|| per layer's weight, by a plain float64 forward and backward
    of a copy on the inputs given: the independent figure."""
    net = copy.deepcopy(model).double()
    net(x.double(), adj.double()).backward()
    return {name: float(lr * getattr(net, name).weight.grad.norm() / getattr(net, name).weight.detach().norm())
            for name in ("gc1", "gc2")}


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_a_sparse_adjacency_is_kept_and_simulated_as_given(layout: str) -> None:
    # h06/u02: torch.spmm with a sparse COO adjacency crashed input_specs (aten::eq.Scalar on SparseCPU)
    torch.manual_seed(0)
    n = 200
    dense = _graph(n, 300)
    adj = dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()
    x = _bag_of_words(n, 100, 5)
    model = _GCN(100, torch.randint(0, 3, (40,)), spmm=layout == "coo")
    doc = check_module(model, (x, adj), loss="sum", seeds=2, optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    notes = " ".join(doc.simulation.notes)
    assert f"input adj kept as given for every seed and simulated sparse, as it is, not drawn: a sparse tensor " \
           f"(sparse_{layout}, {dense.count_nonzero():,} stored values of {n}\u00d7{n})" in notes
    assert "float input x kept as given" in notes  # 95% exact zeros
    # the simulation ran on the very inputs given: its ratios are a plain forward/backward's
    expected = _sgd_ratios(model, x, dense, 0.01)
    got = {layer.name: layer.update_ratio for layer in doc.layers if layer.update_ratio is not None}
    assert got == pytest.approx(expected, rel=1e-6)


def test_a_sparse_input_an_operation_cannot_take_is_refused_naming_it() -> None:
    class Normalising(nn.Module):  # a forward written for a dense adjacency (rsqrt of its degrees)
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
            d = adj.sum(1).rsqrt()
            return self.lin(adj @ x) * d.sum()

    with pytest.raises(ModelError) as err:
        check_module(Normalising(), (torch.randn(20, 8), torch.eye(20).to_sparse()), seeds=1)
    message = str(err.value)
    assert message.startswith("example input adj is a sparse tensor, kept as given, and the model's forward failed")
    assert "aten::rsqrt" in message and "pass adj.to_dense() instead" in message
    assert "registered at" not in message and "\n" not in message  # no dispatcher listing


def test_a_dense_normalised_adjacency_and_bag_of_words_are_kept_not_redrawn() -> None:
    # extra/: both redrawn N(0, 1), the adjacency became a dense random matrix (x sqrt(N) per layer):
    # large_updates error 14.5 where one real SGD step moves the output layer by 3.2e-5 of its norm
    torch.manual_seed(0)
    n = 400
    adj, x = _graph(n, 600), _bag_of_words(n, 300, 10)
    model = _GCN(300, torch.randint(0, 3, (60,)), spmm=False)
    doc = check_module(model, (x, adj), loss="sum", seeds=2, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                       verify=False)
    assert doc.status == "healthy" and doc.findings == []
    expected = _sgd_ratios(model, x, adj, 0.01)
    assert max(expected.values()) < 1e-2  # (the independent figure: far below any large_updates line)
    got = {layer.name: layer.update_ratio for layer in doc.layers if layer.update_ratio is not None}
    assert got == pytest.approx(expected, rel=1e-6)
    zeros = float((adj == 0).double().mean())
    assert any(note.startswith(f"float input adj kept as given for every seed, not drawn: {100 * zeros:.3g}% of "
                               f"its {n * n:,} values are exact zeros") for note in doc.simulation.notes)


def test_masks_and_one_hot_inputs_are_kept_and_ordinary_data_is_drawn() -> None:
    g = torch.Generator().manual_seed(0)
    one_hot = F.one_hot(torch.randint(0, 5, (32, 12), generator=g), 5).float()  # first input: kept
    additive = torch.zeros(32, 12).masked_fill(torch.rand(32, 12, generator=g) < 0.3, float("-inf"))
    levels = torch.randint(0, 3, (32, 12), generator=g).float() * 0.5  # 3 values, each repeated
    specs = input_specs((one_hot, additive, levels))
    assert [s.kept is not None for s in specs] == [True, True, True]
    assert specs[1].kept == "its 384 values take only 2 distinct ones (-inf, 0)"
    assert all(s.value is not None and torch.equal(s.value, x) for s, x in zip(specs, (one_hot, additive, levels),
                                                                              strict=True))
    # data: N(0, 1) features, [0, 1] images, MNIST-like pixels (81% exact zeros, 256 levels), a
    # torch.zeros placeholder as the first input, standardised pixels: drawn as before
    mnist = torch.where(torch.rand(16, 1, 28, 28, generator=g) < 0.81, 0.0,
                        torch.randint(1, 256, (16, 1, 28, 28), generator=g) / 255.0)
    data = (torch.randn(16, 20, generator=g), torch.rand(16, 3, 8, 8, generator=g), mnist, (mnist - 0.1307) / 0.3081)
    for x in data:
        [spec] = input_specs(x)
        assert spec.kept is None and spec.value is None, spec
    [placeholder, state] = input_specs((torch.zeros(4, 10), torch.zeros(1, 4, 8)))
    assert placeholder.kept is None and placeholder.value is None
    assert state.kept == "it is all 0"  # after the first: an RNN's zero initial state, as before


class _Generator(nn.Module):
    """A DCGAN-style stack with every layer kind the init remedies re-initialise."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(10, 16)
        self.c1, self.c3 = nn.Conv1d(4, 4, 3), nn.Conv3d(2, 3, 2)
        self.t1, self.t2, self.t3 = nn.ConvTranspose1d(4, 2, 4), nn.ConvTranspose2d(64, 3, 4, 2, 1), \
            nn.ConvTranspose3d(3, 2, 2)
        self.c2 = nn.Conv2d(3, 8, 3)


@pytest.mark.parametrize(("rid", "scheme"), [("he_init", "kaiming_normal"), ("xavier_init", "xavier_normal"),
                                             ("lecun_init", "lecun_normal")])
def test_an_init_snippet_changes_what_its_verification_changed(rid: str, scheme: str) -> None:
    # h02: the finding was on G.deconv5, a ConvTranspose2d; the snippet looped over Linear/Conv1d/Conv2d
    torch.manual_seed(3)
    model = _Generator()
    for p in model.parameters():
        nn.init.normal_(p, std=5.0)
    pasted, verified = copy.deepcopy(model), copy.deepcopy(model)
    torch.manual_seed(11)
    exec(SNIPPETS[rid], {"model": pasted, "nn": nn, "torch": torch})  # noqa: S102 - the tool's own snippet
    torch.manual_seed(11)
    _init_edit(scheme)(verified, 0)
    for (name, a), (_, b) in zip(pasted.named_parameters(), verified.named_parameters(), strict=True):
        assert torch.equal(a, b), name
        assert not torch.equal(a, dict(model.named_parameters())[name]), name  # every layer was changed
    # a transposed conv's fan-in as torch counts it (and both draw with): out_channels x kernel, 3 x 16
    assert torch.nn.init._calculate_fan_in_and_fan_out(model.t2.weight)[0] == 48 == model.t2.weight[0].numel()


def test_the_zero_bias_snippet_zeroes_every_bias_the_verification_zeroes() -> None:
    model = _Generator()
    for p in model.parameters():
        nn.init.normal_(p, std=5.0)
    pasted, verified = copy.deepcopy(model), copy.deepcopy(model)
    exec(SNIPPETS["zero_bias"], {"model": pasted, "nn": nn})  # noqa: S102 - the tool's own snippet
    _zero_bias_edit(verified, 0)
    for (name, a), (_, b) in zip(pasted.named_parameters(), verified.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    assert all(not m.bias.detach().any() for m in pasted.modules() if getattr(m, "bias", None) is not None)
