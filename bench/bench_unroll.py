"""Cost of the simulation's step-by-step recurrence over long sequences, against the per-step slice
it replaced.

The simulation runs a recurrent layer one step at a time (:class:`gradhealth.analysis.graph.UnrolledRNN`)
so that every h_t can be read after the backward. It used to take each step's input as a slice
``x[:, t]``; a slice's backward allocates and zero-fills a gradient the size of the whole sequence
for every step (T^2 work and T transient tensors of that size), where one ``unbind`` of the input
has one backward. For each length this times, alternating so that drift affects both alike:

* slice: the same cell kernels (:func:`gradhealth.analysis.cells.step`) fed ``x[:, t]``, the old way;
* unrolled: :class:`~gradhealth.analysis.graph.UnrolledRNN` as the simulation runs it (probing on).

Both run forward + backward of the sum of the last state from an embedding's output (a text
model: kerassweep17 u05 is Embedding -> SimpleRNN(100, relu) over 2,500 tokens, batch 32, float64).
It prints the median seconds of each and the ratio slice / unrolled, and checks that both give
the same gradient. Speed is measured, not asserted: the script never fails on a ratio.

    .venv/bin/python bench/bench_unroll.py
    .venv/bin/python bench/bench_unroll.py --lengths 250,1000 --repeat 3 --kind lstm
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from gradhealth.analysis.cells import step
from gradhealth.analysis.graph import RNN_TYPES, UnrolledRNN


def _sliced(rnn: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
    """The last state of a one-layer ``rnn`` over ``x`` [batch, time, features], one slice per step."""
    kind = RNN_TYPES[type(rnn)]
    weights = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]
    h = x.new_zeros(x.shape[0], rnn.hidden_size)
    c = x.new_zeros(x.shape[0], rnn.hidden_size)
    for t in range(x.shape[1]):
        h, c = step(rnn, kind, x[:, t], h, c, weights)
    return h


def _unrolled(rnn: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
    module = UnrolledRNN(rnn)
    module.probing = True  # step by step, every h_t kept, as the simulation runs it
    out, _ = module(x)
    return out[:, -1]


def _time(fn, emb: nn.Embedding, rnn: nn.RNNBase, ids: torch.Tensor) -> tuple[float, torch.Tensor]:
    emb.zero_grad(set_to_none=True)
    rnn.zero_grad(set_to_none=True)
    started = time.perf_counter()
    fn(rnn, emb(ids)).sum().backward()
    took = time.perf_counter() - started
    assert emb.weight.grad is not None
    return took, emb.weight.grad.clone()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lengths", default="250,1000,2500", help="sequence lengths (default 250,1000,2500)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each path per length (default 3)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--kind", choices=("rnn", "lstm", "gru"), default="rnn")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (steadier on a shared CPU)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[args.kind]
    emb = nn.Embedding(2500, args.hidden).double()
    rnn = cls(args.hidden, args.hidden, batch_first=True).double()
    print(f"torch {torch.__version__}   threads {torch.get_num_threads()}   {args.kind} hidden {args.hidden} "
          f"batch {args.batch} float64")
    print(f"{'steps':>6} {'slice s':>9} {'unrolled s':>11} {'ratio':>6}  same gradient")
    for length in (int(n) for n in args.lengths.split(",")):
        ids = torch.randint(0, 2500, (args.batch, length))
        sliced: list[float] = []
        unrolled: list[float] = []
        same = True
        for _ in range(args.repeat):
            a, ga = _time(_sliced, emb, rnn, ids)
            b, gb = _time(_unrolled, emb, rnn, ids)
            sliced.append(a)
            unrolled.append(b)
            same = same and torch.allclose(ga, gb, rtol=1e-9, atol=1e-300)
        s, u = statistics.median(sliced), statistics.median(unrolled)
        print(f"{length:>6} {s:>9.3f} {u:>11.3f} {s / u:>6.2f}  {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
