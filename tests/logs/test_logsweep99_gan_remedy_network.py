"""logsweep99 #2: a GAN steps its two networks with two optimizers, and a learning-rate remedy on
"your optimizer" lands on either, or on both. Where the discriminator overpowers the generator
(GAN1202's training_log.csv: Disc Loss 1.39 -> 0.20, Gen Loss 0.72 -> 2.3), cutting the generator's
rate too slows the side already losing: the remedy names the discriminator's optimizer, keeps the
generator's, and says which loss series it was judged on. Every log here is synthetic, written in
the tools' own formats (the CSV in the shape of that file)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Remedy
from gradhealth.core.keras_snippets import keras_snippet
from gradhealth.library import check_logs


def _gan_remedies(path: Path) -> list[tuple[str, Remedy]]:
    """Every finding's learning-rate remedies, with the finding's code."""
    doc = check_logs(path)
    return [(f.code, r) for f in doc.findings for r in f.remedies
            if r.id in ("lower_learning_rate", "raise_learning_rate")]


def _assert_on_discriminator(r: Remedy, d: str, g: str) -> None:
    """The cut acts on the discriminator's optimizer alone, and says the series it rests on."""
    assert r.id == "lower_learning_rate"  # the id is the public contract: unchanged
    assert r.params["target"] == "discriminator" and r.params["optimizers"] == ["optimizer_D"]
    assert r.params["judged_on"] == {"discriminator": d, "generator": g}
    assert "optimizer_D.param_groups" in r.snippet
    # no bare `optimizer` (the generator's as likely as the discriminator's), and no generator's
    assert "optimizer.param_groups" not in r.snippet and "optimizer_G" not in r.snippet
    assert "discriminator" in r.title.lower()
    assert r.change.startswith("lower the discriminator's learning rate") and "keeping the generator's" in r.change
    assert d in r.change and g in r.change


def _gan1202_csv(tmp_path: Path) -> Path:
    """GAN1202's training_log.csv in shape: 420 rows of Epoch, Batch, Gen Loss, Disc Loss; the
    discriminator's loss falls from BCE's balance (2 ln 2 = 1.386, real and fake terms summed) to
    0.2 over the first 40 % and stays near 0.24, the generator's climbs 0.72 -> 2.3."""
    rng = np.random.default_rng(99)
    rows = ["Epoch,Batch,Gen Loss,Disc Loss"]
    n = 420
    for k in range(n):
        x = min(1.0, k / (0.4 * n))
        gen = (0.72 + (2.3 - 0.72) * x) * math.exp(0.08 * rng.standard_normal())
        dis = (1.387 * (0.22 / 1.387) ** x) * math.exp(0.15 * rng.standard_normal())
        rows.append(f"{k // 60},{k % 60},{gen},{dis}")
    path = tmp_path / "training_log.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_discriminator_overpowering_its_generator_lowers_the_discriminators_rate_only(tmp_path: Path) -> None:
    found = _gan_remedies(_gan1202_csv(tmp_path))
    assert found, "the lost game gives a finding with a lower rate"
    for _, r in found:
        _assert_on_discriminator(r, "Disc Loss", "Gen Loss")


def _chainer_gan_log(tmp_path: Path, gen, dis, n: int = 400) -> Path:  # noqa: ANN001
    """Chainer's LogReport ``log``: a JSON list of records with ``iteration``, ``loss_gen``, ``loss_dis``."""
    import json

    rng = np.random.default_rng(7)
    records = [{"iteration": 100 * (k + 1), "loss_gen": float(gen(k / (n - 1)) * math.exp(0.1 * rng.standard_normal())),
                "loss_dis": float(dis(k / (n - 1)) * math.exp(0.1 * rng.standard_normal()))} for k in range(n)]
    path = tmp_path / "log"
    path.write_text(json.dumps(records))
    return path


def test_a_discriminator_at_exactly_0_lowers_the_discriminators_rate(tmp_path: Path) -> None:
    # discriminator_won: D's loss printed 0 at every point after the first tenth
    log = _chainer_gan_log(tmp_path, gen=lambda x: 3 + 5 * x, dis=lambda x: 0.6 if x < 0.1 else 0.0)
    found = [(c, r) for c, r in _gan_remedies(log) if c == "loss_plateau"]
    assert found
    for _, r in found:
        _assert_on_discriminator(r, "loss_dis", "loss_gen")


def test_a_discriminator_near_0_for_a_stretch_lowers_the_discriminators_rate(tmp_path: Path) -> None:
    # discriminator_ahead: a CycleGAN-like D at 0.004 from a third of the run on, its G at 3x its start
    log = _chainer_gan_log(tmp_path, gen=lambda x: 0.3 if x < 0.3 else 0.95,
                           dis=lambda x: 0.25 if x < 0.3 else 0.004)
    found = [(c, r) for c, r in _gan_remedies(log) if c == "loss_plateau"]
    assert found
    for _, r in found:
        _assert_on_discriminator(r, "loss_dis", "loss_gen")


def _console(tmp_path: Path, g: float, d: float, n: int = 30) -> Path:
    """A StudioGAN-like console: ``Step: k Gen_loss: g Dis_loss: d`` every 100 steps."""
    path = tmp_path / "train.log"
    path.write_text("".join(f"Step: {100 * (k + 1)} Gen_loss: {g} Dis_loss: {d}\n" for k in range(n)))
    return path


def test_frozen_losses_with_the_discriminator_pinned_high_lower_both_rates(tmp_path: Path) -> None:
    # StudioGAN's Gen_loss -0.0 with Dis_loss 13.82 (= -ln 1e-6: D saturated the wrong way): neither
    # network is the one ahead, so no cut aimed at one of them
    found = _gan_remedies(_console(tmp_path, -0.0, 13.82))
    assert found
    for _, r in found:
        assert r.params["target"] == "both" and r.params["optimizers"] == ["optimizer_G", "optimizer_D"]
        assert "for opt in (optimizer_G, optimizer_D):" in r.snippet and "optimizer.param_groups" not in r.snippet
        assert r.change.startswith("lower both networks' learning rates")


def test_frozen_losses_with_the_discriminator_at_0_lower_the_discriminators_rate(tmp_path: Path) -> None:
    # a discriminator frozen at 0.01 (right with 0.99) under a generator frozen at 4.6: D won outright
    found = [r for c, r in _gan_remedies(_console(tmp_path, 4.6, 0.01)) if c == "loss_plateau"]
    assert found
    for r in found:
        _assert_on_discriminator(r, "Dis_loss", "Gen_loss")


def test_a_gan_remedy_renders_on_the_named_optimizers_with_its_warm_up_and_in_keras() -> None:
    plain = R.lower_learning_rate(0.3, warmup_steps=100, learning_rate=2e-4, at_step=500, why="the reason")
    aimed = R.for_gan_network(plain, "discriminator", series={"discriminator": "errD", "generator": "errG"})
    assert plain.snippet.startswith("for group in optimizer.param_groups")  # the generic one, untouched
    # the factor and the rate are the generic remedy's: 2e-4 x 0.3
    assert aimed.params["factor"] == 0.3 and math.isclose(aimed.params["suggested_learning_rate"], 6e-5)
    assert 'group["lr"] = group["lr"] * 0.3' in aimed.snippet
    assert "optimizer_D, lambda step: min(1.0, (step + 1) / 100)" in aimed.snippet
    assert aimed.change == ("lower the discriminator's learning rate from 0.0002 (in effect at step 500) to 6e-05, "
                            "with a linear warm-up over the first 100 steps, keeping the generator's (the reason; "
                            "judged on errD (the discriminator's loss) against errG (the generator's loss))")
    keras = keras_snippet(aimed)
    assert keras is not None and keras.startswith("d_optimizer.learning_rate = 6e-05")
    assert "g_optimizer.learning_rate =" not in keras and "model.compile" not in keras
    both = keras_snippet(R.for_gan_network(R.lower_learning_rate(0.3), "both"))
    assert both is not None and "g_optimizer.learning_rate = float(g_optimizer.learning_rate) * 0.3" in both
    assert "d_optimizer.learning_rate = float(d_optimizer.learning_rate) * 0.3" in both


def test_a_discriminator_saturated_at_bcelosss_clamp_lowers_both_rates(tmp_path: Path) -> None:
    # the DCGAN tutorial's "Loss_D: 100.0000 Loss_G: 0.0000": both networks' sigmoids saturated, the
    # log does not say which overshot, so the cut names both optimizers (the finding says "rates")
    line = "[11/200][{i}/262] Loss_D: {d:.4f}  Loss_G: {g:.4f}   D(x): {x:.4f}  D(G(z)): {z:.4f} / {z:.4f}"
    rows = [(2.043, 10.29, 0.70, 0.07), (3.73, 0.0, 0.59, 1.0), (100.0, 0.0, 1.0, 1.0), (100.0, 0.0, 1.0, 1.0)]
    path = tmp_path / "d.log"
    path.write_text("\n".join(line.format(i=168 + 2 * k, d=d, g=g, x=x, z=z) for k, (d, g, x, z) in enumerate(rows)))
    found = [r for c, r in _gan_remedies(path) if c == "nonfinite"]
    assert found
    for r in found:
        assert r.params["target"] == "both" and r.params["judged_on"] == {"discriminator": "Loss_D",
                                                                        "generator": "Loss_G"}
        assert "for opt in (optimizer_G, optimizer_D):" in r.snippet and "optimizer.param_groups" not in r.snippet


def test_a_cut_sized_from_a_blow_up_does_not_replace_a_cut_aimed_at_one_gan_network() -> None:
    # one document names one rate for one optimizer; a GAN's cut aimed at the discriminator's optimizer
    # is for another optimizer than the sized one, and kept aimed (the plain cut beside it is replaced)
    from gradhealth.logs.check import _one_sized_rate
    from gradhealth.logs.detectors.common import finding

    sized = R.lower_learning_rate(0.1)
    sized.params.update(gradient_rise=100.0)
    aimed = R.for_gan_network(R.lower_learning_rate(0.3), "discriminator")
    ev = {"metric": "x", "steps": [0, 1], "value": 1.0, "threshold": 1.0}
    findings = [finding("exploding_gradient", "warning", "s", "e", ev, [sized]),
                finding("loss_divergence", "warning", "s", "e", ev, [aimed]),
                finding("loss_spike", "warning", "s", "e", ev, [R.lower_learning_rate(0.3)])]
    out = _one_sized_rate(findings)
    assert out[1].remedies[0].params["target"] == "discriminator" and out[1].remedies[0].params["factor"] == 0.3
    assert out[2].remedies[0].params["factor"] == 0.1  # the plain one takes the sized cut, as before


def test_a_gan_logging_one_rate_per_network_quotes_the_discriminators(tmp_path: Path) -> None:
    # lr_G 1e-3 and lr_D 2e-4 in each record: the cut on the discriminator's optimizer names 2e-4 -> 6e-5,
    # never the generator's 1e-3
    import json

    rng = np.random.default_rng(7)
    n = 400
    records = [{"iteration": 100 * (k + 1), "lr_G": 1e-3, "lr_D": 2e-4,
                "loss_gen": float((3 + 5 * k / n) * math.exp(0.1 * rng.standard_normal())),
                "loss_dis": 0.6 if k < 40 else 0.0} for k in range(n)]
    path = tmp_path / "log"
    path.write_text(json.dumps(records))
    found = [r for c, r in _gan_remedies(path) if c == "loss_plateau"]
    assert found
    for r in found:
        assert r.params["target"] == "discriminator"
        assert r.params["learning_rate_at_onset"] == 2e-4
        assert math.isclose(r.params["suggested_learning_rate"], 0.3 * 2e-4)
