"""Plain-text training logs: ``key: value``, ``key=value`` or ``key value`` pairs on each line.

Examples of lines read::

    s:120 trl:3.4102 lr:0.000600 norm:0.27             (llm.c main.log)
    step:120/5000 train_loss:3.41 norm:0.27 lr:6e-4     (llm.c stdout)
    step 120 | loss 3.41 | grad_norm 0.27 | lr 6e-4     (pipe-separated)
    iter 120: loss 3.4102, time 54.32ms, mfu 45.21%     (nanoGPT)
    step 500: train loss 2.3456, val loss 2.4567        (nanoGPT eval)
    epoch=3 step=1200 loss=0.51 grad_norm=nan           (key=value)

A pair is a name (letters, digits, ``_ . / -``, starting with a letter of any script or ``_``) followed
by ``:`` or ``=`` (a copula before it is part of it: ``loss is: 2.50``) and a number (``nan``,
``inf``, ``-inf``, ``Infinity`` included), also printed as a one-element array or tensor (``Loss [
0.69]``, ``loss tensor(0.69, device='cuda:0')``). A name made of common Chinese words is read in
English (``训练损失`` -> ``train_loss``, ``验证损失`` -> ``val_loss``). ``name value`` without a
separator counts on pipe-separated lines (``a 1 | b 2``) and, on other lines, for the names below
(optionally preceded by ``train``/``val``/``eval``/``test``, as ``train loss``, which becomes
``train_loss``). A number followed by a unit (``54.32ms``) is not a value.

A line of exactly ``<step> <name> <value>`` (build-nanogpt's ``log.txt``: ``250 val 6.5893``) is
the value of ``name`` at that step; a bare split name is that split's loss (``train`` ->
``train_loss``, ``val`` -> ``val_loss``, also ``valid``/``validation``/``eval``/``test``).

Numbers may group thousands with commas (``8,388,608``, OLMo): a comma counts only when exactly
three digits follow it and the number does not start with 0, so ``a=1,b=2`` and ``a=1, b=2`` stay two
pairs. ``name: i/n`` is a count (``step 1/19560``, ``evaluating HellaSwag: 10/1256``): the step and
``epoch`` take ``i``, other names take the result of ``i/n = x`` when the line gives it, else nothing.

Not values: arguments of a call or repr (``TrainConfig(learning_rate=0.0003, ...)``,
``Linear(in_features=768, ...)``), a source reference (``train_gpt2.cu:675``,
``torch/distributed/run.py:803``), ``name:integer`` tokens before a log level in a line's header
(``host-02:0  olmo.train:979  INFO``: the rank and the logger's line number), and one-letter names
other than the step (``B=32``, the ``r`` of a line cut in the middle of ``lr``).

The step is the value of ``step``, ``s``, ``iter``, ``iteration``, ``it`` or ``global_step``. A line
without one uses the last step seen. Lines with values before the first stepped line (a config
print, parameter counts, an evaluation before training) are kept only when every name on them also
has values after the first step (llm.c's ``val loss`` printed before ``step 1``), and then belong to
the step before the first one (the first step minus 1, at least 0: the state before any update).
In a log with no step at all, lines take a running index of the lines with values (0, 1, 2...),
unless it counts epochs (``Epoch 2/10`` headers, ``| epoch 002 |``): then each name's last value in
each epoch, at that epoch (a name printed several times within most whole epochs, ``Epoch 1 - Batch
loss: 12.13``, is a point each time, the k-th of the epoch's n lines at e + k/n). An RL console's line
naming its episode (``Episode 100  Frame 2457  Average100 Score: 24.57``) is placed by its frames or
timesteps, else by the episode. A position within an epoch (``Epoch [1][50/5808]``, ``Epoch: [2]
[1/6]``, tqdm's ``Epoch 476:  1%|...| 1/79``) is the fractional epoch 1 + 50/5808.
Every other name becomes a series named as the log names it; common names
get their role: ``loss``/``train_loss``/``trl``/``training_loss`` (loss), ``val_loss``/``tel``/
``eval_loss``/``valid_loss``/``test_loss`` (val_loss), ``grad_norm``/``norm``/``gnorm``/
``total_norm`` (grad_norm), ``lr``/``learning_rate`` (learning_rate); the rest are named by
:func:`gradhealth.logs.series.classify`.

A log that ends in a Python traceback (``Traceback (most recent call last):`` and no values after
it) gets ``RunLog.traceback`` (the traceback's text, at most its last 200 lines) and the warning
``truncated_log``. A last line with no newline that holds fewer of the keys than the line before
it is taken as cut off and dropped (``truncated_log``). Bytes that are not UTF-8 are replaced
(warning ``replaced_bytes``), as consoles mix encodings.

Detection: files named ``*.yaml``, ``*.json``, ``*.toml``, ``*.py``... are never text logs, nor is a
file where every name appears once and none is a step (a config file); a document (``*.md``, ``*.rst``)
is one only where a console is pasted into it (:data:`_DOCUMENT_SHARE`, :data:`_DOCUMENT_BLOCK`,
:data:`_DOCUMENT_CONSOLE`), and its refusal says what was looked for (:meth:`TextReader.why_not`).
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from gradhealth.core import ticks
from gradhealth.core.ticks import tick
from gradhealth.core.words import first_few
from gradhealth.errors import LogError, UploadTooLarge
from gradhealth.logs.readers import shapes
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import (
    MAX_STEP,
    CutLine,
    Points,
    cut_first_line,
    open_log,
    read_line,
)
from gradhealth.logs.series import (
    TRAINED_NAME,
    LogWarning,
    Role,
    RunLog,
    Series,
    classify,
    gan_part,
    make_series,
    record_name,
    several_runs,
)
from gradhealth.logs.sniff import binary_window
from gradhealth.logs.thresholds import LogThresholds

# a number; thousands may be grouped with commas (8,388,608) when every group after a comma has
# exactly 3 digits and the first group does not start with 0 (so "a=1,b=2" and "x=0,5" are not one)
_NUM = (r"[-+]?(?:[1-9]\d{0,2}(?:,\d{3})+(?!,?\d)(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
        r"|[-+]?(?:nan|infinity|inf)")
# "eta: 5:02:49" is a time, not 5, and "Started: 2026-02-03" a date, not 2026; PaddleOCR pads its "{:x<6f}" to "nanxxx", "infxxx"
# a callback printing onto a progress line glues its message to the last value ("loss:
# 44.4110Batch 3: Invalid loss"): a capitalised word after a digit ends the number
# a value before an arrow is the one it replaced (OpenNMT's "Model is improving ppl: inf --> 5.45")
_END = (r"(?:(?<=nan|inf|NaN|Inf|NAN|INF)x+)?(?![ \t]*-{1,2}>)(?:(?![\w.]|:\d|-\d)|(?<=\d)(?=[A-Z][a-z]{2,}[ \t:])"
        # a sentence's full stop after the value ("Mean training loss: 0.6162."), not a version's dot
        r"|(?<=\d)(?=\.(?:[ \t]|$)))")
_SPLIT_WORD = r"(?:train|training|val|vali|valid|validation|eval|test)"  # (Informer's family writes "Vali Loss")
# a word naming which loss ("total loss: 4119.9", "cls loss: 0.56", "running loss: 0.3"): part of its
# name, or every such line reads as one "loss" (PyTorch-YOLOv3 forks print eight of them)
_LOSS_QUALIFIER = (r"(?!(?:the|a|an|of|and|or|in|on|to|for|with|is|at|by|this|that|no|its|per|our|your|my)[ \t])"
                   r"[A-Za-z]{1,16}")
# a metric named by a word before it, as a loss is by its qualifier: "Grad Norm: 0.0000", "Param Norm",
# "Train MSE", "Gate NLL": the word says which (logsweep92 encdec_gradnorm_zero: "Grad Norm" was read as
# "Norm", beside "Train_Loss" kept whole)
_NAMED_METRIC = r"(?:norms?|mse|rmse|mae|nll|ppl|perplexity)\b"
# a sum's terms joined by "+" inside one name before its ":" or "=" (DeblurGAN's "D_real+fake: -0.112",
# a VAE's "loss_ce+kl= 3.1"), each side two characters or more: read as "fake" alone, the name lost
# its player (logsweep62 h06); "a+b=3" in prose stays "b", as before
_PLUS_JOINED = r"(?:(?<=\w\w)\+[^\W\d][\w./-]+)*"
# "name: 1", "name=1", the Trainer's console dicts "'name': 1", and a split word before a name
# ("Validation Loss: 0.07", "Val loss : 10288") that tells a validation loss from a training one
# (and after it: NICE-EEG's "loss val: 6.6089"; a split word before an accuracy: "train acc: 0.50")
_KV = re.compile(rf"(?<![\w./-])(?P<key>loss[ \t]{_SPLIT_WORD}(?=['\"]?\s*[:=])|"
                 # the part named after the word loss (an adversarial autoencoder's "Loss Encoder: -0.0067,
                 # Loss Decoder: 0.0077", a GAN's "Loss D: 0.6"): that part's loss, as "Encoder loss" is
                 # (not a copula, nor the fp16 scaler's "loss scale: 64", nor "loss value: 0.5")
                 rf"loss[ \t](?!(?:is|was|are|scale|scaler|value|values)\b){_LOSS_QUALIFIER}(?=['\"]?[ \t]*[:=])|"
                 rf"(?:{_SPLIT_WORD}[ \t](?=loss\b|acc\b|accuracy\b|{_NAMED_METRIC})|"
                 rf"{_LOSS_QUALIFIER}[ \t](?=loss\b|{_NAMED_METRIC})|"
                 rf"learning[ \t](?=rate\b)|(?:mean|average|avg|total|episode|episodic)[ \t](?=rewards?\b|returns?\b)|"
                 # a mean over a window of episodes: the DQN/Udacity consoles' "Average100 Score: 23.5"
                 rf"(?:mean|average|avg)\d*[ \t](?=scores?\b)|(?:mean|average|avg)\d+[ \t](?=rewards?\b|returns?\b))?"
                 rf"[^\W\d][\w./-]*{_PLUS_JOINED})['\"]?"
                 # a copula before the separator is part of it (Paddle's prints: "loss is: 2.50, acc is: 0.07")
                 rf"(?:[ \t]+(?:is|was|are)(?=[ \t]*[:=]))?(?P<sep>\s*[:=]\s*(?:=\s*)?)"
                 rf"(?P<q>['\"]?)(?P<val>{_NUM})(?P=q){_END}", re.IGNORECASE)  # fairseq's JSON quotes numbers
#: A date's month and day, then its year or time ("Jun  4 2025, 17:57:12", syslog's "Jun  4 17:57:12"):
#: no name and value
_MONTH_DAY = (r"(?!(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
              r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)[ \t]+\d{1,2}(?:st|nd|rd|th)?,?"
              r"[ \t]+(?:\d{4}|\d{1,2}:\d\d)(?!\w))")
_WS = re.compile(rf"(?<![\w./-]){_MONTH_DAY}(?P<key>(?:{_SPLIT_WORD}[ _]|learning[ _](?=rate\b))?"
                 rf"[^\W\d][\w./-]*)[ \t]+(?P<val>{_NUM}){_END}", re.IGNORECASE)
# "<step> <name> <value>", the whole line (build-nanogpt's log.txt: "250 val 6.5893"); a name is not
# a number's spelling (MLflow's "<timestamp> nan <step>" is not one), nor prose ("72 in 194")
_TRIPLE = re.compile(rf"^\s*(?P<step>\d+)[ \t]+(?!(?:nan|inf|infinity|in|of|out|to|at|for|from|and|or|by|on|per|x)[ \t])"
                     rf"(?P<key>[A-Za-z_][\w./-]*)"
                     rf"[ \t]+(?P<val>{_NUM})\s*$", re.IGNORECASE)
# the same three the other way round, a scalar writer's echo: "losses/q1_loss 4.8823843 9000" (a
# JAX/Flax SAC's print of what it sends to TensorBoard); the key names a path or two words, so that
# "Epoch 3 100" or "batch 12 64" is no such line
_TRIPLE_TAIL = re.compile(rf"^\s*(?P<key>[A-Za-z_][\w.-]*[/_][\w./-]*)[ \t]+(?P<val>{_NUM}|nan|inf)[ \t]+"
                          rf"(?P<step>\d+)\s*$", re.IGNORECASE)
_SPLIT_LOSS: dict[str, str] = {"train": "train_loss", "training": "training_loss", "val": "val_loss",
                               "vali": "vali_loss", "valid": "valid_loss", "validation": "validation_loss",
                               "eval": "eval_loss", "test": "test_loss"}
_SPLITS = tuple(_SPLIT_LOSS)
# after a value: "/n" makes it a count "i of n"; "/n = x" gives the ratio x (HellaSwag: 2493/10042 = 0.2483)
_OF = re.compile(rf"/(?P<n>\d+)(?:\s*=\s*(?P<val>{_NUM}){_END})?")
# "Epoch [1/10]", "Step [100/600]": a name and a bracketed count (pytorch-tutorial's prints)
# "Epoch[145] Batch [20]": MXNet's Speedometer, an epoch and the batch within it (not "Epoch [1][50/5808]")
_BRACKET_ONE = re.compile(r"(?<![\w./-])(?P<key>epoch|batch|iter|step)\s*\[\s*(?P<i>\d+)\s*\](?!\s*\[)", re.IGNORECASE)
_BRACKET_COUNT = re.compile(r"(?<![\w./-])(?P<key>[A-Za-z]\w*)\s*:?\s*\[\s*(?P<i>\d+)\s*/\s*(?P<n>\d+)\s*\]")
# an evaluation's line, marked before its first value: "[Eval]", "Test net output", "Validation:"
_EVAL_MARK = re.compile(r"(?<![\w/.-])(?:eval|evaluation|evaluating|val|valid|validation|test|testing)(?![\w/.=-])",
                        re.IGNORECASE)
_INT = re.compile(r"[-+]?\d+")
#: More whole numbers after a name's first, blank-separated: a list printed after its name (an example's
#: ``input_ids: 101 2582 720 3291``, ``input_mask: 1 1 1 1``), no value
_INT_LIST = re.compile(r"(?:[ \t]+\d+){3}(?![\w.])")
# after a tqdm bar's description and percentage: the bar, then the count done out of the total
_TQDM_DONE = re.compile(r"%\|[^|\n]{0,200}\|\s*(?P<i>\d+)/(?P<n>\d+)")
# a log record's level; the "name:integer" tokens before it are the host:rank and logger:lineno
_LEVEL = re.compile(r"(?<![\w.-])\[?(?:INFO|DEBUG|WARNING|WARN|ERROR|CRITICAL|FATAL|TRACE)\]?:?(?=\s|$)")
#: Which process wrote the line (axolotl's "[PID:1234] [RANK:0]") and the record's level (ESPnet's
#: "INFO: 1epoch:train:..."), never a figure of the run; a bracketed "[module.path:190]" is the
#: logger's source line (both may follow the level)
_WHERE_KEYS = frozenset({"pid", "ppid", "tid", "rank", "local_rank", "global_rank", "node_rank", "world_size",
                         "info", "debug", "warning", "warn", "error", "critical", "fatal", "trace"})
#: A timing breakdown on a line (DeepSpeed's "time (ms) | forward: ... | step: 2.08"): its "step" is a time
_TIMINGS = re.compile(r"\btime\s*\((?:ms|s)\)|(?<![\w.])(?:forward|backward)(?:_microstep)?\s*[:=]", re.IGNORECASE)
_LEVEL_WITHIN = 200           # characters: a level later in the line is part of the message
_SOURCE_REF = re.compile(r"\.(?:py|pyx|cu|cuh|c|cc|cpp|cxx|h|hpp|rs|go|java|jl|js|ts|rb|lua|sh)$",
                         re.IGNORECASE)
#: The metrics a sentence may report (``<name> is <number>``): a loss, an accuracy or an error by its
#: usual name; any other ``X is N`` is prose ("total sample is 93858"), never a value
_SENTENCE_METRICS = ("loss|score|(?:current )?(?:learning rate|lr)|acc|accuracy|mse|mae|rmse|perplexity|ppl"
                     "|f1|auc|bleu|psnr|ssim|iou|miou")
#: ... and the words that qualify it (PaddlePaddle's "avg loss so far is 0.0219": a running average)
_SENTENCE_QUALIFIER = r"avg|average|mean|running|total"
_SENTENCE = re.compile(rf"(?<![\w.])(?:(?P<split>{_SPLIT_WORD})[ \t]+)?(?:(?P<qual>{_SENTENCE_QUALIFIER})[ \t]+)?"
                       rf"(?P<key>{_SENTENCE_METRICS})(?:[ \t]+so[ \t]+far)?"
                       rf"(?: (?:at|for|in) (?P<unit>iteration|step|epoch) (?P<step>\d+))? (?:is|was) (?P<val>{_NUM})"
                       rf"(?=%?\.?(?:\s|$)|%?[,;])", re.IGNORECASE)
# (DeepSpeed: "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 64, reducing to 32")
_SCALE_SENTENCE = re.compile(rf"loss scale(?::?\s*(?P<was>{_NUM}),\s*reducing)? to:?\s*(?P<val>{_NUM}){_END}",
                             re.IGNORECASE)
# loguru's default "{name}:{function}:{line} - ": a dotted module path, then the function and line
_LOGURU_REF = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+:$")
_CALL_OPEN = re.compile(r"\w\(")  # a call or repr opens: only then are argument spans worth finding
# one pipe-delimited field "words words: number" (the number ends the field)
_PIPED_KV = re.compile(rf"(?:^|(?<=\|))[ \t]*(?P<key>(?!_)[^\W\d][\w./-]*(?:[ \t]+[A-Za-z(][\w./()-]*)+)[ \t]*:"
                       rf"[ \t]*(?P<val>{_NUM})(?=[ \t]*(?:\||$))", re.IGNORECASE)
_BARE_NONFINITE = re.compile(r"[-+]?(?:nan|inf|infinity)", re.IGNORECASE)
# a bracketed name before its value, a custom logger's "| [Loss] 51566519.44 | [step]    89 |"
_BRACKET_KV = re.compile(rf"(?<![\w\]])\[(?!(?:INFO|DEBUG|WARNING|WARN|ERROR|CRITICAL|FATAL|TRACE)\])"
                         rf"(?P<key>[A-Za-z_][\w./-]*)\][ \t]*:?[ \t]*(?P<val>{_NUM}){_END}", re.IGNORECASE)
# the first line of a JSON document: an object, or an array of objects, arrays, strings or numbers
# ("[2024-01-01 10:00:00] step 1", "[rank0]:" and "[train]" are log lines)
# ("[  5000] | loss 5.55", "[0]\tloss: 0.69" open a console's line: its step, then its fields; a JSON
# document is one value, so a whole array "[0]" with more text after it on its line is none)
_JSON_START = re.compile(r"^\s*(?:\{(?!\s*')|\[\s*(?:$|[{\[\"]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*(?:,|\]\s*$)))")
# terminal colours: ESC [ ... m, and the same with its ESC lost in a copy ("[36m05-07 13:05:33[0m")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\[\d{1,3}(?:;\d{1,3})*m")
# a position within an epoch: mmengine/mmdet "Epoch [1][50/5808]", "Epoch(train) [1][1/6]",
# torchvision's "Epoch: [2]  [1/6]", "Epoch:[0/19](100/24681)", tqdm's "Epoch 476:  1%|...| 1/79"
_EPOCH_POS = re.compile(
    r"\bEpoch(?:\(\w+\))?\s*:?\s*\[\s*(?P<e>\d+)\s*(?:/\s*\d+\s*)?\]\s*[\[(]\s*(?P<i>\d+)\s*/\s*(?P<n>\d+)\s*[\])]"
    r"|\bEpoch\s+(?P<te>\d+):\s+\d+%(?:\|[^|]*\|)?\s*(?P<ti>\d+)/(?P<tn>\d+)"  # Colab: no bar
    # fairseq 0.6: "epoch 005  1000 / 8223"; PyTorch's word_language_model: "| epoch 3 |  200/ 2983 batches"
    r"|\bepoch\s+(?P<fe>\d+)(?::|\s*\|)?\s+(?P<fi>\d+)\s*/\s*(?P<fn>\d+)"
    # two counts in brackets, the epoch's then the batch's: PyTorch's DCGAN example, Swin's
    # "Train: [3/300][370/1251]"
    r"|(?<![\w\]])\[\s*(?P<de>\d+)\s*/\s*\d+\s*\]\s*\[\s*(?P<di>\d+)\s*/\s*(?P<dn>\d+)\s*\]"
    # eriklindernoren's PyTorch-YOLOv3 and PyTorch-GAN: "[Epoch 0/30, Batch 323/1313]"
    r"|\[\s*Epoch\s+(?P<be>\d+)\s*/\s*\d+\s*,\s*Batch\s+(?P<bi>\d+)\s*/\s*(?P<bn>\d+)\s*\]"
    # OpenNMT-py's report: "Epoch  1,    50/21692; acc:   0.41; ppl: 25.4; ..."
    r"|\bEpoch\s+(?P<oe>\d+),\s+(?P<oi>\d+)\s*/\s*(?P<on>\d+);"
    # timm's train.py: "Train: 3 [ 400/1251 ( 32%)]  Loss: 3.95 (4.02) ..."
    r"|\bTrain:\s+(?P<me>\d+)\s+\[\s*(?P<mi>\d+)\s*/\s*(?P<mn>\d+)\s+\(\s*\d+%\)\]"
    # the PyTorch examples' MNIST console (and the scripts copied from it): "Train Epoch: 3
    # [12800/60000 (21%)]\tLoss: 0.41", the samples (or batches) seen so far out of the epoch's
    r"|\bepoch\s*:?\s*(?P<pe>\d+)\s*\[\s*(?P<pi>\d+)\s*/\s*(?P<pn>\d+)\s*(?:\(\s*\d+(?:\.\d+)?\s*%\s*\)\s*)?\]",
    re.IGNORECASE)
#: tqdm's bar over one epoch's batches, its description naming the epoch ("Epoch 2/200:  52%|█████▏ | 93/180",
#: "Epoch 476:  1%|...| 1/79"): its total is the epoch's length
_EPOCH_BAR = re.compile(r"\bEpoch\s+\d{1,9}(?:\s*/\s*\d{1,9})?:?\s+\d{1,3}%\|[^|\n]{0,200}\|\s*\d{1,12}/(?P<n>\d{1,12})\b",
                        re.IGNORECASE)
#: _EPOCH_POS's (epoch, batch, batches) groups, one triple per form
_POSITION_FORMS = (("e", "i", "n"), ("te", "ti", "tn"), ("fe", "fi", "fn"), ("de", "di", "dn"), ("be", "bi", "bn"),
                   ("oe", "oi", "on"), ("me", "mi", "mn"), ("pe", "pi", "pn"))
#: An evaluation's progress, "Test: [  20/48]": how far through one pass over the evaluation set
_EVAL_PROGRESS = re.compile(r"\[\s*(?P<i>\d+)\s*/\s*(?P<n>\d+)\s*\]")
#: A value and its running average, AverageMeter's "Loss: 0.834 (0.928)"
_WITH_AVERAGE = re.compile(rf"(?P<key>[A-Za-z][\w@./-]*)\s*:?\s*(?P<val>{_NUM})\s+\(\s*(?P<avg>{_NUM})\s*\)")
#: Marks an evaluation's report part way through its pass (``Test: [240/242]  Loss 2.9 (3.1)``): held
#: by the reader, and the pass's last one printed kept (its running averages are the pass's figures)
_PASS_KEY = "\x00pass"
#: A labelled list of ``name value`` items after a colon, to the line's end: the T5 script's
#: ``Validation BLEU: BLEU-1 71.65, BLEU-2 65.76, BLEU-3 46.57, BLEU-4 31.75``; a split word in the
#: label names the items' split (``val_BLEU-1``, ``dev_BLEU-1`` from ``Dev BLEU:``)
_LIST_ITEM = rf"[A-Za-z][\w@.-]*[ \t]+(?:{_NUM})"
_LABELLED_LIST = re.compile(rf"(?<![\w@.-])(?P<label>[A-Za-z][\w@.-]*(?:[ \t]+[A-Za-z][\w@.-]*){{0,3}})[ \t]*:[ \t]*"
                            rf"(?P<items>{_LIST_ITEM}(?:[ \t]*,[ \t]*{_LIST_ITEM})+)[ \t]*\.?[ \t]*$", re.IGNORECASE)
_LIST_PAIR = re.compile(rf"(?P<key>[A-Za-z][\w@.-]*)[ \t]+(?P<val>{_NUM})$", re.IGNORECASE)
_LABEL_SPLIT = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "dev": "dev", "eval": "eval", "evaluation": "eval", "test": "test", "testing": "test"}
# ESPnet's trainer: "INFO: 18epoch:train:6376-6750batch: iter_time=0.001, ..., loss=1.270, ..."
_ESPNET_POS = re.compile(r"(?<![\w.])(?P<e>\d+)epoch:(?P<split>[a-z_]+):(?P<a>\d+)-(?P<b>\d+)batch\b")
# a labelled group of "name value" pairs, comma-separated, in brackets: PyTorch-YOLOv3's
# "[Losses: x 0.05, y 0.04, w 0.2, h 0.3, conf 1.4, cls 0.9, total 2.9, recall: 0.1]"
_GROUP = re.compile(r"\[\s*(?P<label>[A-Za-z][\w ]*?)\s*:\s*(?P<body>[^\[\]]+)\]")
_GROUP_PAIR = re.compile(rf"\s*(?P<key>[A-Za-z_][\w./-]*)\s*:?\s+(?P<val>{_NUM}){_END}\s*", re.IGNORECASE)
#: Keras' progress line, "  2/100 [>....] - ETA: 20:11 - loss: nan": the batch counted out of the epoch's
_KERAS_BAR = re.compile(r"^\s*(?P<i>\d+)/(?P<n>\d+) \[[=>.]*\]")
#: An unnamed count ``i/N`` opening a line (``1920/191900 (epoch 1) loss: 8.237``): not a date
#: (``12/05/2020``, or mmengine's default ``04/24 02:03:09``: a month and day before a time of day,
#: no year), a fraction (``1/2.5``) nor a Keras bar (``12/100 [==>...]``, :data:`_KERAS_BAR`)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_LEADING_COUNT = re.compile(rf"\s*(?!{_DAY}/{_DAY}[ \t]+\d{{1,2}}:\d\d(?!\d))"
                            r"(?P<i>\d+)[ \t]*/[ \t]*(?P<n>\d+)(?![\w./:-])(?![ \t]*\[)")
#: A count ``[i/N]`` in brackets of its own (``[110/3000]``, ``[  110/ 3000]``): no name's (``Iter [110/3000]``:
#: :data:`_BRACKET_COUNT`), no part of an "[epoch][batch]" pair (``[0/5][0/1583]``), no date (``[12/05/2020]``,
#: a month and day before a time of day: ``[12/05] 10:00:01``); :func:`_line_values` reads it as a line's step
_BRACKET_LEAD = re.compile(r"(?<![\w\]])"
                           r"\[[ \t]*(?P<i>\d+)[ \t]*/[ \t]*(?P<n>\d+)[ \t]*\]"
                           r"(?![ \t]*\[)(?![ \t]+\d{1,2}:\d\d)")
#: ... nor the second of such a pair written apart (``[0/5] [0/1583]``): a count in brackets just before it
_COUNT_BEFORE = re.compile(r"\[[ \t]*\d+[ \t]*/[ \t]*\d+[ \t]*\][ \t]*$")
_BAR_KEY = "\x00bar"  # its count, until the reader knows whether an epoch header is above it
_BEST_MARK = re.compile(r"(?<![\w/.-])best(?![\w/.=-])", re.IGNORECASE)
_EVAL_SECTION = re.compile(r"\s*(?:eval|evaluation|evaluating|validation|validating|test|testing"
                           r"|final[ \t]+(?:eval|evaluation|results?|metrics|scores?|test))\b", re.IGNORECASE)
#: What comes before a heading's words: Python logging's "INFO:__main__:" or a "2024-01-02 10:00:00 - INFO - "
#: record's head, then marks that are no words (emoji, bullets, rules): "INFO:__main__:📊 Evaluation Results:"
_HEADING_LEAD = re.compile(
    r"(?:.{0,80}?(?<![A-Za-z])(?:INFO|DEBUG|WARNING|WARN|ERROR|CRITICAL)(?![A-Za-z])\]?"
    r"(?::[\w.<>-]*:|[ \t]*[-:|][ \t]*(?:[\w.<>]+(?::\d+)?[ \t]*[-:|])?)?)?[\W_]*")
_TRACEBACK = "Traceback (most recent call last):"
#: A traceback's last line, the exception: ``TypeError: expected str ...``, ``torch.cuda.OutOfMemoryError:
#: ...``, a bare ``KeyboardInterrupt`` (a dotted name, then a colon; or a capitalised name alone)
EXCEPTION_LINE = r"(?:[A-Za-z_]\w*\.)*(?:[A-Za-z_]\w*:(?:\s|$)|[A-Z]\w*\s*$)"
_EXCEPTION_LINE = re.compile(EXCEPTION_LINE)
# what frameworks print when a loss or gradient goes NaN/Inf and they stop or complain (not the
# loss scaler's routine "Gradient overflow. Skipping step"): Keras' TerminateOnNaN, TensorFlow's
# CheckNumerics, detectron2, fairseq's fp16 scaler giving up, torch.autograd's anomaly mode,
# TensorFlow's NanTensorHook ("Model diverged with loss = NaN.", then NanLossDuringTrainingError)
_NONFINITE_EVENT = re.compile(
    r"Invalid loss, terminating training|\bis inf or nan\b|Tensor had (?:NaN|Inf) values"
    r"|Loss became infinite or NaN|Minimum loss scale reached|returned nan values in its \w+ output"
    r"|Model diverged with loss = NaN|NanLossDuringTrainingError"
    # detectron2's check of its predictions: "Predicted boxes or scores contain Inf/NaN. Training has diverged."
    r"|contain (?:Inf/NaN|NaN/Inf)\. Training has diverged",
    re.IGNORECASE)
_EVENT_HINTS = ("nan", "NaN", "Invalid loss", "Tensor had", "loss scale")
_MAX_PENDING = 10_000         # lines with values before the first step kept aside (see TextReader.read)

STEP_KEYS = {"step", "s", "iter", "iters", "iteration", "it", "global_step", "steps", "train/global_step",
             "num_updates",  # fairseq's update count
             "eit"}  # VSE++'s global iteration ("Eit 12400  lr 0.0002  Le 25.6"), and its image-text descendants
_POSITION_KEYS = STEP_KEYS | {"epoch"}  # where a line is in the run, not what it measured
#: Position names in the plural: after a count's word (:data:`_COUNT_BANNER`) a total, whatever the separator
_COUNTED_KEYS = frozenset({"steps", "iters", "iterations", "epochs"})
#: The most digits a step, an epoch or a count is read with: 10^18 is past any run's steps (and past
#: 2^53, where steps are refused), and a longer run of digits (a hash, an id) is no count; ``int()``
#: of one over 4,300 digits would raise Python's own error
_MAX_COUNT_DIGITS = 18


def _count(digits: str | bytes) -> int | None:
    """The whole number a run of digits (``\\d+``) spells; None past :data:`_MAX_COUNT_DIGITS` digits."""
    return int(digits) if len(digits) <= _MAX_COUNT_DIGITS else None


def _total(digits: str) -> float | None:
    """:func:`_count` as the float a count's total is kept as (None: no total)."""
    n = _count(digits)
    return None if n is None else float(n)


def _bad_step(text: str) -> str | None:
    """Why ``text``, a line's step, is no step (not a finite number, or a whole part of more than
    :data:`_MAX_COUNT_DIGITS` digits), else None."""
    whole = text.lstrip("+-").split(".")[0].split("e")[0].split("E")[0]
    if len(whole) > _MAX_COUNT_DIGITS and whole.isdigit():
        return f"the step has {len(whole):,} digits, more than any run counts"
    if not math.isfinite(float(text)):
        return f"the step is {text!r}, not a finite number"
    return None
# a script announcing its stages ("📚 Step 1: Loading dataset...", "Step 4: Creating trainer"):
# a step number followed by words and nothing measured
_STEP_BANNER = re.compile(r"(?<![\w./-])step\s*\d+\s*[:.)-]\s*[A-Za-z]+(?:\s+[A-Za-z]+)", re.IGNORECASE)
#: A dataset's size or a setting printed alone on its line ("Number of training samples: 5011",
#: "Max Sequence Length: 3", "Vocabulary size: 3000", "num_train_samples = 5000"): how much data or how
#: big a setting, not what a run measured. Its name (the words of its key and the up to 3 words before
#: it) ends in one of these nouns; a size, a dimension and a vocabulary are settings by their noun alone
_SETTING_NOUNS = frozenset({"size", "dim", "dimension", "vocab", "vocabulary"})
#: ... a count of data or a length only behind a word saying how many or of which data (a lone
#: "Episode length: 200" or "Correct samples: 950" is measured)
#: (tokens are not among them: a run counts those it has seen, OLMo's "throughput/total_tokens=8,388,608")
_COUNTED_NOUNS = frozenset({"samples", "examples", "images", "sequences", "sentences", "documents", "instances",
                            "records", "classes", "parameters", "params", "length", "len"})
_COUNT_WORDS = frozenset({"number", "num", "n", "total", "max", "maximum", "min", "minimum", "vocab", "vocabulary",
                          "dataset", "data", "corpus", "batch", "seq", "sequence", "context", "input", "train",
                          "training", "val", "valid", "validation", "test", "testing", "eval", "evaluation", "dev"})
#: words that make it a measurement after all ("Mean episode length", "avg_seq_len")
_STATISTIC_WORDS = frozenset({"mean", "avg", "average", "median", "std", "per"})
_WORDS_BEFORE = re.compile(r"(?:[A-Za-z]+[ \t]+){1,3}$")
_NAME_WORDS = re.compile(r"[A-Za-z]+")


#: A Keras fit's or evaluate()'s count opening its line, a bar (``313/313 [====]``) or verbose=2's
#: ``6000/6000 - 3s - loss: ...``: ``(count, total)``
_FIT_COUNT = re.compile(r"^\s*(\d+)/(\d+)(?=\s*\[|\s+-\s)")


def _size_value(key: str, value: str) -> bool:
    """Whether ``key: value`` among a line's values is a size by its name (``train_size``, ``test_size``,
    ``batch_size``: its last word a size, dimension or vocabulary) holding a whole number: a setting or
    the data's size, not a value the run measured (a summary dict's ``"train_size": "60000"``)."""
    words = [w.lower() for w in _NAME_WORDS.findall(key)]
    return bool(words) and words[-1] in _SETTING_NOUNS and bool(_INT.fullmatch(value.strip()))


def _size_print(line: str, key: str, at: int) -> bool:
    """Whether ``key``, the only value of ``line`` and named from ``at``, is a dataset's size or a
    setting's (:data:`_SETTING_NOUNS`, :data:`_COUNTED_NOUNS`) rather than a value the run measured."""
    words = [w.lower() for w in _NAME_WORDS.findall(key)]
    if not words or "/" in key:
        return False  # (a name in a logger's scope, "train/num_samples", is a metric it logs)
    before = _WORDS_BEFORE.search(line, max(0, at - 64), at)
    if before is not None:
        words = [w.lower() for w in _NAME_WORDS.findall(before[0])] + words
    noun, qualifiers = words[-1], set(words[:-1])
    if qualifiers & _STATISTIC_WORDS:
        return False
    return noun in _SETTING_NOUNS or (noun in _COUNTED_NOUNS and bool(qualifiers & _COUNT_WORDS))


# a trainer's start-up banner counts steps and epochs ("Total optimization steps = 1,548",
# "Gradient Accumulation steps = 8", "Num Epochs = 3"): the word before the name says so
_COUNT_BANNER = re.compile(r"(?<![\w.])(?:total|num|number(?:[ \t]+of)?|max|maximum|accumulation|optimization|"
                           r"warmup|warm-up|logging|save|eval|evaluation|training|train)[ \t]+$", re.IGNORECASE)  # alone on its line
ROLES: dict[str, Role] = {}
for _names, _name_role in (
    (("loss", "train_loss", "trl", "training_loss", "tr_loss", "train/loss", "lm_loss",
      "xent"), "loss"),  # OpenNMT-py's training cross-entropy
    (("val_loss", "tel", "eval_loss", "valid_loss", "validation_loss", "test_loss", "val/loss",
      "eval/loss", "dev_loss"), "val_loss"),
    (("grad_norm", "norm", "gnorm", "grad", "total_norm", "gradnorm", "grad_norm_total",
      "train/grad_norm", "global_grad_norm"), "grad_norm"),
    (("lr", "learning_rate", "train/learning_rate", "lrate"), "learning_rate"),
):
    for _n in _names:
        ROLES[_n] = _name_role  # type: ignore[assignment]  # the tuple's strings are Role literals
_WS_KEYS = STEP_KEYS | set(ROLES) | {"epoch", "train_acc", "val_acc", "accuracy", "acc", "perplexity", "ppl",
                                      "episode", "episodes"}
#: An agent's counters on an RL console's line beside its episode (``Episode 100\tFrame 2457\tAverage100
#: Score: 24.57``, ``Episode: 12 Timestep: 3400``): the environment steps taken, the line's step (the x
#: axis Stable-Baselines3 plots); read after a space only where the line names its episode
_ENV_STEP_KEYS = frozenset({"frame", "frames", "timestep", "timesteps", "total_timesteps", "env_steps"})
_EPISODE_KEYS = frozenset({"episode", "episodes"})
_EPISODE_ON_LINE = re.compile(r"(?<![\w./-])episodes?\s*[:=]?\s*\d", re.IGNORECASE)
# a loss's part named as an identifier and its value by spaces only (MAR's "loss_source 0.901
# loss_total 53.564"): a name no prose uses, so read like the names above
_WS_LOSS_PART = re.compile(r"^(?=[a-z]\w*[_/])(?:\w+[_/])*loss(?:[_/]\w+)*$|^\w+_loss$")
_MAX_TB_LINES = 200
MAX_LINE = 16 * 2**20
#: A line longer than this many characters is read for no values (a dump of a tensor or a config
#: printed on one line; a training log's line is a few hundred): each is skipped, with a note
MAX_VALUES_LINE = 2**20
_NOT_LOGS = (".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".py", ".sh", ".html", ".xml")
#: Documents that are a console's output saved as text (a notebook's or a book's training runs kept
#: as .md) only where most of their lines carry values, or a long stretch of them does; a README's
#: prose with a number in it is not.
_DOCUMENTS = (".md", ".markdown", ".rst")
_DOCUMENT_SHARE = 0.5
#: ... or where this many lines one after another do (a log.md whose training lines follow a long
#: model summary: build-nanogpt's 26 "step N | loss: ..." lines after 66 of layers, logsweep40)
_DOCUMENT_BLOCK = 10
#: ... or where this many lines in a row read as a console's (:func:`_console_stretch`): a few lines
#: of one pasted into a README among its prose, fenced or not (logsweep83 dcgan_pokemon)
_DOCUMENT_CONSOLE = 3


#: A run's step counter out of its total: PaddleSeg's "iter: 10/1000", "step 300/5000", "[Iter 5/100]".
_COUNTER = re.compile(r"(?<![\w./-])(?:iter|iters|iteration|step|steps|global_step)\s*[:=]?\s*\[?\s*(\d+)\s*/\s*(\d+)",
                      re.IGNORECASE)


#: An epoch counted out of a total on a line of its own kind (Keras' "Epoch 3/10" header).
_EPOCH_COUNTER = re.compile(r"(?<![\w./-])epoch\s*[:=]?\s*\[?\s*(\d+)\s*/\s*(\d+)", re.IGNORECASE)
#: An RL console's episode counted out of its total (``Episode 3/10 | Loss: 2.4``, ``Episode: 3/10``): where no
#: step or epoch is counted, its run's counter as an epoch's is (a launch appended to the log counts again from 1)
_EPISODE_COUNTER = re.compile(r"(?<![\w./-])episodes?\s*[:=]?\s*\[?\s*(\d+)\s*/\s*(\d+)", re.IGNORECASE)
_LOSS_BYTES = re.compile(rb"loss", re.IGNORECASE)

#: A step counted out of its total in words: "step 110 of 3000", "Iteration 5 of 200".
_COUNTER_OF = re.compile(r"(?<![\w./-])(?:iter|iteration|step|global_step)\s*[:=#]?\s*(\d+)[ \t]+of[ \t]+(\d+)(?![\w.])",
                         re.IGNORECASE)
#: A start-up banner's planned length in steps, alone on its line but for words: mlx-lm's "Starting
#: training..., iters: 3000", "Total optimization steps = 1,548", "max_steps: 5000".
_PLANNED_BANNER = re.compile(
    r"(?<![\w./-])(?:(?:(?:total|max|maximum|num|number[ \t]+of)[ \t_]+(?:(?:optimization|training|train)[ \t_]+)?"
    r"(?:steps|iters|iterations))|max_steps|max_iters|num_iters|total_steps|total_iters|train_iters|training_steps|"
    r"iters)[ \t]*[:=][ \t]*(\d{1,3}(?:,\d{3})+|\d+)(?![\w.,])", re.IGNORECASE)


def _planned_in(segment: str, before_steps: bool, planned: dict[str, float]) -> None:
    """Note in ``planned`` (by unit: ``step``, ``epoch``) the largest total the counters of one line
    name (``Epoch 3/50``: 50 epochs; ``step 110 of 3000``: 3000 steps), and where no step has been read
    yet, a start-up banner's planned steps (``iters: 3000``). A step counted out of its total as the
    line's own step (``Iter 110/3000``) is noted where it is placed (:meth:`TextReader._segment_read`)."""
    found: list[tuple[str, str | None]] = []
    if "poch" in segment and "/" in segment:
        found += [("epoch", m[2]) for m in _EPOCH_COUNTER.finditer(segment)]
    if " of " in segment:
        found += [("step", m[2]) for m in _COUNTER_OF.finditer(segment)]
    if before_steps and ("=" in segment or ":" in segment):
        found += [("step", m[1].replace(",", "")) for m in _PLANNED_BANNER.finditer(segment)]
    for unit, digits in found:
        n = _total(digits) if digits else None
        if n:
            planned[unit] = max(planned.get(unit, 0.0), n)

#: The fewest counted lines on either side of a run boundary (:func:`_run_starts`).
_MIN_RUN_LINES = 3
#: Trials of a search in one console judged each on its own: the last this many.
_MAX_TRIALS = 50


_KERAS_HEADER = re.compile(r"^\s*Epoch\s+(\d+)/\d+\s*$")
#: The same header, its epoch and its total (:func:`_bad_epoch_header`).
_KERAS_COUNT = re.compile(r"^\s*Epoch\s+(\d+)/(\d+)\s*$")
#: The first line of a Keras model summary (``Model: "sequential_1"``): a fit's set-up, its run's first line.
_MODEL_HEADER = re.compile(rb'^\s*Model:\s*"[^"\n]*"\s*$')
#: A model summary's parameter counts, its last lines (Keras 2's ``Total params: 50,240``, Keras 3's
#: ``Total params: 50,240 (196.25 KB)``, ``Optimizer params: 2 (12.00 B)``).
_PARAMS_LINE = re.compile(rb"^\s*(?:Total|Trainable|Non-trainable|Optimizer)\s+params:\s*[\d,]+")
#: A model summary's table has at most this many lines before its parameter counts (else it is none).
_MAX_SUMMARY_LINES = 10_000


def _bad_epoch_header(epoch: str, total: str) -> str | None:
    """Why a Keras ``Epoch i/N`` header (``epoch``, ``total``: its digits) counts no epoch of a run:
    an epoch of more than :data:`_MAX_COUNT_DIGITS` digits or from 2^53 on (epochs no longer told
    apart), or a total of 0 epochs (none to count); None for a header that places its lines (a total
    too long to read is only no total)."""
    i = _count(epoch)
    if i is None:
        return f"its epoch has {len(epoch):,} digits, more than any run counts"
    if i >= MAX_STEP:
        return "its epoch is 2^53 or more, where epochs are no longer told apart"
    if _count(total) == 0:
        return "it counts out of a total of 0 epochs"
    return None


#: A printed table's header line: two or more column names, no number among them (pandas'
#: ``        feature  importance``)
_FRAME_HEADER = re.compile(rb"^[ \t]*[A-Za-z_][\w.%()-]*(?:[ \t]+[A-Za-z_][\w.%()-]*)+[ \t]*\r?\n?$")
#: A row of a printed pandas frame or series: its index (0, 1, 2, ...), a label in words, then numbers
#: (``3      income          240``)
_FRAME_ROW = re.compile(rb"^[ \t]*(\d{1,9})[ \t]+([A-Za-z_][^\t\r\n]*?)((?:[ \t]+[-+]?(?:\d[\d.]*|\.\d+)"
                        rb"(?:[eE][-+]?\d+)?)+)[ \t]*\r?\n?$")
#: The fewest rows of such a table
_MIN_FRAME_ROWS = 3


class _FrameTables:
    """The tables a script prints with pandas (a LightGBM or XGBoost run's feature importances: a header
    ``feature  importance``, then ``0  f_12  312``, ``1  f_3  298``, ...): under a header of column
    names, at least :data:`_MIN_FRAME_ROWS` rows indexed 0, 1, 2, ... in turn, each labelled by a word
    of its own. Each row is one item of a table, not a step of the run: read as values, each label
    became a series of one point (logsweep98 #2: hundreds of them)."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int]] = []
        self._header: int | None = None  # the line before, where it was a header
        self._rows: list[int] = []       # the open table's rows (their lines)
        self._labels: set[bytes] = set()

    def line(self, lineno: int, raw: bytes) -> None:
        row = _FRAME_ROW.match(raw) if (self._header is not None or self._rows) else None
        if row is not None and int(row[1]) == len(self._rows) and row[2].strip() not in self._labels:
            self._rows.append(lineno)
            self._labels.add(row[2].strip())
            return
        self._end()
        self._header = lineno if _FRAME_HEADER.match(raw) else None

    def _end(self) -> None:
        if len(self._rows) >= _MIN_FRAME_ROWS:
            self.blocks.append((self._rows[0] - 1, self._rows[-1]))
        self._header, self._rows, self._labels = None, [], set()

    def done(self) -> list[tuple[int, int]]:
        self._end()
        return self.blocks


class _ModelSummaries:
    """The Keras model summaries of a console (``Model: "sequential_1"``, its table of layers, then
    ``Total params: 50,240``, ``Trainable params: ...``, ``Non-trainable params: 0``): each the set-up
    of the fit after it, whose parameter counts are no series. A summary runs from its ``Model:`` line
    to its last parameter count."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int]] = []  # (first line, last line) of each summary
        self._first: int | None = None   # the open summary's ``Model:`` line
        self._last: int | None = None    # its last parameter count so far

    def line(self, lineno: int, raw: bytes) -> None:
        if b"Model:" in raw and _MODEL_HEADER.match(raw):
            self._end()
            self._first = lineno
            return
        if self._first is None:
            return
        if _PARAMS_LINE.match(raw):
            self._last = lineno
        elif self._last is not None:
            self._end()  # the first line after its parameter counts
        elif self._last is None and lineno - self._first > _MAX_SUMMARY_LINES:
            self._first = None  # no parameter counts: no summary

    def _end(self) -> None:
        if self._first is not None and self._last is not None:
            self.blocks.append((self._first, self._last))
        self._first = self._last = None

    def done(self) -> list[tuple[int, int]]:
        self._end()
        return self.blocks
_HEAD_BYTES = 1 << 16


def _epoch_above(path: Path, limits: ReadLimits) -> float | None:
    """The epoch of Keras progress lines pasted above a console's first ``Epoch N/M`` header: the
    end of epoch N - 1 (an excerpt cut in the middle of a run). None where the header comes first,
    or the head of the file has none."""
    with open_log(path, limits) as f:
        head = f.read(_HEAD_BYTES)
    bars = False
    for ln in _head_lines(head):
        m = _KERAS_HEADER.match(ln)
        if m is not None:
            first = _count(m[1])
            return float(first - 1) if bars and first is not None else None
        bars = bars or _KERAS_BAR.match(ln) is not None
    return None


#: The fewest points of a run's loss (or gradient norm) that the trend checks judge: the
#: ``insufficient_data`` bar's default (:attr:`LogThresholds.min_points`). Of several appended runs
#: that are not trials, a last one shorter than this (an aborted start) is not the one judged.
_JUDGED_POINTS: int = LogThresholds.model_fields["min_points"].default
#: Earlier runs read, at most, looking for one long enough to judge: each is a pass over the file.
_MAX_FALLBACKS = 8
#: Names an ``overwritten_values`` warning names (of at most :data:`_MAX_NAMED` kept).
_SHOWN_NAMES = 5
_MAX_NAMED = 100
#: A line that may hold a NaN or Inf value (``nan``, ``NaN``, ``inf``, ``-Infinity``, ``nanxxx``).
_NONFINITE_BYTES = re.compile(rb"nan|inf", re.IGNORECASE)
#: What training computes: a NaN/Inf in one of these (not in an accuracy or a speed) is a failure.
_TRAINED_ROLES = frozenset({"loss", "val_loss", "grad_norm", "layer_grad_norm", "clipped_grad_norm", "weight_norm"})


def _judged_points(log: RunLog) -> tuple[int, str]:
    """(finite points, name) of the longest of a run's training loss and gradient norm: what the
    ``insufficient_data`` check counts against its bar; (0, "a loss") where it logs neither."""
    main = [s for s in (log.first("loss"), log.first("grad_norm")) if s is not None]
    counts = [(int(np.sum(np.isfinite(s.values))), s.name) for s in main]
    return max(counts, key=lambda c: c[0]) if counts else (0, "a loss")


def _last_line(stop: int | None) -> str:
    """The last line of a stretch that ends before ``stop`` (None: at the end of the file)."""
    return "the end" if stop is None else str(stop - 1)


def _counted_to_its_total(path: Path, limits: ReadLimits, start: int) -> bool:
    """Whether the console's lines from ``start`` on count their steps or epochs up to the total
    they count out of (``Epoch 5/5``, ``iter: 1000/1000``): a run that ran to its end."""
    with open_log(path, limits) as f:
        for lineno, raw in enumerate(iter(lambda: read_line(f, MAX_LINE), b""), 1):
            if ticks.armed:
                tick()
            if lineno < start or b"/" not in raw:
                continue
            text = raw.decode("utf-8", "replace")
            m = _COUNTER.search(text) or _EPOCH_COUNTER.search(text) or _EPISODE_COUNTER.search(text)
            done, total = (_count(m[1]), _count(m[2])) if m is not None else (None, None)
            if done is not None and total is not None and 0 < total <= done:
                return True
    return False


def _trained_name(name: str) -> bool:
    """Whether a NaN/Inf in ``name`` means training broke (a loss, a gradient or weight norm): the
    ``nonfinite`` check's test of a series, by name; a best-so-far (``best_loss: inf`` before any)
    is no failure."""
    role = classify(name)[0]
    if "best" in name.lower() or role == "update_ratio":
        return False
    return role in _TRAINED_ROLES or TRAINED_NAME.search(name) is not None


def _skipped_nonfinite(path: Path, limits: ReadLimits, spans: list[tuple[str, int, int | None]],
                       judged: int) -> list[LogWarning]:
    """A ``skipped_nonfinite`` note for each stretch of ``spans`` ((which run, first line, the line
    after its last or None)) of a console that holds a NaN/Inf of a trained quantity: its first one,
    by line, name and step. One cheap pass over the file (only lines with ``nan``/``inf`` in them
    are parsed); ``judged``: the first line of the run that is read."""
    if not spans:
        return []
    spans = sorted(spans, key=lambda sp: sp[1])
    firsts = [sp[1] for sp in spans]
    found: dict[int, LogWarning] = {}
    with open_log(path, limits) as f:
        for lineno, raw in enumerate(iter(lambda: read_line(f, MAX_LINE), b""), 1):
            if ticks.armed:
                tick()
            if _NONFINITE_BYTES.search(raw) is None:
                continue
            i = bisect.bisect_right(firsts, lineno) - 1
            if i < 0 or i in found:
                continue
            label, first, stop = spans[i]
            if stop is not None and lineno >= stop:
                continue  # (the run that is read, between two skipped ones)
            values = _all_values(raw.decode("utf-8", "replace").rstrip("\r\n"))[0]
            bad = next(((k, v) for k, v in values if _trained_name(k) and not math.isfinite(_as_float(v))), None)
            if bad is None:
                continue
            at = [f"{k} {v}" for k, v in values if k.lower() in _POSITION_KEYS]
            side = "before" if first < judged else "after"
            found[i] = LogWarning(
                "skipped_nonfinite",
                f"{path.name} line {lineno}: {bad[0]} = {bad[1]}{' at ' + ', '.join(at) if at else ''}, in {label} "
                f"(lines {first}-{_last_line(stop)}), a run appended {side} the one read (from line {judged}), "
                "which is not judged for trends", where=f"line {lineno}")
            if len(found) == len(spans):
                break
    return [found[i] for i in sorted(found)]


def _as_float(value: str) -> float:
    """``value`` as a number; 0.0 (finite) where it is none."""
    try:
        return float(value)
    except ValueError:
        return 0.0


#: A line that opens a YAML mapping: it ends in a name and a colon (``TRAIN:``, a logging record's
#: ``... - Train config: DATA:``).
_YAML_OPENER = re.compile(rb"(?:^|\s)[A-Za-z_][\w.-]*:[ \t]*\r?\n?$")
#: A line of a YAML mapping (``  lr: 0.01``, ``MODEL:``) or of a list in one (``  - 0.5``): its name, its value.
_YAML_LINE = re.compile(rb"^[ \t]*(?:(?P<key>[A-Za-z_][\w.-]*):(?:[ \t]+(?P<val>[^\r\n]*?))?|-[ \t][^\r\n]*)[ \t]*\r?\n?$")
_YAML_NUMBER = re.compile(rb"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf|infinity)", re.IGNORECASE)
#: A config's repr opening after its name: ``Using config: {``, ``args = {``, ``hparams: HParams(``
_CONFIG_OPEN = re.compile(rb"(?<![\w.])(?:config|configuration|cfg|args|arguments|hparams|hyperparameters|flags|"
                          rb"options|opts|settings)['\"]?[ \t]*[:=][ \t]*(?:[A-Za-z_][\w.]*)?[{(]", re.IGNORECASE)
#: The most lines a config's repr spans
_MAX_CONFIG_REPR = 200
#: The fewest lines of a config dump.
_MIN_CONFIG_LINES = 3


class _ConfigBlocks:
    """The config dumps of a console (a YAML config printed at start-up, again by each script appended to
    the same log: ``Train config: DATA:``, then ``  height: 416``, ``TRAIN:``, ``  lr: 0.01``...): a line
    that opens a mapping, then at least :data:`_MIN_CONFIG_LINES` lines of it, one of them a setting that
    is no number (``optimizer: SGD``, ``device: cuda:0``), none a loss or a position (``epoch: 3``: the
    metrics of an epoch printed one per line are no config). Their values are no series."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int]] = []  # (first line, last line) of each dump
        self._open = False    # the line before opens a mapping
        self._lines: list[int] = []
        self._worded = self._measured = False  # a setting that is no number; a loss or a position
        self._dict_from: int | None = None  # the first line of a config's repr still open
        self._depth = 0                     # its brackets still open

    def _dict(self, lineno: int, raw: bytes) -> None:
        """A config printed as a repr after its name (TF Estimator's ``Using config: {'_num_ps_replicas':
        0, ...}``, ``args = {...}``, ``hparams: HParams(...)``), on one line or several (a protobuf field
        printed inside it breaks the line): from its opening bracket to the one that closes it, at most
        :data:`_MAX_CONFIG_REPR` lines (one not closed by then is none); its values are settings, no series (logsweep85 bertsim_nohup:
        170 of 227 series were its RunConfig's, printed before training and again before evaluation)."""
        if self._dict_from is None:
            self._end()
            m = _CONFIG_OPEN.search(raw)
            assert m is not None  # (the caller's test)
            self._dict_from, self._depth = lineno, 0
            raw = raw[m.end() - 1:]
        self._depth += sum(raw.count(c) for c in (b"{", b"(", b"[")) - sum(raw.count(c) for c in (b"}", b")", b"]"))
        if self._depth <= 0:
            # the lines after its first (that line's own repr is no value as a call's arguments are not,
            # :func:`_line_values`, and its other values are read: "Config: {...}, Epoch 1/8, Loss: 0.5")
            if lineno > self._dict_from:
                self.blocks.append((self._dict_from + 1, lineno))
            self._dict_from = None
        elif lineno - self._dict_from >= _MAX_CONFIG_REPR:
            self._dict_from = None  # never closed: no repr (its lines are read)

    def line(self, lineno: int, raw: bytes) -> None:
        if self._dict_from is not None or (b"{" in raw or b"(" in raw) and _CONFIG_OPEN.search(raw) is not None:
            self._dict(lineno, raw)
            return
        m = _YAML_LINE.match(raw) if (self._open or self._lines) else None
        if m is None:
            self._end()
            self._open = b":" in raw and _YAML_OPENER.search(raw) is not None
            return
        self._lines.append(lineno)
        val = (m["val"] or b"").strip()
        if m["key"] is not None and val and _YAML_NUMBER.fullmatch(val) is None:
            self._worded = True
        if not self._measured and any(k.lower() in _POSITION_KEYS or _is_loss(k)
                                      for k, _ in pairs(raw.decode("utf-8", "replace"))):
            self._measured = True

    def _end(self) -> None:
        if len(self._lines) >= _MIN_CONFIG_LINES and self._worded and not self._measured:
            self.blocks.append((self._lines[0], self._lines[-1]))
        self._lines, self._worded, self._measured = [], False, False

    def done(self) -> list[tuple[int, int]]:
        self._end()
        return self.blocks


def _merged_blocks(blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``blocks`` ((first line, last line) stretches) in order, those that overlap or touch as one."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(blocks):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _run_starts(path: Path, limits: ReadLimits, config: _ConfigBlocks | None = None,
                summaries: _ModelSummaries | None = None, tables: _FrameTables | None = None) -> tuple[list[int], str | None, int, frozenset[int]]:
    """(the lines the runs start at, how trials were told apart) of a console that several runs
    were appended to: a run counts its steps out of one total (``iter: 10/1000``), or its epochs
    where no step is counted (Keras' ``Epoch 3/10``), and a total that never comes back (``iter:
    10/50``, then ``iter: 10100/50000`` for a resumed run; ``Epoch 10/10``, then ``Epoch 1/5`` for a
    fine-tune) starts another, and so does an epoch counter that starts again at its first epoch
    with the same total (a hyperparameter search's ``Epoch 30/30``, then ``Epoch 1/30`` for its next
    trial; a resumed run, which goes on from a later epoch, is still one). A total that alternates
    with another (training's 98 iterations an epoch, evaluation's 25) is one run's, and so is a
    last stretch of lines with no loss on them (a final test). Lines with a loss but no counter
    (Keras' progress lines) count for the stretch they are in. Trials: runs that counted to their own
    total before the next started (``Epoch 30/30``, then ``Epoch 1/30``: a search's trials; or
    ``Epoch 30/30``, then ``Epoch 1/20``: another fit, whatever its total), each complete, not one
    cut short (a crash and a fresh start); a console that counts nothing has trials where
    :class:`_Restarts` finds them. ([1], None, 0, {}) for one run; the second item is None where the
    runs are not trials (no run before the last counted to its own total); the third, how many runs
    came before the first start (only past the places :class:`_Restarts` keeps: the first start is
    then not line 1); the fourth, the first lines of the trials' runs that stopped before their own
    totals (each cut short and superseded by the next: not judged). ``config`` and ``summaries`` are
    given every line (the console's config dumps, its Keras model summaries), and so is ``tables``
    (its printed pandas tables). A Keras fit after a model summary of its own, counted
    from its first epoch to its total, after a run that counted to its own total, is a run however
    short (``Model: "seq_2"``, then ``Epoch 1/2``, ``Epoch 2/2``): another model's, never merged into
    the run before or after it; the fewest lines of :data:`_MIN_RUN_LINES` bound only the others.
    An epoch counter out of range (:func:`_bad_epoch_header`: ``Epoch 0/0``) counts nothing."""
    # [total, first line, counted lines, lines with a loss, the last epoch counted, started again,
    # the first epoch counted, a model summary of its own comes before it]
    # (then the stretch's first count and its highest, of any counter: a step's too; and whether that
    # count went back within the stretch: a step counted within each epoch, whose total is no run's end)
    segments: list[list[int]] = []
    header: int | None = None  # a Keras model summary's first line since the last counted or loss line
    restarts = _Restarts()
    # launch banners (:func:`_launch_banners`): the worded lines since the last counted line, those before
    # the first counted line, and for each stretch the lines of that kind before it where its counter started
    # again at (or below) the first count of the stretch before it (empty where it did not)
    gap: deque[tuple[int, bytes]] = deque(maxlen=_BANNER_GAP)
    opening: set[bytes] = set()
    banners: list[list[tuple[int, bytes]]] = []
    tentative: list[bool] = []  # a stretch started only where a banner would start it
    with open_log(path, limits) as f:
        for lineno, raw in enumerate(iter(lambda: read_line(f, MAX_LINE), b""), 1):
            if ticks.armed:
                tick()
            if config is not None:
                config.line(lineno, raw)
            if summaries is not None:
                summaries.line(lineno, raw)
            if tables is not None:
                tables.line(lineno, raw)
            m = epoch = None
            if b"/" in raw:
                text = raw.decode("utf-8", "replace")
                m = _COUNTER.search(text)
                if m is None:
                    m = epoch = _EPOCH_COUNTER.search(text) or _EPISODE_COUNTER.search(text)
                if m is not None and (_count(m[1]) is None or _count(m[2]) is None):
                    m = epoch = None  # a run of digits too long to be a count (a hash): none
                elif epoch is not None and _bad_epoch_header(epoch[1], epoch[2]) is not None:
                    m = epoch = None  # an epoch counter out of range (``Epoch 0/0``): none
            if m is None:
                loss = _LOSS_BYTES.search(raw) is not None
                if not loss and (key := _banner_key(raw)) is not None:
                    gap.append((lineno, key))
                    if not segments and len(opening) < _BANNER_GAP:
                        opening.add(key)
                if segments and loss:
                    segments[-1][3] += 1
                if not segments:
                    restarts.line(lineno, raw, loss)
                if loss:
                    header = None  # (a model summary above a loss line heads nothing)
                elif raw.lstrip().startswith(b"Model:") and _MODEL_HEADER.match(raw):
                    header = lineno
                continue
            n = int(m[2])  # (at most _MAX_COUNT_DIGITS digits: above)
            i = int(m[1]) if epoch is not None else -1
            # the epoch counter back at its first epoch after the stretch before counted its own epochs
            # on: a run of its own whatever its total (Keras' fits of 100, then 500, then 100 epochs);
            # the same total counted again from its first epoch is one too, even where the stretch before
            # was cut short (an epoch of another total within it, counted from 1, is no run's start);
            # after a model summary of its own, another model's fit, even where the run before counted
            # a single epoch (fits of ``Epoch 1/1`` each)
            last = segments[-1][4] if segments else -1
            again = (epoch is not None and i <= 1 and (last > 1 or (header is not None and i <= last))
                     and (segments[-1][0] == n or segments[-1][6] < last or header is not None))
            # a step counted out of its total beside the epoch (YOLOX's "epoch: 1/300, iter: 10/47"): the
            # epoch back at where the stretch began after it advanced starts a run too (a fresh start after
            # "Training of experiment is done", never a resume, which goes on from a later epoch)
            inner = _EPOCH_COUNTER.search(text) if epoch is None else None
            ie = _count(inner[1]) if inner is not None else None
            back = (ie is not None and bool(segments) and segments[-1][0] == n and segments[-1][8] >= 0
                    and ie < segments[-1][9] and ie <= segments[-1][8] < segments[-1][10])
            count = int(m[1])
            # the counter back at (or below) where the stretch began, after worded lines: a launch banner's
            # place, if those lines are one (decided once the whole console is read)
            banner = bool(segments) and bool(gap) and count <= segments[-1][11]
            new = not segments or segments[-1][0] != n or again or back
            if new or banner:
                # (a restart after the run before reached its last epoch: 2, a trial, where it counts to
                # the same total or a model summary of its own comes before it (another model's fit, not
                # a fine-tune of the one before); else 1); a run starts at its model summary, if any
                # (a run that counted its epochs to its own total is complete whatever the next one counts to:
                # neither cut short nor superseded)
                whole = again and segments[-1][4] >= segments[-1][0]
                if back:
                    whole = inner is not None and segments[-1][10] >= (_count(inner[2]) or 0)
                segments.append([n, lineno if header is None else header, 0, 0, -1,
                                 (2 if whole else 1) if again or back else 0, i, int(header is not None),
                                 -1 if ie is None else ie, -1, -1, count, count, 0])
                banners.append(list(gap) if banner else [])
                tentative.append(not new)
            gap.clear()
            if count < segments[-1][12]:
                segments[-1][13] = 1  # the count went back within the stretch (an epoch's own steps)
            segments[-1][12] = max(segments[-1][12], count)
            if ie is not None:
                if segments[-1][8] < 0:
                    segments[-1][8] = ie
                segments[-1][9] = ie
                segments[-1][10] = max(segments[-1][10], ie)
            header = None
            segments[-1][2] += 1
            segments[-1][3] += "loss" in text.lower()
            segments[-1][4] = max(segments[-1][4], i)
    starts = [1]
    complete: list[bool] = []  # for each run but the last: whether it counted to its own total
    launches = _launch_banners(opening, banners)
    launched = False
    for j in range(1, len(segments)):
        before = {s[0] for s in segments[:j]}
        after = segments[j:]
        at = next((ln for ln, key in banners[j] if key in launches), None)
        if at is not None:
            # a launch of its own: the banner that opened the first launch, again where the counter starts
            # again (however few lines either side has); complete where the one before counted to its total
            starts.append(at)
            complete.append(segments[j - 1][12] >= segments[j - 1][0])
            launched = True
            continue
        if tentative[j]:
            continue  # (a counter back at its start after worded lines that open no launch: no run of its own)
        # a fit of its own: its model summary, its epochs from the first to its total, after a run
        # that counted to its own total (however few lines either has)
        fit = segments[j][5] == 2 and segments[j][7] and segments[j][6] <= 1 and segments[j][4] >= segments[j][0]
        if fit or ((segments[j][5] or before.isdisjoint(s[0] for s in after))
                   and sum(s[2] for s in segments[:j]) >= _MIN_RUN_LINES
                   and sum(s[2] for s in after) >= _MIN_RUN_LINES and sum(s[3] for s in after) >= _MIN_RUN_LINES):
            starts.append(segments[j][1])
            complete.append(segments[j][5] == 2 or _reached_total(segments[j - 1]))
    if not segments:
        return restarts.starts()
    if not any(complete):
        # (every run before the last stopped before its own total: each cut short and superseded)
        return starts, None, 0, frozenset()
    how = ("each opened by the line that opened the first, its counter starting again, and counted to its end"
           if launched else "each counting its epochs (or steps) to its own total before the next starts again")
    if not all(complete):
        how = how.replace("each ", "those ", 1).replace("and counted", "that counted", 1).replace(
            "counting its", "that counted its", 1) + " (the others stopped before their totals)"
    # a run that stopped before its own total, followed by another (a crash, then a relaunch), is
    # superseded by the next: not judged, its NaN/Inf still noted (:meth:`TextReader._trials`)
    return starts, how, 0, frozenset(starts[k] for k, done in enumerate(complete) if not done)


def _reached_total(segment: list[int]) -> bool:
    """Whether a stretch of :func:`_run_starts` counted to its own total: its epochs (``Epoch 30/30``,
    ``Episode 10/10``), or, counting no epoch, its steps counted once from their start (``iter:
    1000/1000``; not a step counted within each epoch, ``step 98/98`` every epoch, whose total is no
    run's end)."""
    if segment[4] >= 0:
        return segment[4] >= segment[0]
    return not segment[13] and segment[12] >= segment[0] > 0


#: The most worded lines kept between two counted lines, and the most kinds before the first, for
#: :func:`_launch_banners`.
_BANNER_GAP = 64
_BANNER_WORD = re.compile(rb"[A-Za-z]{3,}")


def _banner_key(raw: bytes) -> bytes | None:
    """A line's kind as a launch banner (:func:`_launch_banners`): its text without digits (a date, a time,
    a run's number) and spaces collapsed; None for a line of no words (a rule of ``====``, a blank line) and
    for one naming a position (``Epoch 3 starting``, ``Start epoch``: an epoch's heading, whose counter of
    steps within it starts again every epoch, no launch's)."""
    if len(raw) > 512 or _BANNER_WORD.search(raw) is None or _EPOCH_HINT.search(raw) is not None:
        return None
    if any(k.lower() in _POSITION_KEYS or k.lower() in _EPISODE_KEYS
           for k, _ in line_values(raw.decode("utf-8", "replace"))[0]):
        return None
    return b" ".join(raw.translate(None, _DIGITS).split())


def _launch_banners(opening: set[bytes], places: list[list[tuple[int, bytes]]]) -> set[bytes]:
    """The kinds of line (:func:`_banner_key`) that open every launch appended to a console: a line
    before the first counted line (``Training Session Started: 2026-02-03 15:30:00``, ``==== Run 1
    ====``) printed again before a place where the counter goes back to (or below) where the stretch
    before it began. No phrase is known in advance: the console's own first launch names its banner,
    and a banner where the counter goes on (a resumed run, a per-epoch heading) starts nothing."""
    return {key for gap in places for _, key in gap if key in opening}


#: A name followed by a number (``Dropout:0.5``, ``lr=1e-3``): the names a header line sets.
#: (matched once per run of name characters, from its first letter, the value ahead only looked
#: at: a line of 'x' a megabyte long is read once, not from each of its letters to its end)
_HEADER_NAME = re.compile(rb"(?<![\w.-])[\d.-]*+([A-Za-z_][\w.-]*+)(?=\s*[:=]\s*[-+]?\.?\d)")
#: A gradient-boosting round's evaluation line, up to its first metric's name (xgboost's ``[12]<TAB>train-rmse:``,
#: LightGBM's ``[20]<TAB>valid's binary_logloss:``; :data:`_BOOST_ROUND` reads its values): its round, a step
#: counted with no total, of a counter of its own (:data:`_BOOST_KIND`)
_BOOST_START = re.compile(rb"^\s*\[(\d+)\][ \t]+[A-Za-z][\w.]*(?:-|'s[ \t]+)[A-Za-z][\w@.-]*:[ \t]*[-+.\d]")
_BOOST_KIND = b"[round]"
#: A step counted with no total (``step 0049, loss: ...``, ``iter 200 loss=...``).
_BARE_STEP = re.compile(rb"(?<![\w./-])(?:step|iter|iteration)\s*[:=#]?\s*(\d+)(?![\w/.])", re.IGNORECASE)
_DIGITS = b"0123456789"
#: Where a line may name its epoch (:meth:`_Restarts._epoch`): the word, two bracketed counts
#: (``[3/300][370/1251]``), timm's ``Train: 3 [``
_EPOCH_HINT = re.compile(rb"epoch|\]\s*\[|Train:\s+\d+\s+\[", re.IGNORECASE)
#: A header line seen more often than this is a per-epoch line, not a run's (at most
#: :data:`_MAX_TRIALS` runs are judged).
_MAX_HEADERS = 4 * _MAX_TRIALS

#: A place a run may start: (its line, loss lines before it, the last loss line before it or
#: None, the first loss line from it on).
_Boundary = tuple[int, int, bytes | None, bytes]


class _Restarts:
    """Runs of a console that counts no step out of a total, appended one after another: a grid
    search's trials each after a header line naming their settings (``(cell_type:GRU:Dropout:0.5:
    Size:256)``, then the trial's loss lines), or runs whose bare step counter starts again from
    where the first began (``step 0049``, then ``step 0000``), or whose epoch counter, in any form
    the reader parses, goes back to where its run began after it advanced (``Epoch=6``, then
    ``Epoch=1``: :meth:`epoch_restarts`; an epoch repeated on several lines moves nowhere).

    A header is the last line without a loss before a line with one; headers setting the same
    names are one kind, and so are step counters with the same text before them (``eval step``
    is not ``step``). A kind starts runs where, at (nearly) every place it could, the run before
    moved by a fifth or more from where the kind's first run started (fell, or blew up) and the
    loss now jumps back at least halfway there: a fresh model. Each run has at least :data:`_MIN_RUN_LINES` loss lines. A
    line printed every epoch (``lr: 0.01``) does not restart the loss, an evaluation's counter
    starting again does not either, and a loss spike has no header before it, so none of them
    splits a run."""

    def __init__(self) -> None:
        self._pending: tuple[int, bytes] | None = None
        self._last_loss: bytes | None = None
        self._losses = 0  # loss lines so far
        # header kind (the names it sets) or counter kind (bytes) -> its places
        self._kinds: dict[bytes | tuple[bytes, ...], list[_Boundary]] = {}
        # counter kind (the text before it, digits dropped) -> [first step of its current run, last step,
        # the first step of its first run, loss lines naming it, epoch marks when its current run began]
        self._steps: dict[bytes, list[int]] = {}
        # how often an epoch moved on so far (an epoch counter's value changed, or a heading naming an epoch
        # and no value was printed: ``Start epoch``): a bare counter starting again where none did is no
        # epoch's counter starting again, and the places where it went back to its first run's first step
        # then (:meth:`starts`: a fresh launch, whatever its loss does)
        self._epoch_marks = 0
        self._fresh: set[int] = set()
        # epoch counter kind (the text before it, digits dropped) -> [first epoch of its current run,
        # last epoch, highest epoch of the current run, lines that named it]; and its places (line,
        # the kind's lines before it, the highest epoch the run before it reached)
        self._epochs: dict[bytes, list[int]] = {}
        # (the latest :data:`_MAX_HEADERS` places only: a search of a thousand trials still splits,
        # and the last :data:`_MAX_TRIALS` are judged), and how many places came before them
        self._epoch_starts: dict[bytes, deque[tuple[int, int, int]]] = {}
        # the places where the epoch went back only part way, but at least half way to where its run
        # began (a new run from an earlier checkpoint, or a resume): runs only where the stretch after
        # ends at the epoch the one before ended at (:meth:`epoch_restarts`)
        self._partial: set[int] = set()
        self._epoch_dropped: dict[bytes, int] = {}
        # epoch counter kind -> the (epoch, batch) positions of lines naming both (``Epoch [1][50/5455]``):
        # [the first of its current run, the last, the highest]
        self._positions: dict[bytes, list[tuple[int, int]]] = {}

    def line(self, lineno: int, raw: bytes, loss: bool) -> None:
        """Take the console's next line (``loss``: whether it names a loss)."""
        if _EPOCH_HINT.search(raw) is not None:
            self._epoch(lineno, raw)
        # a gradient-boosting round's evaluation (``[20]<TAB>valid's binary_logloss: 0.53``): its metric is
        # the loss of its set, its round the step counter (a CV's or a search's fits each count from theirs)
        boost = _BOOST_START.match(raw) if b"]" in raw[:24] else None
        loss = loss or boost is not None
        if not loss:
            if raw.strip():
                self._pending = (lineno, raw)
            return
        if self._pending is not None:
            self._add(tuple(_HEADER_NAME.findall(self._pending[1])), self._pending[0], raw)
            self._pending = None
        m = (boost if boost is not None else _BARE_STEP.search(raw)
             if (b"tep" in raw or b"ter" in raw or b"TEP" in raw or b"TER" in raw) else None)
        step = _count(m[1]) if m is not None else None
        if m is not None and step is not None:
            kind = _BOOST_KIND if boost is not None else raw[:m.start()].translate(None, _DIGITS).strip()
            seen = self._steps.get(kind)
            if seen is None:
                self._steps[kind] = [step, step, step, 1, self._epoch_marks]
                self._kinds.setdefault(kind, []).append((lineno, self._losses, None, raw))
            else:
                # back to (about) where the run began, not to a checkpoint a resumed run goes on from
                if step < seen[1] and step <= seen[0] + max(1, (seen[1] - seen[0]) // 10):
                    self._add(kind, lineno, raw)
                    if step <= max(seen[2], 1) and seen[4] == self._epoch_marks:
                        # back to where the first run began (or to its first step: 0 or 1), with no epoch
                        # moving on since the run before began: a launch of its own (a resume goes on from
                        # a checkpoint's step, an epoch's own counter starts again as the epoch moves on)
                        self._fresh.add(lineno)
                    seen[0] = step
                    seen[4] = self._epoch_marks
                seen[1] = step
                seen[3] += 1
        self._last_loss = raw
        self._losses += 1

    def _epoch(self, lineno: int, raw: bytes) -> None:
        """Follow the epoch counter of a line that names one (any form :func:`line_values` reads:
        ``Epoch=3``, ``epoch: 3``, ``Epoch [3][50/100]``...): one that goes back to where its run
        began (or below) after it advanced starts a run. An epoch printed on several lines (a batch's
        line and the epoch's summary) goes nowhere; one that goes back less far is a run resumed from
        a checkpoint, which the reader notes (:func:`_overwrites`) without splitting."""
        hint = _EPOCH_HINT.search(raw)
        assert hint is not None  # (the caller's test)
        text = raw.decode("utf-8", "replace")
        found = line_values(text)[0]
        value = next((v for k, v in found if k.lower() == "epoch"), None)
        if value is None:
            if not found and len(raw) <= 512:
                self._epoch_marks += 1  # a heading naming an epoch and no value ("Start epoch")
            return
        try:
            number = float(value)
        except ValueError:
            return
        if not math.isfinite(number):
            return
        e = math.floor(number)
        kind = raw[:hint.start()].translate(None, _DIGITS).strip()
        seen = self._epochs.get(kind)
        if seen is None or e != seen[1]:
            self._epoch_marks += 1
        if seen is None:
            self._epochs[kind] = [e, e, e, 1]
            self._epoch_starts[kind] = deque([(1, 0, e)], maxlen=_MAX_HEADERS)
            return
        first, last, top, lines = seen
        partial = e < last and first < e and 2 * (top - e) >= top - first > 0
        # a position within the epoch back at (or before) the run's first after it moved on, the epoch
        # itself no further on (``Epoch [1][50/5455]`` again after ``Epoch [1][750/5455]``: a fresh start
        # of a run that never finished its first epoch; a resume goes on from a checkpoint's epoch)
        pos = self._position(kind, e, text)
        if (e < last and e <= first and top > first) or partial or pos:
            if partial:
                self._partial.add(lineno)
            places = self._epoch_starts[kind]
            if len(places) == places.maxlen:
                # the oldest place goes: the runs before the kept ones are counted, not read
                self._epoch_dropped[kind] = self._epoch_dropped.get(kind, 0) + 1
            places.append((lineno, lines, top))
            seen[0] = seen[2] = e
        seen[1] = e
        seen[2] = max(seen[2], e)
        seen[3] += 1

    def _position(self, kind: bytes, e: int, text: str) -> bool:
        """Follow the (epoch, batch) position a line names (:data:`_EPOCH_POS`): whether it went back to
        (or before) its run's first position after it moved on, a run's start."""
        m = _EPOCH_POS.search(text) if "/" in text else None
        form = next((f for f in _POSITION_FORMS if m[f[0]] is not None), None) if m is not None else None
        if m is None or form is None or int(m[form[0]]) != e:
            return False
        at = (e, int(m[form[1]]))
        seen = self._positions.get(kind)
        if seen is None:
            self._positions[kind] = [at, at, at]
            return False
        first, last, top = seen
        back = at < last and at <= first < top
        if back:
            seen[0] = at
        seen[1], seen[2] = at, max(top, at)
        return back

    def epoch_restarts(self) -> tuple[list[tuple[int, int]], bool, int]:
        """(line, lines naming the epoch before it) of the places an epoch counter starts a run, each
        run with at least :data:`_MIN_RUN_LINES` lines naming it; whether every run but the last counted its epochs
        as far as the furthest one did (complete trials, not a run cut short and started again); and
        how many runs came before the first place, past the places kept (:data:`_MAX_HEADERS`), 0
        where the first place is the log's first line.

        A counter that went back to its start more often than the places kept still splits: the
        latest places are kept, so the last runs are told apart and the earlier ones only counted."""
        best: tuple[list[tuple[int, int]], bool, int] = ([], False, 0)
        for kind, deque_places in self._epoch_starts.items():
            places = list(deque_places)
            dropped = self._epoch_dropped.get(kind, 0)
            tops = [top for _, _, top in places[1:]] + [self._epochs[kind][2]]
            if self._partial:
                # a part-way return starts a run only where the run before had ended: the stretch after
                # it ends at the same epoch (fine-tunes from a baseline's checkpoints, each to epoch 100);
                # else it is a resume (a run cut short, resumed from its last checkpoint), one run
                joined: list[tuple[int, int, int]] = [places[0]]
                joined_tops = [tops[0]]
                for place, top in zip(places[1:], tops[1:], strict=True):
                    if place[0] in self._partial and top != joined_tops[-1]:
                        joined_tops[-1] = max(joined_tops[-1], top)
                        continue
                    joined.append(place if place[0] not in self._partial else (place[0], place[1], joined_tops[-1]))
                    joined_tops.append(top)
                places, tops = joined, joined_tops
            if len(places) < 2:
                continue
            counts = [n for _, n, _ in places] + [self._epochs[kind][3]]
            kept: list[tuple[int, int]] = []
            if dropped:
                kept.append(places[0][:2])  # a run starts at the oldest place kept
            reached: list[int] = []  # the highest epoch of each run before a kept place
            run_top = tops[0]
            last_n = places[0][1]
            for i in range(1, len(places)):
                at, n, _ = places[i]
                run_top = max(run_top, tops[i - 1])
                if n - last_n >= _MIN_RUN_LINES and counts[i + 1] - n >= _MIN_RUN_LINES:
                    kept.append((at, n))
                    reached.append(run_top)
                    run_top, last_n = tops[i], n
            if len(kept) + dropped > len(best[0]) + best[2]:
                furthest = max([*reached, run_top])
                # (past the cap, the runs before the oldest place kept are one run each: dropped of them)
                best = (kept, all(r == furthest for r in reached), dropped)
        return best

    def _add(self, kind: bytes | tuple[bytes, ...], lineno: int, raw: bytes) -> None:
        seen = self._kinds.get(kind)
        if kind != () and (seen is None or len(seen) <= _MAX_HEADERS):
            self._kinds.setdefault(kind, []).append((lineno, self._losses, self._last_loss, raw))

    def starts(self) -> tuple[list[int], str | None, int, frozenset[int]]:
        """:func:`_run_starts`' answer: the runs the headers or counters start, else one run."""
        found: dict[int, tuple[int, str]] = {}  # loss lines before a run -> (its first line, how)
        # the step counter most loss lines name (a training loop's; an evaluation's own counter, starting
        # again at every evaluation while the training step goes on, is not it)
        main = max((k for k in self._steps), key=lambda k: self._steps[k][3], default=None)
        for kind, seen in self._kinds.items():
            if not 2 <= len(seen) <= _MAX_HEADERS:
                continue
            how = ("its step counter starting again, its loss starting again" if isinstance(kind, bytes)
                   else "each after a header line naming its settings, its loss starting again")
            places = _restarted(seen, self._losses)
            if kind == main:
                places += [(at, n) for at, n in _fresh(seen, self._fresh, self._losses) if (at, n) not in places]
            for at, n in places:
                if at in self._fresh and kind == main:
                    how = "its step counter starting again at its first step, no epoch moving on"
                # a header and the counter after it start the same run: from the header on
                found[n] = min(found.get(n, (at, how)), (at, how))
        if found:
            hows = sorted({how for _, how in found.values()})
            return [1, *sorted(at for at, _ in found.values())], " or ".join(hows), 0, frozenset()
        # an epoch counter going back to where its run began (``Epoch=6``, then ``Epoch=1``): runs
        # each judged on its own where every one counted as far as the furthest (a search's trials),
        # else the last (a run cut short and started afresh)
        places, complete, earlier = self.epoch_restarts()
        if not places:
            return [1], None, 0, frozenset()
        # (past the places kept, the runs before the first one kept are counted, not read)
        return [*([] if earlier else [1]), *(at for at, _ in places)], (
            None if not complete else
            "each going back to an earlier epoch and running again to the epoch the one before ended at"
            if any(at in self._partial for at, _ in places) else
            "each counting its epochs again from the first"), earlier, frozenset()


def _restarted(seen: list[_Boundary], losses: int) -> list[tuple[int, int]]:
    """(line, loss lines before it) of the places in ``seen`` (one kind's, :class:`_Restarts`) that
    start runs, ``losses`` loss lines in all: all those where the loss started again, if it did at
    two thirds of them."""
    start = _loss_of(seen[0][3])  # where this kind's first run started
    counts = [n for _, n, _, _ in seen] + [losses]
    boundaries, restarts = 0, []
    for i, (at, n, before, first) in enumerate(seen):
        if before is None:
            continue
        boundaries += 1
        last, now = _loss_of(before), _loss_of(first)
        # (the same loss on both sides: a test's loss after "Testing net" starts no run)
        if (start is None or last is None or now is None or not start[0] == last[0] == now[0]
                or min(n - (counts[i - 1] if i else 0), counts[i + 1] - n) < _MIN_RUN_LINES):
            continue
        # the run before moved well away from where the first began (down, or up where it blew up),
        # and the loss jumps back at least halfway there (or past it: a run of other settings may
        # start higher)
        away = start[1] - last[1]
        if abs(away) >= 0.2 * abs(start[1]) and (now[1] - last[1]) * math.copysign(1.0, away) >= 0.5 * abs(away):
            restarts.append((at, n))
    return restarts if restarts and len(restarts) >= 2 * boundaries / 3 else []


def _fresh(seen: list[_Boundary], fresh: set[int], losses: int) -> list[tuple[int, int]]:
    """(line, loss lines before it) of the places in ``seen`` (a step counter's, :class:`_Restarts`) where
    it went back to its first run's first step with no epoch moving on (``fresh``), whatever the loss
    did there (a second launch may start near where the first ended, or blow up from there), each run at
    least :data:`_MIN_RUN_LINES` loss lines long; ``losses`` loss lines in all."""
    counts = [n for _, n, _, _ in seen] + [losses]
    return [(at, n) for i, (at, n, before, _) in enumerate(seen)
            if before is not None and at in fresh
            and min(n - (counts[i - 1] if i else 0), counts[i + 1] - n) >= _MIN_RUN_LINES]


def _loss_of(raw: bytes | None) -> tuple[str, float] | None:
    """(name, value) of the first loss a console line names, None where it names none that is finite."""
    if raw is None:
        return None
    for name, text in pairs(raw.decode("utf-8", "replace")):
        if _is_loss(name):
            try:
                value = float(text)
            except ValueError:
                return None
            return (name, value) if math.isfinite(value) else None
    return None


def pairs(line: str) -> list[tuple[str, str]]:
    """The (name, number text) pairs of one line, first occurrence of a name wins. Thousands commas
    are dropped from the number text (``8,388,608`` -> ``8388608``)."""
    return line_values(line)[0]


def line_values(line: str) -> tuple[list[tuple[str, str]], float | None]:
    """:func:`pairs`, and the count a step on the line is out of (``step 614/614``: 614), else None.

    A step counted within an epoch on a line that names the epoch (``Epoch [1/10], Step
    [100/600]``, PaddleClas' ``[Epoch 236/400][Iter: 90/98]``) becomes the fractional epoch
    ``1 + 100/600`` and the line has no step. A line marked as an evaluation before its first value
    (``[Eval][Epoch 265][Iter: 0/25] loss: 2.57``, Caffe's ``Test net output #0: loss = 0.015``)
    names its values ``eval_<name>`` (its loss is a validation loss) and its counter is the
    evaluation's own, not the run's step.

    Lines of one shape (the same text but for their digits) are read from the spans their shape's
    first lines took their values from (:mod:`gradhealth.logs.readers.shapes`).

    A one-letter name (``B=32``, the ``r`` of a line cut in the middle of ``lr``) is no value here;
    :func:`_all_values` keeps it, marked, for a log to judge by how often it recurs."""
    try:
        found, total = _all_values(line)
    except LineTooWide:
        return [], None  # (the reader refuses the line, by its number, as it reads it)
    if found and found[0][0] == _PASS_KEY:
        return [], None  # an evaluation's report part way through its pass: the reader keeps its last
    if any(k.startswith(_ONE) for k, _ in found):
        found = [(k, v) for k, v in found if not k.startswith(_ONE)]
    return found, total


#: Marks a one-letter name (ComboGAN's ``D: 0.11, ... | G: 0.15, ...``): kept as a series only where
#: it recurs with a value on :data:`_MIN_ONE_LETTER_LINES` lines or more of a run; once, it is a
#: setting or a stray piece of a cut line (llm.c's ``B=32``, the ``r`` of ``lr``)
_ONE = "\x01"
_MIN_ONE_LETTER_LINES = 3


def _all_values(line: str) -> tuple[list[tuple[str, str]], float | None]:
    """:func:`line_values` with its one-letter names, marked with :data:`_ONE`; none on a line
    longer than :data:`MAX_VALUES_LINE` (the reader notes it), :class:`LineTooWide` for one that
    names more than :data:`MAX_LINE_VALUES`."""
    if len(line) > MAX_VALUES_LINE:
        return [], None
    return _SHAPES(line)


#: A value named with its position inside the name's clause: "Total reward in global step 33: 1.37",
#: "Reward at episode 12: 3.4", "Loss in step 500: 0.2" (a name of up to three words at the line's or a
#: clause's head, "in" or "at", the counter, then a colon and the number)
_NAME_IN_STEP = re.compile(
    r"(?:^|(?<=[\]|:,;>)-])[ \t]*|^[ \t]*)(?P<name>[A-Za-z][\w-]*(?:[ \t]+[A-Za-z][\w-]*){0,2})[ \t]+(?:in|at)[ \t]+"
    r"(?:the[ \t]+)?(?:global[ \t]+)?(?P<unit>step|iteration|iter|epoch|episode)[ \t]+(?P<n>\d{1,18})[ \t]*:[ \t]*"
    rf"(?=(?:{_NUM}|[-+]?nan|[-+]?inf)(?![\w.]|\.\d))", re.IGNORECASE)
_UNIT_KEY = {"step": "step", "iteration": "step", "iter": "step", "epoch": "epoch", "episode": "episode"}


def _parsed(line: str) -> tuple[list[tuple[str, str]], float | None]:
    """:func:`line_values` of one line, parsed in full."""
    if (" in " in line or " at " in line) and (named := _NAME_IN_STEP.search(line)) is not None:
        # "<name> in (global) step N: x": the step N, and x the value of <name> (its words one name)
        line = (f"{line[:named.start('name')]}{_UNIT_KEY[named['unit'].lower()]} {named['n']}, "
                f"{'_'.join(named['name'].split())}: {line[named.end():]}")
    found, total = _line_values(line)
    if (found and "step" in line.lower() and not any(k.lower() in STEP_KEYS for k, _ in found)
            and not all(k.startswith(_ONE) for k, _ in found)):
        at = _STEP_PHRASE.search(line)
        if at is not None:
            found = [("step", at[1]), *found]
    if not total:
        return found, total
    keys = {k.lower(): k for k, _ in found}
    step = next((k for k in keys if k in STEP_KEYS), None)
    epoch = keys.get("epoch")
    low = line.lower()
    # within an epoch, the counter follows the epoch ("Epoch [1/10], Step [100/600]"); a run's own
    # step comes first (OLMo's "[step=1/2500,epoch=0]"). Where each is a word of its own: loguru's
    # "yolox.core.trainer:after_iter:246 - epoch: 1/300, iter: 10/47" names iter before the epoch.
    # a step leading the line unnamed ("1920/191900 (epoch 1)", see _line_values) comes first too
    lead = _LEADING_COUNT.match(line) if step == "step" and "step" not in low else None
    if (step is not None and epoch is not None and _word_at(low, "epoch") < _word_at(low, step)
            and lead is None):
        shapes.computed()
        values = dict(found)
        e = float(values[epoch])
        i = float(values[keys[step]])
        values.pop(keys[step])
        values[epoch] = repr(round(e + i / total, 6))
        return list(values.items()), None
    return found, total


#: A counter joined to its count by a hyphen, as a word of its own (STgram-MFN's "Epoch-151\tloss:
#: 11.5", logsweep32); not inside a name (``checkpoint-step-1000.pt`` is followed by ``.pt``)
_HYPHEN_COUNT = re.compile(r"(?<![\w.\-])(epoch|iteration|iter|step)-(\d+)(?![\w.])", re.IGNORECASE)


#: A norm written as one before its value: simple-nmt's "|param|=6.93e+02 |g_param|=8.87e+07"
_NORM_BARS = re.compile(rf"(?<![\w|])(?P<key>(?P<bars>\|\|?)[^\W\d][\w.]*(?P=bars))[ \t]*[:=][ \t]*"
                        rf"(?P<val>{_NUM})(?![\w.])", re.IGNORECASE)


#: A reward or return named on a line: its "ep" counts episodes, not epochs
_REWARD_WORD = re.compile(r"reward|return|episode", re.IGNORECASE)


#: An ordinal counter: GE2E's "current step: 30001th step" (its checkpoint line "model saved in file:
#: ./ckpt/model.ckpt-30000 / 30000 th step"), "5th iter", "3rd epoch"; the counter's own name before
#: it ("current step:") is part of it
_ORDINAL_COUNT = re.compile(
    r"(?:(?<![\w.])(?:(?:current|global)[ \t]+)?(?:step|iter|iteration|epoch)[ \t]*[:=]?[ \t]*"
    # (without its name, only as a line's or a clause's head: "the 1st step of 3" is prose)
    r"|(?:^|(?<=[/|,;:\]\)])|(?<=[/|,;:\]\)][ \t]))[ \t]*)"
    r"(?P<n>\d{1,18})[ \t]?(?:st|nd|rd|th)[ \t]+(?P<unit>steps?|iters?|iterations?|epochs?)\b", re.IGNORECASE)


#: A step named in words before the values it measured: OpenNMT-tf's "Evaluation result for step
#: 435000: loss = 1.49 ; perplexity = 4.4", TF Estimator's "Saving dict for global step 1000: ..."
_STEP_PHRASE = re.compile(r"(?<![\w.])(?:for|at|after)\s+(?:global\s+)?step\s+(\d+)\s*[:,]", re.IGNORECASE)


def _word_at(text: str, word: str) -> int:
    """Where ``word`` first stands as a word of its own in ``text`` (not inside ``after_iter``)."""
    m = re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text)
    return m.start() if m else len(text)


#: darknet's (YOLOv2-v4) report of an iteration: "10313: 0.576849, 0.677636 avg loss, 0.002000 rate,
#: 3.99 seconds, 1320064 images" (older builds: "avg," without "loss"): the batch's loss, its
#: running average (kept as a metric: one loss is judged) and the learning rate
_DARKNET = re.compile(rf"(?<![\w.])(?P<step>\d+):\s+(?P<loss>{_NUM}|-?nan|-?inf),\s+(?P<avg>{_NUM}|-?nan|-?inf)"
                      rf"\s+avg(?:\s+loss)?,\s+(?P<lr>{_NUM})\s+rate\b", re.IGNORECASE)


#: cuda-convnet's report of a training batch: "1.12... logprob:  0.524114, 0.125000 (1.035 sec)": the epoch and
#: the data batch's number before the dots, then its logistic regression cost's two figures, the cost (the
#: batch's negative log-probability of its labels: the loss) and the error rate. Only in this form is a
#: ``logprob`` a cost: elsewhere (an RL agent's) it is an action's log-probability, no loss
_CONVNET = re.compile(rf"^\s*(?P<epoch>\d{{1,9}})\.(?P<batch>\d{{1,12}})\.\.\.[ \t]+logprob:[ \t]*"
                      rf"(?P<loss>{_NUM}|-?nan|-?inf),[ \t]*(?P<err>{_NUM}|-?nan|-?inf)"
                      rf"(?:[ \t]+\([ \t]*(?:{_NUM})[ \t]*sec\))?[ \t]*$", re.IGNORECASE)


#: Caffe's per-output report, whose output may be named with any characters ("loss: 50%-fire-rate"):
#: the name is everything from the "#k:" to the " = " before the value
_CAFFE_OUTPUT = re.compile(rf"\b(?P<split>Train|Test) net output #\d+: (?P<name>.+?) = (?P<val>{_NUM}|-?nan|-?inf)"
                           rf"(?![\w.])", re.IGNORECASE)


#: where a clause ends: a comma, semicolon or pipe between values
_CLAUSE_END = re.compile(r"\s*[,;|]\s*")
#: a step or an epoch named before a "best" mark: the line is that step's, not a report of the best
_POSITION_BEFORE = re.compile(r"(?<![\w.])(?:epoch|step|iter|iteration|global_step)\s*[:=]?\s*\[?\s*\d", re.IGNORECASE)


#: A step in brackets opening a message, before the first of its pipe-separated fields: Transformer-XL's
#: "[  5000] | gnorm 0.31 lr 0.000250 | loss 5.55", at the line's start or after a logging head that ends
#: in a colon or a bracket ("INFO:tensorflow:[  5000] | ...", glog's "I1212 15:10:27.449 1285 train.py:298] [  5000] | ...")
_BRACKET_STEP = re.compile(r"^(?:[^\[|]*?[:\]][ \t]*)?\[[ \t]*(?P<i>\d+)[ \t]*\][ \t]*\|")


#: A heading of an evaluation's results, printed one a line under it (BERT's ``***** Eval results *****``)
_EVAL_RESULTS = re.compile(r"\b(?:eval|evaluation|validation|test|dev)[ \t]+results?\b", re.IGNORECASE)
#: TF Estimator's report of an evaluation's results (``Saving dict for global step 5468: ...``)
_ESTIMATOR_EVAL = "Saving dict for global step"


#: Open MPI's ``--tag-output`` before every line of a rank's output (SageMaker's
#: ``[1,mpirank:0,algo-1]<stdout>:``, mpirun's ``[1,0]<stdout>:``): where, not what
_MPI_TAG = re.compile(r"^\[[^\]\n]{1,80}\]<std(?:out|err)>:")


#: a gradient-boosting round's evaluation: xgboost's "[12]<TAB>train-rmse:0.41<TAB>validate-rmse:0.47",
#: LightGBM's "[12]<TAB>training's l2: 0.17<TAB>valid_1's l2: 0.22": the round, then <set>-<metric> pairs
_BOOST_ITEM = rf"[A-Za-z][\w.]*(?:-|'s[ \t]+)[A-Za-z][\w@.-]*:[ \t]*(?:{_NUM})"
_BOOST_ROUND = re.compile(rf"^\s*\[(?P<round>\d+)\](?P<items>(?:[ \t]+{_BOOST_ITEM})+)[ \t]*$", re.IGNORECASE)
_BOOST_PAIR = re.compile(rf"(?P<set>[A-Za-z][\w.]*)(?:-|'s[ \t]+)(?P<metric>[A-Za-z][\w@.-]*):[ \t]*(?P<val>{_NUM})",
                         re.IGNORECASE)


#: CatBoost's console round (``0:\tlearn: 0.6814\ttest: 0.6822\tbest: 0.6822 (0)\ttotal: 57ms\tremaining:
#: 57s``): the round, the first metric on the training and the evaluation sets, the best evaluation so
#: far (and its round); the times are no metric. Without an evaluation set only ``learn`` is printed,
#: with an eval_metric not computed on the training set (AUC) only ``test`` and ``best``.
_CATBOOST = re.compile(rf"^\s*(?P<round>\d{{1,12}}):(?:[ \t]+learn:[ \t]*(?P<learn>{_NUM}))?"
                       rf"(?:[ \t]+test:[ \t]*(?P<test>{_NUM}))?(?:[ \t]+best:[ \t]*(?P<best>{_NUM})[ \t]*\(\d+\))?"
                       r"[ \t]+total:[ \t]*\S+[ \t]+remaining:[ \t]*\S+[ \t]*$")
#: Marks a CatBoost round's values until :func:`_catboost_roles` names them
_CATBOOST_MARK = "\x02catboost/"


def _catboost_roles(run: RunLog) -> RunLog:
    """``run`` with CatBoost's values named: its printed metric is a loss (``learn-loss``, ``test-loss``:
    a boosting log's, as XGBoost's ``train-rmse``) where the running best follows the evaluation's
    minimum, or where only the training set's is printed (the objective); a score (an AUC: its best
    follows the maximum) or one that never moves keeps the names ``learn`` and ``test`` as metrics. The
    running best is ``best_test``, a record (logsweep98 #2: CatBoost consoles were no boosting log)."""
    marked = {s.name.removeprefix(_CATBOOST_MARK): s for s in run.series if s.name.startswith(_CATBOOST_MARK)}
    if not marked:
        return run
    test, best = marked.get("test"), marked.get("best")
    loss = False
    if test is not None and best is not None and len(test.values) == len(best.values) and len(test.values) >= 2:
        low, high = np.fmin.accumulate(test.values), np.fmax.accumulate(test.values)
        by_low = bool(np.allclose(best.values, low, rtol=1e-6, atol=0))
        by_high = bool(np.allclose(best.values, high, rtol=1e-6, atol=0))
        loss = by_low and not by_high
    elif test is None and best is None:
        loss = True  # only the training set's: the objective (a score is not computed on it by default)
    names = {"learn": "learn-loss" if loss else "learn", "test": "test-loss" if loss else "test", "best": "best_test"}
    series = [make_series(names[s.name.removeprefix(_CATBOOST_MARK)], s.steps, s.values, s.wall_time,
                          step_unit=s.step_unit) if s.name.startswith(_CATBOOST_MARK) else s for s in run.series]
    return replace(run, series=series)


#: A split's loss followed by an iteration count and then the loss, Tacotron 2's print:
#: "Train loss 7082 0.412546", "Validation loss 7090:  0.495267".
_LOSS_AT_STEP = re.compile(
    r"(?<![\w/])(?P<name>(?:train|training|valid|validation|val|eval|test)[ \t]+loss)[ \t]+(?P<step>\d+):?[ \t]+"
    r"(?P<val>[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)(?![\w.])", re.IGNORECASE)


#: A value printed as a one-element array or tensor: numpy's ``Loss [ 0.69090915]``, ``loss: [0.69]``,
#: torch's ``loss tensor(0.6909)`` or ``tensor(0.6909, device='cuda:0', grad_fn=<NllLossBackward0>)``
#: (read as ``name: x``). A bracketed whole number after a name is a position (``Epoch [3]``) or a
#: count, not an array: only a fraction, an exponent, NaN or Inf in brackets is. The name may be quoted,
#: as a dict's key: detectron2's ``loss_dict = {'loss_cls': tensor(nan, device='cuda:0', ...), ...}``
#: (logsweep59's pasted NaN report, where only the plain ``'data_time': 0.0079`` was read).
_ONE_ELEMENT = re.compile(
    rf"(?<![\w./-])(?P<q>['\"]?)(?P<key>[^\W\d][\w./-]*)(?P=q)[ \t]*[:=]?[ \t]*"
    rf"(?:\[[ \t]*(?P<b>{_NUM})[ \t]*\]|tensor\([ \t]*(?P<tb>\[[ \t]*)?(?P<t>{_NUM})[ \t]*(?(tb)\])[ \t]*(?:,[^()]*)?\))",
    re.IGNORECASE)
_WHOLE = re.compile(r"[-+]?\d+")


def _one_element(m: re.Match[str]) -> str:
    """``name: x`` for a one-element array or tensor printed after a name; a position's or a whole
    number's brackets are left as they are."""
    if m["b"] is not None and (m["key"].lower() in _POSITION_KEYS | {"batch"} or _WHOLE.fullmatch(m["b"])):
        return m[0]
    return f"{m['key']}: {m['b'] if m['b'] is not None else m['t']}"


#: Common Chinese words of a training console's names (a tmux capture's ``训练损失: 4.61 | 验证损失:
#: 6.00``), read as the English names the roles know: a name made of them only is translated
#: (``训练损失`` -> ``train_loss``, ``验证准确率`` -> ``val_acc``), any other keeps its own
_CJK_WORDS = (("训练", "train"), ("验证", "val"), ("测试", "test"), ("准确率", "acc"), ("损失", "loss"),
              ("学习率", "lr"))


@functools.lru_cache(maxsize=1024)
def _english(key: str) -> str:
    """``key`` in the English words of :data:`_CJK_WORDS` where it is made of them only, else itself."""
    if key.isascii():
        return key
    words: list[str] = []
    rest = key
    while rest:
        hit = next(((zh, en) for zh, en in _CJK_WORDS if rest.startswith(zh)), None)
        if hit is None:
            return key
        words.append(hit[1])
        rest = rest[len(hit[0]):].lstrip("_")
    return "_".join(words)


class _Spans:
    """Character spans of a line already read, as a sorted union of disjoint [start, end) intervals:
    whether a position or a span falls on one is a binary search, so a line of thousands of pairs
    (``a=1 a=1 ...``) reads in time that grows with the pairs, not with their square. ``checks``
    counts the look-ups (a test counts them)."""

    checks = 0

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        """Add [start, end), merged with the spans it touches."""
        if end <= start:
            return
        # the spans from the first that ends at or after start to the last that starts at or before end
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def covers(self, pos: int) -> bool:
        """Whether a span holds ``pos`` (start <= pos < end)."""
        _Spans.checks += 1
        i = bisect.bisect_right(self._starts, pos) - 1
        return i >= 0 and pos < self._ends[i]

    def overlaps(self, start: int, end: int) -> bool:
        """Whether a span shares a character with [start, end) (start < end)."""
        _Spans.checks += 1
        i = bisect.bisect_right(self._ends, start)
        return i < len(self._starts) and self._starts[i] < end


#: A Markdown heading of level 2 to 6 (``### error log (loss NAN)``): a document's title for what follows, words,
#: never values (a single ``#`` is also a comment's mark, and consoles print values after it: ``# step 10 loss: 0.5``)
_HEADING = re.compile(r"^ {0,3}#{2,6}[ \t]")


#: A checkpoint's save report (fairseq: "saved checkpoint ckpt/checkpoint2.pt (epoch 2 @ 695 updates,
#: score 9.393) (writing took 5.76 seconds)"): what follows describes the file written, not a step
_CHECKPOINT_SAVED = re.compile(r"\b(?:saved|saving|wrote|writing)[ \t]+(?:the[ \t]+)?(?:best[ \t]+|last[ \t]+)?"
                               r"checkpoint\b(?![-_.:=\w])", re.IGNORECASE)
#: A duration a line reports as a verb's object ("writing took 5.76 seconds", "epoch took 12s"): a
#: time, never a metric named "took"
_TOOK = re.compile(r"\btook[ \t]*:?[ \t]*\d[\d.]*(?:e[-+]?\d+)?[ \t]*(?:s|secs?|seconds?|ms|mins?|minutes?|h|hrs?|hours?)\b",
                   re.IGNORECASE)


#: What ends a clause of a line outside brackets: a semicolon, a comma, a bar, or a dash between spaces
_CLAUSE_MARK = re.compile(r"[;,|]|[ \t]-+[ \t]")
_OPENERS, _CLOSERS = "([{", ")]}"


def _clause_end(line: str, start: int) -> int:
    """Where the clause running on at ``start`` ends: the first :data:`_CLAUSE_MARK` outside the
    brackets opened after ``start`` (fairseq's ``(epoch 2 @ 695 updates, score 9.393)`` is one
    clause's), or the line's end. Blanked rather than cut, the text after it keeps its offsets."""
    depth = 0
    i = start
    while i < len(line):
        c = line[i]
        if c in _OPENERS:
            depth += 1
        elif c in _CLOSERS:
            depth = max(depth - 1, 0)
        elif depth == 0 and (m := _CLAUSE_MARK.match(line, i)) is not None:
            return m.start()
        i += 1
    return len(line)


def _line_values(line: str, *, clauses: bool = True) -> tuple[list[tuple[str, str]], float | None]:
    if line[:5].lstrip(" ").startswith("##") and _HEADING.match(line):
        return [], None  # (a heading: logsweep95 mmdet_cascade_nan_readme read "loss NAN" from one as a NaN loss)
    if "heckpoint" in line and (saved := _CHECKPOINT_SAVED.search(line)) is not None:
        # (logsweep98 fairseq1895: its score and write time became series "score" and "took"); only
        # the save's own clause describes the file: a clause after it is the line's again ("Epoch 5:
        # saving checkpoint; loss 0.3 acc 0.9" kept its epoch and lost its loss)
        end = _clause_end(line, saved.end())
        line = line[:saved.start()] + " " * (end - saved.start()) + line[end:]
    if "took" in line:
        line = _TOOK.sub(" ", line)
    if line.startswith("[") and (tag := _MPI_TAG.match(line)) is not None:
        line = line[tag.end():]
    if "remaining:" in line and (cat := _CATBOOST.match(line)) is not None:
        # CatBoost's round: its values unnamed (the objective's, or the eval_metric's: an AUC), named
        # by the set; whether a loss is told from the running best (:func:`_catboost_roles`)
        return [("step", cat["round"]), *((f"{_CATBOOST_MARK}{k}", cat[k]) for k in ("learn", "test", "best")
                                          if cat[k] is not None)], None
    if "[" in line and (boost := _BOOST_ROUND.match(line)) is not None:
        return [("step", boost["round"]), *((f"{m['set']}-{m['metric']}", m["val"])
                                             for m in _BOOST_PAIR.finditer(boost["items"]))], None
    if "net output #" in line and (caffe := _CAFFE_OUTPUT.search(line)) is not None:
        name = caffe["name"].strip()
        return [(f"eval_{name}" if caffe["split"].lower() == "test" else name, caffe["val"])], None
    if "logprob" in line and (cc := _CONVNET.match(line)) is not None:
        # (the batch counted within its epoch is the line's step, placed within the epoch: logsweep95
        # cconvnet_lr0_sanity, whose "1.12..." counter was read as step 1 for all 186 points)
        return [("epoch", cc["epoch"]), ("batch", cc["batch"]), ("loss", cc["loss"]), ("error_rate", cc["err"])], None
    if "avg" in line and "rate" in line and (dk := _DARKNET.search(line)) is not None:
        return [("step", dk["step"]), ("loss", dk["loss"]), ("avg", dk["avg"]), ("lr", dk["lr"])], None
    if "oss " in line and (at := _LOSS_AT_STEP.search(line)) is not None:
        # NVIDIA Tacotron 2's "Train loss 7082 0.412546 Grad Norm 1.33 1.15s/it" and "Validation loss
        # 7090:  0.495267": the count after the loss's name is the iteration, the number after it the loss
        line = f"{line[:at.start()]}step: {at['step']} {at['name']}: {at['val']}{line[at.end():]}"
    if "<--" in line:
        line = line[:line.index("<--")]  # a reader's note on a pasted line ("<-- spike (step 4)")
    if "-" in line:
        line = _HYPHEN_COUNT.sub(r"\1 \2", line)  # "Epoch-151": the count joined by a hyphen
    if ("th" in line or "st" in line or "nd" in line or "rd" in line) and (
            ordinal := _ORDINAL_COUNT.search(line)) is not None:
        # "current step: 30001th step", "5th iter", "/ 30000 th step": an ordinal counter is the
        # line's step (or epoch), as the log numbers it
        unit = ordinal["unit"].lower()
        unit = "epoch" if unit.startswith("epoch") else "step"
        line = f"{line[:ordinal.start()]}{unit}: {ordinal['n']}{line[ordinal.end():]}"
    if "[" in line:
        line = _ANSI.sub("", line)
    if "[" in line or "tensor(" in line:
        line = _ONE_ELEMENT.sub(_one_element, line)  # "Loss [ 0.69]", "loss tensor(0.69, ...)": the number
    m = _TRIPLE.match(line) or _TRIPLE_TAIL.match(line)
    if m:
        key = m["key"]
        return [("step", m["step"]), (_SPLIT_LOSS.get(key.lower(), key), m["val"].replace(",", ""))], None
    found: dict[str, str] = {}
    singles: dict[str, str] = {}  # one-letter names (marked, :data:`_ONE`) and their values
    ends: dict[str, int] = {}     # where each name's first value read ends (for a name repeated)
    numbered: dict[str, int] = {}  # the next number to try for each name repeated (``loss_3``)
    marks: list[_SplitMarks] = []  # the line's split words, found once when a name repeats

    def put(key: str, val: str, start: int, end: int) -> None:
        """``found[key] = val`` for a name's first value; a name the line repeats keeps both
        (:func:`_repeated_name`). More than :data:`MAX_LINE_VALUES` values on one line is
        :class:`LineTooWide`, raised as they are counted (before the next is named)."""
        if key not in found:
            if len(found) >= MAX_LINE_VALUES:
                raise LineTooWide(len(found) + 1)
            found[key] = val
            ends[key] = end
        elif key.lower() not in _POSITION_KEYS:
            if len(found) >= MAX_LINE_VALUES:
                raise LineTooWide(len(found) + 1)
            if not marks or marks[0].line is not line:
                marks[:] = [_SplitMarks(line)]
            again = _repeated_name(marks[0], key, ends[key], start, found, numbered)
            found[again] = val
            ends[again] = end

    spans = _Spans()
    first_at = len(line)  # where the first value read starts (a step or an epoch is a position)
    total: float | None = None
    counted: str | None = None  # the step key counted out of its total (``iter[ 14/ 15]``)
    bar = _KERAS_BAR.match(line) if "/" in line else None
    if bar is not None:
        found[_BAR_KEY] = bar["i"]  # the batch within its epoch: the step where no epoch header counts
        total = _total(bar["n"])
        spans.add(*bar.span())
    for m in _BRACKET_COUNT.finditer(line) if "[" in line else ():
        low = m["key"].lower()
        if low in STEP_KEYS or low == "epoch":
            found.setdefault(m["key"], m["i"])
            spans.add(*m.span())
            if low in STEP_KEYS:
                total = _total(m["n"])
                counted = m["key"]
    if "[" in line and not total:
        ones = {m["key"].lower(): m for m in _BRACKET_ONE.finditer(line)}
        if "epoch" in ones and len(ones) <= 2 and not spans.covers(ones["epoch"].start()):
            found.setdefault("epoch", ones["epoch"]["i"])
            spans.add(*ones["epoch"].span())
            # the batch counts within the epoch: a step that starts again every epoch
            for inner in (m for k, m in ones.items() if k != "epoch"):
                found.setdefault("step", inner["i"])
                spans.add(*inner.span())
    lead_step = _BRACKET_STEP.match(line) if "[" in line and "|" in line else None
    if lead_step is not None and _count(lead_step["i"]) is not None:
        # "[  5000] | gnorm 0.31 lr 0.000250 | loss 5.55" (Transformer-XL's TF trainer and its
        # descendants), after any logging head: a bracketed count opening the message is the step
        found["step"] = lead_step["i"]
        spans.add(*lead_step.span("i"))
    esp = _ESPNET_POS.search(line) if "batch" in line else None
    if esp is not None:
        # "18epoch:train:6376-6750batch": the epoch and the last batch of the report (counted
        # again from 1 every epoch, as a step within it)
        found["epoch"], found["step"] = esp["e"], esp["b"]
        spans.add(*esp.span())
    pos = (_EPOCH_POS.search(line) if "/" in line and ("poch" in line or "][" in line or "Train:" in line)
           and esp is None else None)
    form = next(f for f in _POSITION_FORMS if pos[f[0]] is not None) if pos is not None else ()
    counts = [_count(pos[g]) for g in form] if pos is not None else []
    if pos is not None and None not in counts:  # (a run of digits too long for a count: no position)
        # the epoch and how far into it, as a fractional epoch (0- or 1-based as the log counts)
        shapes.computed()
        e, i, n = (c or 0 for c in counts)
        # an epoch's last batch (266/266) stays in it: e + 1 would read as the next epoch's start,
        # and the lines after the bar (its summary) would be named by the next epoch
        found["epoch"] = repr((round(e + i / n, 6) - (1e-6 if i == n else 0.0)) if n else float(e))
        spans.add(*pos.span())
    for g in _GROUP.finditer(line) if "[" in line and "," in line else ():
        pairs = [_GROUP_PAIR.fullmatch(item) for item in g["body"].split(",")]
        if len(pairs) < 2 or not all(pairs) or spans.covers(g.start()):
            continue
        spans.add(*g.span())
        label = g["label"].strip().lower().replace(" ", "_")
        for m in pairs:
            assert m is not None  # all() above
            # "[Losses: ... total 2.9]": the group's total is the loss, the rest its parts
            key = "loss" if m["key"].lower() == "total" and "loss" in label else f"{label}/{m['key']}"
            found.setdefault(key, m["val"].replace(",", ""))
        first_at = min(first_at, g.start())
    listed = _LABELLED_LIST.search(line) if "," in line and ":" in line else None
    if listed is not None and not spans.covers(listed.start()):
        # "Validation BLEU: BLEU-1 71.65, BLEU-2 65.76, ...": each item a value, named for the label's split
        split = next((_LABEL_SPLIT[w.lower()] for w in listed["label"].split() if w.lower() in _LABEL_SPLIT), None)
        for item in listed["items"].split(","):
            pair = _LIST_PAIR.match(item.strip())
            if pair is not None:
                found.setdefault(f"{split}_{pair['key']}" if split else pair["key"], pair["val"])
        spans.add(*listed.span())
        first_at = min(first_at, listed.start())
    piped = "|" in line
    bars = list(_NORM_BARS.finditer(line)) if piped else []
    if bars:
        # "|param|=6.93e+02 |g_param|=8.87e+07" (simple-nmt): a norm, named as the log writes it;
        # blanked out, so that its value is no name's start ("|g_param|=inf loss=nan" is no "inf
        # loss"); the line is rebuilt once, not once per norm (a line of thousands of them)
        pieces: list[str] = []
        upto = 0
        for m in bars:
            pieces += [line[upto:m.start()], " " * (m.end() - m.start())]
            upto = m.end()
        line = "".join([*pieces, line[upto:]])
    for m in bars:
        spans.add(*m.span())
        put(m["key"], m["val"], m.start(), m.end())
        first_at = min(first_at, m.start())
    if piped:
        # Megatron/DeepSpeed: "| learning rate: 5.997E-05 | lm loss: 3.88E+00 | number of nan
        # iterations: 0 |": between two pipes, every word before the colon is the name
        for m in _PIPED_KV.finditer(line):
            spans.add(*m.span())
            key = _english(re.sub(r"\s+", "_", m["key"].strip()))
            put(key, _value(line, m, count_ok=False) or m["val"], m.start(), m.end())
            if key.lower() not in _POSITION_KEYS:
                first_at = min(first_at, m.start())
    calls = _Spans()
    for a, b in _call_spans(line) if _CALL_OPEN.search(line) else ():
        calls.add(a, b)
    for a, b in _config_spans(line) if "{" in line or "(" in line else ():
        calls.add(a, b)
    level = _LEVEL.search(line, 0, _LEVEL_WITHIN)
    header_end = level.start() if level else 0
    for m in _KV.finditer(line):
        if spans.covers(m.start()):
            continue
        spans.add(*m.span())
        key = _english(m["key"])
        if " " in key or "\t" in key:
            key = re.sub(r"[ \t]+", "_", key)
        if m.start() >= 5 and line[m.start() - 5:m.start()].lower() == "best ":
            key = f"best_{key}"  # "loss 0.5, best val_loss: 0.3, val_loss: 0.4": the best so far, by its name
        if calls.covers(m.start()):
            continue  # an argument of a call or repr: a config, even when named like a step
        if m.start() and line[:m.start()].rstrip(" \t").endswith("="):
            continue  # the value of the name before ("name = bert/encoder/kernel:0", a tensor's name and index)
        if _INT_LIST.match(line, m.end()) is not None and _INT.fullmatch(m["val"]):
            continue  # a list of whole numbers ("input_ids: 101 2582 720 3291 ..."): token ids, no value
        if (key.lower() in _POSITION_KEYS and ("=" in m["sep"] or key.lower() in _COUNTED_KEYS)
                and _banner_before(line, m.start()) and _KV.search(line, m.end()) is None):
            # "Total optimization steps = 1,548", "Num Epochs = 3", and with a colon where the name
            # is a plural ("Total training steps: 13002", AnshDhalla1's GPT-2 LoRA script): how many,
            # not where (read as a step, every line after it sat at step 13002)
            continue
        scope, _, rest = key.partition("/")
        if rest.lower().startswith("total") and scope.lower() in STEP_KEYS:
            key = scope  # "step/total_step: 5/60": the step, out of its total
        if key.lower() in STEP_KEYS:
            val = _value(line, m, count_ok=True)
            of = _OF.match(line, m.end())
            if of is not None and key not in found:
                total = _total(of["n"])
            if (bar := _TQDM_DONE.match(line, m.end())) is not None:
                # tqdm's "steps:  38%|███▊  | 611/1600": the percentage first, then the count done.
                # A bar named for the steps counts the run's (the training scripts' one bar over
                # max_train_steps), not an epoch's: no total, so no header's epoch re-counts it
                val = bar["i"]
        elif (key.lower() in _WHERE_KEYS
              or (":" in m["sep"] and _INT.fullmatch(m["val"])
                  and (_SOURCE_REF.search(key) or (m.start() < header_end and m["sep"] == ":")
                       or ("." in key and line[m.start() - 1:m.start()] == "[" and line[m.end():m.end() + 1] == "]")
                       or (m.start() > 0 and line[m.start() - 1] == ":"
                           and _LOGURU_REF.search(line, max(0, m.start() - 200), m.start()))))):
            continue
        elif key.lower() not in _POSITION_KEYS and _TQDM_DONE.match(line, m.end()) is not None:
            # a tqdm bar's label ("Training:   5%|▌ | 1565696/30000000 [47:49<14:48:35]"): the bar's
            # percentage done, no value of a series named "Training"
            continue
        elif len(key) == 1:
            # one letter: a value only where the log repeats it (:data:`_ONE`), set aside
            val = _value(line, m, count_ok=False)
            if val is not None and _ONE + key not in singles:
                singles[_ONE + key] = val
            continue
        else:
            # (a batch counted out of its epoch's, "epoch: 0, batch: 790/34799": the batch 790 of it)
            # (an episode counted out of its total, "Episode: 3/10 | Loss: 2.4": the episode 3, the
            # position of an RL console's line as ``Episode 3`` is)
            val = _value(line, m, count_ok=key.lower() == "epoch" or key.lower() in _EPISODE_KEYS or (
                key.lower() == "batch" and bool({k.lower() for k in found} & {"epoch", "ep"})))
        if val is not None:
            put(key, val, m.start(), m.end())
            if key.lower() not in _POSITION_KEYS:
                first_at = min(first_at, m.start())
    for m in _BRACKET_KV.finditer(line) if "[" in line else ():
        if spans.covers(m.start()):
            continue
        spans.add(*m.span())
        val = _value(line, m, count_ok=m["key"].lower() in STEP_KEYS or m["key"].lower() == "epoch")
        if val is not None:
            put(m["key"], val, m.start(), m.end())
            if m["key"].lower() not in _POSITION_KEYS:
                first_at = min(first_at, m.start())
    for m in _WS.finditer(line):
        a, b = m.span()
        if spans.overlaps(a, b) or calls.covers(a):
            continue
        key = _english(m["key"])
        if " " in key or "\t" in key:
            key = re.sub(r"[ \t]+", "_", key)
        low = key.lower()
        split, _, rest = low.partition("_")
        if rest in STEP_KEYS and split in ("train", "training"):
            # NVIDIA Tacotron 2's "Train iter  16 loss 49.3 Grad Norm 10.8": the training counter is the
            # step (logsweep90: steps read as line numbers); an evaluation's counter is not (its loss
            # would then read as the training loss at its pass's count)
            key = low = rest
        if low in _SPLIT_LOSS and found.keys() & STEP_KEYS:
            key = low = _SPLIT_LOSS[low]  # "iter 0: train 9.8578 val 9.8535": each split's loss
        known = (low in _WS_KEYS or _WS_LOSS_PART.match(low) is not None or classify(key)[0] == "loss"
                 or (low in _ENV_STEP_KEYS and _EPISODE_ON_LINE.search(line) is not None))
        if _BARE_NONFINITE.fullmatch(m["val"]) and not known:
            continue  # "number of nan iterations": prose, not a NaN
        if low in _WHERE_KEYS:
            continue  # DeepSpeed's "[Rank 0]": which process wrote the line, no figure of the run
        if (piped and len(key) > 1) or known:
            val = _value(line, m, count_ok=low in STEP_KEYS or low == "epoch" or low in _EPISODE_KEYS)
            if val is not None and (key not in found or low not in _POSITION_KEYS):
                put(key, val, a, b)
                if low not in _POSITION_KEYS:
                    first_at = min(first_at, a)
                of = _OF.match(line, m.end())
                if low in STEP_KEYS and of is not None:
                    total = _total(of["n"])
    if " is " in line:
        # sentences: DL4J's "Score at iteration 100 is 1.39", BigDL's "Loss is 1.26. Current learning
        # rate is 0.046." (a minibatch loss, its score, and the rate; no other "X is N" is a value)
        # (LXMERT's "The training loss for Epoch 1 is 7.3978", "The valid loss is 5.3834")
        for m in _SENTENCE.finditer(line):
            split = (m["split"] or "").lower()
            metric = m["key"].lower()
            if metric.endswith(("rate", "lr")):
                key = "learning_rate"
            elif metric == "loss" or (metric == "score" and not split):
                # (DL4J's score is its minibatch loss; "avg loss so far" a running average of it)
                qual = (m["qual"] or "").lower()
                key = (_SPLIT_LOSS[split] if split else "loss") if not qual else (
                    f"{_SPLIT_PREFIX.get(split, split)}_{qual}_loss" if split else f"{qual}_loss")
            else:
                # "Val acc is 99.17%", "val mse is 0.031", "test mse is 0.03": the split's metric
                key = "_".join(w for w in (_SPLIT_PREFIX.get(split, split), (m["qual"] or "").lower(), metric) if w)
            found.setdefault(key, m["val"])
            first_at = min(first_at, m.start())
            if m["step"] is not None and not any(k.lower() in _POSITION_KEYS for k in found):
                found["epoch" if m["unit"].lower() == "epoch" else "iteration"] = m["step"]
    if "loss scale" in line:
        shapes.computed()  # two numbers compared below
        # the fp16 scaler's own report (fairseq: "overflow detected, setting loss scale to: 64.0",
        # apex: "reducing loss scale to 32768.0"): the scale, which halves at every overflow
        m = _SCALE_SENTENCE.search(line)
        if m is not None:
            found.setdefault("loss_scale", m["val"])
            if found.get("to") == m["val"]:
                del found["to"]  # "... to: 64.0" read as a name "to" before
            if m["was"] is not None and found.get("scale") == m["was"]:
                del found["scale"]  # the scale it tried, read as a name "scale" before
    lowered = {k.lower(): k for k in found}
    low_line = line.lower()
    if "steps" in lowered and "epoch" in lowered and _word_at(low_line, "epoch") < _word_at(low_line, "steps"):
        # "Epoch: 2, Steps: 225 | Train Loss: ...": the steps an epoch takes (Informer's family), the
        # same on every line, not where the line is
        found["steps_per_epoch"] = found.pop(lowered["steps"])
    if len(found) == 1 and "s" in found and not re.sub(r"\bs\s*[:=]\s*\d+[\s,;]*", "", line).strip():
        return [], None  # llm.c's one-letter step "s:120" heads a line of values; "s=128," alone is a config
    if len(found) == 1 and next(iter(found)).lower() in STEP_KEYS and _STEP_BANNER.search(line):
        return [], None  # "Step 4: Creating trainer...": a script's stage, not a training step
    if (len(found) == 1 and not singles and next(iter(found)).lower() not in _POSITION_KEYS
            and _size_print(line, next(iter(found)), first_at)):
        # "Number of training samples: 5011" (a script appended to the log prints it after training
        # began), "Max Sequence Length: 3": a count of the data or a setting, never a series
        return [], None
    if clauses and first_at and found and (best := _BEST_MARK.search(line, 0, first_at)) is not None:
        cut = _CLAUSE_END.search(line, first_at) if _POSITION_BEFORE.search(line, 0, best.start()) else None
        if cut is None:
            # "current best: ... train_loss: inf": the best so far (inf before there is one), not a step's;
            # an epoch before the mark is where the line is ("Epoch 2 - New best model saved with BLEU-2:
            # 65.76"), a position and no best_ series (after it, "current best: epoch 12", the best's)
            before = _POSITION_BEFORE.search(line, 0, best.start()) is not None
            return [(k if k.lower() == "epoch" and before else f"best_{k}", v) for k, v in found.items()
                    if k.lower() not in STEP_KEYS], None
        # "epoch 173 best test acc: 0.9120, train loss: 1.3054; ...": a step's line carrying the best
        # so far in one clause; the clauses after it are the step's own values
        head, _ = _line_values(line[:cut.start()], clauses=False)
        tail, total = _line_values(line[cut.end():])
        head = [(k, v) for k, v in head if not k.startswith(_ONE)]
        tail = [(k, v) for k, v in tail if not k.startswith(_ONE)]
        named = {k for k, _ in head}
        return ([(k if k.lower() in _POSITION_KEYS or k.lower().startswith("best_") else f"best_{k}", v)
                 for k, v in head]
                + [(k, v) for k, v in tail if k not in named]), total
    mark = _EVAL_MARK.search(line, 0, first_at) if first_at else None
    if mark is not None and found and not any(k.lower().startswith(_SPLITS) for k in found):
        # an evaluation's values: its own names, and no step (its counter is the evaluation's)
        progress = _EVAL_PROGRESS.search(line, mark.end(), first_at)
        if progress is not None and (_count(progress["i"]) is None or _count(progress["n"]) is None):
            progress = None  # a run of digits too long for a count: no progress
        if progress is not None:
            shapes.computed()
            i, n = int(progress["i"]), int(progress["n"])
            # the pass's last report (timm counts to n, torchvision's MetricLogger to n - 1): its
            # running averages are the pass's figures; one part way through (a print every 10 batches
            # of 242 ends at 240/242) is marked, and the reader keeps the pass's last one printed
            averages = {m["key"]: m["avg"] for m in _WITH_AVERAGE.finditer(line, first_at)}
            found = {k: averages.get(k, v) for k, v in found.items()}
        found = {(k if k.lower() == "epoch" else f"eval_{k}"): v
                 for k, v in found.items() if k.lower() not in STEP_KEYS}
        if progress is not None and i < n - 1 and found:
            found = {_PASS_KEY: progress["i"], **found}
        singles = {f"{_ONE}eval_{k[1:]}": v for k, v in singles.items()}
        total = None
    if counted is not None and total is not None and sum(k.lower() in STEP_KEYS for k in found) > 1:
        # a counted step beside a step of its own ("E6 iter[ 14/ 15] | ... | [step]   104"): the
        # count is a position within an epoch, the other the run's step
        del found[counted]
        total = None
    if (found and "/" in line and (lead := _LEADING_COUNT.match(line)) is not None
            and "epoch" in {k.lower() for k in found} and not any(k.lower() in STEP_KEYS for k in found)
            and not spans.covers(lead.start("i")) and not _COUNT_BEFORE.search(line, 0, lead.start())):
        # "1920/191900 (epoch 1) loss: 8.237, ...": an unnamed count leading a line that names its
        # epoch is the step, out of its total (logsweep59's bayou log: read by epoch, its 3,948 lines
        # were 11 points); one that starts again every epoch is then placed within it (_within_epochs)
        found = {"step": lead["i"], **found}
        total = _total(lead["n"])
    if (found and mark is None and "[" in line and "/" in line
            and not any(k.lower() in STEP_KEYS for k in found)
            and (lead := _BRACKET_LEAD.search(line, 0, first_at)) is not None
            and not spans.covers(lead.start("i")) and not _COUNT_BEFORE.search(line, 0, lead.start())):
        # "[110/3000] loss: 0.532 lr: 1e-3" (a bare console's own progress print, "[  110/ 3000]"
        # padded): a count in brackets, named by no word, before the line's first value is its step
        # out of the run's planned total, as "Iter 110/3000" is. Not where the line names its step
        # ("[1/5] step 100 loss ...": the bracket counts epochs), nor in an evaluation's line
        # ("Test: [10/242]", its pass's batches), nor a date ("[12/05/2020]", "[12/05] 10:00:01")
        found = {"step": lead["i"], **found}
        total = _total(lead["n"])
    names = {k.lower() for k in found}
    if names & _EPISODE_KEYS and not names & STEP_KEYS and not names & {"epoch"}:
        # an RL console's line (``Episode 100  Frame 2457  Average100 Score: 24.57``): the environment
        # steps are its step where it counts them, else the episode; the episode stays a series (the
        # reward rules read the episodes a return spans from it)
        env = next((k for k in found if k.lower() in _ENV_STEP_KEYS), None)
        if env is not None:
            found = {("step" if k == env else k): v for k, v in found.items()}
        else:
            episode = next(k for k in found if k.lower() in _EPISODE_KEYS)
            if _count(found[episode]) is not None:
                found = {"step": found[episode], **found}
        names = {k.lower() for k in found}
    if (names & _POSITION_KEYS and names & {"train", "training"}
            and names & {"val", "valid", "validation"}):
        # "Epoch 000: train=0.179 valid=0.234": a training and a validation number beside a step
        # are the two losses (a lone "eval" is llm.c's HellaSwag accuracy)
        found = {(_SPLIT_LOSS[k.lower()] if k.lower() in _SPLIT_LOSS and _SPLIT_LOSS[k.lower()] not in found
                  else k): v for k, v in found.items()}
    return [*found.items(), *singles.items()], total



#: A split named between two values of one name on a line: the later value is that split's
#: (``Train Loss: 11.2 | Token Acc: 0.049 | Val Loss: 10.9 | Token Acc: 0.066``)
_SPLIT_BETWEEN = re.compile(r"(?<![a-z])(train|training|val|vali|valid|validation|eval|evaluation|dev|test|testing)"
                            r"(?![a-z])", re.IGNORECASE)
_SPLIT_PREFIX = {"training": "train", "vali": "val", "valid": "val", "validation": "val", "evaluation": "eval",
                 "testing": "test"}


class _SplitMarks:
    """The split words (:data:`_SPLIT_BETWEEN`) of one line, found once: the last between two
    positions is a binary search, so a line naming one name thousands of times (``loss: 1 loss: 1
    ...``) is named in time that grows with the repeats, not with their square."""

    #: the longest split word (``validation``) and a character either side
    _TAIL = 12

    def __init__(self, line: str) -> None:
        self.line = line
        self._starts: list[int] = []
        self._words: list[str] = []
        for m in _SPLIT_BETWEEN.finditer(line):
            self._starts.append(m.start())
            self._words.append(m[1].lower())

    def last(self, after: int, at: int) -> str | None:
        """The last split word in ``line[after:at]``, the text read as if it ended at ``at``."""
        # the few characters before ``at`` are searched as cut there (a word cut at ``at``, "val"
        # of "valid", counts, as it did when the search ended there); any word before them ends
        # before ``at`` and reads the same in the whole line
        tail_from = max(after, at - self._TAIL)
        tail = [m[1].lower() for m in _SPLIT_BETWEEN.finditer(self.line, tail_from, at)]
        if tail:
            return tail[-1]
        i = bisect.bisect_left(self._starts, tail_from) - 1
        return self._words[i] if i >= 0 and self._starts[i] >= after else None


#: The most values one line of a text log may name (its series limit's default): a line of more is
#: no training log's line, refused at its line as it is read (:class:`LineTooWide`)
MAX_LINE_VALUES = 10_000


class LineTooWide(UploadTooLarge):
    """A line names more than :data:`MAX_LINE_VALUES` values (raised as they are counted, before
    the next is named; the reader adds the line's number)."""

    def __init__(self, count: int, where: str = "") -> None:
        super().__init__(f"{where + ': ' if where else ''}more than {MAX_LINE_VALUES:,} values on one line, "
                         f"each its own series; a text log's line may name at most {MAX_LINE_VALUES:,}")
        self.count = count


def _repeated_name(marks: _SplitMarks, key: str, after: int, at: int, found: dict[str, str],
                   numbered: dict[str, int]) -> str:
    """The name of a value of ``key`` that the line names again at ``at``, its first value having
    ended at ``after``: the split named last between the two (``val_Token_Acc`` after ``| Val Loss:
    ... |``), else the name numbered by its occurrence (``loss_2``): never read over the first.
    ``numbered`` keeps each name's next number to try, so the n-th repeat does not try the n - 1
    numbers before it (``found`` only grows while a line is read: a number passed over stays taken)."""
    mark = marks.last(after, at)
    if mark is not None:
        split = _SPLIT_PREFIX.get(mark, mark)
        if not key.lower().startswith(split):
            name = f"{split}_{key}"
            if name not in found:
                return name
    n = numbered.get(key, 2)
    while f"{key}_{n}" in found:
        n += 1
    numbered[key] = n + 1
    return f"{key}_{n}"


def _eval_heading(segment: str, *, alone: bool = False) -> bool:
    """Whether ``segment``, a line without values, opens an evaluation's block (``Evaluating...``,
    ``Validation:``, ``📊 Evaluation Results:``, ``🏁 Final evaluation...``), after any logging head.
    ``alone``: the line holds no values, so it must read as a heading: a few words
    (:data:`_HEADING_WORDS` at most) or ending in a colon or an ellipsis; a longer line is prose that
    starts with such a word (a model's generated text "test launch unarmed ballistic missile ...")."""
    lead = _HEADING_LEAD.match(segment)
    at = lead.end() if lead is not None else 0
    if _EVAL_SECTION.match(segment, at) is None:
        return False
    if not alone:
        return True
    body = segment[at:].rstrip()
    return body.endswith((":", "...", "\u2026")) or len(_NAME_WORDS.findall(body)) <= _HEADING_WORDS


#: The most words a heading without values has unless it ends in a colon or an ellipsis
#: ("testing in eval mode", "Eval begin", "Final evaluation"): a longer line is a sentence
_HEADING_WORDS = 6


#: A line saying training ended or a later stage of the script began: "Training complete. Saved
#: model.", "Finished training", a numbered stage ("Stage 2: Predicting", "Phase 3 - export"), another
#: script's argparse usage ("usage: predict.py [-h] ...")
_STAGE_LINE = re.compile(
    r"\b(?:training|train|fit(?:ting)?)\b\W*(?:is\s+|has\s+)?(?:complete[d]?|finished|done|ended|over)\b"
    r"|\b(?:finished|completed|done|end\s+of)\s+(?:the\s+)?training\b"
    r"|\b(?:stage|phase)\s*\d+\s*[:.)-]|^\s*usage:\s+\S+\.py\b", re.IGNORECASE)
#: An epoch counter out of its total ("Epoch 12/12", "Epoch [5/5]", "epoch: 3/10")
_EPOCH_OF = re.compile(r"\bepoch\W{0,3}(\d+)\s*/\s*(\d+)", re.IGNORECASE)
#: A count out of its total elsewhere on a line: a Keras or tqdm bar's "375/375", "[3000/3236]"
_COUNT_OF = re.compile(r"(?<![\d/.:-])(\d+)\s*/\s*(\d+)(?![\d/.:-])")


def _training_ended(last_values: str | None, header: str | None, after: list[tuple[int, str]]) -> str | None:
    """Why a log's training had ended before the Python traceback it ends in, in words; None where
    nothing says so (the traceback cut training short). ``last_values`` is the last line with values
    before the traceback, ``header`` the last Keras ``Epoch i/N`` header, ``after`` the lines (number,
    text) between them and the traceback.

    Ended where one of those lines says training ended or a later stage began (:data:`_STAGE_LINE`)
    with no epoch counter after it, or where none came after the last line with values and its epoch
    counter (on it, or its Keras header's) stands at its total with every other count on it at its
    own: ``Epoch 12/12 Train Loss: 0.39``, or ``375/375 [====] - loss: 0.31`` under ``Epoch 12/12``
    (logsweep87: an evaluation script's FileNotFoundError after "Training complete" was read as
    training stopping there)."""
    counted = [k for k, (_, t) in enumerate(after) if _EPOCH_OF.search(t)]
    # (the first such line after the last one naming an epoch: training went on after any before it)
    for lineno, text in after[counted[-1] if counted else 0:]:
        if (m := _STAGE_LINE.search(text)) is not None:
            return f"line {lineno}: {text[m.start():].strip()[:80]!r}"
    if last_values is None or any(_EPOCH_OF.search(t) for _, t in after):
        return None
    own = _EPOCH_OF.search(last_values)
    counter = own or (_EPOCH_OF.search(header) if header is not None else None)
    if counter is None or int(counter[1]) != int(counter[2]) or int(counter[2]) == 0:
        return None
    counts = [c for c in _COUNT_OF.finditer(last_values) if own is None or c.start() != own.start(1)]
    if any(int(c[1]) != int(c[2]) for c in counts):
        return None
    return f"its epoch counter reached its total, epoch {counter[1]}/{counter[2]}"


def _banner_before(line: str, end: int) -> bool:
    """Whether a count's word (:data:`_COUNT_BANNER`: ``Total optimization``, ``Num``) ends just
    before ``end``; looked for in the few characters before the blanks there, not the whole line up
    to it (a line of thousands of ``step=1`` would be read in time growing with their square)."""
    j = end
    while j > 0 and line[j - 1] in " \t":
        j -= 1
    return j < end and _COUNT_BANNER.search(line, max(0, j - 64), end) is not None


_SHAPES = shapes.ShapeCache(_parsed)


#: A time unit after a number: "Training time for one epoch: 42.8 seconds" is a duration, not epoch 42.8.
_DURATION = re.compile(r"\s*(?:s|secs?|seconds?|ms|mins?|minutes?|h|hrs?|hours?)\b", re.IGNORECASE)


def _value(line: str, m: re.Match[str], *, count_ok: bool) -> str | None:
    """The number text of a match, without thousands commas; for a count ``i/n`` the ``i`` when
    ``count_ok``, else the ``x`` of ``i/n = x``, else None (a progress counter is not a value).
    A step's or an epoch's number followed by a time unit is None: a duration, not a position."""
    if m["key"].lower() in _POSITION_KEYS and _DURATION.match(line, m.end("val")):
        return None
    of = _OF.match(line, m.end())
    if of is None or count_ok:
        return m["val"].replace(",", "")
    return of["val"].replace(",", "") if of["val"] is not None else None


def _call_spans(line: str) -> list[tuple[int, int]]:
    """The argument lists of calls and reprs in ``line`` (``Name(...)``: a ``(`` right after a name
    character), as (start, end) character spans; one left open runs to the end of the line."""
    spans: list[tuple[int, int]] = []
    stack: list[tuple[int, bool]] = []
    for i, ch in enumerate(line):
        if ch == "(":
            stack.append((i, i > 0 and (line[i - 1].isalnum() or line[i - 1] == "_")))
        elif ch == ")" and stack:
            start, is_call = stack.pop()
            if is_call:
                spans.append((start, i))
    spans.extend((start, len(line)) for start, is_call in stack if is_call)
    return spans


_CONFIG_OPEN_TEXT = re.compile(_CONFIG_OPEN.pattern.decode(), re.IGNORECASE)


def _config_spans(line: str) -> list[tuple[int, int]]:
    """The reprs of configs after their names in ``line`` (``Config: {'batch_size': 128}``, :data:`_CONFIG_OPEN`),
    as (start, end) spans from the opening bracket to the one closing it, or to the line's end."""
    spans: list[tuple[int, int]] = []
    for m in _CONFIG_OPEN_TEXT.finditer(line):
        depth, end = 0, len(line)
        for i in range(m.end() - 1, len(line)):
            depth += line[i] in "{(["
            depth -= line[i] in "})]"
            if depth == 0:
                end = i
                break
        spans.append((m.end() - 1, end))
    return spans


def _line_keys(ln: str) -> list[str]:
    """The names a line gives values to, as the sniffer reads them (none where it cannot)."""
    try:
        return [k for k, _ in _all_values(ln)[0] if k != _PASS_KEY and not k.startswith(_ONE)]
    except LineTooWide:
        return []


def _console_stretch(lines: list[str]) -> int:
    """The most lines in a row that read as a console's: each names a step or an epoch and a loss
    (a GAN's ``Loss_D``/``errG`` among them), the same names as the line before, and none is a
    Markdown table's row (a table with no step is a comparison of models, not a run): the DCGAN
    tutorial's ``[11/200][168/262] Loss_D: 2.0430 Loss_G: 10.2914 ...`` pasted into a README. Rows of a
    console's epoch table (YOLOv5's ``Epoch gpu_mem box obj cls ...`` header over ``0/299 5.05G 0.06359
    ...``, as the reader reads them) count wherever they fall: each epoch's header is printed again
    above its row and its validation table below it, so no two rows are next to each other."""
    longest = run = rows = 0
    before: list[str] | None = None
    table: list[str] | None = None
    for ln in lines:
        markdown = ln.lstrip().startswith("|")
        table = None if markdown else table or headerless_table(ln)
        row = table_row(table, ln) if table else None
        table = None if markdown else table_header(ln) or table
        if row and any(k == "epoch" or k.lower() in STEP_KEYS for k, _ in row) \
                and any("loss" in k.lower() or _is_loss(k) for k, _ in row):
            rows += 1
            longest = max(longest, rows)
            continue
        names = [] if markdown else _line_keys(ln)
        low = [k.lower() for k in names]
        counted = any(k in STEP_KEYS or k == "epoch" for k in low)
        console = counted and any("loss" in k or _is_loss(k) or gan_part(n) for k, n in zip(low, names, strict=True))
        run = run + 1 if console and (run == 0 or low == before) else (1 if console else 0)
        before = low if console else None
        longest = max(longest, run)
    return longest


#: The non-blank lines of a head a format is recognised by
_HEAD_LINES = 200


def _head_lines(head: bytes) -> list[str]:
    """The head's first 200 non-empty lines; bytes that are not UTF-8 are replaced, as the reader
    replaces them further down (consoles mix encodings: a banner or config print in GBK, Shift-JIS
    or CP949 from a Windows console), binary data is not read (:func:`binary_window`: control bytes
    and bytes of no UTF-8 character over an eighth of the head)."""
    if b"\x00" in head[:4096] or binary_window(head):
        return []
    text = head.decode("utf-8", "replace")
    lines = _ANSI.sub("", text.lstrip("\ufeff")).splitlines()
    if len(lines) > 1 and len(head) >= 4096:
        lines = lines[:-1]
    return [ln for ln in lines if ln.strip()][:_HEAD_LINES]


def sniffed_bytes(head: bytes) -> int:
    """Where in ``head`` (a file's first bytes) the lines :meth:`TextReader.sniff` reads end: the
    byte after its first :data:`_HEAD_LINES` non-blank lines, else the start of its last line, cut
    by the head's end (all of it where the head is the whole file: shorter than a full head)."""
    at = seen = 0
    for line in head.split(b"\n")[:-1]:
        at += len(line) + 1
        seen += bool(line.strip())
        if seen >= _HEAD_LINES:
            return at
    return at if len(head) >= _HEAD_BYTES else len(head)


@functools.lru_cache(maxsize=4096)
def _is_loss(name: str) -> bool:
    """Whether ``name`` is a training or validation loss (cached: asked for every line)."""
    return classify(name)[0] in ("loss", "val_loss")


#: The last word of a line that ends inside one (no blank after it): the head of a name cut there
_CUT_WORD = re.compile(r"(?:^|(?<=\s))[\w./-]+$")


def _wrapped_name(key: str, line: str, before: str, seen: set[str]) -> bool:
    """Whether ``key``, the first name of ``line``, standing at its very start, is the tail of a
    name cut by a terminal's width: the line ``before`` it ends in a word with no blank after it,
    and that word and ``key`` join to a name read earlier in the log (a tmux capture's
    ``...focal_l`` over ``oss_0: 0.04699 ...``, ``rg_`` over ``l1_loss_2: ...``)."""
    if not before or not line.startswith(key) or before[-1:].isspace():
        return False
    head = _CUT_WORD.search(before)
    return head is not None and f"{head[0]}{key}" in seen


def _gan_loss(name: str) -> bool:
    """Whether ``name`` is a GAN player's loss by name (:func:`gan_part`, with a loss word:
    ``loss_D``, ``loss_D_real``, ``errG``, ``g_loss``); a bare ``G`` or ``D`` is not taken for one
    before a log is known to be a GAN's."""
    return gan_part(name) is not None and re.search(r"loss|err", name, re.IGNORECASE) is not None


def _role(name: str) -> tuple[Role | None, str | None]:
    return ROLES.get(name.lower()), None


#: The names a refusal shows of the values it found
_SHOWN_FOUND = 4


def _why_no_console(head: bytes, count: int) -> str:
    """:meth:`TextReader.why_not` of a file that is no document: what its first ``count`` non-blank
    lines hold, by line number (logsweep85: an accuracy-only file and an ONNX export's console were
    refused naming only the formats looked for)."""
    text = _ANSI.sub("", head.decode("utf-8", "replace").lstrip("\ufeff"))
    numbered = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()][:count]
    found = [(n, keys) for n, ln in numbered if (keys := _line_keys(ln))]
    shown = f"the first {count}" if len(head) >= _HEAD_BYTES or count >= _HEAD_LINES else f"its {count}"
    if not found:
        bare = sum(1 for _, ln in numbered if _BARE_NUMBERS.fullmatch(ln))
        said = f"none of {shown} non-blank lines holds a named value (name: number, name=number, step 10 loss 2.3)"
        if bare * 2 >= count:
            first = next(ln.strip() for _, ln in numbered if not _BARE_NUMBERS.fullmatch(ln)) if bare < count else None
            row = next(ln.strip() for _, ln in numbered if _BARE_NUMBERS.fullmatch(ln))
            if first is not None and (columns := _naming_header(first, row)) is not None:
                # a header that names every column, none of them known (logsweep91 charrnn_lr_sweep_table:
                # "learning_rate_0.005,..." over losses): say what is wrong with it, not that it is missing
                shown_cols = ", ".join(repr(c) for c in columns[:_SHOWN_FOUND]) + (", ..." if len(columns) > _SHOWN_FOUND
                                                                                    else "")
                return (f"{bare} of {shown} non-blank lines are rows of numbers under a header naming each of their {len(columns)} "
                        f"columns ({shown_cols}), but these columns name no loss, step or gradient norm: rename "
                        "them after what they hold (step,loss,val_loss)")
            said += (f"; {bare} of them are bare numbers" + (f" under {first[:60]!r}" if first else "")
                     + ": a file of numbers is read where its name says what they are (loss.txt, val_loss.csv) or a "
                     "header line names them (step,loss)")
        return said
    names = list(dict.fromkeys(k for _, keys in found for k in keys))
    lossy = [k for k in names if _is_loss(k) or _gan_loss(k) or ROLES.get(k.lower()) in ("loss", "val_loss", "grad_norm")]
    at, keys = found[0]
    said = (f"{len(found)} of {shown} non-blank lines hold values, the first at line {at} "
            f"({', '.join(keys[:_SHOWN_FOUND])}{', ...' if len(keys) > _SHOWN_FOUND else ''})")
    if not lossy:
        more = len(names) - _SHOWN_FOUND
        return (said + f", naming {', '.join(names[:_SHOWN_FOUND])}{f' and {more} more' if more > 0 else ''}: none is "
                "a loss, a validation loss or a gradient norm")
    counts = {k: sum(k in keys for _, keys in found) for k in names}
    if max(counts.values()) < 2 and not any(k.lower() in STEP_KEYS for k in names):
        return said + ": every name appears once and none is a step, as in a config's print, not a training log"
    return said


def _naming_header(line: str, row: str) -> list[str] | None:
    """The column names of ``line`` where it is a table's header over the row of numbers ``row``
    (split at the row's separator: a comma, tab or semicolon, else blanks), as many names as the row
    has numbers, none blank or a number, and none known (a loss, validation loss or gradient norm by
    its role or as a part's loss, a GAN player's, a step or an epoch); else None."""
    sep = next((c for c in (",", "\t", ";") if c in row), None)
    cells = [c.strip() for c in (line.split(sep) if sep else line.split())]
    numbers = [c for c in (row.split(sep) if sep else row.split()) if c.strip()]
    if len(cells) < 2 or len(cells) != len(numbers) or any(not c or _BARE_NUMBERS.fullmatch(c) for c in cells):
        return None
    known = any(classify(c)[0] in ("loss", "val_loss", "grad_norm") or gan_part(c) is not None
                or re.search(r"(?:^|[^a-z])loss(?:es)?(?![a-z])", c, re.IGNORECASE)
                or c.strip().lower() in STEP_KEYS or c.strip().lower() == "epoch" for c in cells)
    return None if known else cells


#: A line of bare numbers only (a file of numbers with no names)
_BARE_NUMBERS = re.compile(rf"\s*(?:{_NUM})(?:\s*[,;\t ]\s*(?:{_NUM}))*\s*[,;]?\s*", re.IGNORECASE)


class TextReader:
    name = "text"
    description = ("plain-text training log with key:value / key=value / 'key value' pairs per line "
                   "(llm.c, nanoGPT, fastai's and Ultralytics' consoles, custom print statements)")

    def sniff(self, filename: str, head: bytes) -> float:
        if filename.lower().endswith(_NOT_LOGS):
            return 0.0
        lines = _head_lines(head)
        # (a JSON document is no console; a boosting search's console opens with its first fit's parameters
        # printed as a dict, ``{`` alone on its first line, and its rounds follow: logsweep97 lgbm_hyperopt_cv)
        if not lines or (_JSON_START.match(lines[0]) and not (_MPI_TAG.match(lines[0])
                                                               or any(_BOOST_ROUND.match(ln) for ln in lines))):
            return 0.0
        hits = block = longest = 0  # lines with values; the longest stretch of them one after another
        known = has_step = broken = lossy = False
        seen: dict[str, int] = {}
        table: list[str] | None = None
        for ln in lines:
            table = table or headerless_table(ln)
            row = table_row(table, ln) if table else None
            table = table_header(ln) or table
            try:
                found_pairs = row or [kv for kv in _all_values(ln)[0] if kv[0] != _PASS_KEY]
            except LineTooWide:
                # more values on one line than a log may have: read as a text log, for the reader
                # to refuse at its line (no other reader reads "loss: 1 loss: 1 ...")
                return 0.5
            found_pairs = [(k, v) for k, v in found_pairs if not k.startswith(_ONE)]
            keys = [k.lower() for k, _ in found_pairs]
            # a loss that is NaN or Inf: no config file holds one (TF's Object Detection API prints
            # one dict of losses over several lines: every name once, like a config)
            broken = broken or any("loss" in k.lower() and not math.isfinite(float(v)) for k, v in found_pairs)
            has_step = has_step or any(k in STEP_KEYS for k in keys)
            found = [k for k in keys if k not in STEP_KEYS]
            block = block + 1 if found else 0
            longest = max(longest, block)
            if found:
                hits += 1
                known = known or any(k in ROLES or _gan_loss(k) for k in found)
                lossy = lossy or any(ROLES.get(k) in ("loss", "val_loss") or _is_loss(k) or _gan_loss(k) for k in found)
                for k in found:
                    seen[k] = seen.get(k, 0) + 1
        # a framework's report of a NaN loss with no loss value beside it (a traceback pasted alone,
        # or with a timing only: logsweep59's detectron2 paste read 'data_time' and was refused):
        # the report is the log, whatever else the values below would make of it
        event = 0.3 if not lossy and any(_NONFINITE_EVENT.search(ln) for ln in lines) else 0.0
        # one line is enough when it holds a loss that is NaN or Inf (a YOLOv5 console pasted at
        # its first epoch, every loss column nan): that line is the report
        if hits == 0 or (hits < 2 and len(lines) > 2 and not known and not broken):
            return event
        if hits >= 2 and not has_step and max(seen.values()) < 2 and not (known and "epoch" in seen) and not broken:
            return event                    # every name once: a config file, not a training log (a
            #                                 loss in an epoch is a pasted console's first epoch)
        if filename.lower().endswith(_DOCUMENTS) and hits < _DOCUMENT_SHARE * len(lines) \
                and longest < _DOCUMENT_BLOCK and _console_stretch(lines) < _DOCUMENT_CONSOLE:
            return event
        score = 0.3 + 0.2 * min(1.0, 2.0 * hits / len(lines)) + (0.1 if known else 0.0)
        return round(max(score, event), 3)

    def why_not(self, filename: str, head: bytes) -> str | None:
        """Why a file whose head :meth:`sniff` does not take is not read as a console: a document
        (``.md``, ``.rst``): how many of its lines hold values, and that no :data:`_DOCUMENT_CONSOLE` of
        them in a row read as a console's; any other text: what its lines hold (no named value, bare
        numbers, values naming no loss, every name once) and where the first value is. None for a file
        that is no text log by its name (``.yaml``, ``.py``...) or no text at all."""
        if filename.lower().endswith(_NOT_LOGS) or not (lines := _head_lines(head)):
            return None
        if not filename.lower().endswith(_DOCUMENTS):
            return None if cut_first_line(head) else _why_no_console(head, len(lines))
        if cut_first_line(head):
            # the head ends inside the first line: how many lines the file has is not known here
            return (f"its first line is longer than the {len(head):,} bytes a log's format is recognised "
                    "within, so no table or console was found in them")
        hits = sum(1 for ln in lines if _line_keys(ln))
        shown = f"the first {len(lines)}" if len(head) >= _HEAD_BYTES else f"its {len(lines)}"
        return (f"{hits} of {shown} non-blank lines hold values, and no {_DOCUMENT_CONSOLE} lines in a row "
                "read as a console's (each naming a loss and a step or epoch, the same names on each); a document's "
                f"console is read where it has such lines, or values on half its lines or {_DOCUMENT_BLOCK} in a row")

    def sniff_within(self, filename: str, window: bytes) -> float:
        """:meth:`sniff` of ``window`` (bytes from the middle of a file, from a line start) from its
        first line with values on: a log's training lines after a long dump of its config."""
        lines = window.split(b"\n")
        for i, ln in enumerate(lines[:-1]):
            if any(k.lower() not in STEP_KEYS for k, _ in pairs(ln.decode("utf-8", "replace"))):
                return self.sniff(filename, b"\n".join(lines[i:]))
        return 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        config, summaries, tables = _ConfigBlocks(), _ModelSummaries(), _FrameTables()
        starts, trials, earlier, superseded = _run_starts(path, limits, config, summaries, tables)
        skip = _merged_blocks(config.done() + summaries.done() + tables.done())
        if trials is not None:
            judged = self._trials(path, limits, starts, trials, earlier, skip, superseded)
            if judged is not None:
                return _catboost_roles(judged)
        if len(starts) + earlier == 1:
            return _catboost_roles(self._segment(path, limits, starts[-1], None, [], skip))
        return _catboost_roles(self._last_run(path, limits, starts, earlier, skip))

    def _last_run(self, path: Path, limits: ReadLimits, starts: list[int], earlier: int,
                  skip: list[tuple[int, int]]) -> RunLog:
        """One run of a console of runs that are not complete trials (a run cut short and started
        again, resumed, restarted): the last one, or, where it is too short to judge (fewer points
        of its loss or gradient norm than ``insufficient_data``'s bar: an aborted start), the last
        one long enough. The NaN/Inf of every run not read are noted (``skipped_nonfinite``), so the
        ``nonfinite`` check still reports them (logsweep61 u08: an MXNet console of ten appended
        runs whose last was a 2-point fragment, while two earlier ones logged ``Train-SmoothL1=nan``)."""
        name, total = path.name, len(starts) + earlier
        ends: list[int | None] = [*starts[1:], None]
        chosen = len(starts) - 1
        log = self._segment(path, limits, starts[chosen], None, [], skip)
        short = _judged_points(log)
        why = ""
        # (a run that counted to its own total is whole however short: a 5-epoch fine-tune after a
        # 10-epoch fit is read, not passed over for the fit)
        if short[0] < _JUDGED_POINTS and not _counted_to_its_total(path, limits, starts[chosen]):
            tried = 0
            for k in range(chosen - 1, -1, -1):
                if starts[k + 1] - starts[k] < _JUDGED_POINTS:
                    continue  # fewer lines than the points it needs (no pass over the file)
                tried += 1
                if tried > _MAX_FALLBACKS:
                    break  # (each try reads the file again)
                try:
                    candidate = self._segment(path, limits, starts[k], ends[k], [], skip)
                except LineTooWide:
                    raise
                except LogError:
                    continue  # a stretch with no values of its own
                if _judged_points(candidate)[0] >= _JUDGED_POINTS:
                    why = (f"; the last one, from line {starts[-1]}, has only {short[0]} point(s) of {short[1]}, "
                           f"fewer than the {_JUDGED_POINTS} a trend needs: lines {starts[k]}-{_last_line(ends[k])}, "
                           f"run {earlier + k + 1}, the last run long enough to judge, are read")
                    chosen, log = k, candidate
                    break
        note = LogWarning(
            "skipped_runs", f"{name}: {total} runs appended one after another (the step or epoch counter's total "
            f"changes, or its epochs start again), not each judged as complete trials are (each counting to "
            f"its own total or as far as the furthest, or each after a header naming its settings): a run "
            f"before the last stopped before its own total (or, counting none, short of the furthest), so "
            f"it is taken for one cut short and superseded by the next"
            + (why or f"; the last one, from line {starts[chosen]}, is read"),
            where=f"line {starts[chosen]}")
        # every stretch not read: the runs before the first start that were only counted, and the others
        spans: list[tuple[str, int, int | None]] = (
            [(f"runs 1-{earlier}" if earlier > 1 else "run 1", 1, starts[0])] if earlier else [])
        spans += [(f"run {earlier + k + 1} of {total}", starts[k], ends[k]) for k in range(len(starts)) if k != chosen]
        log.warnings = [note, *log.warnings, *_skipped_nonfinite(path, limits, spans, starts[chosen])]
        return log

    def _trials(self, path: Path, limits: ReadLimits, starts: list[int], how: str,
                earlier: int = 0, skip: list[tuple[int, int]] | None = None,
                superseded: frozenset[int] = frozenset()) -> RunLog | None:
        """A console of complete trials appended one after another (a search: each counts its epochs
        to the end, then the next starts at epoch 1; fits of different totals, each to its own; or each
        follows a header line), each read and judged on its own as a folder's runs are: series
        ``run<k>/<name>``. ``how``: how they were told apart; ``earlier``: trials before ``starts[0]``
        that were only counted (past :data:`_MAX_HEADERS`); ``superseded``: the first lines of runs
        that stopped before their own totals before the next started (a crash, then a relaunch): not
        judged, a ``skipped_runs`` note names them, and their NaN/Inf are ``skipped_nonfinite`` notes
        (so ``nonfinite`` still reports the blow-up that may be why it was relaunched). None where fewer
        than two trials hold values."""
        skipped = max(0, len(starts) - _MAX_TRIALS)
        ends: list[int | None] = [*starts[1:], None]
        logs: list[tuple[str, int, RunLog]] = []
        cut: list[tuple[str, int, int | None]] = []  # the runs superseded: (which, first line, next run's)
        for k in range(skipped, len(starts)):
            if starts[k] in superseded and ends[k] is not None:
                cut.append((f"run {earlier + k + 1} of {len(starts) + earlier}", starts[k], ends[k]))
                continue
            try:
                logs.append((f"run{earlier + k + 1}", starts[k],
                             self._segment(path, limits, starts[k], ends[k], [], skip or [])))
            except LineTooWide:
                raise
            except LogError:
                continue  # a stretch with no values of its own
        if len(logs) < 2:
            return None
        skipped += earlier
        warnings = [several_runs(
            path.name, f"{len(starts) + earlier} runs appended one after another, {how}",
            [f"{p} (line {at})" for p, at, _ in logs],
            tail=f"; the first {skipped} are not read" if skipped else "")]
        if cut:
            warnings.append(LogWarning(
                "skipped_runs", f"{path.name}: " + ", ".join(f"{label} (lines {first}-{_last_line(stop)})"
                                                        for label, first, stop in cut)
                + (" each" if len(cut) > 1 else "") + " stopped before its own total and the next run started: "
                "taken for one cut short and superseded by the next (a crash, then a relaunch), not judged for "
                "trends; a NaN/Inf in it is still noted", where=f"line {cut[0][1]}"))
            for span in cut:
                warnings += _skipped_nonfinite(path, limits, [span], span[2] or span[1])
        merged = RunLog(format=self.name, source=path.name, warnings=warnings, runs=[p for p, _, _ in logs],
                        traceback=logs[-1][2].traceback, after_training=logs[-1][2].after_training)
        for prefix, _, log in logs:
            merged.series += [replace(s, name=f"{prefix}/{s.name}") for s in log.series]
            merged.warnings += log.warnings
            merged.params = {**log.params, **merged.params}
        return merged

    def _segment(self, path: Path, limits: ReadLimits, start: int, stop: int | None,
                 warnings: list[LogWarning], skip: list[tuple[int, int]] | None = None) -> RunLog:
        """The run of lines ``start`` to ``stop`` (excluded; None: the end) of the console at ``path``,
        less the lines of ``skip``'s (first, last) stretches (its config dumps: :class:`_ConfigBlocks`; its
        Keras model summaries: :class:`_ModelSummaries`)."""
        planned: dict[str, float] = {}
        run = self._segment_read(path, limits, start, stop, warnings, skip or [], planned)
        run = replace(run, series=_eval_roles(run.series))
        # the run's planned length, in its loss's unit, where its counters state one (logsweep98 mlx557:
        # "iters: 3000", "Iter 110/3000"): a plateau over its first part is "flat so far"
        loss = run.first("loss")
        unit = loss.step_unit if loss is not None else None
        if unit in planned:
            run.planned_steps, run.planned_unit = planned[unit], unit
        return run

    def _segment_read(self, path: Path, limits: ReadLimits, start: int, stop: int | None,
                      warnings: list[LogWarning], skip: list[tuple[int, int]],
                      planned: dict[str, float]) -> RunLog:
        """:meth:`_segment`'s read; ``planned`` gets the largest total the lines' counters name, by
        unit (``step``, ``epoch``)."""
        name = path.name
        points = Points(name, limits)
        last_step: float | None = None
        first_step: float | None = None
        steps_first = False  # stepped lines came before any epoch (an excerpt starting mid-epoch)
        # the last step was named by a line with no value of its own (mmcv's "resumed epoch 3, iter 7317"),
        # and no line has named a step of its own beside a value yet: lines placed by their own epoch
        # position after it ("Epoch [4][50/2000]") are placed there, never at that step
        bare_step = placed_at_step = False
        index = 0
        # lines with values before the first step: (running index, values); placed at the end
        # (None: a line with nothing but its epoch, a header, which takes no running index)
        pending: list[tuple[float | None, list[tuple[str, float]]]] = []
        stepless = False                   # so many lines before any step that they take the index
        stepped: set[str] = set()          # names with values at or after the first step
        prev_keys: list[str] = []
        names_seen: set[str] = set()       # every name read so far: what a wrapped name's pieces join to
        prev_line = this_line = ""         # the line before this one, as read
        shapes: set[tuple[str, ...]] = set()  # the names of every whole line so far, in order
        tb: deque[str] | None = None       # a traceback with no values after it (yet)
        tb_line = 0
        tb_prefix = ""
        in_tb = False
        # the last line with values, the last Keras "Epoch i/N" header, the lines since the last line
        # with values, and those three when the traceback began: whether training had ended before it
        last_values: str | None = None
        last_header: str | None = None
        since_values: deque[tuple[int, str]] = deque(maxlen=_MAX_TB_LINES)
        tb_context: tuple[str | None, str | None, list[tuple[int, str]]] | None = None
        bad_bytes_line = 0
        long_line: tuple[int, str] | None = None  # the first line too long (and its length, worded) to read values from
        long_lines = 0
        bad_step: tuple[int, str] | None = None  # the first line whose step is no step, and why
        bad_steps = 0
        event: tuple[int, str] | None = None  # the first line reporting a NaN/Inf (line, text)
        # a log without steps that counts epochs (Keras' "Epoch 2/10" headers, fairseq's
        # "| epoch 002 |", an mmdet "Epoch [1][50/5808]"): each name's last value in each epoch
        # the epoch of the last line that names one without a step (progress lines above the first
        # "Epoch N/M" header: N - 1's)
        header_epoch = epoch = _epoch_above(path, limits) if start == 1 else None
        bar_last: int | None = None   # the last Keras progress count read as a step, and how many
        bar_round = 0                 # times the count started again (an epoch each)
        # under Keras epoch headers: the fit's bar total and the epoch whose bar reached it; a bar of
        # another total after it, under the same header, is model.evaluate()'s (or predict's)
        fit_total: int | None = None
        fit_at: float | None = None     # the epoch fit_total was read in
        fit_done: float | None = None
        fit_eval: float | None = None   # the epoch an evaluate() bar followed the fit's in
        fit_keys: set[str] = set()      # the names the fit's bar prints
        in_eval = False
        eval_block = False  # under an evaluation's heading in a log placed by steps (see below)
        held: tuple[int, list[tuple[str, str]]] | None = None  # an evaluation pass's last report so far
        table: list[str] | None = None     # the columns of an "Epoch ..." table (YOLO's console)
        by_epoch: dict[str, dict[float, float]] = {}
        epoch_top: float | None = None    # the furthest epoch a line placed by epoch reached
        rewritten: tuple[int, float, float] | None = None  # (line, from, to): the epoch went back onto values
        back_to_start = 0  # times the epoch went back to (or below) the first one after advancing
        placed_epoch: float | None = None  # the epoch of the line before placed by its epoch
        stretch_top = longest = -math.inf  # the furthest epoch since the last return; the longest stretch
        replaced: dict[str, None] = {}  # the names whose values at an epoch a later pass replaced, in order
        first_epoch: float | None = None
        within_top: float | None = None  # the furthest fractional epoch a line placed itself at
        # where each NaN/Inf kept by epoch was logged ((name, epoch) -> line), and the first one a
        # later line at the same epoch replaced (line, name, value, epoch): never hidden silently
        nonfinite_at: dict[tuple[str, float], int] = {}
        hidden: tuple[int, str, float, float] | None = None
        # (epoch, values, shape, half units) of each line that prints its own epoch, in order: the
        # Trainer's dicts round a fractional epoch to 2 decimals, so lines logged within 0.01 of an
        # epoch share one (the shape and each value's printed half unit tell one step logged in two
        # line styles from two steps: _one_step)
        epoch_rows: list[_EpochRow] | None = []
        redrawn: set[int] = set()  # epoch_rows' rows a carriage return redrew (a progress line's but its last)
        epoch_lines = batch_lines = 0
        loss_lines = loss_epoch_lines = 0  # lines with a loss, and those of them in an epoch
        # (epoch, step, values) of each stepped line, for a step that starts again every epoch
        stepped_rows: list[_SteppedRow] | None = []
        # the stepped lines before the first line that names an epoch (a paste that starts mid-epoch,
        # above its first "Training at epoch N" header): the epoch before it, where the counter
        # starts again at each epoch (_before_first_epoch)
        early_rows: list[_SteppedRow] = []
        lengths: set[int | None] = set()  # N of the "iteration i of N" positions lines give
        letters: dict[str, int] = {}  # the lines each one-letter name (marked, _ONE) has a value on
        # (epoch, step, the counter's name) of each line naming both (``ep: 0, batch: 160``), for
        # findings to say where as the log does
        worded: list[tuple[float, float, str]] | None = []
        skip_at = 0  # the first of skip's stretches not behind the line read
        summary_line = 0  # the first Keras model summary's first line (skipped: set-up, no series)
        # Keras "Epoch i/N" headers: the first out of range (line, why) and how many; the first that
        # placed lines and how many (a header alone on its line is a position, never a series)
        bad_header: tuple[int, str] | None = None
        bad_headers = headers = header_line = 0
        # (the step and values of the last line with values placed by a step, and the lines repeating
        # it that were read once)
        last_signature: tuple[float, tuple[tuple[str, str], ...]] | None = None
        duplicates = first_duplicate = 0  # lines repeating the line before them, and the first's number
        # a progress bar's frames redrawn after a carriage return (tqdm's "\rEpoch 2/200:  1%| 1/180"),
        # repeating the values before them: how many, on how many lines, and the first line holding one
        refreshes = refresh_lines = first_refresh = refresh_at = 0
        bar_totals: set[int] = set()  # the totals of the progress bars an epoch names ("Epoch 2/200: 52%|...| 93/180")
        with open_log(path, limits) as f:
            raw = read_line(f, MAX_LINE)
            lineno = 0
            while raw:
                if ticks.armed:  # a cancelled job stops here, within a fraction of a second of reading
                    tick()
                nxt = read_line(f, MAX_LINE)
                lineno += 1
                size = raw.size if isinstance(raw, CutLine) else None
                last_unterminated = not nxt and not raw.endswith(b"\n")
                text = raw.decode("utf-8", "replace")
                if "\ufffd" in text and not bad_bytes_line and b"\xef\xbf\xbd" not in raw:
                    bad_bytes_line = lineno
                raw = nxt
                if lineno < start:
                    continue  # an earlier run appended before the last
                if stop is not None and lineno >= stop:
                    break  # the next run
                if skip_at < len(skip) and skip[skip_at][0] <= lineno:
                    while skip_at < len(skip) and skip[skip_at][1] < lineno:
                        skip_at += 1
                    if skip_at < len(skip) and skip[skip_at][0] <= lineno:
                        if not summary_line and lineno == skip[skip_at][0] and _MODEL_HEADER.match(text.encode()):
                            summary_line = lineno
                        continue  # a config dump's or a model summary's line: set-up, no series
                if lineno == 1:
                    text = text.lstrip("\ufeff")
                stripped = text.rstrip("\r\n")
                prev_line, this_line = this_line, stripped
                if len(stripped) > MAX_VALUES_LINE:
                    long_lines += 1
                    long_line = long_line or (lineno, f"{size:,} bytes" if size is not None
                                              else f"{len(stripped):,} characters")
                    continue
                if "\x1b" in stripped:
                    # terminal colour and erase codes (Ultralytics starts each progress row with
                    # "\x1b[K"): out before the line is split at "\r" and its rows are matched
                    stripped = _ANSI.sub("", stripped)
                if event is None and any(h in stripped for h in _EVENT_HINTS) and _NONFINITE_EVENT.search(stripped):
                    event = (lineno, stripped.strip()[:300])
                if _TRACEBACK in stripped:
                    if tb is None or not in_tb:
                        tb, tb_line = deque(maxlen=_MAX_TB_LINES), lineno
                        tb_context = (last_values, last_header, list(since_values))
                        tb_prefix = stripped[:stripped.index(_TRACEBACK)]   # e.g. "[rank0]: "
                    tb.append(stripped)
                    in_tb = True
                    continue
                if in_tb and tb is not None:
                    read_on = False
                    tb.append(stripped)
                    body = stripped[len(tb_prefix):] if stripped.startswith(tb_prefix) else stripped
                    if body and not body[0].isspace() and not body.startswith(
                            ("During handling", "The above exception")):
                        if _EXCEPTION_LINE.match(body):
                            in_tb = False   # the exception line ends this traceback
                        elif _all_values(body)[0]:
                            in_tb = False   # no exception line: the log goes on with values
                            tb.pop()
                            read_on = True
                    if not read_on:
                        # (a frame's line cut by the terminal's width, "82, in launch" under a tmux
                        # capture's '...launch.py", line', is still the traceback, its exception to come)
                        continue
                if stripped.strip():
                    since_values.append((lineno, stripped))
                segments = stripped.split("\r")
                last_segment = segments[-1]
                for segment in segments:
                    if "%|" in segment and len(bar_totals) < 2 and (bar := _EPOCH_BAR.search(segment)) is not None:
                        bar_totals.add(int(bar["n"]))
                    if ("poch" in segment and (header := _KERAS_COUNT.match(segment)) is not None
                            and (out_of_range := _bad_epoch_header(header[1], header[2])) is not None):
                        # an "Epoch i/N" header out of range ("Epoch 0/0", a 31-digit epoch): it places
                        # nothing, and is no value either; the lines under it go on as if it were not there
                        bad_headers += 1
                        if bad_header is None:
                            bad_header = (lineno, f"the Keras epoch header {segment.strip()[:80]!r} is out of range ({out_of_range})")
                        continue
                    _planned_in(segment, last_step is None and epoch is None, planned)
                    table = table or headerless_table(segment)
                    row = table_row(table, segment) if table else None
                    try:
                        found, total = (row, None) if row else _all_values(segment)
                    except LineTooWide as e:
                        raise LineTooWide(e.count, f"{name} line {lineno}") from None
                    if found and segment is segments[0] and _wrapped_name(found[0][0], segment, prev_line, names_seen):
                        found = found[1:]  # the rest of a name cut by the terminal's width: no series of its own
                    if found:
                        names_seen.update(k for k, _ in found)
                    if found and found[0][0].startswith(_ONE):
                        found = []  # one-letter names alone on a line (a config's "B=32 T=1024")
                    if found and found[0][0] == _BAR_KEY:
                        # a Keras progress line: under an "Epoch 3/10" header its epoch places it (as
                        # before), pasted without one (a NaN report) its batch counter is the step,
                        # counted on across epochs where it starts again (12299/12300, 12300/12300,
                        # 12299/12300...: the headers cut from the paste)
                        if header_epoch is None:
                            count = _count(found[0][1])
                            if count is None:
                                # too many digits for a count: the step check below skips the line
                                found = [("step", found[0][1]), *found[1:]]
                            else:
                                if bar_last is not None and count < bar_last and total:
                                    bar_round += 1
                                bar_last = count
                                found = [("step", str(bar_round * int(total or 0) + count)), *found[1:]]
                            total = None
                        else:
                            found = found[1:]
                    if found and header_epoch is not None and len(found) > 1:
                        found = [(k, v) for k, v in found if not _size_value(k, v)]
                    if found and header_epoch is not None and found[0][0] != _BAR_KEY:
                        if fit_at != header_epoch:
                            fit_total, fit_at = None, header_epoch  # each epoch's first count is the fit's
                        fit_counts = _FIT_COUNT.match(segment)
                        if fit_counts is not None and fit_done == header_epoch and int(fit_counts[2]) != fit_total:
                            # an evaluate() bar after fit()'s last bar of this epoch ("313/313 ... loss:
                            # 0.3188" after "6000/6000 ... loss: 0.3103"): the test set's figures, not the
                            # epoch's training loss (logsweep87 deepfd_repair)
                            found = [(k if k.startswith(("eval_", "val_")) else f"eval_{k}", v) for k, v in found]
                            fit_eval = header_epoch
                        elif fit_counts is not None and fit_total in (None, int(fit_counts[2])):
                            fit_total, fit_keys = int(fit_counts[2]), {k for k, _ in found}
                            if int(fit_counts[1]) == fit_total:
                                fit_done = header_epoch
                        elif fit_counts is None and fit_done == header_epoch and not (in_eval or eval_block):
                            # a summary after the epoch's finished bar ('Info:{"loss": "0.3188", ...}'): the
                            # evaluation's figures after an evaluate() bar, else a repeat of the bar's
                            found = [(f"eval_{k}", v) if k in fit_keys and fit_eval == header_epoch else (k, v)
                                     for k, v in found if k not in fit_keys or fit_eval == header_epoch]
                    pieces: list[tuple[list[tuple[str, str]], float | None]]
                    if found and found[0][0] == _PASS_KEY:
                        # an evaluation's report part way through its pass ("Test: [10/242] ... Loss 5.2
                        # (5.17)"): the lines between are the evaluation's (as under an "Eval begin..."
                        # heading), and the pass's last report printed is its figures, kept when the
                        # pass ends (a new one starts, or a line names a position or is training's)
                        in_eval = in_eval or (epoch is not None and _eval_heading(segment))
                        at_batch = int(found[0][1])
                        pieces = [] if held is None or at_batch > held[0] else [(held[1], None)]
                        held = (at_batch, found[1:])
                    elif held is not None and found and (
                            {k.lower() for k, _ in found} & _POSITION_KEYS
                            or (not in_eval and not any(k.startswith("eval_") for k, _ in found))
                            or {k for k, _ in held[1]} <= {k for k, _ in found}):
                        # (the pass's own last report, "Test: [241/242]", replaces the held one)
                        pieces = ([(found, total)] if {k for k, _ in held[1]} <= {k for k, _ in found}
                                  else [(held[1], None), (found, total)])
                        held = None
                    else:
                        pieces = [(found, total)]
                    for found, total in pieces:
                        if not found:
                            table = table_header(segment) or table
                            # "Eval begin...": in a log that counts epochs, the lines up to the next
                            # epoch are an evaluation's (Paddle's Model.fit prints them as training's)
                            # (after a logging record's head and an emoji: "INFO:__main__:📊 Evaluation Results:")
                            in_eval = in_eval or (epoch is not None and _eval_heading(segment, alone=True))
                            # ... in a log placed by its steps, the results printed one a line under such a
                            # heading (BERT's "***** Eval results *****", "  loss = 0.72"), up to the next
                            # line without a value
                            eval_block = (last_step is not None and _EVAL_RESULTS.search(segment) is not None
                                          and _eval_heading(segment, alone=True))
                            continue
                        names = {k.lower() for k, _ in found}
                        if eval_block and len(names - STEP_KEYS) <= 1:
                            found = [(k if k.lower() in STEP_KEYS or k.lower().startswith(_SPLITS) else f"eval_{k}", v)
                                     for k, v in found]
                            names = {k.lower() for k, _ in found}
                        else:
                            eval_block = False
                        if _ESTIMATOR_EVAL in segment and "loss" in names:
                            # TF Estimator's evaluation dict ("Saving dict for global step 5468: eval_accuracy =
                            # 0.85, eval_loss = 0.7217, global_step = 5468, loss = 0.7219"): its "loss" is the
                            # evaluation's mean loss, never a training point (logsweep85 bertsim_nohup)
                            found = [("eval_loss" if k.lower() == "loss" else k, v) for k, v in found
                                     if not (k.lower() == "loss" and "eval_loss" in names)]
                            names = {k.lower() for k, _ in found}
                        if "batch" in names and names & {"epoch", "ep"} and not names & STEP_KEYS:
                            # "ep: 0, batch: 160, ..., loss: 9.6": the batch counted within the epoch is
                            # the line's step, the "ep" beside it its epoch (findings name both, as the
                            # log does: "epoch 0, batch 160")
                            found = [("step" if k.lower() == "batch" else "epoch" if k.lower() == "ep"
                                      and "epoch" not in names else k, v) for k, v in found]
                            names = {k.lower() for k, _ in found}
                            counter_word = "batch"
                        elif "ep" in names and not names & _POSITION_KEYS and not any(
                                _REWARD_WORD.search(k) for k in names):
                            # pytorch-kaldi's "ep=23 tr=['train_clean_100'] loss=nan ...": "ep" is the
                            # epoch (not beside a reward, where it counts an agent's episodes)
                            found = [("epoch" if k.lower() == "ep" else k, v) for k, v in found]
                            names = {k.lower() for k, _ in found}
                            counter_word = "step"
                        else:
                            counter_word = next((k.lower() for k, _ in found if k.lower() in STEP_KEYS), "step")
                        # (every form of _EPOCH_POS counts i/n)
                        pos = (_EPOCH_POS.search(segment) if "epoch" in names and "/" in segment
                               and ("poch" in segment or "][" in segment) else None)
                        if pos is not None:
                            lengths.add(next((_count(pos[f[2]]) for f in _POSITION_FORMS if pos[f[2]]), None))
                        elif ("epoch" in names and "/" in segment and not names & STEP_KEYS
                              and (counter := _COUNTER.search(segment)) is not None
                              and _word_at(segment.lower(), "epoch") < counter.start()):
                            # "Epoch 0 | Step 3000/6501": the step counted within the epoch, read as the
                            # fractional epoch 0 + 3000/6501 (_parsed); its N names the position again
                            lengths.add(_count(counter[2]))
                        if ("epoch" in names and in_eval and epoch is not None and not names & STEP_KEYS and len(names) > 1
                                and float(dict((k.lower(), v) for k, v in found)["epoch"]) == epoch
                                and not any(k.lower().startswith(_SPLITS) for k, _ in found)):
                            # an evaluation announced on a line of its own that reprints the epoch it
                            # evaluates (Paddle's examples: "testing in eval mode……", then "epoch: 0, loss
                            # is: 0.49, acc is: 0.84" after the training line of epoch 0): its values are
                            # the evaluation's, not a second training line replacing the first
                            found = [(k if k.lower() == "epoch" or k.startswith("eval_") else f"eval_{k}", v)
                                     for k, v in found]
                        elif "epoch" in names:
                            in_eval = False
                            if not names & STEP_KEYS:
                                header_epoch = float(dict((k.lower(), v) for k, v in found)["epoch"])
                        elif in_eval or (epoch is not None and not names & _POSITION_KEYS and _eval_heading(segment)):
                            # (and a line of its own values under such a heading: "🎉 Final Results: Loss=0.4886")
                            found = [(k if k.startswith("eval_") else f"eval_{k}", v) for k, v in found
                                     if k.lower() not in STEP_KEYS]
                        elif total and header_epoch is not None and names & STEP_KEYS:
                            # "step 614/614 - loss: 0.0878" under an "Epoch 2/10" header: a position in it
                            i = next(float(v) for k, v in found if k.lower() in STEP_KEYS)
                            found = [(k, v) for k, v in found if k.lower() not in STEP_KEYS]
                            if steps_first:
                                # the counted lines above the first header were placed by their step:
                                # the count goes on across epochs ("Iter: [3800/3877]", then
                                # "[Epoch=001/020]" and "Iter: [000/3877]" is step 3877)
                                found.insert(0, ("step", repr(header_epoch * total + i)))
                            else:
                                found.append(("epoch", repr(round(header_epoch + i / total, 6))))
                            total = None  # (the count of an epoch's batches, no planned length of the run)
                        if total and any(k.lower() in STEP_KEYS for k, _ in found):
                            # the line's own step, out of its total ("Iter 110/3000"): the run plans that many
                            planned["step"] = max(planned.get("step", 0.0), total)
                        if not found:
                            continue
                        keys = [k for k, _ in found]
                        # cut off: fewer values than the line before and the same first ones, in a shape no
                        # whole line had (a summary line "<epoch:550, Average PSNR : 30.82dB" ends a log whole)
                        if (last_unterminated and len(keys) < len(prev_keys) and prev_keys[:len(keys)] == keys
                                and tuple(keys) not in shapes):
                            warnings.append(LogWarning(
                                "truncated_log", f"{name} line {lineno}: the last line is cut off (it has "
                                f"{len(keys)} of the {len(prev_keys)} values of the line before); read up to "
                                f"line {lineno - 1}", where=f"line {lineno}"))
                            break
                        step = None
                        values: list[tuple[str, float]] = []
                        why = None
                        for k, v in found:
                            value = float(v)   # the pattern lets only numbers, nan, inf, infinity through
                            #                    (pairs() has dropped thousands commas)
                            if (k.lower() in STEP_KEYS and "." in v and not value.is_integer()
                                    and _TIMINGS.search(segment) is not None):
                                # DeepSpeed's wall_clock_breakdown, "time (ms) | forward: 9298.00 |
                                # backward: 23461.01 | step: 2.08": the optimizer step's time, never
                                # the step (a step counter is a whole number) (logsweep90)
                                values.append((f"{k}_time", value))
                            elif k.lower() in STEP_KEYS and step is None:
                                step = value
                                why = _bad_step(v)
                            else:
                                values.append((k, value))
                        if why is not None:
                            # a step that is no step ("step inf", "step nan", "step 1e400", a hash's digits):
                            # the line is skipped, never given the step before (its values would replace
                            # that step's own)
                            bad_steps += 1
                            if bad_step is None:
                                shown = ", ".join(f"{k} = {value:g}" for k, value in values[:3])
                                bad_step = (lineno, f"{why}; the line{f' ({shown})' if shown else ''} is")
                            continue
                        if step is not None:
                            bare_step = all(k.lower() == "epoch" for k, _ in values)
                        elif (bare_step and not placed_at_step and last_step is not None
                              and _EPOCH_POS.search(segment) is not None):
                            # a line placed by its epoch and its batch within it (e, i, n) after a line
                            # that named a step and nothing else (a resume's "resumed epoch 3, iter 7317"):
                            # the position it names is its own, the step before placed no value
                            last_step = first_step = None
                            steps_first = bare_step = False
                        if step is not None:
                            last_step = step
                            if first_step is None:
                                first_step = step
                                steps_first = epoch is None and header_epoch is None
                        line_epoch: float | None = None
                        for j, (k, value) in enumerate(values):
                            if k.lower() == "epoch" and value == value and abs(value) != float("inf"):
                                line_epoch = value
                                if value.is_integer() and within_top is not None and value < within_top < value + 1:
                                    # a whole epoch after lines placed within it (0.067 ... 0.94): the
                                    # epoch's summary ("| end of epoch 1 | valid loss", "Epoch 0 completed |
                                    # Avg Loss"), at its end, after its batches, not before them at its start
                                    value = value + 1 - 1e-6
                                    values[j] = (k, value)
                                elif not value.is_integer():
                                    within_top = value if within_top is None else max(within_top, value)
                                epoch = value
                        if any(_is_loss(k) for k, _ in values):
                            loss_lines += 1
                            loss_epoch_lines += epoch is not None
                        if last_step is None and epoch is not None:
                            if first_epoch is None:
                                first_epoch = epoch
                            elif (epoch_top is not None and epoch < epoch_top and epoch <= first_epoch < epoch_top
                                  and placed_epoch is not None and epoch < placed_epoch):
                                # (counted where the epoch goes back, not on every line after it)
                                back_to_start += 1
                                longest = max(longest, stretch_top - first_epoch + 1)
                                stretch_top = epoch
                            placed_epoch = epoch
                            stretch_top = max(stretch_top, epoch)
                            for k, value in values:
                                if k.lower() != "epoch":
                                    at_epoch = by_epoch.setdefault(k, {})
                                    if epoch_top is not None and epoch < epoch_top and epoch in at_epoch:
                                        # the epoch went back (a run resumed from a checkpoint): this
                                        # value replaces one an earlier pass logged at the same epoch
                                        if rewritten is None:
                                            rewritten = (lineno, epoch_top, epoch)
                                        if len(replaced) < _MAX_NAMED:
                                            replaced.setdefault(k)
                                    nan_line = nonfinite_at.pop((k, epoch), None)
                                    if (nan_line is not None and hidden is None and math.isfinite(value)
                                            and not (record_name(k) and math.isinf(at_epoch[epoch]))):
                                        # (a best-so-far's inf, ``best_loss=inf`` before there is a best,
                                        # is the trainer's placeholder: replaced, it hid no failure)
                                        hidden = (nan_line, k, at_epoch[epoch], epoch)
                                    if not math.isfinite(value):
                                        nonfinite_at[(k, epoch)] = lineno
                                    at_epoch[epoch] = value
                            epoch_top = epoch if epoch_top is None else max(epoch_top, epoch)
                            if epoch_rows is not None:
                                own = [(k, v) for k, v in values if k.lower() != "epoch"]
                                if len(own) == len(values) or len(epoch_rows) >= _MAX_PENDING * 10:
                                    epoch_rows = None  # under a header's epoch (Keras): its last line
                                elif own:
                                    printed = dict(found)
                                    if segment is not last_segment:
                                        redrawn.add(len(epoch_rows))
                                    epoch_rows.append((epoch, own, tuple(keys),
                                                       {k: _half_unit(printed.get(k, "")) for k, _ in own}))
                            epoch_lines += 1
                            batch_lines += any(k.lower() == "batch" for k, _ in values)
                        if not values:
                            continue
                        # a line with nothing but its epoch ("Epoch 3/5" alone): a header, a position;
                        # where no line names a step, it is no value at a running index of its own
                        header_only = step is None and all(k.lower() == "epoch" for k, _ in values)
                        if header_only:
                            headers += 1
                            header_line = header_line or lineno
                            last_header = segment
                        else:
                            last_values = segment
                            since_values.clear()
                        tb = None               # values after a traceback: training went on
                        for k, _ in values:
                            if k.startswith(_ONE):
                                letters[k] = letters.get(k, 0) + 1
                        prev_keys = keys
                        shapes.add(tuple(keys))
                        if last_step is not None:
                            # the same values at the same step as the line before with values: one point
                            # printed twice (absl's every message, once as "INFO:tensorflow:..." and once
                            # glog-prefixed "I1212 15:10:27.449 ... train.py:298] ..."; a console tee'd into
                            # its own log), never two points (logsweep85 estranet: 80 reports read as 160)
                            signature = (last_step, tuple((k, repr(value)) for k, value in values))
                            if signature == last_signature:
                                if len(segments) > 1:
                                    # a frame of a bar redrawn in place on one line: no message printed twice
                                    refresh_lines += refresh_at != lineno
                                    refresh_at = lineno
                                    refreshes += 1
                                    first_refresh = first_refresh or lineno
                                else:
                                    duplicates += 1
                                    first_duplicate = first_duplicate or lineno
                                continue
                            last_signature = signature
                            # (a header is a position, never a value: under a log's named steps its
                            # epoch only marks where the epoch began, as stepped_rows keep it)
                            for k, value in values if not header_only else ():
                                points.add(k, last_step, value)
                                stepped.add(k)
                                placed_at_step = placed_at_step or (step is not None and k.lower() != "epoch")
                            if worded is not None and step is not None and line_epoch is not None:
                                # the line names its epoch and its counter within it: findings say both
                                worded.append((line_epoch, step, counter_word))
                                if len(worded) > _MAX_PENDING * 10:
                                    worded = None
                            if stepped_rows is not None:
                                # kept only while every stepped line is in an epoch, and not past the cap
                                # (a truncated list would rebuild part of the log)
                                if epoch is None and not stepped_rows and len(early_rows) < _MAX_PENDING * 10:
                                    early_rows.append((math.nan, last_step, values, step is not None, lineno))
                                elif epoch is None or len(stepped_rows) + len(early_rows) >= _MAX_PENDING * 10:
                                    stepped_rows = None
                                else:
                                    stepped_rows.append((epoch, last_step, values, step is not None, lineno))
                        elif stepless:
                            for k, value in values if not header_only else ():
                                points.add(k, float(index), value)
                        else:
                            pending.append((None if header_only else float(index), values))
                            if len(pending) > _MAX_PENDING:
                                _add(points, pending, None)
                                pending, stepless = [], True
                        index += not header_only
        if held is not None:
            # the log ends inside an evaluation pass: its last report, where the pass is placed
            for k, v in held[1]:
                if last_step is not None:
                    points.add(k, last_step, float(v))
                elif epoch is not None and by_epoch:
                    by_epoch.setdefault(k, {})[epoch] = float(v)
        if event is not None:
            warnings.append(LogWarning("nonfinite_event", f"{name} line {event[0]}: {event[1]}",
                                       where=f"line {event[0]}"))
        if bad_step is not None:
            more = f" (and {bad_steps - 1:,} more such lines)" if bad_steps > 1 else ""
            warnings.append(LogWarning("skipped_line", f"{name} line {bad_step[0]}: {bad_step[1]} skipped{more}",
                                       where=f"line {bad_step[0]}"))
        if duplicates:
            warnings.append(LogWarning(
                "repeated_lines", f"{name}: {duplicates:,} line(s) repeat the step and values of the line with "
                f"values before them ({'the first is' if duplicates > 1 else 'it is'} line {first_duplicate}: one "
                "message printed twice: by two logging handlers, a console copied into its own log, a progress line "
                "printed again when it ends): each point is read once", where=f"line {first_duplicate}"))
        if refreshes:
            warnings.append(LogWarning(
                "repeated_lines", f"{name}: {refreshes:,} progress-bar refreshes (a bar redrawn in place after a "
                f"carriage return, as tqdm does) on {refresh_lines:,} line(s) repeat the step and values before them "
                f"({'the first is on' if refresh_lines > 1 else 'on'} line {first_refresh}): each point is read once",
                where=f"line {first_refresh}"))
        if bad_header is not None:
            more = f" (and {bad_headers - 1:,} more such lines)" if bad_headers > 1 else ""
            warnings.append(LogWarning(
                "skipped_line", f"{name} line {bad_header[0]}: {bad_header[1]}; the header places no line and is "
                f"skipped{more}", where=f"line {bad_header[0]}"))
        if long_line is not None:
            more = f" (and {long_lines - 1:,} more such lines)" if long_lines > 1 else ""
            warnings.append(LogWarning(
                "skipped_line", f"{name} line {long_line[0]}: {long_line[1]} long, more than the "
                f"{MAX_VALUES_LINE:,} a line's values are read from: skipped{more}", where=f"line {long_line[0]}"))
        if bad_bytes_line:
            warnings.append(LogWarning("replaced_bytes", f"{name} line {bad_bytes_line}: bytes that are "
                                       "not UTF-8 were replaced", where=f"line {bad_bytes_line}"))
        traceback = after_training = None
        if tb is not None:
            traceback = "\n".join(tb).strip("\n")
            after_training = _training_ended(*tb_context) if tb_context is not None else None
            warnings.append(LogWarning(
                "truncated_log", f"{name} line {tb_line}: the log ends in a Python traceback; "
                + (f"training had ended before it ({after_training}): a later stage failed, not training"
                   if after_training else "training stopped there"), where=f"line {tb_line}"))
        early: list[Series] = []
        # (by epoch when most lines are in one, or the losses are: a console's other lines, model
        # loading and config prints, come before the first epoch)
        epochs_seen = len({e for v in by_epoch.values() for e in v})
        # (one line of values in its epoch is at it, under its "Epoch 1/1" header or not: a one-epoch fit)
        if first_step is None and by_epoch and not batch_lines and (epochs_seen > 1 or index == 1 <= epoch_lines) and (
                epoch_lines * 2 >= index or loss_epoch_lines >= 0.8 * loss_lines > 0):
            # no step in the whole log, but epochs: each epoch's last values, at the epoch; or,
            # where each line prints its own fractional epoch, every line at its place in it
            spread = _spread_epochs(epoch_rows) if epoch_rows else None
            whole = _spread_whole_epochs(epoch_rows, redrawn) if epoch_rows and spread is None else None
            if whole:
                # batch values printed with their whole epoch: each a point; the names printed once an
                # epoch (its summary) stay at the epoch
                spread = {k: whole.get(k, v) for k, v in by_epoch.items()}
                if hidden is not None and hidden[1] in whole:
                    hidden = None  # the NaN/Inf is a point of its own
            if rewritten is not None and spread is None:
                at, was, now = rewritten
                longest = max(longest, stretch_top - (first_epoch or 0.0) + 1)
                why = ("resumed from a checkpoint?" if back_to_start < 2 else
                       # many returns to the start are runs appended, never one resumed run (too
                       # short to judge each on its own only where none counted that many epochs)
                       f"it goes back to its first epoch {back_to_start} times: {back_to_start + 1} runs "
                       "appended one after another, " + (
                           "too short to judge each on its own?" if longest < _JUDGED_POINTS
                           else "not told apart by their counters?"))
                # (the names whose values were replaced: a config print's, or the losses)
                replaced_names = list(replaced)
                shown = first_few(replaced_names, _SHOWN_NAMES)
                warnings.append(LogWarning(
                    "overwritten_values", f"{name} line {at}: the epoch goes back from {was:g} to {now:g} "
                    f"within one run ({why}); the values of {shown} logged at epochs {now:g} to "
                    f"{was:g} before it are replaced by the later ones", where=f"line {at}"))
            if hidden is not None and (spread is None or whole):
                bad_line, bad_name, bad, bad_epoch = hidden
                # the series keeps each epoch's last value: a NaN/Inf a later line replaced still counts
                warnings.append(LogWarning(
                    "nonfinite_event", f"{name} line {bad_line}: {bad_name} = {bad} at epoch {bad_epoch:g}, "
                    "replaced by a later line's value at the same epoch (each epoch keeps its last values)",
                    where=f"line {bad_line}"))
            return _placed(RunLog(format=self.name, source=name, warnings=warnings, traceback=traceback, after_training=after_training,
                                  series=_letters(_epoch_series(spread if spread is not None else by_epoch),
                                                  letters)), lengths)
        if stepped_rows and early_rows:
            stepped_rows = _before_first_epoch(early_rows, stepped_rows)
        placed_within = (_within_epochs(stepped_rows, next(iter(bar_totals)) if len(bar_totals) == 1 else None)
                         if stepped_rows else None)
        within, within_length, resumed = placed_within if placed_within is not None else (None, None, None)
        if within is not None and stepped_rows:
            if resumed is not None:
                warnings.append(_resumed_warning(name, resumed))
            # a step that starts again with every epoch ("Epoch 31, Step 500"): a position in it;
            # the lines before the first step (ESPnet's "pytorch.version=1.13.1" banner) are kept
            # only where all their names go on (an evaluation before training), at the start
            start_at = min(row[0] for row in stepped_rows)
            for _, early_values in pending:
                if all(name_ in stepped for name_, _ in early_values):
                    for name_, number_ in early_values:
                        within.setdefault(name_, {}).setdefault(start_at, number_)
            return _worded(RunLog(format=self.name, source=name, warnings=warnings, traceback=traceback, after_training=after_training,
                                  series=_letters(_epoch_series(within), letters)), worded, within_length)
        if first_step is None:
            _add(points, pending, None)     # no step in the whole log: the running index
            if index:
                # say so: a finding's "point 9" is the 9th line with values (logsweep66 u01: a
                # Trainer's console dicts, whose user counted them from 1)
                warnings.append(LogWarning(
                    "running_index", f"{name}: no line names a step, so the steps are the {index:,} lines with "
                    f"values counted from 0 (step 0 is the first, step {index - 1} the last; findings name them points "
                    f"1-{index:,})"))
        elif pending:
            # before the first step: an evaluation before training (names that go on after it)
            # is kept at the step before the first; a config print or a parameter count is not
            first = Points(name, limits)
            _add(first, [(0.0, vals) for at_, vals in pending
                         if at_ is not None and all(k in stepped for k, _ in vals)],
                 first_step - 1 if first_step >= 1 else first_step)
            early = first.build(role=_role)
        if points.count == 0 and event is not None:
            # nothing but the framework's own report of a NaN/Inf (detectron2's FloatingPointError
            # at the end of a traceback pasted alone): that report is the finding
            return RunLog(format=self.name, source=name, warnings=warnings, traceback=traceback, after_training=after_training)
        if points.count == 0 and bad_step is not None and not pending:
            # every line with values has a step no point can be placed at (errsweep7 #8): that is
            # the reason, not an absence of values
            every = ("it is the only line with values" if bad_steps == 1
                     else f"so are the other {bad_steps - 1:,} lines with values, each for such a step")
            raise LogError(f"{name} line {bad_step[0]}: {bad_step[1]} skipped, and {every}: "
                           "no line is left with a step to place its values at", position=(bad_step[0], None))
        if points.count == 0:
            if traceback is not None:
                raise LogError(f"{name}: no values before the Python traceback at line {tb_line}: "
                               f"{traceback.splitlines()[-1][:200]}")
            if long_line is not None:
                raise LogError(f"{name}: no 'key: value' or 'key=value' pairs with numbers in any line read; line "
                               f"{long_line[0]} is {long_line[1]} long, more than the "
                               f"{MAX_VALUES_LINE:,} a line's values are read from (a text log's lines are short)")
            if headers or bad_header is not None or summary_line:
                # Keras' set-up and epoch headers with no values under them (a fit that logged nothing)
                found_ = ([f"epoch headers ('Epoch i/N', line {header_line or (bad_header or (0, ''))[0]})"]
                          if headers or bad_header is not None else [])
                found_ += [f"model summaries ('Model: \"...\"', line {summary_line})"] if summary_line else []
                why_ = ([f"an epoch header is a position{', and out of range it places nothing' if bad_header else ''}"]
                        if found_[0].startswith("epoch") else [])
                why_ += ["a summary's parameter counts are its set-up"] if summary_line else []
                raise LogError(f"{name}: no values: the log holds Keras {' and '.join(found_)} but no loss or "
                               f"other metric on any line ({'; '.join(why_)}, never a series)")
            raise LogError(f"{name}: no 'key: value' or 'key=value' pairs with numbers in any line; "
                           "not a text training log")
        series = _letters(_prepend(early, points.build(role=_role, repeats=False)), letters)
        if not series and event is None:
            raise LogError(f"{name}: no 'key: value' or 'key=value' pairs with numbers in any line; "
                           "not a text training log")
        return _worded(_placed(RunLog(format=self.name, source=name, series=series,
                                      warnings=warnings, traceback=traceback, after_training=after_training), lengths), worded, None)


# a table's header: "Epoch" and three or more column names (Ultralytics' console), or "Iter" and
# its columns (scikit-learn's gradient boosting: "Iter  Train Loss  OOB Improve  Remaining Time")
_TABLE_HEADER = re.compile(r"^\s*(?:Epoch|Iter|Iteration)(?:\s+[A-Za-z][\w()/.-]*){3,}\s*$", re.IGNORECASE)
# columns set apart by two or more spaces, a name of two words among them ("Train Loss")
_WIDE_GAP = re.compile(r"\s{2,}")
_TIMESTAMP = re.compile(r"^\s*\d{4}-\d{2}-\d{2}[T ][\d:.]+Z?\s+")  # a CI runner's line stamp
_COUNT = re.compile(r"^(\d+)/(\d+)$")
_EPOCH_COUNT = re.compile(r"^(\d+)$")
# a fastai table's cell: a number, nan/inf, or its time column's mm:ss / hh:mm:ss (scikit-learn's
# 7.89m, 53.82s)
_ROW_VALUE = re.compile(rf"(?:{_NUM})|#na#|\d+(?::\d\d){{1,2}}|\d+(?:\.\d+)?[smh]", re.IGNORECASE)
_TWO_WORD_LOSS = re.compile(r"(?<![\w/])(?P<split>train|training|valid|validation|val|test)[ \t]+loss(?![\w/])",
                            re.IGNORECASE)
_SPLIT_NAME = re.compile(rf"^{_SPLIT_WORD}_loss$")
#: YOLO's loss columns by their bare names (YOLOv5: box obj cls total); with a ``_loss`` suffix
#: (YOLOv8) they read as the components derive.py sums.
_YOLO_PARTS = {"box", "obj", "cls", "dfl", "seg", "pose", "kobj"}


#: YOLOv3/v5's results.txt before v6 has no header: epoch i/n, GPU memory, the training losses
#: (box obj cls total), targets, image size, P, R, two mAPs, the validation losses.
_YOLO_RESULTS = re.compile(r"^\s*\d+/\d+\s+[\d.]+[GM]?\s+(?:(?:[-+]?[\d.]+(?:[eE][-+]?\d+)?|nan|inf)\s+){12}"
                           r"(?:[-+]?[\d.]+(?:[eE][-+]?\d+)?|nan|inf)\s*$", re.IGNORECASE)  # a run NaN from its first epoch
_YOLO_RESULTS_COLUMNS = ("Epoch gpu_mem box obj cls total targets img_size P R mAP@.5 mAP@.5:.95 "
                         "val/box_loss val/obj_loss val/cls_loss")


def headerless_table(line: str) -> list[str] | None:
    """The columns of a table whose rows come without a header (YOLOv5's ``results.txt``), when
    ``line`` is such a row; None otherwise."""
    return table_header(line) if _YOLO_RESULTS.match(line) else None


def table_header(line: str) -> list[str] | None:
    """The column names of an ``Epoch ...`` table header, the losses named as training losses
    (``box_loss`` -> ``train/box_loss``, ``total`` -> ``train/loss``); YOLOv5's own for a row of its
    headerless ``results.txt``; None for any other line."""
    if _YOLO_RESULTS.match(line):
        line = _YOLO_RESULTS_COLUMNS
    elif _TABLE_HEADER.match(line) is None:
        return None
    groups = _WIDE_GAP.split(line.strip())
    if len(groups) > 1 and any(" " in g or "\t" in g for g in groups):
        # names of two words set apart by wide gaps (scikit-learn's "Train Loss   Remaining Time")
        line = " ".join("_".join(g.lower().split()) for g in groups)
    # fastai v1 printed some names as two words: "epoch train loss valid loss accuracy_thresh"
    line = _TWO_WORD_LOSS.sub(lambda m: f"{m['split']}_loss", line)
    names = []
    for name in line.split():
        low = name.lower()
        names.append("epoch" if low == "epoch" else "step" if low in ("iter", "iteration") else "train/loss" if low == "total" else name if low.startswith("val/") else
                     name if _SPLIT_NAME.match(low) else  # fastai's train_loss, valid_loss
                     f"train/{low}" if low.endswith("_loss") else
                     f"train/{low}_loss" if low in _YOLO_PARTS else name)
    return names


def table_row(columns: list[str], line: str) -> list[tuple[str, str]] | None:
    """A row of the table ``columns`` heads: its epoch first (YOLO's ``i/n``, fastai's plain
    count), then a value per column (a size with a unit, 9.03G, is no value; fastai's time
    ``00:03`` neither); None when the line is not such a row."""
    tokens = _TIMESTAMP.sub("", line).split()
    if len(tokens) < len(columns) or (m := _COUNT.match(tokens[0]) or _EPOCH_COUNT.match(tokens[0])) is None:
        return None
    if m.re is _EPOCH_COUNT and (len(tokens) != len(columns) or not all(
            _ROW_VALUE.fullmatch(t) for t in tokens[1:])):
        return None  # a plain count first: only a line of values, cell for cell, is a row
    out = [(columns[0], m[1])]  # epoch, or step (an "Iter" table's)
    for name, token in zip(columns[1:], tokens[1:len(columns)], strict=True):
        token = token.rstrip(":")
        try:
            float(token)
        except ValueError:
            continue
        out.append((name, token))
    return out


#: A stepped line of a log whose lines name their epoch: (epoch, step, its other values, whether
#: the line names its own step (not an epoch's summary under the last step), its line).
_SteppedRow = tuple[float, float, list[tuple[str, float]], bool, int]


@dataclass
class _Resumed:
    """Where a step that starts again every epoch went back within the epoch it was in, or to an
    earlier one (a run resumed from a checkpoint, :func:`_within_epochs`): the first such line, the
    epoch and step before it and at it, how many such returns, and the names whose values from
    there on were replaced (in order, at most :data:`_MAX_NAMED`)."""
    line: int
    was: tuple[float, float]
    now: tuple[float, float]
    count: int
    names: list[str]


def _within_epochs(rows: list[_SteppedRow], stated: int | None = None,
                   ) -> tuple[dict[str, dict[float, float]], float, _Resumed | None] | None:
    """Each name's values by fractional epoch when the log's step starts again with every epoch:
    it goes back at least once where the epoch moved on. The epoch's length is the one the log
    states (``stated``: the total of the epoch's progress bar, tqdm's ``Epoch 2/200: 52%|...| 93/180``)
    where the steps fit in it (the largest is at most that, and within two usual steps between lines
    of it: a bar counting samples where the lines count batches is another unit); else its largest
    step plus the usual step between lines, so that its positions fill [e, e + 1). A line that names
    its epoch and a step and no value (CycleGAN's ``saving the model at the end of epoch 5, iters
    900``, the run's total count) places nothing and says nothing of the epoch's length. A line with no step
    of its own (an epoch's summary: Informer's ``Epoch: 1, Steps: 225 | Train Loss`` after its
    ``iters: 200, epoch: 1`` lines) sits at its epoch, as an epoch-only log's lines do.

    A step that goes back where the epoch does not move on is a run resumed from a checkpoint
    (MXNet's ``Resume training ... from epoch 83``, then ``Epoch[83] Batch [20]`` after ``Epoch[84]
    Batch [80]``; or ``Epoch[149] Batch [20]`` again after ``Epoch[149] Batch [40]``): now and then
    (at most half as often as an epoch starts), to an earlier epoch, or within the same epoch to a
    place it already logged (never a second counter in each epoch, an evaluation pass's). From the
    resumed line's place on, the values the earlier pass logged (and its summaries of that epoch
    and later ones) are replaced by the resumed pass's, as an epoch-only log's resumed epochs are;
    the third item says where (None: no resume)."""
    rows = [row for row in rows if any(k.lower() != "epoch" for k, _ in row[2])]
    own = [i for i, row in enumerate(rows) if row[3]]
    if len(own) < 4:
        return None
    starts = 0
    resumed_at: set[int] = set()   # the rows where a resumed pass begins
    seen: set[tuple[float, float]] = set()
    for i, j in zip(own, own[1:], strict=False):
        a, b = rows[i], rows[j]
        seen.add((a[0], a[1]))
        if b[1] < a[1]:
            if b[0] > a[0]:
                starts += 1
            elif b[0] == a[0] and (b[0], b[1]) not in seen:
                return None  # a second counter within the epoch, not a return to a place logged
            else:
                resumed_at.add(j)
    if not starts or 2 * len(resumed_at) > starts:
        return None
    steps = sorted({rows[i][1] for i in own})
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False) if b > a]
    gap = float(np.median(gaps)) if gaps else 1.0
    length = float(stated) if stated is not None and steps[-1] <= stated <= steps[-1] + 2 * gap else steps[-1] + gap
    out: dict[str, dict[float, float]] = {}
    summaries: set[float] = set()  # the places of lines without a step of their own (at their epoch)
    places: list[float] = []       # every place taken so far, sorted (lines come mostly in order)
    resumed: _Resumed | None = None
    last: _SteppedRow | None = None
    for i, row in enumerate(rows):
        e, s, values, stepped, line = row
        at = _within_place(e, s, length) if stepped else float(e)
        if i in resumed_at and last is not None:
            # the earlier pass from here on is replaced: its places at or after this line's, and its
            # summaries of this epoch and later ones (only places from this epoch on are looked at)
            first = bisect.bisect_left(places, float(e))
            gone = {p for p in places[first:] if p >= at or p in summaries}
            places[first:] = [p for p in places[first:] if p not in gone]
            if resumed is None:
                resumed = _Resumed(line, (last[0], last[1]), (e, s), 0, [])
            resumed.count += 1
            for k, by in out.items():
                if any([by.pop(p, None) is not None for p in gone]) and k not in resumed.names \
                        and len(resumed.names) < _MAX_NAMED:
                    resumed.names.append(k)
        if stepped:
            last = row
        else:
            summaries.add(at)
        if not places or at > places[-1]:
            places.append(at)
        elif places[bisect.bisect_left(places, at)] != at:
            bisect.insort(places, at)
        for k, v in values:
            if k.lower() != "epoch":
                out.setdefault(k, {})[at] = v
    return out, length, resumed


def _within_place(epoch: float, step: float, length: float) -> float:
    """The fractional epoch of a step counted within its epoch of ``length`` steps; the epoch's last
    step (180 of the 180 its bar states) stays in it, as a bar's 180/180 does, never at the next
    epoch's start."""
    return round(epoch + step / length, 6) - (1e-6 if step == length else 0.0)


def _before_first_epoch(early: list[_SteppedRow], rows: list[_SteppedRow]) -> list[_SteppedRow] | None:
    """The stepped lines of a paste that starts mid-epoch: ``early``, those before the first line
    naming an epoch (``batch count: 280/308, iter: 280`` above ``Training at epoch 9``), are the end
    of the epoch before it, placed with ``rows`` where the counter starts again after that first
    epoch's start (its first stepped line's step under the last early one's). A counter that goes on
    is the run's step (None: the log is placed by it, as before); so is a first epoch of 0 or below,
    which has no whole epoch before it to hold the early lines."""
    first = rows[0][0]
    own = next((row for row in rows if row[3]), None)
    last_early = next((row for row in reversed(early) if row[3]), None)
    if own is None or last_early is None or first < 1 or not own[1] < last_early[1]:
        return None
    return [(first - 1, *row[1:]) for row in early] + rows


def _resumed_warning(name: str, resumed: _Resumed) -> LogWarning:
    """The ``overwritten_values`` warning for a run resumed within a log placed by its epochs and
    a step counted within each (:func:`_within_epochs`)."""
    (was_e, was_s), (now_e, now_s) = resumed.was, resumed.now
    where = (f"the epoch goes back from {was_e:g} to {now_e:g}" if now_e < was_e
             else f"epoch {now_e:g} starts again")
    more = f" (and {resumed.count - 1:,} more such returns)" if resumed.count > 1 else ""
    shown = first_few(resumed.names, _SHOWN_NAMES) if resumed.names else "no series"
    return LogWarning(
        "overwritten_values", f"{name} line {resumed.line}: {where} within one run (step {was_s:g}, then "
        f"{now_s:g}: resumed from a checkpoint?){more}; the values of {shown} the earlier pass logged from "
        f"epoch {now_e:g} step {now_s:g} on are replaced by the resumed pass's", where=f"line {resumed.line}")


def _worded(run: RunLog, worded: list[tuple[float, float, str]] | None, length: float | None) -> RunLog:
    """``run`` with its series told the log's own words for their positions where every stepped
    line named its epoch and its counter within it (``ep: 0, batch: 160`` -> ``epoch 0, batch 160``,
    :attr:`Series.position_words`): by the step, or by the fractional epoch ``e + i / length`` where
    the counter started again every epoch (:func:`_within_epochs`)."""
    if not worded:
        return run
    words: dict[float, str] = {}
    for e, i, word in worded:
        at = _within_place(e, i, length) if length else float(i)
        words.setdefault(at, f"epoch {e:g}, {word} {i:g}")
    unit = "epoch" if length else "step"
    for s in run.series:
        if s.step_unit == unit and s.epoch_length is None and all(float(x) in words for x in s.steps):
            s.position_words = words
    return run


#: A line that prints its own epoch: (epoch, its other values, its shape (the names in order),
#: each value's half unit in its last printed digit (:func:`_half_unit`)).
_EpochRow = tuple[float, list[tuple[str, float]], tuple[str, ...], dict[str, float]]


def _half_unit(token: str) -> float:
    """Half a unit in the last digit ``token`` prints ("4.9999e-02": 5e-7, "0.0000": 5e-5, "12":
    0.5); 0.0 for a token that is no finite decimal (nan, inf)."""
    try:
        exponent = Decimal(token.strip()).as_tuple().exponent
    except (InvalidOperation, ValueError):
        return 0.0
    return 0.5 * 10.0 ** exponent if isinstance(exponent, int) else 0.0


def _one_step(a: _EpochRow, b: _EpochRow) -> bool:
    """Whether two successive lines at the same printed epoch are one step logged twice in two
    line styles (LLaMA-Factory's callback ``INFO - {'loss': 0.0000, 'learning_rate': 4.9999e-02,
    'epoch': 0.01}`` then the Trainer's ``{'loss': 0.0, 'grad_norm': nan, 'learning_rate':
    0.04999871292419044, 'epoch': 0.01}``): shapes that differ, at least one name in common, and
    every common value the same up to the coarser of its two printings (NaN as NaN, Inf as the
    same Inf). Two lines of one shape are two steps, even with equal values."""
    if a[0] != b[0] or a[2] == b[2]:
        return False
    first, second = dict(a[1]), dict(b[1])
    common = first.keys() & second.keys()
    if not common:
        return False
    for k in common:
        x, y = first[k], second[k]
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return False
        elif math.isinf(x) or math.isinf(y):
            if x != y:
                return False
        elif abs(x - y) > max(a[3].get(k, 0.0), b[3].get(k, 0.0)) * (1 + 1e-9) + 1e-12 * max(abs(x), abs(y)):
            return False
    return True


def _merged_steps(rows: list[_EpochRow]) -> list[_EpochRow]:
    """``rows`` with each step logged twice in two line styles (:func:`_one_step`) made one row:
    the names of both, each common value as printed with more digits."""
    out: list[_EpochRow] = []
    for row in rows:
        if out and "|" not in out[-1][2] and _one_step(out[-1], row):
            e, values, shape, units = out[-1]
            merged = dict(values)
            merged_units = dict(units)
            for k, v in row[1]:
                if k not in merged or row[3].get(k, 0.0) < merged_units.get(k, 0.0):
                    merged[k] = v
                    merged_units[k] = row[3].get(k, 0.0)
            # (the merged shape is no line's: a third line of either style is another step)
            out[-1] = (e, list(merged.items()), shape + ("|",) + row[2], merged_units)
        else:
            out.append(row)
    return out


def _spread_epochs(rows: list[_EpochRow]) -> dict[str, dict[float, float]] | None:
    """Each line's values at its own place, where lines print a fractional epoch of their own
    (the Trainer's ``{'loss': 0.58, 'grad_norm': 1.36, 'epoch': 0.17}``, rounded to 2 decimals):
    the k-th of n lines sharing a printed epoch e sits at e + k (e' - e) / n, e' the next printed
    epoch (the last group takes the median gap between printed epochs). A step logged twice in two
    line styles is one line (:func:`_merged_steps`). None where every epoch is whole (each epoch's
    last line is its summary; :func:`_spread_whole_epochs`) or no printed epoch repeats a name."""
    rows = _merged_steps(rows)
    epochs = [e for e, *_ in rows]
    if all(e == int(e) for e in epochs):
        return None
    repeats = False
    seen: dict[float, set[str]] = {}
    for e, values, *_ in rows:
        names = seen.setdefault(e, set())
        repeats = repeats or any(k in names for k, _ in values)
        names.update(k for k, _ in values)
    if not repeats:
        return None
    distinct = sorted(set(epochs))
    gaps = [b - a for a, b in zip(distinct, distinct[1:], strict=False) if b > a]
    gap = float(np.median(gaps)) if gaps else 1.0
    out: dict[str, dict[float, float]] = {}
    for e, i, j in _same_epoch_runs(rows):
        after = rows[j][0] if j < len(rows) and rows[j][0] > e else e + gap
        for k, (_, values, *_) in enumerate(rows[i:j]):
            at = round(e + k * (after - e) / (j - i), 9)
            for name, value in values:
                out.setdefault(name, {})[at] = value
    return out


def _same_epoch_runs(rows: list[_EpochRow]) -> Iterator[tuple[float, int, int]]:
    """``(epoch, i, j)`` for each run of consecutive ``rows[i:j]`` printed with the same epoch."""
    i = 0
    while i < len(rows):
        e = rows[i][0]
        j = i
        while j < len(rows) and rows[j][0] == e:
            j += 1
        yield e, i, j
        i = j


def _spread_whole_epochs(rows: list[_EpochRow], redrawn: set[int]) -> dict[str, dict[float, float]] | None:
    """The values of each name printed several times within whole epochs (the T5 script's ``Epoch 1 -
    Batch loss: 12.13`` on each of its batches, with no batch index) at their own places: the k-th of
    an epoch's n lines at e + k/n, so a spike or a NaN inside an epoch is a point of its own. A name
    counts where it repeats within at least half of the epochs it is printed in, and two or more (an
    evaluation before training printed as epoch 0 is no batch); a progress line redrawn after a
    carriage return (``redrawn``: the indexes of such rows but the line's last) is one print. None
    where no name does, or the epochs go back (a run resumed): each epoch's last values, as before."""
    kept = [row for i, row in enumerate(rows) if i not in redrawn]
    epochs = [e for e, *_ in kept]
    if len(kept) < 2 or not all(e == int(e) for e in epochs) or any(
            b < a for a, b in zip(epochs, epochs[1:], strict=False)):
        return None
    counts: dict[str, dict[float, int]] = {}
    for e, values, *_ in kept:
        for k, _ in values:
            per_epoch = counts.setdefault(k, {})
            per_epoch[e] = per_epoch.get(e, 0) + 1
    names = {k for k, per_epoch in counts.items()
             if sum(c > 1 for c in per_epoch.values()) >= max(2, len(per_epoch) / 2)}
    if not names:
        return None
    out: dict[str, dict[float, float]] = {}
    for e, i, j in _same_epoch_runs(kept):
        for nth, (_, values, *_) in enumerate(kept[i:j]):
            place = round(e + nth / (j - i), 9)
            for name, value in values:
                if name in names:
                    out.setdefault(name, {})[place] = value
    return out


def _placed(run: RunLog, lengths: set[int | None]) -> RunLog:
    """``run`` with its epoch-axis series told their epoch's length where every line that placed
    itself within an epoch counted out of the same N (:attr:`Series.epoch_length`)."""
    if len(lengths) == 1 and None not in lengths:
        (n,) = lengths
        for s in run.series:
            if s.step_unit == "epoch":
                s.epoch_length = n
    return run


def _letters(series: list[Series], lines: dict[str, int]) -> list[Series]:
    """``series`` with the one-letter names (marked, :data:`_ONE`) that had a value on at least
    :data:`_MIN_ONE_LETTER_LINES` lines named as the log names them, the others left out."""
    if not lines:
        return series
    out = []
    for s in series:
        if s.name.startswith(_ONE):
            if lines.get(s.name, 0) < _MIN_ONE_LETTER_LINES:
                continue
            real = s.name[len(_ONE):]
            role, layer = classify(real)
            s = replace(s, name=real, role=ROLES.get(real.lower(), role), layer=layer)
        out.append(s)
    return out


def _eval_roles(series: list[Series]) -> list[Series]:
    """``series`` with each evaluation's ``eval_<name>`` in the role its training ``<name>`` has: a
    term the training side prints as a metric (WS-DAN's attention regulariser ``cos_sim_loss``,
    printed in its test loop too) is a metric on the evaluation side, not a validation loss; the
    evaluation of the training loss (``Loss`` -> ``eval_Loss``) is the validation loss."""
    roles = {s.name: s.role for s in series}
    out = []
    for s in series:
        own = roles.get(s.name[len("eval_"):]) if s.name.startswith("eval_") else None
        if own == "metric" and s.role == "val_loss":
            s = replace(s, role="metric")
        out.append(s)
    return out


def _epoch_series(values: dict[str, dict[float, float]]) -> list[Series]:
    """One series per name from its values by (fractional) epoch."""
    return [make_series(k, list(v), list(v.values()), step_unit="epoch", role=_role(k)[0]) for k, v in values.items()]


def _add(points: Points, lines: list[tuple[float | None, list[tuple[str, float]]]], at: float | None) -> None:
    """Add each line's values at ``at``, or at the line's own running index when ``at`` is None; a
    line with no index (a header with nothing but its epoch) adds nothing either way."""
    for index, values in lines:
        if index is None:
            continue  # a header: a position, never a value, wherever the lines are placed
        where = index if at is None else at
        for k, value in values:
            points.add(k, where, value)


def _prepend(early: list[Series], series: list[Series]) -> list[Series]:
    """``series`` with the points of ``early`` (same names, read before the first step) before
    their own."""
    if not early:
        return series
    first = {s.name: s for s in early}
    out = []
    for s in series:
        e = first.get(s.name)
        if e is not None:
            s = Series(name=s.name, role=s.role, steps=np.concatenate([e.steps, s.steps]),
                       values=np.concatenate([e.values, s.values]), layer=s.layer, step_unit=s.step_unit)
        out.append(s)
    return out


READER = TextReader()
