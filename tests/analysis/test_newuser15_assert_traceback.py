"""newuser15 #8: a failing ``assert_gradients_healthy`` under pytest's default ``--tb=long`` printed the
helper's whole source (docstring included), the model's repr and the input tensor before the report.
Its frame is hidden (``__tracebackhide__``): the failure shows the test's line and then the report."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TEST = textwrap.dedent("""
    import torch
    from torch import nn
    from gradhealth.testing import assert_gradients_healthy

    def test_sigmoid_stack():
        torch.manual_seed(0)
        layers = []
        for _ in range(12):
            layers += [nn.Linear(64, 64), nn.Sigmoid()]
        assert_gradients_healthy(nn.Sequential(*layers, nn.Linear(64, 10)), torch.randn(16, 64),
                                 seeds=1, verify=False)
""")


def test_failure_opens_with_the_report_not_the_helper(tmp_path: Path) -> None:
    (tmp_path / "test_grad.py").write_text(TEST)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                          "--tb=long", str(tmp_path / "test_grad.py")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path).stdout
    assert "1 failed" in out, out
    assert "gradients are not healthy" in out and "vanishing_gradient" in out
    # the helper's own body and its arguments' reprs are not in the traceback
    assert "doc = check_module(model" not in out and "def assert_gradients_healthy" not in out, out
    assert "example_inputs = tensor(" not in out
