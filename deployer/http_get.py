"""One HTTP GET turned into an :class:`~deployer.model.HttpAnswer`, for every client
deployer uses to ask something for its version (the pod proxy, pod IPs, the Service)."""

from __future__ import annotations

import httpx

from deployer.model import HttpAnswer

BODY_LIMIT = 256  # bytes of an answer kept: a version string is short


def get(client: httpx.Client, url: str, *, headers: dict[str, str] | None = None,
        raise_connect_errors: bool = False) -> HttpAnswer:
    """What answered, or why nothing did. With ``raise_connect_errors`` a connection that
    could not be made is raised instead (through the pod proxy it is the API server's)."""
    try:
        response = client.get(url, headers=headers)
    except httpx.ConnectError as exc:
        if raise_connect_errors:
            raise
        return HttpAnswer(None, error=f"{type(exc).__name__}: {exc}"[:200])
    except httpx.TimeoutException:
        return HttpAnswer(None, error="timed out")
    except httpx.HTTPError as exc:
        return HttpAnswer(None, error=f"{type(exc).__name__}: {exc}"[:200])
    return HttpAnswer(response.status_code, response.content[:BODY_LIMIT],
                      response.headers.get("location"))
