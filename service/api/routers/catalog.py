"""/v1/catalog: every finding code and remedy id, so clients can render them."""

from __future__ import annotations

from fastapi import APIRouter

from gradhealth.api.schemas import Catalog, CatalogEntry
from gradhealth.core.catalog import FINDINGS, REMEDIES
from gradhealth.logs.readers.registry import formats

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/catalog", response_model=Catalog, summary="Every finding code and remedy id")
def catalog() -> Catalog:
    return Catalog(
        findings=[CatalogEntry(id=k, title=v.title, description=v.description) for k, v in FINDINGS.items()],
        remedies=[CatalogEntry(id=k, title=v.title, description=v.description) for k, v in REMEDIES.items()],
        log_formats=[CatalogEntry(id=k, title=k, description=v) for k, v in formats().items()],
    )
