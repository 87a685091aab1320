"""logsweep95: a console whose first 200 non-blank lines hold no value (a long ``print(model)``, a
printed tensor) refused, also with ``--log-format text`` (problem 2: modelprint300b,
tensor300_then_loss, dcgan_tensor_dump); GAN loss names (``loss_D_real``) said to be no loss.
Every file is synthetic, built here in the shape of the real one."""

from __future__ import annotations

import pytest

from gradhealth.errors import UnknownLogFormat
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.numbers import number_array
from gradhealth.logs.readers.text import READER as TEXT
from tests.logs.helpers import by_name, write

# --- 2. a long preamble before the first value -------------------------------------------------------


def _model_print(lines: int) -> str:
    # what print(model) writes for a deep network: module reprs, none holding a "name: number" value
    body = "".join(f"    ({i}): Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
                   for i in range(lines - 2))
    return "Net(\n" + body + ")\n"


_LOSSES = [round(2.0 / (1 + 0.1 * e), 4) for e in range(30)]
_EPOCHS = "".join(f"Epoch {e + 1} train_loss: {v}\n" for e, v in enumerate(_LOSSES))


@pytest.mark.parametrize("preamble", [300, 1200])
@pytest.mark.parametrize("hint", [None, "text"])
def test_a_model_print_longer_than_the_sniffed_lines_is_read_past(tmp_path, preamble, hint) -> None:
    # the file is shorter than a sniffer's 64 KiB head (300 lines) or longer (1200), its values after line 200
    log = read_log(write(tmp_path, "train.log", _model_print(preamble) + _EPOCHS), format=hint)
    s = by_name(log)["train_loss"]
    assert log.format == "text" and s.values.tolist() == _LOSSES


def test_an_explicit_text_format_searches_the_whole_file(tmp_path) -> None:
    # 4.5 MiB of printed rows before the first value: past the 4 MiB a sniff searches, not past the hint
    rows = "          [-1., -1., -1.,  ..., -1., -1., -1.],\n"
    path = write(tmp_path, "console.txt", rows * (int(4.5 * 2**20) // len(rows)) + _EPOCHS)
    with pytest.raises(UnknownLogFormat):
        read_log(path)
    assert by_name(read_log(path, format="text"))["train_loss"].values.tolist() == _LOSSES


def test_a_printed_tensor_first_is_no_json_array(tmp_path) -> None:
    # a torch tensor's print opens with "[" as a JSON array does, but "-1." and "..." are no JSON
    tensor = "          [-1., -1., -1.,  ..., -1., -1., -1.],\n" * 300
    assert not number_array(tensor.encode())
    assert not number_array(b"[0.5 0.25 0.125]\n")          # NumPy's print: no commas
    assert number_array(b"[2.3, 2.1, NaN, 1.9e-1]")
    assert number_array(b"[\n  2.3,\n  2.1,\n  " + b"2.0,\n  " * 2000)   # longer than the part checked
    # named after a loss, which the numbers reader would take, and read as the console it is
    log = read_log(write(tmp_path, "tensor_then_loss.txt", tensor + _EPOCHS))
    assert log.format == "text" and by_name(log)["train_loss"].values.tolist() == _LOSSES


# --- 2. GAN players' losses by name ----------------------------------------------------------------


_GAN = [(1.7565, 0.6114, 2.5127), (6.7835, 0.0, 23.5233), (0.0034, 3.6041, 21.2439), (0.0813, 0.0576, 3.87),
        (0.0559, 0.1508, 3.2489), (0.1502, 0.0144, 2.0703)]


def test_a_gan_console_between_tensor_dumps_is_read(tmp_path) -> None:
    # the PyTorch DCGAN tutorial's shape: a seed, then one loss line per 300 rows of a printed image
    rows = "".join(f"         [{0.1 * i:.4f}, -0.2000, 0.3000],\n" for i in range(300))
    text = "Random Seed:  1\n" + "".join(
        f"Epoch 0 [{100 * i}/469] loss_D_real: {r} loss_D_fake: {f} loss_G: {g}\n" + rows
        for i, (r, f, g) in enumerate(_GAN))
    log = read_log(write(tmp_path, "log.txt", text))
    got = by_name(log)
    assert [got[n].values.tolist() for n in ("loss_D_real", "loss_D_fake", "loss_G")] == [list(c) for c in zip(*_GAN, strict=True)]


@pytest.mark.parametrize("name", ["loss_D", "loss_G", "loss_D_real", "errD", "errG", "g_loss", "Loss_D"])
def test_a_refusal_counts_gan_losses_as_losses(name) -> None:
    # two lines, every name once and no step: refused as a config's print, but not for naming no loss
    head = f"Random Seed: 1\nepoch: 0 {name}: 0.5 lr: 0.1\n".encode()
    said = TEXT.why_not("notes.txt", head) or ""
    assert "none is a loss" not in said
    assert TEXT.sniff("notes.txt", head) > 0
