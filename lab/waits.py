"""Waiting for something to become true: the one polling loop of the project, on tenacity.

Every wait here has a bound, probes at least once, probes one last time at the bound itself
(the last pause is cut short rather than overshooting), and when it gives up says in one
line what it waited for, for how long, and what it saw last: the difference between "the
node never answered" and "the node answered 'pending' for 60 s" is the user's next step.

A probe returns a value; the wait is over when `done(value)` holds (by default: the value is
truthy). A probe may also raise one of `retry_on` while the thing is not there yet (a
connection refused while sshd starts): that counts as "not yet", and its text is what was
last seen. Any other exception ends the wait at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
)

from .errors import LabError

T = TypeVar("T")


def _shown(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 200 else text[:197] + "..."


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float,
    what: str,
    last_seen: Callable[[T], str] = _shown,
    done: Callable[[T], bool] = bool,
    retry_on: tuple[type[Exception], ...] = (),
    hint: str = "",
    error: Callable[[str], Exception] | None = LabError,
) -> T:
    """Probe every `interval` s until `done(value)`; that value, or `error(message)` at `timeout`.

    With `error=None` the last value is returned at the bound instead, for callers that
    report a still-unfinished state themselves. `what` completes "waiting for ...";
    `hint` (the fix) is appended to the message.
    """

    def pause(state: RetryCallState) -> float:
        # Never sleep past the bound: the last probe happens at the bound itself.
        return max(0.0, min(interval, timeout - state.seconds_since_start))

    def give_up(state: RetryCallState) -> T:
        outcome = state.outcome
        assert outcome is not None  # tenacity calls this only after an attempt
        if outcome.failed:
            seen = _shown(outcome.exception())
            if error is None:
                outcome.result()  # re-raises the probe's own exception
        else:
            value = outcome.result()
            if error is None:
                return value
            seen = last_seen(value)
        message = f"still waiting for {what} after {timeout:g} s; last seen: {seen}"
        raise error(f"{message}; {hint}" if hint else message)

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=pause,
        retry=retry_if_result(lambda value: not done(value)) | retry_if_exception_type(retry_on),
        retry_error_callback=give_up,
    )
    return retrying(probe)
