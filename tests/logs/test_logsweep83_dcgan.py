"""logsweep83 dcgan_pokemon: the PyTorch DCGAN tutorial's console pasted into a README (refused by
its .md name, read when saved as .txt), and a discriminator pinned at BCELoss's clamp (100) with the
generator's loss at exactly 0, which read HEALTHY."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth.errors import UnknownLogFormat
from gradhealth.library import check_logs
from gradhealth.logs.load import read_log
from gradhealth.logs.sniff import detect

# the tutorial's print: '[%d/%d][%d/%d]\tLoss_D: %.4f\tLoss_G: %.4f\tD(x): %.4f\tD(G(z)): %.4f / %.4f'
_LINE = "[{e}/200][{i}/262] Loss_D: {d:.4f}  Loss_G: {g:.4f}   D(x): {x:.4f}  D(G(z)): {z1:.4f} / {z2:.4f}"


def _console(rows: list[tuple[float, float, float, float, float]]) -> list[str]:
    return [_LINE.format(e=11, i=168 + 2 * k, d=d, g=g, x=x, z1=z1, z2=z2) for k, (d, g, x, z1, z2) in enumerate(rows)]


_HEALTHY = [(1.21, 2.35, 0.61, 0.32, 0.11), (1.05, 2.71, 0.66, 0.29, 0.09),
            (1.33, 1.98, 0.58, 0.35, 0.15), (1.12, 2.44, 0.63, 0.30, 0.10)]


def _readme(console: list[str], fenced: bool) -> str:
    fence = ["```"] if fenced else []
    return "\n".join([
        "# DCGAN", "- DCGAN, which stands for Deep Convolutional GAN, generates trading cards.", "",
        "## Results", "", "### Training with 12k images", "",
        "Trained for 200 epochs; here is what the console printed at epoch 11 out of 200.", "",
        "**Log:**", *fence, *console, *fence, "",
        "- As we can see, the two networks still play against each other.", "",
        "- A later run used 25k images and a batch size of 128.", "",
    ])


@pytest.mark.parametrize("fenced", [True, False])
def test_a_short_console_pasted_into_a_readme_is_read_as_text(tmp_path, fenced: bool) -> None:
    # logsweep83 dcgan_pokemon (1a): 4 console lines among 13 of prose were refused as .md ("not a log
    # format this service reads") and read as .txt; the name must not decide it
    text = _readme(_console(_HEALTHY), fenced)
    md, txt = tmp_path / "README.md", tmp_path / "README.txt"
    md.write_text(text)
    txt.write_text(text)
    assert detect(md).name == "text" and detect(txt).name == "text"
    from_md, from_txt = read_log(md), read_log(txt)
    for log in (from_md, from_txt):
        by = {s.name: s for s in log.series}
        assert list(by["Loss_D"].values) == pytest.approx([r[0] for r in _HEALTHY])
        assert list(by["Loss_G"].values) == pytest.approx([r[1] for r in _HEALTHY])


def test_a_readme_with_no_console_and_no_table_of_a_run_says_why_it_is_refused(tmp_path) -> None:
    # logsweep83 (1a): the refusal said only "not a log format": it says what was looked for
    path = tmp_path / "README.md"
    path.write_text("\n".join([
        "# Results", "", "We trained for 200 epochs at a learning rate of 0.0002 and a batch of 128.", "",
        "| model | loss | accuracy |", "|---|---|---|", "| ResNet-18 | 0.52 | 0.91 |", "| ResNet-50 | 0.41 | 0.93 |",
        "| ViT-B/16 | 0.37 | 0.94 |", "", "The loss was 0.5 after epoch 3 and fell to 0.37 by epoch 12.",
        "On 4 GPUs a run took 3 hours.", "See the paper for the 5 other settings.", "",
    ]))
    with pytest.raises(UnknownLogFormat) as e:
        detect(path)
    why = str(e.value)
    assert "not a log format gradhealth reads" in why
    assert "1 Markdown table(s) name no loss beside a step or an epoch column" in why
    assert "no 3 lines in a row read as a console's" in why


def _bce_terms(d_real: float, d_fake: float) -> tuple[float, float]:
    """The tutorial's Loss_D (errD_real + errD_fake) and Loss_G for D's outputs on real and
    generated batches, computed by nn.BCELoss itself (its clamp of each log at -100 included)."""
    bce, n = nn.BCELoss(), 64
    real, fake = torch.full((n,), d_real), torch.full((n,), d_fake)
    ones, zeros = torch.ones(n), torch.zeros(n)
    return float(bce(real, ones) + bce(fake, zeros)), float(bce(fake, ones))


def test_a_discriminator_pinned_at_bcelosss_clamp_with_the_generator_at_0_is_a_failed_gan(tmp_path) -> None:
    # logsweep83 dcgan_pokemon (1b): "Loss_D: 100.0000 Loss_G: 0.0000 D(x): 1.0000 D(G(z)): 1.0000" read
    # HEALTHY. D scores everything real with certainty: errD_fake hits the clamp, errG is 0
    clamp_d, clamp_g = _bce_terms(1.0, 1.0)
    assert clamp_d == 100.0 and clamp_g == 0.0  # BCELoss's clamp, as the tutorial's loss shows it
    rows = [(2.0430, 10.2914, 0.7010, 0.0, 0.0713), (3.7319, 0.0, 0.5911, 1.0, 1.0),
            (clamp_d, clamp_g, 1.0, 1.0, 1.0), (clamp_d, clamp_g, 1.0, 1.0, 1.0)]
    path = tmp_path / "d.log"
    path.write_text("\n".join(_console(rows)) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.metric == "Loss_D" and f.evidence.value == clamp_d
    assert f.evidence.points == 2 and f.evidence.generator == "Loss_G" and f.evidence.generator_final == clamp_g
    # the same game with a discriminator at 100 once, or whose generator is still playing, is not pinned
    once = [*rows[:3], (1.3, 2.2, 0.6, 0.3, 0.2)]
    path.write_text("\n".join(_console(once)) + "\n")
    assert not [f for f in check_logs(path).findings if f.code == "nonfinite"]
    playing = [*rows[:2], (clamp_d, 4.1, 1.0, 0.3, 0.2), (clamp_d, 3.9, 1.0, 0.3, 0.2)]
    path.write_text("\n".join(_console(playing)) + "\n")
    assert not [f for f in check_logs(path).findings if f.code == "nonfinite"]


def test_a_loss_pinned_at_bcelosss_clamp_and_one_passing_100_are_told_apart(tmp_path) -> None:
    # logsweep83 (1b): BCELoss's mean is 100 only where every element's sigmoid is saturated the wrong way
    logits = torch.full((32, 10), 120.0)  # overflowed logits: sigmoid is exactly 1.0 in float32
    pinned = float(nn.BCELoss()(torch.sigmoid(logits), torch.zeros(32, 10)))
    assert pinned == 100.0
    path = tmp_path / "train.log"
    values = [0.6931, 0.5412, 37.5, pinned, pinned]
    path.write_text("".join(f"step {10 * i} | loss: {v:.4f}\n" for i, v in enumerate(values)))
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.value == pinned and f.evidence.steps == [30, 40]
    assert "BCELoss" in f.summary
    # a sum-reduced loss falling through 100 from above and resting there, a loss printed in whole
    # numbers (at 100 by its rounding), and one passing 100 on its way down: none is the clamp
    for values, fmt in (([812.5, 340.2, 160.7, pinned, pinned], ".4f"), ([97, 99, 100, 100], ".0f"),
                        ([160.7, pinned, pinned, 80.2, 40.1], ".4f")):
        path.write_text("".join(f"step {10 * i} | loss: {v:{fmt}}\n" for i, v in enumerate(values)))
        assert not [f for f in check_logs(path).findings if f.code == "nonfinite"], values
