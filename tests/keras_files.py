"""Keras model files written the way Keras writes them, for the importer tests (h5py only)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np


def keras2_h5(config: dict[str, Any], stored: dict[str, list[tuple[str, np.ndarray]]], *,
              attrs: dict[str, str] | None = None, split: bool = False) -> bytes:
    """A Keras 2 ``.h5`` as ``model.save()`` writes it: the config in ``model_config``, any other
    file attributes (``training_config``, ``keras_version``, ``backend``) from ``attrs``, and each
    layer's weights under ``model_weights/<layer>``, which lists them in ``weight_names`` and holds
    them at ``<layer>/<layer>/<name>:0``. ``split``: the layer names in numbered chunks, as Keras
    writes a list attribute over HDF5's 64 kB limit (the first three, then the rest)."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        group = f.create_group("model_weights")
        names = [lay["config"]["name"] for lay in config["config"]["layers"]]
        if split:
            group.attrs["layer_names0"] = [n.encode() for n in names[:3]]
            group.attrs["layer_names1"] = [n.encode() for n in names[3:]]
        else:
            group.attrs["layer_names"] = [n.encode() for n in names]
        for name in names:
            layer = group.create_group(name)
            layer.attrs["weight_names"] = [f"{name}/{w}:0".encode() for w, _ in stored.get(name, [])]
            for w, value in stored.get(name, []):
                layer.create_dataset(f"{name}/{w}:0", data=value)
    return buf.getvalue()
