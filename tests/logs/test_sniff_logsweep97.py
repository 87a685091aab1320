"""logsweep97: a console saved under a script's name (.py) is read by its content, and a network's
console with ``[n]`` step prefixes is read. (A gradient-boosting console stays read and judged by its
rounds, as tests/logs/readers/test_sweep24_formats.py pins: two held-out sweeps' users expected it read.)"""

from __future__ import annotations

import math

import pytest

from gradhealth.errors import UnknownLogFormat
from gradhealth.logs.load import read_log

# a DeepSpeed console as a shell transcript (deepspeed_bert_overflow_start, saved as a .py)
_LOSSES = [10.9 - 0.01 * i for i in range(60)]
_CONSOLE = ("(env) user@host:~/HelloDeepSpeed$ python train_bert_ds.py --checkpoint_dir ./exp\n"
            "[2023-07-24 13:21:19,966] [INFO] [real_accelerator.py:110:get_accelerator] Setting ds_accelerator\n"
            + "".join(f"2023-07-24 13:22:{i % 60:02d}.000 | INFO | __main__:log_dist:53 - [Rank 0] "
                      f"Step: {i * 10}, Loss: {loss:.4f}\n" for i, loss in enumerate(_LOSSES)))


def test_a_console_named_py_is_read_by_its_content(tmp_path):
    path = tmp_path / "train_bert_ds.py"
    path.write_text(_CONSOLE)
    log = read_log(path)
    losses = [s for s in log.series if s.name.lower() == "loss"]
    assert losses and len(losses[0].values) == len(_LOSSES)
    assert all(math.isclose(a, b, abs_tol=5e-5) for a, b in zip(losses[0].values, _LOSSES, strict=True))


@pytest.mark.parametrize("source", [
    "import torch\n\nx = 1\n",
    "#!/usr/bin/env python3\nprint('loss: 0.5')\n",
    "\"\"\"Train.\"\"\"\nfrom torch import nn\n\n\ndef train(model):\n    print(f'step 1 loss: {0.5}')\n",
    "@dataclass\nclass Config:\n    lr: float = 0.1\n",
    "_base_ = ['../models/resnet.py']\nmodel = dict(type='ResNet', depth=50)\nlr = 0.1\n",
])
def test_real_python_named_py_is_still_refused_as_python_source(tmp_path, source):
    path = tmp_path / "train.py"
    path.write_text(source + "".join(f"# step {i} loss: {1.0 / (i + 1):.3f}\n" for i in range(30)))
    with pytest.raises(UnknownLogFormat, match=r"train\.py is Python source"):
        read_log(path)


def test_a_networks_console_with_round_prefixes_is_still_read(tmp_path):
    # control: "[n]" step prefixes with a network's loss, no "name's metric" or "name-metric:" pair
    losses = [2.0 * 0.97 ** i for i in range(40)]
    path = tmp_path / "train.log"
    path.write_text("Training on cuda:0\n" + "".join(f"[{i}]\tloss: {v:.5f}\tacc: {0.5 + i / 100:.3f}\n" for i, v in enumerate(losses)))
    log = read_log(path)
    loss = next(s for s in log.series if s.name == "loss")
    assert all(math.isclose(a, b, abs_tol=5e-6) for a, b in zip(loss.values, losses, strict=True))
