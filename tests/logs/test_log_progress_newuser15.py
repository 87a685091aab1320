"""newuser15 #3: a large log's check sat at 5% ("reading the log") and then 70% ("diagnosing") with
nothing in between. The reading stage now moves with the bytes read of the file's size, and the
diagnosing stage with the rules run of the rules to run."""

from __future__ import annotations

from gradhealth.core import ticks
from gradhealth.logs.check import run_log_check
from gradhealth.logs.detectors import DETECTORS


def test_a_log_check_s_progress_moves_with_bytes_read_and_rules_run(tmp_path, monkeypatch):
    monkeypatch.setattr(ticks, "TICK_S", 0.0)  # every tick reports
    path = tmp_path / "training.log"
    lines = ["epoch,loss,val_loss"] + [f"{i},{2.0 / (1 + i / 100):.6f},{2.1 / (1 + i / 120):.6f}" for i in range(4000)]
    path.write_text("\n".join(lines) + "\n")
    size = path.stat().st_size
    seen: list[tuple[float, str]] = []
    run_log_check(path, progress=lambda f, stage: seen.append((f, stage)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions), seen  # never backwards
    reading = sorted({f for f, stage in seen if stage == "reading the log"})
    # 0.05 at the start, then 0.05 + 0.65 * (bytes read / size), each a line's end
    ends = set()
    done = 0
    for line in lines:
        done += len(line) + 1
        ends.add(done)
    assert len(reading) > 100, reading[:5]
    for f in reading[1:]:
        read = (f - 0.05) / 0.65 * size
        assert 0.05 < f <= 0.7 and min(abs(read - e) for e in ends) < 1e-6 * size, (f, read)
    diagnosing = sorted({f for f, stage in seen if stage.endswith("; diagnosing")})
    total = len(DETECTORS)  # one run: each rule once
    assert len(diagnosing) > total // 2, diagnosing
    for f in diagnosing:
        k = (f - 0.7) / 0.3 * total
        assert abs(k - round(k)) < 1e-6 and 0 <= round(k) < total, (f, k)


def test_an_event_file_s_reading_moves_with_its_records(tmp_path, monkeypatch):
    """An event file of TF2 tensor scalars (decoded record by record) reported one fraction while
    it was read; its records now move the reading stage, 0.05 -> 0.7, never backwards."""
    from tests.logs.readers.test_tensorboard import file_version_event, tensor_event, write_records

    monkeypatch.setattr(ticks, "TICK_S", 0.0)
    n = 3000
    payloads = [file_version_event()] + [tensor_event("loss", i, float_val=[2.0 / (1 + i / 100)], dims=())
                                         for i in range(n)]
    path = write_records(tmp_path / "events.out.tfevents.1.host", payloads)
    seen: list[tuple[float, str]] = []
    run_log_check(path, progress=lambda f, stage: seen.append((f, stage)))
    reading = [f for f, stage in seen if stage == "reading the log"]
    assert reading == sorted(reading)
    # every record one tick: the fractions spread over the stage's second half (0.375..0.7)
    distinct = sorted(set(reading))
    assert len(distinct) > n // 2, distinct[:5]
    assert distinct[-1] > 0.69 and any(0.38 < f < 0.45 for f in distinct), distinct[-3:]


def test_a_folder_s_files_each_move_their_share_of_the_bar(tmp_path, monkeypatch):
    """A folder's second file was read with the bar where the first file's read had left it (its
    end: a reader advances through the whole stage), so a large second file showed one fraction.
    Each file now moves through its bytes' share of the folder's."""
    monkeypatch.setattr(ticks, "TICK_S", 0.0)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "a_small.csv").write_text("step,loss\n" + "".join(f"{i},{1 / (1 + i)}\n" for i in range(100)))
    (folder / "b_large.csv").write_text("step,acc\n" + "".join(f"{i},{i / 4000}\n" for i in range(3000)))
    seen: list[float] = []
    run_log_check(folder, progress=lambda f, stage: seen.append(f) if stage == "reading the log" else None)
    assert seen == sorted(seen)
    small = (folder / "a_small.csv").stat().st_size
    whole = small + (folder / "b_large.csv").stat().st_size
    first_end = 0.05 + 0.65 * small / whole  # where the small file's share ends
    # the large file's lines move the bar through the rest of the stage, one fraction a line
    assert len({f for f in seen if f > first_end + 1e-9}) > 2000
    assert len({f for f in seen if f <= first_end + 1e-9}) <= 102
