"""Hugging Face Trainer state (``trainer_state.json``), as the ``transformers`` Trainer (and TRL's
trainers built on it) save it in every ``checkpoint-*/`` folder and at the end of training.

Every entry of ``log_history`` that has a ``step`` becomes one point per numeric key: ``loss``,
``grad_norm``, ``learning_rate``, ``epoch``, ``eval_loss`` and the other ``eval_*`` keys, and any
extra key a trainer logs (TRL's ``reward``, ``entropy``...). The final summary entry the Trainer
appends after training (``train_loss``, ``train_runtime``, ``train_samples_per_second``,
``total_flos``...) is a summary, not a point of any series, and is left out.

An entry without a ``step`` (e.g. ``predict_*`` metrics a script appends to ``log_history`` after
an evaluation, with ``epoch`` but no step) cannot be placed on the step axis: it is left out, and
one ``skipped_entries`` warning names the entries and their keys. Its ``epoch`` is not used to
place it: the Trainer rounds ``epoch``, so several steps share one value. The Trainer adds the
step to everything it logs, so a training entry (``loss``, ``grad_norm`` or ``learning_rate``)
without one, a ``step`` that is not a finite number, and a file where no entry has a step are
errors.

The file is written by Python's ``json`` module, so non-finite values appear as the bare tokens
``NaN``, ``Infinity`` and ``-Infinity``; they are read as non-finite values. A file cut off while
being written (no closing brace) is read up to the last complete ``log_history`` entry, with the
warning ``truncated_log``; other malformed JSON is an error naming its line, column and byte offset.

``max_grad_norm`` and ``optim`` (the optimizer) are recorded in ``RunLog.params`` when the state holds them (at the top level, or
under ``args`` / ``training_args`` / ``trial_params``); the Trainer itself does not store its
arguments there (they are in the pickled ``training_args.bin``, which is never read), so params are
usually empty.

Read the values with two Trainer habits in mind: ``grad_norm`` is the norm *before* clipping (the
value ``clip_grad_norm_`` returns), and with the default ``logging_nan_inf_filter=True`` a NaN/Inf
training loss is replaced by the running average of the previous losses before it is logged, so a
diverged step may show as NaN/Inf only in ``grad_norm``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from gradhealth.core.words import first_few
from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import Points, number, too_many_digits
from gradhealth.logs.series import LogWarning, RunLog
from gradhealth.logs.sniff import check_size

_TRAINING_KEYS = ("loss", "grad_norm", "learning_rate")   # a training-step entry: needs its step
_SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")
_ARGS_KEYS = ("args", "training_args", "trial_params", "trainer_args")
_HISTORY = re.compile(r'"log_history"\s*:\s*\[')
_LATER_ENTRY = re.compile(r"\}\s*,\s*\{")


def _is_summary(entry: dict[str, Any]) -> bool:
    return any(k in entry for k in _SUMMARY_KEYS) or ("train_loss" in entry and "loss" not in entry)


class HFTrainerReader:
    name = "hf_trainer"
    description = ("Hugging Face Trainer / TRL trainer_state.json (log_history: loss, grad_norm, "
                   "learning_rate, eval_*)")

    def sniff(self, filename: str, head: bytes) -> float:
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not start.startswith(b"{"):
            return 0.0
        if b'"log_history"' in head:
            return 0.95
        if filename == "trainer_state.json":
            return 0.7
        return 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        name = path.name
        check_size(path, limits)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise LogError(f"{name}: cannot be read ({e.strerror or e})") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LogError(f"{name} byte offset {e.start}: not UTF-8 text") from None
        text = text.lstrip("\ufeff")
        if not text.strip():
            raise LogError(f"{name}: the file is empty")
        warnings: list[LogWarning] = []
        try:
            try:
                state = json.loads(text)
            except RecursionError:
                raise LogError(f"{name}: not a trainer state (JSON nested too deeply)") from None
            except json.JSONDecodeError as e:
                history = self._recover(text, e, name)
                state = {"log_history": history}
                where = f"line {e.lineno}"
                warnings.append(LogWarning(
                    "truncated_log", f"{name} {where}: the file is cut off; read the {len(history)} "
                    "complete log_history entries before it", where=where))
        except ValueError as e:
            # an integer past Python's digit limit: json's own words advise the service's operator
            # (sys.set_int_max_str_digits) and name no place; the other JSON readers' words, with it
            if isinstance(e, json.JSONDecodeError) or "integer string conversion" not in str(e):
                raise
            err = too_many_digits(text)
            raise LogError(f"{name} line {err.lineno} column {err.colno}: {err.msg}",
                           position=(err.lineno, err.colno)) from None
        if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
            raise LogError(f"{name}: no 'log_history' list; not a Hugging Face trainer state")
        points = Points(name, limits)
        stepless: list[int] = []          # entries without a step: not placeable, left out
        stepless_keys: set[str] = set()
        for i, entry in enumerate(state["log_history"]):
            if not isinstance(entry, dict):
                raise LogError(f"{name}: log_history[{i}] is {type(entry).__name__}, not an object")
            if _is_summary(entry):
                continue
            if entry.get("step") is None and not any(k in entry for k in _TRAINING_KEYS):
                stepless.append(i)
                stepless_keys.update(k for k, v in entry.items() if k != "epoch" and number(v) is not None)
                continue
            step = number(entry.get("step"))
            if step is None or not math.isfinite(step):
                why = ("a training entry needs one" if entry.get("step") is None
                       else f"it is {_short(entry['step'])}")
                raise LogError(f"{name}: log_history[{i}] has no finite numeric 'step' ({why})")
            for key, raw in entry.items():
                if key == "step":
                    continue
                value = number(raw) if not isinstance(raw, str) else None
                if value is not None:
                    points.add(key, step, value)
        if stepless and points.count == 0:
            raise LogError(f"{name}: none of the {len(stepless)} log_history entries has a 'step', "
                           "so no value can be placed on the step axis")
        if points.count == 0:
            raise LogError(f"{name}: log_history has no logged values")
        if stepless:
            warnings.append(_stepless_warning(name, stepless, stepless_keys))
        # max_steps: the run's planned length, where a plateau over its first part is "flat so far"
        planned = state.get("max_steps")
        return RunLog(format=self.name, source=name, series=points.build(), warnings=warnings,
                      params=self._params(state),
                      planned_steps=float(planned) if isinstance(planned, int | float) and not isinstance(planned, bool)
                      and planned > 0 else None)

    @staticmethod
    def _params(state: dict[str, Any]) -> dict[str, str]:
        params: dict[str, str] = {}
        for key in ("max_grad_norm", "optim"):
            for holder in (state, *(state.get(k) for k in _ARGS_KEYS)):
                if isinstance(holder, dict) and holder.get(key) is not None:
                    params[key] = str(holder[key])
                    break
        return params

    @staticmethod
    def _recover(text: str, error: json.JSONDecodeError, name: str) -> list[Any]:
        """The complete log_history entries of a file cut off while being written, else the error."""
        def fail() -> LogError:
            byte = len(text[:error.pos].encode("utf-8"))
            return LogError(f"{name} line {error.lineno} column {error.colno} (byte offset {byte}): "
                            f"not valid JSON ({error.msg})", position=(error.lineno, error.colno))

        if text.rstrip().endswith("}"):
            raise fail()                      # complete but malformed
        m = _HISTORY.search(text)
        if m is None:
            raise fail()
        decoder = json.JSONDecoder()
        entries: list[Any] = []
        pos, n = m.end(), len(text)
        while True:
            while pos < n and text[pos] in " \t\r\n":
                pos += 1
            if pos >= n or text[pos] == "]":
                break
            if entries:
                if text[pos] != ",":
                    break
                pos += 1
                while pos < n and text[pos] in " \t\r\n":
                    pos += 1
            try:
                obj, pos = decoder.raw_decode(text, pos)
            except (json.JSONDecodeError, RecursionError):
                break
            entries.append(obj)
        if pos < n and text[pos] != "]" and _LATER_ENTRY.search(text, pos):
            raise fail()                      # broken in the middle, not cut at the end
        if not entries:
            raise LogError(f"{name} line {error.lineno}: the file is cut off before the first "
                           "complete log_history entry", position=(error.lineno, None))
        return entries


def _short(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + "..."


def _stepless_warning(name: str, entries: list[int], keys: set[str]) -> LogWarning:
    """The note for ``log_history`` entries left out because they carry no ``step``."""
    shown = first_few([f"[{i}]" for i in entries])
    names = sorted(keys)
    what = (f" (keys: {', '.join(names[:6])}{', ...' if len(names) > 6 else ''})" if names else "")
    return LogWarning("skipped_entries", f"{name}: {len(entries)} log_history entr"
                      f"{'y' if len(entries) == 1 else 'ies'} without a 'step' left out: log_history"
                      f"{shown}{what}; they cannot be placed on the step axis",
                      where=f"log_history[{entries[0]}]")


READER = HFTrainerReader()
