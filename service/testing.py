"""pytest helpers: fail a test (and so a CI run) when a model change breaks gradient flow.

    from gradhealth.testing import assert_gradients_healthy

    def test_model_gradients():
        assert_gradients_healthy(MyModel(), torch.randn(32, 3, 64, 64))

Importing this module does not import torch; the check does, when called.
"""

from __future__ import annotations

from typing import Any

_RANK = {"info": 0, "warning": 1, "error": 2}


def assert_gradients_healthy(model: Any, example_inputs: Any, fail_on: str = "error", *,
                             loss: str = "cross_entropy", seeds: int = 3, verify: bool = True,
                             device: str | None = None, optimizer: Any = None, scheduler: Any = None,
                             warmup_steps: int | None = None, clip_norm: float | None = None) -> Any:
    """Check ``model`` with :func:`gradhealth.check_module` and raise ``AssertionError`` when a
    finding is at least ``fail_on`` severe (``error``, ``warning`` or ``info``; ``never``: only
    report, as the CLI's ``--fail-on never``). The message is the
    text report - findings, evidence, remedies - so a CI log shows why. Returns the diagnosis.
    ``optimizer``: your training optimizer, to check its first step too (``large_updates``);
    ``scheduler``, ``warmup_steps``, ``clip_norm``: its warm-up and clipping, as :func:`gradhealth.check_module`."""
    # pytest hides this frame: a failure opens with the report, not with this function's source and the
    # model's and inputs' reprs (newuser15 #8)
    __tracebackhide__ = True
    if fail_on not in (*_RANK, "never"):
        raise ValueError(f"fail_on must be one of {[*sorted(_RANK), 'never']}, not {fail_on!r}")
    from gradhealth.library import check_module
    from gradhealth.report.text import render_text

    doc = check_module(model, example_inputs, loss=loss, seeds=seeds, verify=verify, device=device,
                       optimizer=optimizer, scheduler=scheduler, warmup_steps=warmup_steps, clip_norm=clip_norm)
    if fail_on == "never":
        return doc
    failing = [f for f in doc.findings if _RANK.get(f.severity, 0) >= _RANK[fail_on]]
    if failing:
        raise AssertionError(f"gradients are not healthy ({len(failing)} finding(s) at or above "
                             f"{fail_on!r}):\n{render_text(doc)}")
    return doc
