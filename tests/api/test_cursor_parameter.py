"""newuser16 #6: a ``?cursor=`` no list returned was a 422 whose errors[] item had ``parameter: null``;
a generated client maps the item to the query parameter it names (a webhook's deliveries:
tests/webhooks/test_delivery.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/runs"])
def test_a_bad_cursor_names_its_parameter(idle_api, path: str) -> None:
    r = idle_api.get(path, params={"cursor": "not-a-cursor"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errors"] == [{"pointer": None, "parameter": "query.cursor",
                               "detail": "not a cursor this service returned; start again without it"}]
    assert body["detail"].startswith("query.cursor: ")
