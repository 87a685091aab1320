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
from gradhealth.logs.readers.text import pairs
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


# --- 4. a YOLOv5 console pasted into Markdown reads as the same bytes in .txt do ----------------------


_YOLO_BOX = [0.06359, 0.0479, 0.04229, 0.03914, 0.0371]


def _yolov5_console() -> str:
    # Ultralytics YOLOv5 (v6): each epoch's header printed again above its row, its validation table below
    out = ["                 from  n    params  module                                  arguments"]
    out += [f" {i:2d}                -1  1      1760  models.common.Conv                      [3, 16, 6, 2, 2]"
            for i in range(30)]
    for e, box in enumerate(_YOLO_BOX):
        out += ["", "     Epoch   gpu_mem       box       obj       cls    labels  img_size",
                f"     {e}/299     4.89G   {box}   0.03304         0        12      1280: 100%|##########| 213/213 "
                "[06:11<00:00,  1.74s/it]",
                "               Class     Images     Labels          P          R     mAP@.5 mAP@.5:.95: 100%|####| "
                "17/17 [00:23<00:00,  1.39s/it]",
                f"                 all        677       2449     0.0{e + 1}      0.126     0.0251    0.00763"]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("fenced", [True, False])
def test_a_yolov5_console_in_markdown_reads_as_its_txt_copy(tmp_path, fenced) -> None:
    console = _yolov5_console()
    body = f"```text\n{console}```\n" if fenced else console
    readme = ("# Detecção de COTS\n\nTreinamos o YOLOv5n6 por 300 épocas com imagens de 1280 px.\n\n"
              "## Resultados\n\n" + body + "\nO melhor modelo ficou em runs/train/exp/weights/best.pt.\n")
    md, txt = read_log(write(tmp_path, "README.md", readme)), read_log(write(tmp_path, "README.txt", readme))
    assert md.format == txt.format == "text"
    assert by_name(md)["train/box_loss"].values.tolist() == _YOLO_BOX
    assert {s.name: s.values.tolist() for s in md.series} == {s.name: s.values.tolist() for s in txt.series}


def test_two_epoch_rows_in_a_readme_are_not_a_console(tmp_path) -> None:
    # fewer rows than a pasted console's 3: a README quoting two epochs is still refused as prose
    rows = "".join(f"     Epoch   gpu_mem       box       obj       cls    labels  img_size\n"
                   f"     {e}/299     4.89G   {b}   0.03304         0        12      1280\n"
                   + "Some words about this epoch and what its boxes showed.\n" * 12
                   for e, b in enumerate(_YOLO_BOX[:2]))
    with pytest.raises(UnknownLogFormat, match="no 3 lines in a row"):
        read_log(write(tmp_path, "README.md", "# Notes\n\n" + rows))


# --- 6. a terminal's line wrapping and an environment dump make no series ---------------------------


def test_the_tail_of_a_name_cut_by_the_terminal_width_is_no_series(tmp_path) -> None:
    # a tmux capture (capture-pane without -J) cuts each line at the pane's width, inside names
    text = ("iter: 19  total_loss: 7.109  focal_loss_0: 0.1465  data_time: 0.3512\n"
            "iter: 39  total_loss: 6.105  focal_l\noss_0: 0.07525  data_time: 0.0062\n"
            "iter: 59  total_loss: 5.589  focal_loss\n_0: 0.04699  data_time: 0.0061\n"
            "iter: 79  total_loss: 5.368  focal_loss_0: 0.04  data_ti\nme: 0.0058\n")
    got = by_name(read_log(write(tmp_path, "train.log", text)))
    assert not {"oss_0", "_0", "me"} & set(got)
    assert got["total_loss"].values.tolist() == [7.109, 6.105, 5.589, 5.368]


def test_a_name_at_a_line_start_after_a_finished_line_is_read(tmp_path) -> None:
    # a line that ends in a blank is no cut word: "loss_0" after it is a name of its own
    text = "".join(f"step: {i} total_loss: {3 - 0.1 * i:.2f} \nloss_0: {1 - 0.01 * i:.2f}\n" for i in range(8))
    got = by_name(read_log(write(tmp_path, "train.log", text)))
    assert got["loss_0"].values.tolist() == [round(1 - 0.01 * i, 2) for i in range(8)]


def test_a_date_in_an_environment_dump_is_no_series(tmp_path) -> None:
    # detectron2's collect_env table: "(main, Jun  4 2025, 17:57:12)"; syslog's "Jun  4 17:57:12"
    text = ("Python                  3.9.23 | packaged by conda-forge | (main, Jun  4 2025, 17:57:12) [GCC 13.3.0]\n"
            "kernel: Jun  4 17:57:12 host started\n"
            + "".join(f"iter: {i}  total_loss: {5 - 0.1 * i:.2f}\n" for i in range(10)))
    assert pairs(text.splitlines()[0]) == [] and pairs("built Jun 4 2025 step 3 loss 0.5") == [("step", "3"), ("loss", "0.5")]
    got = by_name(read_log(write(tmp_path, "train.log", text)))
    assert "Jun" not in got and len(got["total_loss"]) == 10


def test_a_traceback_cut_by_the_terminal_width_names_its_exception(tmp_path) -> None:
    # the frame's "line 82, in launch" wrapped to "82, in launch" at column 0 is no exception line
    from gradhealth.logs.check import diagnose

    text = ("".join(f"iter: {i}  total_loss: {5 - 0.1 * i:.2f}\n" for i in range(10))
            + "Traceback (most recent call last):\n"
            '  File "/data/CDFSOD/tools/../detectron2/engine/launch.py", line\n82, in launch\n'
            "    main_func(*args)\n"
            '  File "/data/envs/lib/python3.9/site-packages/iopath/common/file_io.py"\n, line 884, in get\n'
            "    path = os.fspath(path)\n"
            "TypeError: expected str, bytes or os.PathLike object, not NoneType\n"
            "(env) user@host:~$ ^C\n")
    [f] = [f for f in diagnose(read_log(write(tmp_path, "train.log", text))).findings if f.code == "truncated_log"]
    assert f.evidence.traceback_last_line == "TypeError: expected str, bytes or os.PathLike object, not NoneType"
