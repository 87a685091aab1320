"""A trunk whose middle the gradient barely reaches while skip connections keep both ends healthy
(modsweep31 u04: milesial's U-Net with every BatchNorm removed was read healthy, its bottleneck
getting 1.3e-6 of the last layer's gradient and its first layer 0.045).

The expected figures come from theory, not from the tool: torch's default conv init draws
Var(W) = 1/(3 fan_in), so a conv + ReLU scales its signal by sqrt(fan_in Var(W) / 2) = sqrt(1/6) =
0.41, a transposed conv without ReLU by about sqrt(1/3) = 0.58. From the last conv (convs.2.3) back
to the bottleneck's first (downs.2.0) the gradient passes 7 conv + ReLU layers and 3 transposed
convs: 0.41^7 x 0.58^3 = 4e-4, and the norm over 8x fewer values there (16 channels at 2x2 against
2 at 16x16) a further sqrt(1/8): about 1e-4, far under the 1e-2 warning. The first and last convs
sit on the short skip (inc -> convs.2), so the ends' ratio stays above it."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module


def _double(cin: int, cout: int, bn: bool) -> nn.Sequential:
    def norm(c: int) -> nn.Module:
        return nn.BatchNorm2d(c) if bn else nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU())


class _UNet(nn.Module):
    """milesial's U-Net in miniature: double convs down (max-pooled), transposed convs up, each
    stage concatenating the encoder's skip; ``skips=False`` drops the concatenations (a plain
    encoder-decoder chain)."""

    def __init__(self, bn: bool, skips: bool = True, c: int = 2, depth: int = 3) -> None:
        super().__init__()
        chans = [c * 2 ** i for i in range(depth + 1)]
        self.skips = skips
        self.inc = _double(3, chans[0], bn)
        self.downs = nn.ModuleList(_double(chans[i], chans[i + 1], bn) for i in range(depth))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                 for i in reversed(range(depth)))
        self.convs = nn.ModuleList(_double((2 if skips else 1) * chans[i], chans[i], bn)
                                   for i in reversed(range(depth)))
        self.outc = nn.Conv2d(chans[0], 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        found = [self.inc(x)]
        for down in self.downs:
            found.append(down(nn.functional.max_pool2d(found[-1], 2)))
        h = found.pop()
        for up, conv in zip(self.ups, self.convs, strict=True):
            skip = found.pop()
            h = conv(torch.cat([skip, up(h)], dim=1) if self.skips else up(h))
        return self.outc(h).permute(0, 2, 3, 1)  # per-pixel cross-entropy over the class channel


def _check(model: nn.Module, verify: bool = False):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return check_module(model, torch.randn(2, 3, 16, 16), loss="cross_entropy", verify=verify)


def test_a_unet_without_batch_norm_starves_its_bottleneck_and_names_it() -> None:
    torch.manual_seed(0)
    doc = _check(_UNet(bn=False), verify=True)
    found = {f.code: f for f in doc.findings}
    assert "vanishing_gradient" in found, doc.summary  # read healthy before: the ends are 0.06 apart
    f = found["vanishing_gradient"]
    ev = f.evidence.model_dump()
    layers = {layer.name: layer for layer in doc.layers}
    # the ends stay healthy: the first conv gets over 1e-2 of the last's gradient (the skip path)
    first, last = layers["inc.0"].output_grad_norm, layers["convs.2.3"].output_grad_norm
    assert first is not None and last is not None and first / last > 1e-2
    assert ev["first_to_last_grad_ratio"] > 1e-2
    # the least reached is at the bottom of the U, far under the warning (theory: about 1e-4)
    assert ev["least_reached"].startswith(("downs.2", "ups.0")), ev["least_reached"]
    assert ev["starved_middle"] is True and ev["value"] < 1e-3
    least = layers[ev["least_reached"]].output_grad_norm
    assert least is not None and abs(ev["value"] - least / last) < 1e-3 * ev["value"] + 1e-12
    assert ev["least_reached"] in f.summary and "inc.0 .. convs.2.3" in f.summary
    assert "inc.0" not in ev["starved_layers"] and "convs.2.3" not in ev["starved_layers"]
    # He init keeps every conv's gain at 1: verified to lift the starved middle past the warning
    he = next(r for r in f.remedies if r.id == "he_init")
    assert he.verified is not None and he.verified.fixed and he.verified.after > 1e-2
    assert any(r.id == "batch_norm" for r in f.remedies)


def test_the_same_unet_with_batch_norm_is_healthy() -> None:
    doc = _check(_UNet(bn=True))
    assert not any(f.code == "vanishing_gradient" for f in doc.findings), doc.summary
    assert doc.status == "healthy", doc.summary


def test_a_plain_encoder_decoder_chain_is_judged_from_its_first_layer_as_before() -> None:
    # no skip goes around the middle: the first layer is the least reached, the ends' ratio judges
    # it (10 convs at 0.41 and the narrowing: far under 1e-2), with the first-to-last metric
    doc = _check(_UNet(bn=False, skips=False))
    f = next(f for f in doc.findings if f.code == "vanishing_gradient")
    ev = f.evidence.model_dump()
    assert ev["metric"] == "output_grad_ratio_first_to_last"
    assert not ev.get("starved_middle") and ev["layers"][0] == "inc.0"
