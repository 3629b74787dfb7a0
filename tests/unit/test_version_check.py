"""/version sampling: only a clean 200 with a version string is a sample; N in a row to pass."""

import httpx

from deployer.health.http import Sample, VersionCheck, sample_version
from deployer.model import Phase


def client(handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://pod",
                        follow_redirects=False)


def test_sample_reads_and_strips_the_version():
    s = sample_version(client(lambda r: httpx.Response(200, text="2.0.0\n")), "/version", "p")
    assert s.ok and s.version == "2.0.0"


def test_redirect_is_an_error_not_followed():
    c = client(lambda r: httpx.Response(302, headers={"location": "http://elsewhere/"}))
    s = sample_version(c, "/version", "p")
    assert not s.ok and "redirect" in s.error


def test_server_error_and_garbage_are_errors():
    assert "HTTP 503" in sample_version(client(lambda r: httpx.Response(503)), "/v", "p").error
    html = client(lambda r: httpx.Response(200, text="<html>oops</html>"))
    assert "not a version" in sample_version(html, "/v", "p").error


def test_timeout_is_an_error_sample():
    def hang(request):
        raise httpx.ReadTimeout("slow", request=request)

    s = sample_version(client(hang), "/version", "p")
    assert s.error == "timed out"


def test_needs_consecutive_matches_per_target():
    check = VersionCheck("2.0.0", samples=3)
    for _ in range(2):
        check.record(Sample("a", "2.0.0"))
    check.record(Sample("a", "1.0.0"))  # resets the streak
    for _ in range(2):
        check.record(Sample("a", "2.0.0"))
    assert check.evaluate(["a"]).phase is Phase.RUNNING
    check.record(Sample("a", "2.0.0"))
    assert check.evaluate(["a"]).phase is Phase.SUCCESSFUL


def test_every_target_must_be_verified():
    check = VersionCheck("2.0.0", samples=1)
    check.record(Sample("a", "2.0.0"))
    m = check.evaluate(["a", "b"])
    assert m.phase is Phase.RUNNING and "1 of 2" in m.message


def test_wrong_version_fails_after_the_failure_limit():
    check = VersionCheck("2.0.0", samples=3, failure_limit=3)
    for _ in range(3):
        check.record(Sample("a", "1.0.0"))
    m = check.evaluate(["a"])
    assert m.phase is Phase.FAILED and "'1.0.0'" in m.message


def test_errors_are_error_not_failed():
    check = VersionCheck("2.0.0", error_limit=2)
    check.record(Sample("a", error="timed out"))
    assert check.evaluate(["a"]).phase is Phase.RUNNING
    check.record(Sample("a", error="timed out"))
    assert check.evaluate(["a"]).phase is Phase.ERROR
