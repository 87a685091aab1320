"""logsweep62: a GAN log's "+"-joined D loss and its losses without "loss" in their names (h06), a
generator loss named after the fake samples it is scored on (u03), and a word error rate at 100 % at
every evaluation (u07). Every log here is synthetic, written in the tools' own formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log
from gradhealth.logs.series import gan_part

# --- h06: DeblurGAN's loss_log.txt -------------------------------------------------------------


def _pix2pix_log(tmp_path: Path, fields: list[str], rows: int = 200) -> Path:
    """A pix2pix/DeblurGAN ``loss_log.txt``: ``(epoch: e, iters: i, time: t) NAME: value ...``."""
    rng = np.random.default_rng(62)
    lines = ["================ Training Loss (Thu Dec 21 10:16:20 2017) ================\n"]
    for k in range(rows):
        epoch, it = 1 + k // 25, 100 * (1 + k % 25)
        values = {"G_GAN": 5 + 10 * rng.standard_normal(), "G_L1": 600 * 0.993 ** k + 100 + 30 * rng.random(),
                  "D_real+fake": -20 * 0.99 ** k - 2 * rng.random()}
        body = " ".join(f"{name}: {values[name]:.3f}" for name in fields)
        lines.append(f"(epoch: {epoch}, iters: {it}, time: 0.512) {body} \n")
    path = tmp_path / "loss_log.txt"
    path.write_text("".join(lines))
    return path


def test_a_plus_inside_a_key_before_its_colon_joins_the_name(tmp_path: Path) -> None:
    run = read_log(_pix2pix_log(tmp_path, ["G_GAN", "G_L1", "D_real+fake"]))
    names = {s.name for s in run.series}
    assert {"G_GAN", "G_L1", "D_real+fake"} <= names and "fake" not in names


def test_a_sum_in_prose_or_a_value_is_not_a_joined_name(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    # "a+b=3" (one-letter terms) stays the last term, as before; a value's exponent is no name
    path.write_text("".join(f"step: {i} a+b={i % 4} loss_ce+kl= {3.0 - 0.01 * i:.3f} lr: 1e-3+warmup\n"
                            for i in range(1, 40)))
    names = {s.name for s in read_log(path).series}
    assert "loss_ce+kl" in names and "a+b" not in names and "b" in names
    assert not any(n.startswith("3") or "+warmup" in n for n in names)


@pytest.mark.parametrize("name,part", [("D_real+fake", "D"), ("D_fake_real", "D"), ("loss_D_real_fake", "D"),
                                       ("loss_G_fake", "G"), ("errG_fake", "G"), ("g_loss_fake", "G"),
                                       ("errD_real", "D"), ("G_GAN", "G"), ("loss_D", "D")])
def test_gan_loss_names_with_real_or_fake(name: str, part: str) -> None:
    assert gan_part(name) == part


@pytest.mark.parametrize("name", ["D_real", "D_fake", "D_x", "D_G_z", "G_real_fake", "d_model_real_fake"])
def test_d_outputs_stay_no_gan_loss(name: str) -> None:
    # D's output on real or fake samples (pix2pix's D_real, a logged D(x)) is no loss
    assert gan_part(name) is None


def test_a_wgan_gp_loss_log_is_a_gan_not_a_log_without_a_loss(tmp_path: Path) -> None:
    doc = check_logs(_pix2pix_log(tmp_path, ["G_GAN", "G_L1", "D_real+fake"]))
    assert doc.status == "healthy"
    [f] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert f.severity == "info" and "GAN" in f.summary
    assert f.evidence.discriminator == ["D_real+fake"] and f.evidence.generator == ["G_GAN", "G_L1"]


def test_generator_losses_alone_are_named_losses_not_nothing_to_judge(tmp_path: Path) -> None:
    # G_GAN and G_L1 hold no "loss" in their names, but gan_part calls them the generator's losses
    doc = check_logs(_pix2pix_log(tmp_path, ["G_GAN", "G_L1"]))
    assert doc.status == "healthy"
    [f] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert f.severity == "info" and "G_GAN" in f.summary


# --- u03: AdvGAN's console ---------------------------------------------------------------------


def _advgan_log(tmp_path: Path, d: np.ndarray, g: np.ndarray) -> Path:
    lines = []
    for e, (dv, gv) in enumerate(zip(d, g, strict=True), start=1):
        lines.append(f"Start ep num  {e}\nepoch {e}:\nloss_D: {dv:.3f}, loss_G_fake: {gv:.3f},             \n"
                     f"loss_perturb: {6.0 * 0.99 ** e + 0.25:.3f}, loss_adv: {7.0 * 0.99 ** e + 0.3:.3f}, \n\n")
    path = tmp_path / "advgan.txt"
    path.write_text("".join(lines))
    return path


_EPOCHS = np.arange(600)


def test_a_discriminator_fallen_90_percent_while_the_generator_tripled_is_winning(tmp_path: Path) -> None:
    # LSGAN: D 0.405 -> 0.027 (6.7 % of its start, never under 0.01), G 0.30 -> 0.91
    d = 0.027 + 0.378 * np.exp(-_EPOCHS / 60)
    g = 0.91 - 0.61 * np.exp(-_EPOCHS / 60)
    doc = check_logs(_advgan_log(tmp_path, d, g))
    [f] = [f for f in doc.findings if f.code == "loss_plateau" and f.severity == "warning"]
    assert f.evidence.metric == "loss_D" and f.evidence.generator == "loss_G_fake"
    # where D began: the median of its first 12 of 600 points (2 %), independently of the code
    start = float(np.median(np.round(d[:12], 3)))
    assert f.evidence.early_level == pytest.approx(start)
    assert f.evidence.threshold == pytest.approx(0.1 * start)
    # start ~0.372, so D is under a tenth of it from t = 60 ln(0.378 / 0.0102) ~ 217 on: 383 of 600 points
    assert f.evidence.points > 0.2 * 600


def test_a_discriminator_that_falls_while_its_generator_stays_is_not_judged(tmp_path: Path) -> None:
    d = 0.027 + 0.378 * np.exp(-_EPOCHS / 60)
    g = 0.30 + 0.05 * np.sin(_EPOCHS / 7)   # the generator keeps up: no more than 1.2x its start
    doc = check_logs(_advgan_log(tmp_path, d, g))
    assert not [f for f in doc.findings if f.code == "loss_plateau" and f.severity == "warning"]


def test_a_discriminator_that_fell_less_than_90_percent_is_not_judged(tmp_path: Path) -> None:
    d = 0.10 + 0.305 * np.exp(-_EPOCHS / 60)   # to 25 % of its start
    g = 0.91 - 0.61 * np.exp(-_EPOCHS / 60)
    doc = check_logs(_advgan_log(tmp_path, d, g))
    assert not [f for f in doc.findings if f.code == "loss_plateau" and f.severity == "warning"]


def test_a_wgan_critic_below_0_is_still_not_judged(tmp_path: Path) -> None:
    d = -0.5 + 0.9 * np.exp(-_EPOCHS / 60)
    g = 0.91 - 0.61 * np.exp(-_EPOCHS / 60)
    doc = check_logs(_advgan_log(tmp_path, d, g))
    assert not [f for f in doc.findings if f.code == "loss_plateau" and f.severity == "warning"]


# --- u07: a CTC model card ---------------------------------------------------------------------


def _card(tmp_path: Path, rates: list[float], name: str = "Wer") -> Path:
    rows = []
    for i, r in enumerate(rates):
        train = "No log" if i < 4 else f"{4.86 - 1.7 * (1 - 0.5 ** i):.4f}"
        rows.append(f"| {train} | {0.43 * (i + 1):.2f} | {100 * (i + 1)} | {3.36 - 0.3 * (1 - 0.8 ** i):.4f} | {r} |")
    text = ("# data2vec-audio-base-ctc\n\nIt achieves the following results on the evaluation set:\n\n"
            "### Training results\n\n"
            f"| Training Loss | Epoch | Step | Validation Loss | {name} |\n"
            "|:-------------:|:-----:|:----:|:---------------:|:---:|\n" + "\n".join(rows) + "\n")
    path = tmp_path / "README.md"
    path.write_text(text)
    return path


def _stuck(doc):  # noqa: ANN001, ANN202
    return [f for f in doc.findings if f.code == "loss_plateau" and f.severity == "warning"
            and f.evidence.metric in ("Wer", "Cer", "eval_wer", "val_err")]


def test_a_wer_of_1_at_every_evaluation_is_a_model_that_gets_nothing_right(tmp_path: Path) -> None:
    doc = check_logs(_card(tmp_path, [1.0] * 30))
    [f] = _stuck(doc)
    assert f.evidence.value == 1.0 and f.evidence.threshold == 1.0 and f.evidence.points == 30


def test_a_wer_of_100_percent_at_every_evaluation_too(tmp_path: Path) -> None:
    doc = check_logs(_card(tmp_path, [100.0, 100.0, 101.2, 100.0, 100.0, 100.0], name="Cer"))
    [f] = _stuck(doc)
    assert f.evidence.threshold == 100.0


@pytest.mark.parametrize("rates", [
    [1.0, 1.0, 1.0, 0.93, 0.61, 0.42, 0.35, 0.31],   # the usual blank phase, then learning
    [1.0, 1.0, 1.0, 1.0],                            # four evaluations: too few to say
    [1.42, 1.31, 1.24, 1.18, 1.12, 1.09, 1.05],      # a good model's CER in percent
])
def test_a_wer_that_falls_or_is_short_or_a_small_percent_is_not_stuck(tmp_path: Path, rates: list[float]) -> None:
    assert not _stuck(check_logs(_card(tmp_path, rates)))


def test_an_error_named_only_err_must_sit_exactly_at_its_ceiling(tmp_path: Path) -> None:
    # a regression's error (1.2 on its own scale) is no rate at 100 %; a top-1 error at 1.0 is
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,train_loss,val_err\n" + "".join(f"{e},{2.0 * 0.9 ** e:.4f},1.2\n" for e in range(10)))
    assert not _stuck(check_logs(path))
    path.write_text("epoch,train_loss,val_err\n" + "".join(f"{e},{2.0 * 0.9 ** e:.4f},1.0\n" for e in range(10)))
    [f] = _stuck(check_logs(path))
    assert f.evidence.metric == "val_err"
