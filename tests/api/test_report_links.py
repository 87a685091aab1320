"""newuser4 P8: with API keys on, no dashboard could link a report (a key goes in a header only,
which a link cannot carry). ``POST .../report/link`` issues a signed, expiring link that opens
the report without a key; it is refused once tampered with, expired, signed under another key,
or when its job or run is deleted. ``GRADHEALTH_REPORT_FRAME_ANCESTORS`` lets a dashboard frame it."""

from __future__ import annotations

import time

import pytest

from gradhealth.api import links
from gradhealth.settings import hash_key
from tests.api.helpers import TINY, running_app, settings_for

KEY = "k-alice-0123456789"
ALICE = {"X-API-Key": KEY}
BOB = {"X-API-Key": "k-bob-0123456789"}


def _keyed(tmp_path, **more):  # noqa: ANN001, ANN202
    return settings_for(tmp_path, workers=0, api_keys=f"alice={hash_key(KEY)},bob={hash_key(BOB['X-API-Key'])}",
                        **more)


def _run_with_points(api) -> str:  # noqa: ANN001
    run = api.post("/v1/runs", json={"name": "linked-run"}, headers=ALICE).json()["id"]
    rows = [{"step": s, "metric": "loss", "value": 2.0 - 0.01 * s} for s in range(30)]
    assert api.post(f"/v1/runs/{run}/points", json=rows, headers=ALICE).status_code == 200
    return run


def test_a_run_link_opens_its_report_without_a_key_and_follows_the_run(tmp_path):
    with running_app(_keyed(tmp_path)) as api:
        run = _run_with_points(api)
        assert api.get(f"/v1/runs/{run}/report?format=html").status_code == 401  # the plain route wants a key
        issued = api.post(f"/v1/runs/{run}/report/link", headers=ALICE)
        assert issued.status_code == 201, issued.text
        link = issued.json()
        assert link["url"] == "http://testserver" + link["path"] and link["format"] == "html"
        assert 6.9 * 86400 < (time.mktime(time.strptime(link["expires_at"][:19], "%Y-%m-%dT%H:%M:%S"))
                              - time.mktime(time.gmtime())) <= 7 * 86400 + 5

        page = api.get(link["path"])  # no key
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "linked-run" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "private, no-store"

        # the link shows the run as it is when opened, not when the link was made
        api.post(f"/v1/runs/{run}/points", json=[{"step": 30, "metric": "grad_norm", "value": "nan"}], headers=ALICE)
        assert "nonfinite" in api.get(link["path"]).text

        md = api.post(f"/v1/runs/{run}/report/link?format=markdown&ttl_s=60", headers=ALICE).json()
        assert api.get(md["path"]).headers["content-type"].startswith("text/markdown")

        # deleted: every link to it is gone
        api.delete(f"/v1/runs/{run}", headers=ALICE)
        gone = api.get(link["path"])
        assert gone.status_code == 404 and gone.json()["type"].endswith("link-not-found")


def test_a_link_is_refused_tampered_expired_or_signed_under_another_key(tmp_path):
    with running_app(_keyed(tmp_path)) as api:
        run = _run_with_points(api)
        path = api.post(f"/v1/runs/{run}/report/link", headers=ALICE).json()["path"]
        token = path.rsplit("/", 1)[1]
        payload, mac = token.split(".")
        # another run's id under the same MAC; a MAC with one character changed
        forged = links.sign(b"x" * 32, links.Link("run", run, "alice", "html", int(time.time()) + 60))
        for bad in (forged, payload + "." + ("A" if mac[0] != "A" else "B") + mac[1:], payload, "x" * 3000):
            r = api.get(f"/v1/shared/{bad}")
            assert r.status_code == 404, (bad[:20], r.status_code)
        expired = links.sign(api.app.state.link_secret,
                             links.Link("run", run, "alice", "html", int(time.time()) - 1))
        r = api.get(f"/v1/shared/{expired}")
        assert r.status_code == 410 and "expired" in r.json()["detail"]
        # a link names its owner: one for alice's run under bob's name opens nothing
        bobs = links.sign(api.app.state.link_secret, links.Link("run", run, "bob", "html", int(time.time()) + 60))
        assert api.get(f"/v1/shared/{bobs}").status_code == 404


def test_issuing_checks_owner_format_and_lifetime(tmp_path):
    with running_app(_keyed(tmp_path, link_max_ttl_s=3600)) as api:
        run = _run_with_points(api)
        assert api.post(f"/v1/runs/{run}/report/link", headers=BOB).status_code == 404  # not bob's
        assert api.post(f"/v1/runs/{run}/report/link").status_code == 401
        assert api.post(f"/v1/runs/{run}/report/link?format=pdf", headers=ALICE).status_code == 406
        long = api.post(f"/v1/runs/{run}/report/link?ttl_s=7200", headers=ALICE)
        assert long.status_code == 422 and "ttl_s" in long.json()["detail"]
        assert api.post(f"/v1/runs/{run}/report/link?ttl_s=0", headers=ALICE).status_code == 422


def test_links_survive_a_restart_only_with_a_configured_secret(tmp_path):
    with running_app(_keyed(tmp_path, link_secret="s" * 40)) as api:
        run = _run_with_points(api)
        path = api.post(f"/v1/runs/{run}/report/link", headers=ALICE).json()["path"]
    with running_app(_keyed(tmp_path, link_secret="s" * 40)) as api:  # the same database, restarted
        assert api.get(path).status_code == 200
    with running_app(_keyed(tmp_path)) as api:  # no secret: a random one per process
        assert api.get(path).status_code == 404


def test_a_dashboard_origin_may_frame_a_linked_report(tmp_path):
    with running_app(_keyed(tmp_path, report_frame_ancestors="https://grafana.example.com")) as api:
        run = _run_with_points(api)
        path = api.post(f"/v1/runs/{run}/report/link", headers=ALICE).json()["path"]
        policy = api.get(path).headers["content-security-policy"]
        assert "frame-ancestors https://grafana.example.com" in policy and "'none'" not in policy.split("frame")[1]
        assert "sandbox" in policy  # still the report's sandbox
        # the plain report route keeps refusing every framer
        plain = api.get(f"/v1/runs/{run}/report?format=html", headers=ALICE)
        assert "frame-ancestors 'none'" in plain.headers["content-security-policy"]


@pytest.mark.parametrize("value", ["https://a.example; script-src *", "https://a.example, https://b",
                                   "https://例え.jp", "https://a.example\x00", "https://a\x7f.example"])
def test_frame_ancestors_take_sources_only(tmp_path, value):
    # apisweep4 D2: a non-Latin-1 origin passed, then every linked HTML report was a 500
    with pytest.raises(ValueError, match="not a frame-ancestors source"):
        settings_for(tmp_path, report_frame_ancestors=value)


def test_frame_ancestors_take_a_list_of_valid_sources(tmp_path):
    # apisweep4 D9: 'self' with an origin was refused
    value = "'self' https://grafana.example.com https://*.example.org:3000 https:"
    assert settings_for(tmp_path, report_frame_ancestors=value).report_frame_ancestors == value


def test_a_job_link_opens_the_jobs_report(tmp_path):
    with running_app(settings_for(tmp_path, workers=1)) as api:  # keys off: links work the same
        job = api.post("/v1/checks/architecture", json=TINY).json()["id"]
        assert api.wait_done(job)["status"] == "succeeded"
        link = api.post(f"/v1/jobs/{job}/report/link?format=json").json()
        doc = api.get(link["path"]).json()
        assert doc == api.get(f"/v1/jobs/{job}/report?format=json").json()


def test_a_token_that_is_not_ascii_is_not_found(tmp_path):
    # apisweep4 D1: a 500 (and a dropped connection) for /v1/shared/%C3%A9.abc
    with running_app(_keyed(tmp_path)) as api:
        for bad in ("%C3%A9.abc", "abc.%C3%A9", "%E2%80%8B"):
            r = api.get(f"/v1/shared/{bad}")
            assert r.status_code == 404, (bad, r.status_code)


def test_a_link_names_no_owner_and_dies_with_its_key(tmp_path):
    with running_app(_keyed(tmp_path)) as api:
        run = _run_with_points(api)
        path = api.post(f"/v1/runs/{run}/report/link", headers=ALICE).json()["path"]
        token = path.rsplit("/", 1)[1]
        assert b"alice" not in links._unb64(token.split(".")[0])  # apisweep4 D7: the key's name stays private
        assert api.get(path).status_code == 200
    # the same database, alice's key removed (apisweep4 D6)
    with running_app(settings_for(tmp_path, workers=0, api_keys=f"bob={hash_key(BOB['X-API-Key'])}")) as api:
        assert api.get(path).status_code == 404


def test_a_link_lives_at_least_its_ttl(tmp_path):
    # apisweep4 D8: ttl_s=1e-9 made a link already expired
    with running_app(_keyed(tmp_path)) as api:
        run = _run_with_points(api)
        assert api.post(f"/v1/runs/{run}/report/link?ttl_s=0.5", headers=ALICE).status_code == 422
        link = api.post(f"/v1/runs/{run}/report/link?ttl_s=1", headers=ALICE).json()
        assert api.get(link["path"]).status_code == 200


def test_public_metrics_show_a_key_its_own_runs_only(tmp_path):
    # apisweep4 D5: with GRADHEALTH_METRICS_PUBLIC, key B saw key A's run ids and names
    with running_app(_keyed(tmp_path, metrics_public=True)) as api:
        mine = _run_with_points(api)
        bob_view = api.get("/metrics", headers=BOB).text
        assert mine not in bob_view and "linked-run" not in bob_view
        assert mine in api.get("/metrics", headers=ALICE).text
        assert mine in api.get("/metrics").text  # no key: the operator opened them to every scrape
        assert api.get("/metrics", headers={"X-API-Key": "wrong"}).status_code == 401


def test_a_ttl_over_the_maximum_is_said_in_plain_seconds(tmp_path):
    # newuser6: "query.ttl_s: 1e+09 s is over this service's GRADHEALTH_LINK_MAX_TTL_S (2.592e+06 s)"
    with running_app(_keyed(tmp_path)) as api:
        run = _run_with_points(api)
        long = api.post(f"/v1/runs/{run}/report/link?ttl_s=999999999", headers=ALICE)
        assert long.status_code == 422
        assert long.json()["detail"] == ("query.ttl_s: 999999999 s is over this service's "
                                         "GRADHEALTH_LINK_MAX_TTL_S (2592000 s)")
