"""errsweep8 #7: `gradhealth check /dev/zero` said "zero: not a regular file", naming the device by
its base name as if it were another file; the log loader names a path that is no file or folder as
the caller gave it, and says what it is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gradhealth.errors import LogError
from gradhealth.logs.load import read_log


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_a_device_is_named_by_the_path_given() -> None:
    with pytest.raises(LogError) as refused:
        read_log(Path("/dev/zero"))
    assert str(refused.value.detail) == "/dev/zero: not a regular file (a device)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_named_by_the_path_given_and_never_opened(tmp_path: Path) -> None:
    pipe = tmp_path / "sub" / "run.csv"
    pipe.parent.mkdir()
    os.mkfifo(pipe)
    with pytest.raises(LogError) as refused:
        read_log(pipe)
    assert str(refused.value.detail) == f"{pipe}: not a regular file (a named pipe)"


def test_a_missing_path_is_named_as_given(tmp_path: Path) -> None:
    with pytest.raises(LogError) as refused:
        read_log(tmp_path / "nowhere" / "train.log")
    assert str(refused.value.detail) == f"{tmp_path / 'nowhere' / 'train.log'}: no such file or folder"
