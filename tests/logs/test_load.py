"""read_log: files, folders, archives, their limits, and detection across every format."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError, UnknownLogFormat, UploadTooLarge
from gradhealth.logs import archive, sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers import registry
from gradhealth.logs.readers.registry import ReadLimits

DATA = Path(__file__).resolve().parents[1] / "data" / "logs"
SHARED = Path("/work/shared/data/real-logs")

# One small sample per format (file name, content); each must be detected as its own format.
SAMPLES: dict[str, list[tuple[str, str]]] = {
    "native": [("run.jsonl", '{"step": 1, "metric": "loss", "value": 2.0}\n{"step": 2, "metric": "loss", "value": NaN}\n'),
               ("run.csv", "step,loss,grad_norm,grad_norm/fc1\n1,2.0,0.5,0.1\n2,nan,inf,0.2\n"),
               ("long.csv", "step,layer,kind,value\n1,fc1,grad_norm,0.5\n"),
               ("metrics.csv", "step,metric,value\n1,loss,2.0\n")],
    "hf_trainer": [("trainer_state.json", json.dumps({"global_step": 2, "log_history": [
        {"loss": 2.0, "grad_norm": float("nan"), "learning_rate": 1e-4, "epoch": 0.1, "step": 1}]}, indent=2))],
    "lightning": [("metrics.csv", "epoch,step,train_loss,val_loss\n0,9,1.0,\n0,9,,1.1\n"),
                  ("log.csv", "grad_2.0_norm_total,step,train_loss\n0.5,1,2.0\n")],
    "mlflow": [("loss", "1700000000000 2.5 0\n1700000001000 nan 1\n")],
    "wandb": [("history.csv", "_step,_runtime,train/loss\n0,1.0,2.0\n1,2.0,nan\n"),
              ("wandb-history.jsonl", '{"_step": 0, "train/loss": 2.0}\n{"_step": 1, "train/loss": NaN}\n'),
              ("wandb-summary.json", '{"_step": 10, "train/loss": 1.5, "_runtime": 30}')],
    "keras": [("training.log", "epoch,loss,lr,val_loss\n0,2.0,0.001,2.1\n1,nan,0.001,inf\n"),
              ("history.csv", ",loss,val_loss\n0,2.0,2.1\n")],
    "text": [("train.log", "s:0 trl:3.0 lr:0.001 norm:1.0\ns:1 trl:nan lr:0.001 norm:inf\n"),
             ("out.txt", "step 1 | loss 2.0 | grad_norm 0.5\nstep 2 | loss 1.9 | grad_norm 0.4\n")],
}

REAL_FILES = {
    "hf-mistral-translator/trainer_state.json": "hf_trainer",
    "lightning-csv-ml-aos/metrics.csv": "lightning",
    "keras-csvlogger-brats/training.log": "keras",
    "llmc-gpt2-124m/main.log": "text",
}
SHARED_FILES = {
    **REAL_FILES,
    "hf-dllm-remasking/trainer_state.json": "hf_trainer",
    "mlflow-swahili-rnn/metrics/loss": "mlflow",
    "wandb-grpo-code/wandb-summary.json": "wandb",
    "tb-lightning-lstm-textgen/events.out.tfevents.1716735746.99c8c45923de.3769.0": "tensorboard",
    "tb-keras-swahili-rnn/events.out.tfevents.1628697775.DESKTOP-V1DB051.21044.31250.v2": "tensorboard",
}


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def by_name(log):
    return {s.name: s for s in log.series}


def same_series(a, b) -> None:
    assert [s.name for s in a.series] == [s.name for s in b.series]
    for x, y in zip(a.series, b.series, strict=True):
        assert x.role == y.role and x.layer == y.layer
        np.testing.assert_array_equal(x.steps, y.steps)
        np.testing.assert_array_equal(x.values, y.values)


# --- detection ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "name", "text"), [(f, n, t) for f, items in SAMPLES.items() for n, t in items])
def test_every_sample_is_detected_as_its_own_format(tmp_path, fmt, name, text):
    p = write(tmp_path / name, text)
    head = p.read_bytes()
    scores = {r.name: r.sniff(name, head) for r in registry.readers()}
    assert sniff.detect(p).name == fmt, scores
    assert scores[fmt] > max(v for k, v in scores.items() if k != fmt), scores   # no tie
    log = read_log(p)
    assert log.format == fmt
    assert log.series or fmt == "wandb"


@pytest.mark.parametrize(("rel", "fmt"), REAL_FILES.items())
def test_every_copied_real_file_is_detected(rel, fmt):
    assert sniff.detect(DATA / rel).name == fmt


@pytest.mark.skipif(not SHARED.exists(), reason="/work/shared is absent")
@pytest.mark.parametrize(("rel", "fmt"), SHARED_FILES.items())
def test_every_shared_real_file_is_detected(rel, fmt):
    assert sniff.detect(SHARED / rel).name == fmt


# --- files -------------------------------------------------------------------------------------------

def test_missing_path_and_file_size_limit(tmp_path):
    with pytest.raises(LogError, match="no such file"):
        read_log(tmp_path / "nope.csv")
    p = write(tmp_path / "train.log", SAMPLES["text"][0][1])
    with pytest.raises(UploadTooLarge, match=r"train\.log is \d+ bytes; the limit for one log file is 10 bytes") as e:
        read_log(p, limits=ReadLimits(max_file_bytes=10))
    assert e.value.status == 413


# --- folders -----------------------------------------------------------------------------------------

def make_run(root: Path) -> Path:
    write(root / "train" / "log.jsonl", '{"step": 1, "metric": "loss", "value": 2.0}\n'
                                        '{"step": 2, "metric": "loss", "value": 1.5}\n')
    write(root / "validation" / "log.jsonl", '{"step": 2, "metric": "loss", "value": 1.7}\n')
    write(root / "validation" / "log2.jsonl", '{"step": 4, "metric": "loss", "value": 1.6}\n')  # a restart
    write(root / "README.md", "# notes\n")
    write(root / ".hidden" / "x.jsonl", '{"step": 1, "metric": "loss", "value": 9}\n')
    return root


def test_folder_prefixes_sub_folders_and_joins_restarts(tmp_path):
    log = read_log(make_run(tmp_path / "run"))
    assert log.format == "folder" and log.source == "run"
    s = by_name(log)
    assert set(s) == {"train/loss", "validation/loss"}
    assert s["validation/loss"].steps.tolist() == [2, 4]
    # the split is in the folder's name (Keras' TensorBoard callback: train/, validation/)
    assert s["validation/loss"].role == "val_loss" and s["train/loss"].role == "loss"
    assert [w.code for w in log.warnings] == ["skipped_files"] and "README.md" in log.warnings[0].message


def test_folder_with_one_log_reads_as_that_log(tmp_path):
    shutil.copy(DATA / "keras-csvlogger-brats" / "training.log", tmp_path / "training.log")
    log = read_log(tmp_path)
    assert log.format == "keras" and log.source == f"{tmp_path.name}/training.log"
    assert "loss" in by_name(log)


def test_folder_errors_name_the_file_inside_it(tmp_path):
    write(tmp_path / "run" / "a" / "log.jsonl", '{"step": 1, "metric": "loss", "value": 2.0}\n{"step": 2,\n'
                                                '{"step": 3, "metric": "loss", "value": 1.0}\n')
    with pytest.raises(LogError, match=r"^run/a/log\.jsonl line 2: not JSON"):
        read_log(tmp_path / "run")


def test_folder_with_nothing_readable(tmp_path):
    write(tmp_path / "d" / "notes.md", "hello\n")
    with pytest.raises(UnknownLogFormat, match="no file in this folder is a log format"):
        read_log(tmp_path / "d")
    with pytest.raises(UnknownLogFormat, match="no file in this folder is in the keras format"):
        read_log(make_run(tmp_path / "r"), format="keras")


def test_folder_hint_restricts_readers(tmp_path):
    root = make_run(tmp_path / "run")
    shutil.copy(DATA / "keras-csvlogger-brats" / "training.log", root / "training.log")
    assert {s.name.split("/")[0] for s in read_log(root).series} == {"train", "validation", "loss", "accuracy",
                                                                     "dice_coef", "lr", "mean_io_u_5", "precision",
                                                                     "val_accuracy", "val_dice_coef", "val_loss",
                                                                     "val_mean_io_u_5", "val_precision"}
    assert read_log(root, format="keras").format == "keras"


def mlflow_run(root: Path) -> Path:
    write(root / "metrics" / "loss", "1700000000000 2.5 0\n1700000001000 2.0 1\n")
    write(root / "metrics" / "train" / "grad_norm", "1700000000000 0.5 0\n")
    write(root / "params" / "opt_clipnorm", "5")
    return root


def test_mlflow_run_folder_and_mlruns_tree(tmp_path):
    run = mlflow_run(tmp_path / "mlruns" / "1" / "abc")
    log = read_log(run)
    assert log.format == "mlflow" and log.params == {"opt_clipnorm": "5"}
    mlflow_run(tmp_path / "mlruns" / "1" / "def")
    tree = read_log(tmp_path / "mlruns")
    assert tree.format == "folder"
    assert set(by_name(tree)) == {"1/abc/loss", "1/abc/train/grad_norm", "1/def/loss", "1/def/train/grad_norm"}
    assert tree.params["opt_clipnorm"] == "5"


# --- archives ----------------------------------------------------------------------------------------

def zip_folder(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return dest


def test_zip_of_a_run_folder_reads_like_the_folder(tmp_path):
    run = mlflow_run(tmp_path / "run")
    direct = read_log(run)
    for prefix in ("", "run/"):
        z = read_log(zip_folder(run, tmp_path / f"run{len(prefix)}.zip", prefix))
        assert z.format == "mlflow" and z.params == direct.params
        same_series(z, direct)
    multi = make_run(tmp_path / "multi")
    z = read_log(zip_folder(multi, tmp_path / "multi.zip"))
    d = read_log(multi)
    assert z.format == d.format == "folder"
    same_series(z, d)


def test_tar_gz_and_tar_of_a_folder(tmp_path):
    multi = make_run(tmp_path / "multi")
    direct = read_log(multi)
    for name, mode in (("m.tar.gz", "w:gz"), ("m.tgz", "w:gz"), ("m.tar", "w")):
        with tarfile.open(tmp_path / name, mode) as tf:
            tf.add(multi, arcname="multi")
        same_series(read_log(tmp_path / name), direct)


def test_zip_of_one_file_reads_as_that_format(tmp_path):
    z = tmp_path / "state.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(DATA / "hf-mistral-translator" / "trainer_state.json", "trainer_state.json")
    log = read_log(z)
    assert log.format == "hf_trainer" and log.source == "state.zip/trainer_state.json"
    assert len(by_name(log)["grad_norm"]) == 866


def no_extraction(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("an entry was extracted")
    monkeypatch.setattr(archive, "_copy", refuse)


def test_zip_bomb_is_refused_by_ratio_before_extracting(tmp_path, monkeypatch):
    no_extraction(monkeypatch)
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, zf.open("zeros.csv", "w") as f:
        chunk = b"\0" * 2**20
        for _ in range(50):
            f.write(chunk)
    assert z.stat().st_size < 200_000
    with pytest.raises(UploadTooLarge, match=r"bomb\.zip declares 52,428,800 bytes from [\d,]+ compressed "
                                             r"\(ratio [\d,]+\); the limit is 200") as e:
        read_log(z)
    assert e.value.status == 413


def test_tar_gz_bomb_is_refused_by_ratio(tmp_path, monkeypatch):
    t = tmp_path / "bomb.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("zeros.log")
        info.size = 50 * 2**20
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    no_extraction(monkeypatch)
    with pytest.raises(UploadTooLarge, match=r"ratio .*the limit is 200"):
        read_log(t)


def test_uncompressed_total_limit(tmp_path):
    z = zip_folder(make_run(tmp_path / "run"), tmp_path / "run.zip")
    with pytest.raises(UploadTooLarge, match="the limit is 50"):
        read_log(z, limits=ReadLimits(max_uncompressed_bytes=50))


def test_too_many_entries(tmp_path):
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(20):
            zf.writestr(f"f{i}.log", "step 1 | loss 2.0\n")
    with pytest.raises(UploadTooLarge, match=r"many\.zip: 20 entries; the limit is 5"):
        read_log(z, limits=ReadLimits(max_archive_entries=5))
    t = tmp_path / "many.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        for i in range(20):
            data = b"step 1 | loss 2.0\n"
            info = tarfile.TarInfo(f"f{i}.log")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(UploadTooLarge, match="more than 5 entries"):
        read_log(t, limits=ReadLimits(max_archive_entries=5))


@pytest.mark.parametrize("name", ["../evil.log", "a/../../evil.log", "/etc/evil.log", "C:/evil.log", "..\\evil.log"])
def test_path_traversal_is_refused(tmp_path, name):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok.log", "step 1 | loss 2.0\n")
        zf.writestr(name, "step 1 | loss 2.0\n")
    with pytest.raises(LogError, match="points outside the archive") as e:
        read_log(z)
    assert e.value.status == 422
    assert not (tmp_path / "evil.log").exists()


def test_tar_traversal_symlinks_and_devices_are_refused(tmp_path):
    def tar_with(member: tarfile.TarInfo, data: bytes = b"") -> Path:
        t = tmp_path / "x.tar.gz"
        with tarfile.open(t, "w:gz") as tf:
            tf.addfile(member, io.BytesIO(data) if data else None)
        return t

    info = tarfile.TarInfo("../x.log")
    info.size = 3
    with pytest.raises(LogError, match="points outside the archive"):
        read_log(tar_with(info, b"a:1"))
    link = tarfile.TarInfo("link.log")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(LogError, match="is a link or device"):
        read_log(tar_with(link))
    hard = tarfile.TarInfo("hard.log")
    hard.type, hard.linkname = tarfile.LNKTYPE, "other.log"
    with pytest.raises(LogError, match="is a link or device"):
        read_log(tar_with(hard))
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    with pytest.raises(LogError, match="is a link or device"):
        read_log(tar_with(dev))


def test_zip_symlink_is_refused(tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("link.log")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(LogError, match="is a link or device"):
        read_log(z)


def test_file_in_archive_over_the_size_limit(tmp_path):
    z = tmp_path / "big.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.log", "".join(f"step {i} | loss {1 / (i + 1):.4f}\n" for i in range(2000)))
    with pytest.raises(UploadTooLarge, match=r"big\.zip/train\.log is [\d,]+ bytes; the limit for one log file is 1,000"):
        read_log(z, limits=ReadLimits(max_file_bytes=1000))


def test_corrupt_and_empty_archives(tmp_path):
    bad = write(tmp_path / "bad.zip", b"PK\x03\x04" + b"\x01" * 100)
    with pytest.raises(LogError, match=r"bad\.zip: not a readable zip archive"):
        read_log(bad)
    badtar = write(tmp_path / "bad.tar.gz", b"\x1f\x8b" + b"\x02" * 100)
    with pytest.raises(LogError, match=r"bad\.tar\.gz: not a readable"):
        read_log(badtar)
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(LogError, match="empty"):
        read_log(empty)


def test_max_points_over_a_merged_folder(tmp_path):
    with pytest.raises(UploadTooLarge, match="limit is 3"):
        read_log(make_run(tmp_path / "run"), limits=ReadLimits(max_points=3))


# --- robustness --------------------------------------------------------------------------------------

def test_mangled_samples_raise_only_log_errors(tmp_path):
    """Cut, flipped and spliced bytes: every outcome is a RunLog or a LogError, nothing else."""
    rng = random.Random(42)
    inputs = [(n, t.encode()) for items in SAMPLES.values() for n, t in items]
    inputs.append(("training.log", (DATA / "keras-csvlogger-brats" / "training.log").read_bytes()[:3000]))
    tokens = [b"nan", b",", b"\n", b"{", b"}", b'"', b"\r", b"\x00", b"-inf", b"1e999", b"[[[[", b":", b"|", b"\xe9"]
    for i in range(300):
        name, data = inputs[i % len(inputs)]
        d = bytearray(data)
        op = rng.randrange(4)
        if op == 0:
            d = d[:rng.randrange(len(d) + 1)]
        elif op == 1:
            for _ in range(rng.randrange(1, 5)):
                d[rng.randrange(len(d))] = rng.randrange(256)
        elif op == 2:
            at = rng.randrange(len(d) + 1)
            d[at:at] = rng.choice(tokens)
        else:
            a, b = sorted((rng.randrange(len(d) + 1), rng.randrange(len(d) + 1)))
            d = d[:a] + d[b:]
        p = write(tmp_path / str(i) / name, bytes(d))
        with contextlib.suppress(LogError):
            read_log(p)
