"""The SDK's resumption rules: ids handed out once, back-off from the server's hint, giving up in time."""

from __future__ import annotations

import httpx
import pytest
from httpx_sse import ServerSentEvent

from atelier_client import NotFound, StreamLost
from atelier_client.events import RETRYABLE, Resumption


def _sse(event_id: int, event: str = "job.progress") -> ServerSentEvent:
    return ServerSentEvent(
        event=event, data=f'{{"job_id": "00000000-0000-0000-0000-000000000001", "step": {event_id}}}', id=str(event_id)
    )


def test_each_id_is_handed_out_once_and_resumption_asks_for_what_follows() -> None:
    state = Resumption()
    assert "Last-Event-ID" not in state.headers()
    assert [e.id for e in (state.accept(_sse(i)) for i in (5, 6, 6, 4, 7)) if e is not None] == [5, 6, 7]
    assert state.headers()["Last-Event-ID"] == "7"
    assert Resumption(after=0).headers()["Last-Event-ID"] == "0"  # "from the start", said explicitly


def test_comments_and_retry_hints_are_not_events_and_the_hint_sets_the_pace() -> None:
    state = Resumption()
    assert state.accept(ServerSentEvent(retry=200)) is None
    assert state.base_delay_s == pytest.approx(0.2)
    assert state.next_delay("dropped") == pytest.approx(0.2)  # the first reconnect waits exactly the hint
    delays = [state.next_delay("dropped") for _ in range(4)]
    assert all(0.5 * 0.2 * 2**k <= d <= 0.2 * 2**k for k, d in zip(range(1, 5), delays, strict=True))


def test_back_off_is_capped_reset_by_an_event_and_gives_up_after_max_retries() -> None:
    state = Resumption(max_retries=3, max_delay_s=1.0, base_delay_s=0.8)
    assert max(state.next_delay("x") for _ in range(3)) <= 1.0
    with pytest.raises(StreamLost, match="3 reconnects"):
        state.next_delay("still down")
    again = Resumption(max_retries=3)
    for _ in range(3):
        again.next_delay("x")
    again.accept(_sse(1))  # progress: the count starts over
    assert again.failures == 0


def test_answers_that_a_retry_cannot_fix_are_raised_others_retried() -> None:
    state = Resumption()
    request = httpx.Request("GET", "http://127.0.0.1/v1/jobs/x/events")
    problem = {"type": "about:blank", "title": "Not found", "status": 404, "detail": "no job"}
    with pytest.raises(NotFound):
        state.check(httpx.Response(404, json=problem, request=request))
    with pytest.raises(RETRYABLE):
        state.check(httpx.Response(503, json={**problem, "status": 503}, request=request))
    assert state.check(httpx.Response(204, request=request)) is False
    assert state.check(httpx.Response(200, request=request)) is True
