"""newuser14 #8, #9, #10, #11: ``device: gpu`` is pointed at ``cuda`` (not the one-letter-away
``cpu``); the memory limit's advice names only changes that bring a spec under it; argparse's own
errors are one ``usage error`` line; the local CLI never says "this service"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gradhealth import SpecError, check_architecture
from gradhealth.analysis.limits import Limits
from gradhealth.analysis.plan import ALLOCATOR_MARGIN, make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.cli import main
from gradhealth.errors import LimitExceeded


@pytest.mark.parametrize("device", ["gpu", "GPU", "cuda:0"])
def test_a_gpu_device_is_pointed_at_cuda(device: str) -> None:
    with pytest.raises(SpecError) as e:
        check_architecture({"input": {"shape": [4]}, "device": device, "layers": [{"type": "linear", "out_features": 2}]})
    [p] = e.value.problems
    assert p.pointer == "/device" and p.message.endswith("did you mean 'cuda'?"), p.message


def _spec(batch: int, width: int = 0) -> dict[str, Any]:
    layers: list[dict[str, Any]] = [{"type": "conv2d", "out_channels": 64, "kernel_size": 3}, {"type": "flatten"},
                                    {"type": "linear", "out_features": 2}]
    if width:
        layers = [{"type": "linear", "out_features": width}]
    return {"input": {"shape": [4] if width else [3, 256, 256]}, "batch_size": batch, "layers": layers}


def _problems(spec: dict[str, Any], limits: Limits | None = None) -> list[Any]:
    try:
        make_plan(parse_spec(spec), limits)
    except LimitExceeded as e:
        return e.problems
    return []


def test_the_batch_size_advice_is_a_batch_that_fits() -> None:
    [p] = _problems(_spec(512))
    assert p.pointer == "/batch_size"
    fits = int(re.search(r"lower batch_size to ([\d,]+)(?: or less)? \(now", p.message).group(1).replace(",", ""))  # type: ignore[union-attr]
    # the planner itself: that batch is under the limit, one more is not
    assert _problems(_spec(fits)) == [] and _problems(_spec(fits + 1)) != []


def test_no_batch_size_is_advised_where_none_fits() -> None:
    # a 4 -> 1,000,000 linear in float64: 5,000,004 parameters (weights x3: 120 MB), one sample's
    # activations 2.5 x 8 x 1,000,004 bytes (20 MB); at batch 64 the activations are most of it,
    # yet under a 130 MB limit no batch fits (batch 1: 140 MB): narrower layers, never batch_size
    # (each figure with the estimate's allocator margin on top)
    limits = Limits(max_activation_bytes=int(130_000_000 * ALLOCATOR_MARGIN))
    assert _problems(_spec(1, width=1_000_000), limits) != []
    problems = _problems(_spec(64, width=1_000_000), limits)
    assert problems and all(p.pointer == "/layers/0" and "batch_size (now" not in p.message
                            and "lower batch_size" not in p.message for p in problems), problems
    assert any("make layers narrower" in p.message and "even at batch_size 1" in p.message for p in problems)
    # at a limit one batch under it, that batch is the advice
    roomy = Limits(max_activation_bytes=int(200_000_000 * ALLOCATOR_MARGIN))
    [p] = _problems(_spec(64, width=1_000_000), roomy)
    fits = int(re.search(r"lower batch_size to ([\d,]+)(?: or less)? \(now", p.message).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert _problems(_spec(fits, width=1_000_000), roomy) == [] and _problems(_spec(fits + 1, width=1_000_000), roomy)
    # over the parameter limit too: said once, at the layer
    [p] = _problems(_spec(64, width=1_000_000_000))
    assert p.pointer == "/layers/0" and "batch_size" not in p.message


@pytest.mark.parametrize("argv", [["check", "x.yaml", "--format", "xml"], ["check", "x.yaml", "--fail-on", "bogus"],
                                  ["check", "x.yaml", "--server", "ftp://x"], ["check", "x.yaml", "--seeds", "abc"],
                                  ["bogus"]])
def test_argparse_errors_are_one_usage_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "usage error: " in err and "usage:" not in err, err


def test_the_local_cli_does_not_speak_of_a_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 8)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "a.bin").write_bytes(bytes(range(256)) * 8)
    for path in (garbage, folder):
        assert main(["check", str(path)]) == 2
        err = capsys.readouterr().err
        assert "log format gradhealth reads" in err and "service" not in err, err


def test_a_batch_of_one_is_advised_as_one_not_one_or_less() -> None:
    # specsweep13 refuse_bert_base_seq512_b32: "lower batch_size to 1 or less" asked for a batch under 1
    for limit in range(150_000_000, 200_000_001, 5_000_000):
        [p] = _problems(_spec(64, width=1_000_000), Limits(max_activation_bytes=int(limit * ALLOCATOR_MARGIN)))
        m = re.search(r"lower batch_size to ([\d,]+)( or less)? \(now", p.message)
        if m is not None and m.group(1) == "1":
            assert m.group(2) is None, p.message
            return
    raise AssertionError("no limit gave a batch of 1 to test")
