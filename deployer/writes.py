"""The one way deployer changes an object it does not own alone.

Read the object, compute the new one, write it conditionally (its resourceVersion
travels with it); on 409 Conflict read again and retry, a few times, with tenacity.
``change`` returns None when the object already is as wanted, so re-running a step (a
retry, a resumed run) never applies it twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from deployer.errors import Conflict, UnsafeState

CONFLICT_RETRIES = 5
K8sObject = dict[str, Any]


def conditional_write(read: Callable[[], K8sObject], write: Callable[[K8sObject], Any],
                      change: Callable[[K8sObject], K8sObject | None], what: str) -> bool:
    """Apply ``change`` to a fresh read of the object; True if something was written."""
    try:
        for attempt in Retrying(retry=retry_if_exception_type(Conflict),
                                stop=stop_after_attempt(CONFLICT_RETRIES), reraise=True):
            with attempt:
                body = change(copy.deepcopy(read()))
                if body is None:
                    return False
                write(body)
    except Conflict as exc:
        raise UnsafeState(f"{what} kept changing while deployer tried to update it",
                          id="conflict") from exc
    return True
