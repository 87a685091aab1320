"""Files of bare numbers named after what they hold (``np.savetxt("losses.txt", losses)``,
``json.dump(losses, f)``), written here as numpy and json write them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth import check_logs
from gradhealth.cli import main
from gradhealth.errors import LogError
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.numbers import quantity
from gradhealth.logs.series import classify
from gradhealth.logs.sniff import detect


def _falling(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 2.3 * np.exp(-np.arange(n) / 80) + 0.1 + rng.normal(0, 0.01, n)


@pytest.mark.parametrize(("name", "series"), [
    ("loss.txt", "loss"), ("train_losses.txt", "loss"), ("loss-history.csv", "loss"), ("losses.json", "loss"),
    ("epoch_loss1.txt", "loss"), ("val_loss.csv", "val_loss"), ("valid_losses.txt", "val_loss"),
    ("eval-loss.json", "val_loss"), ("grad_norms.csv", "grad_norm"), ("gradient_norm.log", "grad_norm"),
    ("g_losses.csv", "g_loss"), ("kl_loss.txt", "kl_loss"),
    ("accuracy.txt", None), ("data.csv", None), ("lossless.txt", None), ("classes.txt", None),
])
def test_the_files_name_says_what_its_numbers_are(name: str, series: str | None) -> None:
    assert quantity(name) == series


def test_a_loss_of_a_part_is_judged_as_a_column_of_that_name_is() -> None:
    # a GAN's generator loss rises as its discriminator learns: a header "g_loss" is no training loss
    assert classify(quantity("g_losses.txt") or "")[0] == classify("g_loss")[0] != "loss"


def test_np_savetxt_one_value_per_line_is_the_loss_by_row(tmp_path: Path) -> None:
    values = _falling()
    path = tmp_path / "train_losses.txt"
    np.savetxt(path, values)                     # '%.18e' per line
    assert detect(path).name == "numbers"
    run = read_log(path)
    (s,) = run.series
    assert (s.name, s.role) == ("loss", "loss")
    assert list(s.steps) == list(range(len(values)))
    np.testing.assert_allclose(s.values, values, rtol=1e-15)
    assert any(w.code == "read_as" and "'loss'" in w.message for w in run.warnings)
    assert check_logs(path).status == "healthy"


def test_nan_written_by_savetxt_is_found_at_its_row(tmp_path: Path) -> None:
    values = _falling()
    values[217:] = np.nan
    path = tmp_path / "loss.txt"
    np.savetxt(path, values, fmt="%.6f")
    doc = check_logs(path)
    (f,) = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.severity == "error" and "step 217" in f.summary


def test_a_step_and_a_value_per_line(tmp_path: Path) -> None:
    values = _falling(100)
    path = tmp_path / "loss.csv"
    path.write_text("".join(f"{10 * i},{v}\n" for i, v in enumerate(values)))
    (s,) = read_log(path).series
    assert list(s.steps) == [10 * i for i in range(100)]
    np.testing.assert_allclose(s.values, values)
    blanks = tmp_path / "loss.dat"
    blanks.write_text("".join(f"{i}\t {v:.4f}\n" for i, v in enumerate(values)))
    assert read_log(blanks).series[0].steps[-1] == 99


def test_a_json_array_of_numbers(tmp_path: Path) -> None:
    values = [2.3 * math.exp(-i / 50) for i in range(150)] + [math.nan] * 10
    path = tmp_path / "losses.json"
    path.write_text(json.dumps(values))          # json writes NaN bare
    (s,) = read_log(path).series
    assert len(s.values) == 160 and math.isnan(s.values[-1]) and s.values[0] == 2.3
    assert any(f.code == "nonfinite" and f.severity == "error" for f in check_logs(path).findings)


def test_a_last_line_cut_off_while_written_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "loss.txt"
    path.write_text("2.30\n2.10\n1.95\n1.80\n1.7e")
    (s,) = read_log(path).series
    assert list(s.values) == [2.30, 2.10, 1.95, 1.80]


def test_text_among_the_numbers_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "loss.txt"
    path.write_text("2.30\n" * 60 + "epoch 2\n1.7\n")
    with pytest.raises(LogError, match="line 61: expected 1 number"):
        read_log(path)


def test_a_step_that_does_not_count_up_is_refused_as_two_values(tmp_path: Path) -> None:
    path = tmp_path / "loss.csv"
    path.write_text("2.30,2.41\n2.10,2.35\n1.95,2.30\n")   # train and validation side by side
    with pytest.raises(LogError, match=r"line 1: .*step must count up.*header line"):
        read_log(path)


@pytest.mark.parametrize(("name", "text", "says"), [
    ("data.txt", "2.3\n2.1\n1.9\n1.8\n", "name the file after what it holds"),
    ("history.csv", "1,2.3,2.4\n2,2.1,2.3\n3,1.9,2.2\n", "3 columns"),
    ("values.json", "[2.3, 2.1, 1.9]", "name the file after what it holds"),
])
def test_numbers_that_say_nothing_are_refused_saying_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  name: str, text: str, says: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err and "line 1" in err and "Traceback" not in err


def test_a_console_named_loss_stays_the_text_readers(tmp_path: Path) -> None:
    path = tmp_path / "loss.txt"
    path.write_text("".join(f"step {i} loss {2.3 - i * 0.01:.3f}\n" for i in range(50)))
    assert detect(path).name == "text"


def test_a_json_array_too_big_for_a_float_or_not_json_is_said_not_raised(tmp_path: Path) -> None:
    # an integer of 400 digits is past a float (float() raised OverflowError); it reads as inf, as
    # in every JSON reader here, and a broken array is refused with the decoder's place
    big = tmp_path / "loss.json"
    big.write_text("[2.3, 2.1, " + "9" * 400 + "]")
    assert math.isinf(read_log(big).series[0].values[-1])
    broken = tmp_path / "losses.json"
    broken.write_text("[2.3, 2.1, 1.9,")
    with pytest.raises(LogError, match="not valid JSON"):
        read_log(broken)
