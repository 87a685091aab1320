"""Stable-Baselines3's Monitor CSV (``monitor.csv``), written here the way its ``ResultsWriter``
writes it: a ``#{json}`` line, the ``r,l,t`` header (plus info keywords), one row per episode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gradhealth.cli import main
from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.monitor import READER as MONITOR
from gradhealth.logs.readers.native import READER as NATIVE
from gradhealth.logs.readers.registry import formats
from gradhealth.logs.readers.textio import csv_header
from gradhealth.logs.sniff import detect

T_START = 1591112345.12


def _monitor(returns: list[float], lengths: list[int], *, success: list[bool] | None = None,
             env_id: str = "LunarLander-v2") -> str:
    """A Monitor file as SB3 writes it (``f"#{json.dumps(header)}\\n"``, then csv.DictWriter)."""
    head = ["r", "l", "t"] + (["is_success"] if success is not None else [])
    out = ["#" + json.dumps({"t_start": T_START, "env_id": env_id}), ",".join(head)]
    t = 0.0
    for i, (r, n) in enumerate(zip(returns, lengths, strict=True)):
        t += n * 0.002
        row = [str(round(r, 6)), str(n), str(round(t, 6))]
        if success is not None:
            row.append(str(success[i]))        # a Python bool: DictWriter writes True / False
        out.append(",".join(row))
    return "\n".join(out) + "\n"


def _write(tmp_path: Path, text: str, name: str = "monitor.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _rising(n: int = 300, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(-180 + 300 * i / n + rng.normal(0, 40)) for i in range(n)]


def _lengths(n: int, seed: int = 1) -> list[int]:
    return [int(x) for x in np.random.default_rng(seed).integers(80, 400, n)]


def _series(run):  # noqa: ANN001, ANN202 - a RunLog in, its series by name out
    return {s.name: s for s in run.series}


def test_a_monitor_file_is_detected_and_read_by_cumulative_environment_steps(tmp_path: Path) -> None:
    returns = [-200.5, -150.25, -90.0, 10.5, 120.125]
    lengths = [95, 120, 250, 400, 310]
    path = _write(tmp_path, _monitor(returns, lengths))
    assert MONITOR.sniff(path.name, path.read_bytes()) > NATIVE.sniff(path.name, path.read_bytes()) > 0
    assert detect(path).name in ("sb3_monitor", "native")   # native until the registry lists sb3_monitor
    run = read_log(path)
    s = _series(run)
    expected_steps = []
    total = 0
    for n in lengths:                      # SB3's results_plotter.ts2xy: np.cumsum(l)
        total += n
        expected_steps.append(total)
    assert s["episode_return"].steps.tolist() == expected_steps == [95, 215, 465, 865, 1175]
    assert s["episode_return"].values.tolist() == returns
    assert s["episode_length"].values.tolist() == [float(n) for n in lengths]
    assert s["episode_length"].steps.tolist() == expected_steps
    means = [sum(returns[:i + 1]) / (i + 1) for i in range(len(returns))]
    assert s["ep_rew_mean"].values.tolist() == pytest.approx(means)
    # the wall time is t_start + t
    walls = s["episode_return"].wall_time
    assert walls is not None and walls[0] == pytest.approx(T_START + 95 * 0.002)
    assert run.params == {"env_id": "LunarLander-v2"}
    assert "success_rate" not in s and not run.warnings


def test_the_mean_return_is_over_the_last_100_episodes(tmp_path: Path) -> None:
    returns = [float(i) for i in range(150)]
    path = _write(tmp_path, _monitor(returns, [10] * 150))
    mean = _series(read_log(path))["ep_rew_mean"]
    assert mean.values[99] == pytest.approx(sum(range(100)) / 100)
    assert mean.values[149] == pytest.approx(sum(range(50, 150)) / 100)
    assert mean.steps[149] == 1500


def test_is_success_is_a_success_rate_over_the_last_100_episodes(tmp_path: Path) -> None:
    n = 130
    success = [i % 3 == 0 or i >= 100 for i in range(n)]
    path = _write(tmp_path, _monitor([1.0] * n, [50] * n, success=success))
    rate = _series(read_log(path))["success_rate"]
    window = [success[max(0, i - 99):i + 1] for i in range(n)]
    assert rate.values.tolist() == pytest.approx([sum(w) / len(w) for w in window])
    assert rate.steps.tolist() == [50 * (i + 1) for i in range(n)]


def test_other_info_keywords_are_series_of_their_own(tmp_path: Path) -> None:
    text = ("#" + json.dumps({"t_start": T_START, "env_id": "CartPole-v1"}) + "\n"
            "r,l,t,lives,stage\n10.0,20,0.5,3,easy\n12.0,30,0.9,2,hard\n")
    run = read_log(_write(tmp_path, text))
    s = _series(run)
    assert s["lives"].values.tolist() == [3.0, 2.0] and s["lives"].steps.tolist() == [20, 50]
    assert "stage" not in s and [w.code for w in run.warnings] == ["skipped_values"]


def test_a_monitor_file_without_its_json_line_is_still_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "r,l,t\n1.5,10,0.1\n2.5,12,0.2\n")
    assert MONITOR.sniff(path.name, path.read_bytes()) > 0
    s = _series(read_log(path))
    assert s["episode_return"].steps.tolist() == [10, 22] and s["episode_return"].wall_time is None


def test_a_non_numeric_return_is_an_error_naming_the_line(tmp_path: Path) -> None:
    text = _monitor([1.0, 2.0, 3.0], [10, 10, 10]).replace("\n2.0,", "\noops,", 1)
    path = _write(tmp_path, text)
    with pytest.raises(LogError, match=r"monitor\.csv line 4: column 'r' \(the episode's return\) is 'oops', not a number"):
        read_log(path)
    bad_length = _write(tmp_path, _monitor([1.0, 2.0], [10, 10]).replace(",10,", ",-3,", 1), "b.monitor.csv")
    with pytest.raises(LogError, match=r"line 3: column 'l' .* not a count of steps"):
        read_log(bad_length)


def test_a_cut_last_row_is_dropped_with_a_warning(tmp_path: Path) -> None:
    text = _monitor([1.0, 2.0, 3.0], [10, 10, 10]) + "4.0,1"
    run = read_log(_write(tmp_path, text))
    assert len(_series(run)["episode_return"]) == 3
    assert [w.code for w in run.warnings] == ["truncated_log"] and "line 6" in run.warnings[0].message


def test_log_format_native_takes_a_monitor_file_and_a_wrong_hint_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _monitor(_rising(40), _lengths(40)))
    assert detect(path, hint="native").name == "native"
    assert len(_series(read_log(path, format="native"))["episode_return"]) == 40
    with pytest.raises(UnknownLogFormat):
        detect(path, hint="keras")


def test_sb3_monitor_is_a_listed_format_and_its_hint_is_accepted(tmp_path: Path) -> None:
    assert "sb3_monitor" in formats()
    path = _write(tmp_path, _monitor(_rising(40), _lengths(40)))
    assert detect(path).name == "sb3_monitor"
    run = read_log(path, format="sb3_monitor")
    assert run.format == "sb3_monitor" and len(_series(run)["episode_return"]) == 40
    assert main(["check", str(path), "--log-format", "sb3_monitor", "--format", "json"]) == 0


def test_the_monitor_reader_describes_itself() -> None:
    assert MONITOR.name == "sb3_monitor" and "Monitor" in MONITOR.description


def test_leading_comment_lines_of_a_plain_csv_are_skipped(tmp_path: Path) -> None:
    head = b"# written by train.py\n#  seed=3\n\nstep,loss\n1,2.5\n2,2.0\n3,1.5\n"
    assert csv_header(head) == ["step", "loss"]
    run = read_log(_write(tmp_path, head.decode(), "train.csv"))
    loss = _series(run)["loss"]
    assert loss.steps.tolist() == [1, 2, 3] and loss.values.tolist() == [2.5, 2.0, 1.5]


def test_a_comment_that_is_the_header_of_numbers_is_not_skipped() -> None:
    # numpy.savetxt(header="step,loss") writes "# step,loss" over rows of numbers: no header below it
    assert csv_header(b"# step,loss\n1,2.5\n2,2.0\n") == ["# step", "loss"]
    # a first column named "#" is a column, not a comment
    assert csv_header(b"#,step,loss\n0,1,2.5\n") == ["#", "step", "loss"]


def test_a_folder_of_one_monitor_file_per_env_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "monitor_dir"
    folder.mkdir()
    for rank in range(2):
        _write(folder, _monitor(_rising(30, seed=rank), _lengths(30, seed=10 + rank)), f"{rank}.monitor.csv")
    run = read_log(folder)
    ret = _series(run)["episode_return"]
    assert len(ret) == 60
    # each env's episodes at its own environment steps, the two envs' episodes in step order
    assert np.all(np.diff(ret.steps) >= 0)
    per_env = sorted(np.cumsum(_lengths(30, seed=10)).tolist() + np.cumsum(_lengths(30, seed=11)).tolist())
    assert ret.steps.tolist() == per_env


def _check(path: Path) -> tuple[int, dict]:
    out = path.with_suffix(".json")
    code = main(["check", str(path), "--format", "json", "--fail-on", "warning", "--output", str(out)])
    return code, json.loads(out.read_text())


def test_check_a_rising_return_is_healthy(tmp_path: Path) -> None:
    n = 300
    path = _write(tmp_path, _monitor(_rising(n), _lengths(n)))
    code, doc = _check(path)
    assert code == 0
    assert not [f for f in doc["findings"] if f["severity"] != "info"]
    assert doc["log"]["points"] == 3 * n


def test_check_a_return_that_rises_then_collapses_is_reward_collapse(tmp_path: Path) -> None:
    n = 300
    rng = np.random.default_rng(2)
    cut = int(0.8 * n)
    # from -180 up to +150, then below the start (-250) for the last fifth of the episodes
    returns = [float(-180 + 330 * i / cut + rng.normal(0, 30)) if i < cut else float(-250 + rng.normal(0, 30))
               for i in range(n)]
    path = _write(tmp_path, _monitor(returns, _lengths(n)))
    code, doc = _check(path)
    assert code == 1
    collapse = [f for f in doc["findings"] if f["code"] == "reward_collapse"]
    assert collapse and collapse[0]["severity"] == "warning"
    assert collapse[0]["evidence"]["metric"] in ("episode_return", "ep_rew_mean")
    assert collapse[0]["evidence"]["last"] < -180   # fell below where it started
