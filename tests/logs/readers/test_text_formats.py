"""Plain-text log families found in public runs: build-nanogpt's ``log.txt``, OLMo's console log
(thousands commas, logger headers, a config repr), llm.c's stdout (an evaluation before step 1,
HellaSwag progress, an error block). Expected numbers are read from the files' own text."""

from __future__ import annotations

import re
from pathlib import Path

from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import READER, pairs
from tests.logs.helpers import by_name, write

DATA = Path(__file__).resolve().parents[2] / "data" / "logs"
OLMO = DATA / "olmo-1b-excerpt" / "train.log"
LLMC = DATA / "llmc-stdout-excerpt" / "gpt2_train.log"


# build-nanogpt writes "{step} val {loss:.4f}", "{step} hella {acc:.4f}", "{step} train {loss:.6f}"
# (train_gpt2.py); the runs found carry no licence file, so this excerpt is written here.
NANOGPT_BUILD = """\
0 val 10.9519
0 hella 0.2487
0 train 10.955011
1 train 10.935991
2 train 10.903013
3 train 10.851730
4 train 10.776552
5 val 9.7203
5 hella 0.2440
5 train 10.694410
6 train 10.610107
"""


def _triples(text: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for line in text.splitlines():
        step, name, value = line.split()
        out.setdefault(name, []).append((int(step), float(value)))
    return out


def test_build_nanogpt_log_txt(tmp_path):
    path = write(tmp_path, "log.txt", NANOGPT_BUILD)
    want = _triples(NANOGPT_BUILD)
    assert sniff.detect(path).name == "text"
    for fmt in (None, "text"):
        log = read_log(path, format=fmt)
        s = by_name(log)
        assert set(s) == {"train_loss", "val_loss", "hella"} and log.warnings == []
        assert s["train_loss"].role == "loss" and s["val_loss"].role == "val_loss" and s["hella"].role == "metric"
        for series, name in (("train_loss", "train"), ("val_loss", "val"), ("hella", "hella")):
            assert list(zip(s[series].steps.tolist(), s[series].values.tolist(), strict=True)) == want[name]


def test_step_name_value_lines_only_as_a_whole_line():
    assert pairs("250 val 6.5893") == [("step", "250"), ("val_loss", "6.5893")]
    assert pairs("12 test 0.5") == [("step", "12"), ("test_loss", "0.5")]
    assert pairs("7 grad_norm 1.25") == [("step", "7"), ("grad_norm", "1.25")]
    assert pairs("Using 8 GPUs") == [] and pairs("250 val 6.5893 extra") == []
    assert pairs("1700000000000 nan 2") == []       # an MLflow metric line (timestamp, value, step)


def test_thousands_commas_and_commas_between_pairs():
    assert pairs("throughput/total_tokens=8,388,608") == [("throughput/total_tokens", "8388608")]
    assert pairs("train/Perplexity=83,461") == [("train/Perplexity", "83461")]
    assert pairs("loss=1,lr=2") == [("loss", "1"), ("lr", "2")]
    assert pairs("loss=1, lr=2") == [("loss", "1"), ("lr", "2")]
    assert pairs("tokens=1,000,loss=2.5") == [("tokens", "1000"), ("loss", "2.5")]
    assert pairs("tokens=1,234.5 other=0,123 more=1,2345") == [("tokens", "1234.5"), ("other", "0"), ("more", "1")]


def test_what_is_not_a_value():
    # arguments of a call or repr (a config print, a module repr)
    assert pairs("TrainConfig(seed=6198, optimizer=OptimizerConfig(learning_rate=0.0003, eps=1e-08))") == []
    assert pairs("(ff_out): Linear(in_features=8192, out_features=2048, bias=False)") == []
    assert pairs("step 3 | loss 2.5 (best=2.4)") == [("best", "2.4"), ("step", "3"), ("loss", "2.5")]
    # source references and a log record's header (host:rank, logger:line number)
    assert pairs("Error: Token out of vocabulary at train_gpt2.cu:675") == []
    assert pairs("W1211 00:25:56.667000 215183 torch/distributed/run.py:803] ") == []
    line = "2025-12-11 00:27:01.586\thazy-book-rustles-fin-02:0\tolmo.train:979\tINFO\t[step=1/2500,epoch=0]"
    assert pairs(line) == [("step", "1"), ("epoch", "0")]
    assert pairs("step:100 loss:2.5 WARNING spike") == [("step", "100"), ("loss", "2.5")]
    # counts: the step and the epoch take i of i/n, a progress counter is nothing, i/n = x is x
    assert pairs("step    1/19560 | loss 11.009662") == [("step", "1"), ("loss", "11.009662")]
    assert pairs("Epoch 3/10") == [("Epoch", "3")]
    assert pairs("evaluating HellaSwag: 10/1256") == []
    assert pairs("HellaSwag: 2493/10042 = 0.248257") == [("HellaSwag", "0.248257")]
    # one-letter names other than the step
    assert pairs("batch_size B=32 * seq_len T=1024") == [] and pairs("s:5 x:1.0") == [("s", "5")]


def test_olmo_console_log():
    text = OLMO.read_text()
    lines = text.splitlines()
    want: dict[str, list[tuple[int, float]]] = {}
    step = None
    for ln in lines:
        m = re.search(r"\[step=(\d+)/\d+", ln)
        if m:
            step = int(m[1])
        elif step is not None and ln.startswith("    ") and "=" in ln:
            k, v = ln.strip().split("=")
            want.setdefault(k, []).append((step, float(v.replace(",", ""))))
    assert "train/Perplexity" in want and "learning_rate=0.0003" in text     # the file has both
    log = read_log(OLMO)
    assert log.format == "text" and log.warnings == []
    s = by_name(log)
    for name, points in want.items():
        if " " in name:          # "System/Peak GPU Memory (MB)": not a name this reader reads
            assert name not in s
            continue
        assert list(zip(s[name].steps.tolist(), s[name].values.tolist(), strict=True)) == points, name
    assert s["train/Perplexity"].values[0] == 83461 and s["throughput/total_tokens"].values[0] == 8388608
    assert s["epoch"].steps.tolist() == [1, 2, 3]
    # no header tokens, no config values, nothing at a step the log does not name
    assert set(s) == set(want) - {"System/Peak GPU Memory (MB)"} | {"epoch"}
    assert all(set(x.steps.tolist()) <= {1, 2, 3} for x in log.series)


def test_llmc_stdout():
    lines = LLMC.read_text().splitlines()
    train: list[tuple[int, float, float]] = []
    val: list[tuple[int, float]] = []
    hella: list[tuple[int, float]] = []
    step = None
    for ln in lines:
        m = re.match(r"step\s+(\d+)/\d+ \| loss ([\d.]+) .*\| norm ([\d.]+) ", ln)
        if m:
            step = int(m[1])
            train.append((step, float(m[2]), float(m[3])))
        elif ln.startswith("val loss "):
            # llm.c evaluates before the update of its loop step: the first (before "step 1") is at 0
            val.append((step if step is not None else 0, float(ln.split()[-1])))
        elif "HellaSwag: " in ln and " = " in ln:
            hella.append((step, float(ln.rsplit("= ", 1)[1])))
    assert val[0] == (0, 11.007921) and hella                                 # the file has both
    log = read_log(LLMC)
    s = by_name(log)
    assert s["val_loss"].role == "val_loss"
    assert list(zip(s["val_loss"].steps.tolist(), s["val_loss"].values.tolist(), strict=True)) == val
    assert list(zip(s["loss"].steps.tolist(), s["loss"].values.tolist(), strict=True)) == [(st, lo) for st, lo, _ in train]
    assert s["norm"].values.tolist() == [n for _, _, n in train]
    assert list(zip(s["HellaSwag"].steps.tolist(), s["HellaSwag"].values.tolist(), strict=True)) == hella
    assert len(s["lr"]) == len(train) - 1           # the line cut by the error message lost its lr
    # no config values from before step 1, no one-letter pieces, no source reference
    for junk in ("num_parameters", "B", "T", "total_batch_size", "grad_accum_steps", "size", "r",
                 "train_gpt2.cu"):
        assert junk not in s


def test_values_before_the_first_step(tmp_path):
    text = ("lr=0.1 batch_size=32\n"            # a config print: lr goes on, batch_size does not
            "val_loss: 3.0\n"                    # an evaluation before training: val_loss goes on
            "params: 1000\n"
            "step 1 | loss 2.0 | lr 0.01\n"
            "val_loss: 1.5\n"
            "step 2 | loss 1.8 | lr 0.01\n")
    s = by_name(read_log(write(tmp_path, "train.log", text)))
    assert set(s) == {"val_loss", "loss", "lr"}
    assert s["val_loss"].steps.tolist() == [0, 1] and s["val_loss"].values.tolist() == [3.0, 1.5]
    assert s["lr"].steps.tolist() == [1, 2] and s["lr"].values.tolist() == [0.01, 0.01]
    # a log whose first step is 0 (or that was resumed) keeps the order: the early value comes first
    s = by_name(read_log(write(tmp_path, "b.log", "val_loss: 3.0\nstep 0 | val_loss 2.9\n")))
    assert s["val_loss"].steps.tolist() == [0, 0] and s["val_loss"].values.tolist() == [3.0, 2.9]
    s = by_name(read_log(write(tmp_path, "c.log", "val_loss: 3.0\nstep 1001 | val_loss 2.9\n")))
    assert s["val_loss"].steps.tolist() == [1000, 1001]


def test_sniff_counts_the_new_lines():
    assert READER.sniff("log.txt", NANOGPT_BUILD.encode()) > 0
    assert READER.sniff("train.log", OLMO.read_bytes()) > 0
    assert sniff.detect(OLMO).name == "text" and sniff.detect(LLMC).name == "text"


# --- Megatron/DeepSpeed, bracketed prefixes, split names (the second sweep) ----------------------

MEGATRON = DATA / "megatron-excerpt" / "chronicles-excerpt.log"
_FIELD = re.compile(r"\|\s*([A-Za-z][^|:]*?):\s*([-+0-9.Ee]+)\s*(?=\|)")


def test_megatron_fields_are_named_by_all_their_words() -> None:
    log = read_log(MEGATRON)
    s = by_name(log)
    lines = MEGATRON.read_text().splitlines()
    for line in lines:
        step = int(re.search(r"iteration\s+(\d+)/", line)[1])
        for key, value in _FIELD.findall(line):
            name = re.sub(r"\s+", "_", key.strip())
            assert float(value) in s[name].values[s[name].steps == step], (name, step)
    assert s["lm_loss"].role == "loss" and s["grad_norm"].role == "grad_norm"
    assert s["learning_rate"].role == "learning_rate" and s["loss_scale"].role == "metric"
    # "number of nan iterations: 0" is a count of 0, not a NaN of a series called "of"
    assert "of" not in s and s["number_of_nan_iterations"].values.tolist() == [0.0] * len(lines)
    assert all(bool((~(v.values == v.values)).sum() == 0) for v in log.series)


def test_a_word_then_nan_in_prose_is_not_a_value_but_a_known_name_is() -> None:
    found = dict(pairs("step 3 | number of nan iterations 0 | loss 2.5"))
    assert "of" not in found and found["loss"] == "2.5"
    assert ("loss", "nan") in pairs("step 4 | loss nan | norm 1.2")


def test_bare_split_names_on_a_stepped_line_are_their_losses() -> None:
    assert pairs("[eval] iter 0: train 9.8578 val 9.8535 lr 7.50e-07") == [
        ("iter", "0"), ("train_loss", "9.8578"), ("val_loss", "9.8535"), ("lr", "7.50e-07")]
    # without a step on the line a split word is not taken for a loss
    assert ("train_loss", "3.0") not in pairs("train 3.0 examples seen")


def test_lines_opening_with_a_bracket_are_text_logs_unless_json(tmp_path: Path) -> None:
    p = write(tmp_path, "run.log", "[2024-01-01 10:00:00] step 1 loss 3.0\n"
              "[2024-01-01 10:00:01] step 2 loss 2.9\n[2024-01-01 10:00:02] step 3 loss 2.7\n")
    assert sniff.detect(p).name == "text"
    assert by_name(read_log(p))["loss"].values.tolist() == [3.0, 2.9, 2.7]
    for head in ('[{"step": 1, "loss": 3.0},\n', "[\n", "[1, 2, 3]\n", '["a", "b"]\n'):
        assert READER.sniff("x.log", head.encode() + b'{"step": 2, "loss": 2.9}\n') == 0.0
