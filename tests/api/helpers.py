"""Builders for the API tests: small specs, an app driven through httpx against the ASGI app
(lifespan included, so its real worker process runs) from synchronous tests via an anyio portal,
and the settings each test app starts with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import httpx
from anyio.from_thread import start_blocking_portal

from gradhealth.api.app import create_app
from gradhealth.settings import Settings

TINY = {"input": {"shape": [16]}, "seeds": 1, "batch_size": 16,
        "layers": [{"type": "linear", "out_features": 16, "activation": "relu", "init": "kaiming_normal",
                    "repeat": 3}, {"type": "linear", "out_features": 4}]}
VANISHING = {"input": {"shape": [32]}, "seeds": 1, "batch_size": 32,
             "layers": [{"type": "linear", "out_features": 32, "activation": "sigmoid",
                         "init": {"scheme": "normal", "std": 0.05}, "repeat": 8}, {"type": "linear", "out_features": 4}]}


class Api:
    """A synchronous face on an AsyncClient bound to the app."""

    def __init__(self, portal: Any, client: httpx.AsyncClient, app: Any) -> None:
        self.portal, self.client, self.app = portal, client, app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def wait_done(self, job_id: str, timeout: float = 120, **kwargs: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/v1/jobs/{job_id}", **kwargs).json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")


@contextmanager
def running_app(settings: Settings, *, start_workers: bool | None = None) -> Iterator[Api]:
    app = create_app(settings, start_workers=start_workers)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(app.router.lifespan_context(app)):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        try:
            yield Api(portal, client, app)
        finally:
            portal.call(client.aclose)


def settings_for(tmp_path: Any, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path}/api.db", "workers": 1, "lease_s": 5.0,
                            "upload_dir": f"{tmp_path}/uploads",
                            "api_keys": "", "rate_limit_per_minute": 10_000}
    base.update(overrides)
    return Settings(**base)
