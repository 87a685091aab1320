"""logsweep83 dcgan_pokemon: the PyTorch DCGAN tutorial's console pasted into a README (refused by
its .md name, read when saved as .txt), and a discriminator pinned at BCELoss's clamp (100) with the
generator's loss at exactly 0, which read HEALTHY."""

from __future__ import annotations

import pytest

from gradhealth.errors import UnknownLogFormat
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
    assert "not a log format this service reads" in why
    assert "1 Markdown table(s) name no loss beside a step or an epoch column" in why
    assert "no 3 lines in a row read as a console's" in why
