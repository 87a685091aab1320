"""Files that are not training logs but are often sent as one: a PyTorch checkpoint, a pickle, a
NumPy array, a Keras or ONNX model, an image. Named by their first bytes (and, for a zip, the
names in its central directory, which is read without extracting or loading any member), so a
log check refuses them saying what they are and where they can be checked, before any reader
searches their bytes for a log's lines (seconds a megabyte of binary data) and before a job is
queued for them. Nothing here unpickles or runs anything: a checkpoint's pickle is never opened.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

#: What to do with a model file instead (the model doors read Keras and ONNX files, never pickles).
_MODEL_DOORS = ("check the model itself: a Keras (.keras, .h5) or ONNX (.onnx) file with `gradhealth check "
                "MODEL` or POST /v1/checks/model")
_PICKLED = ("a pickle is never loaded here (unpickling runs code); check the network from Python with "
            "gradhealth.check_module(model, example_inputs), or export it (torch.onnx.export) and check the "
            ".onnx file")

# (magic at offset 0, what it is and what to do)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x93NUMPY", "a NumPy array (.npy), not a training log: a log is the text, table or event file the "
                   "training wrote (a CSV of losses, a TensorBoard event file, a console log)"),
    (b"\x89HDF\r\n\x1a\n", f"an HDF5 file (a Keras .h5 model or a data set), not a training log: {_MODEL_DOORS}"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image, not a training log: send the log the chart was drawn from"),
    (b"\xff\xd8\xff", "a JPEG image, not a training log: send the log the chart was drawn from"),
    (b"GIF8", "a GIF image, not a training log: send the log the chart was drawn from"),
    (b"%PDF-", "a PDF document, not a training log: send the log its figures were drawn from"),
    (b"SQLite format 3\x00", "an SQLite database, not a training log: export its metrics as CSV (MLflow: the "
                             "run's metrics folder, or mlflow's CSV export) and check that"),
)
#: A pickle's first bytes: the PROTO opcode and a protocol 2-5 (``torch.save``'s legacy format, joblib).
_PICKLE = re.compile(rb"\x80[\x02-\x05]")
#: A safetensors file: an 8-byte little-endian header length, then the JSON header.
_SAFETENSORS = re.compile(rb"[\s\S]{8}\{\s*\"(?:__metadata__|[^\"]{1,200}\"\s*:\s*\{\s*\"dtype\")")
#: A member of ``torch.save``'s zip: ``<name>/data.pkl`` (with ``<name>/version`` beside it).
_TORCH_MEMBER = re.compile(r"^[^/]+/data\.pkl$")
#: A key of a mapping as YAML (block or flow style) or JSON writes it: at a line's start or after
#: ``{`` or ``,``, quoted or not, then a colon. A spec has both of its required keys, ``input`` and ``layers``.
_SPEC_KEYS = tuple(re.compile(rf"(?:^|[{{,])[ \t]*[\"']?{key}[\"']?[ \t]*:", re.MULTILINE)
                   for key in ("input", "layers"))
_SPEC = ("an architecture spec (a YAML or JSON mapping with `input` and `layers`), not a training log: check it "
         "with POST /v1/checks/architecture (gradhealth check SPEC)")


def what_it_is(path: Path, head: bytes) -> str | None:
    """What the file at ``path`` (starting with ``head``) is when it is a well-known kind of file
    that is no training log, with what to send or do instead, as a refusal's words after the file's
    name; None for anything else (a log, or bytes nothing here names)."""
    for magic, said in _MAGIC:
        if head.startswith(magic):
            return said
    if head[:4] == b"PK\x03\x04" or head[:4] == b"PK\x05\x06":
        return zip_is(path)
    if _PICKLE.match(head):
        return f"a Python pickle (torch.save's legacy format, joblib), not a training log: {_PICKLED}"
    if _SAFETENSORS.match(head[:512]):
        return ("a safetensors file of weights, not a training log: weights alone hold no architecture; "
                f"{_MODEL_DOORS}, or check the network from Python with gradhealth.check_module")
    if path.suffix.lower() == ".onnx" and head[:1] == b"\x08":
        return f"an ONNX model, not a training log: {_MODEL_DOORS}"
    text = head.decode("utf-8", "replace")
    if all(key.search(text) for key in _SPEC_KEYS):
        # (the model route says the same of a spec: newuser16 #9, the log route gave a generic 415)
        return _SPEC
    return None


def zip_is(path: Path) -> str | None:
    """What a zip at ``path`` is when it is a model or an array rather than an archive of logs (its
    central directory's names only; nothing is extracted); None for any other zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if any(_TORCH_MEMBER.match(n) for n in names):
        return f"a PyTorch checkpoint (torch.save's zip of pickled weights), not a training log: {_PICKLED}"
    if "config.json" in names and any(n.startswith("model.weights") for n in names):
        return f"a Keras model (.keras), not a training log: {_MODEL_DOORS}"
    if names and all(n.endswith(".npy") for n in names):
        return ("NumPy arrays (.npz), not a training log: a log is the text, table or event file the "
                "training wrote (a CSV of losses, a TensorBoard event file, a console log)")
    return None
