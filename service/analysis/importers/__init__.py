"""Importers: a user's model file -> the common graph form (:mod:`gradhealth.analysis.graph`)."""

from __future__ import annotations

from gradhealth.errors import GradHealthError


class ModelError(GradHealthError):
    """A model file that parsed but cannot be checked (unsupported op, external data, a dynamic
    dimension without a size); nothing from it was run."""

    status = 422
    code = "invalid_model"
    title = "Model cannot be checked"
