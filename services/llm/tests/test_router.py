"""The router: the fallback matrix against real adapters and a local provider server,
retries and their waits, breakers, deadlines and streaming failover."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import pytest

from mainmast.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from mainmast_llm._breaker import BreakerState
from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    ProviderKind,
    Role,
    TextDelta,
)
from mainmast_llm._dev import DEV_NOTICE, DevAdapter
from mainmast_llm._http_call import deadline_after
from mainmast_llm._openai import OpenAIAdapter
from mainmast_llm._provider_errors import (
    ProviderAuthenticationError,
    ProviderRateLimitedError,
    ProviderRejectedRequestError,
    ProviderUnavailableError,
    connection_error,
    error_for_http_status,
)
from mainmast_llm._retry import RetryPolicy
from mainmast_llm._router import Router
from mainmast_llm._routing import default_routing, parse_routing
from mainmast_llm._routing_results import (
    AttemptOutcome,
    CircuitOpenError,
    DeploymentAtCapacityError,
    ModelNotFoundError,
    RoutedCompletion,
    RoutingDeadlineError,
    StreamInterruptedError,
    attempts_of,
)

REQUEST = CompletionRequest(messages=(ChatMessage(Role.USER, "Say hello"),))


def routing(*aliases, **deployment_options):
    """A routing table: each alias is (name, [deployment names]); every deployment is
    an OpenAI one, with `deployment_options` applied to all."""
    return parse_routing(
        {
            "models": {
                name: {
                    "deployments": [
                        {"name": d, "provider": "openai", "model": f"model-{d}"}
                        | deployment_options
                        for d in deployments
                    ]
                }
                for name, deployments in aliases
            }
        }
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    """A sleep that returns at once and remembers how long it was asked to wait; with a
    clock, it moves the clock on by as much."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds


def response(text="Hello", model="m"):
    return CompletionResponse(
        text=text,
        finish_reason=FinishReason.STOP,
        provider_finish_reason="stop",
        prompt_tokens=3,
        completion_tokens=2,
        provider=ProviderKind.OPENAI,
        model=model,
        latency=timedelta(milliseconds=5),
    )


class ScriptedAdapter:
    """A fake adapter: each call takes the next outcome (an exception to raise, or a
    response); streams yield `stream_pieces` before the outcome."""

    def __init__(self, *outcomes, stream_pieces=()) -> None:
        self.outcomes = list(outcomes)
        self.stream_pieces = stream_pieces
        self.calls = 0
        self.deadlines: list[float | None] = []
        self.closed_streams = 0

    @property
    def provider(self):
        return ProviderKind.OPENAI

    @property
    def model(self):
        return "scripted"

    def _next(self):
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def complete(self, request, *, deadline=None):
        self.deadlines.append(deadline)
        await asyncio.sleep(0)
        return self._next()

    async def stream(self, request, *, deadline=None):
        self.deadlines.append(deadline)
        try:
            for piece in self.stream_pieces:
                yield TextDelta(piece)
            yield self._next()
        finally:
            self.closed_streams += 1


def server_error(status=500, headers=None):
    return error_for_http_status(ProviderKind.OPENAI, status, headers or {}, b"{}")


def refused_port():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


# --- the fallback matrix, against real adapters and a real HTTP server -------------------


def primary_then_secondary(provider_server, http_client, primary_url=None, **options):
    """A router over `gpt-4` = [primary, secondary], both real OpenAI adapters; the
    server answers /primary/... and /secondary/... as the test's handler says."""
    table = routing(("gpt-4", ["primary", "secondary"]), max_attempts=1, **options)
    adapters = {
        "primary": OpenAIAdapter(
            http_client,
            model="model-primary",
            api_key="sk-primary-1234567890",
            base_url=primary_url or provider_server.url + "/primary/v1",
        ),
        "secondary": OpenAIAdapter(
            http_client,
            model="model-secondary",
            api_key="sk-secondary-1234567890",
            base_url=provider_server.url + "/secondary/v1",
        ),
    }
    return Router(table, adapters, sleep=RecordingSleep())


def primary_fails(wire, status, headers=None, *, pause=0.0):
    async def handle(request, reply):
        if request.path.startswith("/primary/"):
            if pause:
                await asyncio.sleep(pause)
            await reply.send(status, wire.error_body("primary says no"), headers)
        else:
            await reply.send(200, wire.success_body)

    return handle


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (500, AttemptOutcome.SERVER_ERROR),
        (503, AttemptOutcome.SERVER_ERROR),
        (529, AttemptOutcome.SERVER_ERROR),
        (429, AttemptOutcome.RATE_LIMITED),
    ],
)
async def test_a_retryable_http_failure_of_the_primary_falls_back_to_the_secondary(
    status, outcome, wires, provider_server, http_client
):
    wire = wires["openai"]
    provider_server.handler = primary_fails(wire, status)
    router = primary_then_secondary(provider_server, http_client)

    routed = await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(30))

    assert routed.deployment == "secondary"
    assert routed.response.text == "Hello"
    assert [(a.deployment, a.outcome) for a in routed.attempts] == [
        ("primary", outcome),
        ("secondary", AttemptOutcome.SUCCEEDED),
    ]
    assert routed.attempts[0].upstream_http_status == status
    assert routed.attempts[0].error_reason in {"PROVIDER_UNAVAILABLE", "PROVIDER_RATE_LIMITED"}
    assert routed.attempts[1].error_reason == ""
    assert [r.path for r in provider_server.requests] == [
        "/primary/v1/chat/completions",
        "/secondary/v1/chat/completions",
    ]


async def test_a_primary_timeout_falls_back_to_the_secondary(wires, provider_server, http_client):
    wire = wires["openai"]
    # The primary answers only long after its per-attempt timeout.
    provider_server.handler = primary_fails(wire, 200, pause=30)
    router = primary_then_secondary(provider_server, http_client, timeout_seconds=0.2)

    routed = await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(60))

    assert routed.deployment == "secondary"
    assert [a.outcome for a in routed.attempts] == [
        AttemptOutcome.TIMED_OUT,
        AttemptOutcome.SUCCEEDED,
    ]


async def test_a_refused_connection_to_the_primary_falls_back_to_the_secondary(
    wires, provider_server, http_client
):
    provider_server.handler = primary_fails(wires["openai"], 200)
    router = primary_then_secondary(
        provider_server, http_client, primary_url=f"http://127.0.0.1:{refused_port()}/v1"
    )

    routed = await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(30))

    assert routed.deployment == "secondary"
    assert [a.outcome for a in routed.attempts] == [
        AttemptOutcome.CONNECTION_FAILED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert routed.attempts[0].upstream_http_status == 0


@pytest.mark.parametrize(
    ("status", "classes"),
    [
        (400, (ProviderRejectedRequestError, ValidationError)),
        (422, (ProviderRejectedRequestError, ValidationError)),
        (401, (ProviderAuthenticationError, FailedPreconditionError)),
        (403, (ProviderAuthenticationError, FailedPreconditionError)),
    ],
)
async def test_a_non_retryable_failure_of_the_primary_is_raised_without_fallback(
    status, classes, wires, provider_server, http_client
):
    error_class, public_class = classes
    provider_server.handler = primary_fails(wires["openai"], status)
    router = primary_then_secondary(provider_server, http_client)

    with pytest.raises(error_class) as caught:
        await router.complete(
            REQUEST, model="gpt-4", fallback_models=["gpt-4"], deadline=deadline_after(30)
        )

    assert isinstance(caught.value, public_class)
    assert caught.value.metadata["deployment"] == "primary"
    assert caught.value.metadata["model"] == "gpt-4"
    assert caught.value.metadata["upstream_http_status"] == str(status)
    assert [(a.deployment, a.outcome) for a in attempts_of(caught.value)] == [
        ("primary", AttemptOutcome.REJECTED)
    ]
    assert [r.path for r in provider_server.requests] == ["/primary/v1/chat/completions"]


async def test_when_every_deployment_fails_the_last_error_is_raised_with_every_attempt(
    wires, provider_server, http_client
):
    wire = wires["openai"]

    async def everything_fails(request, reply):
        status = 503 if request.path.startswith("/primary/") else 429
        await reply.send(status, wire.error_body("down"), {"retry-after": "7"})

    provider_server.handler = everything_fails
    router = primary_then_secondary(provider_server, http_client)

    with pytest.raises(ProviderRateLimitedError) as caught:
        await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(30))

    assert isinstance(caught.value, RateLimitedError)
    assert caught.value.retry_after == timedelta(seconds=7)
    assert caught.value.metadata["model"] == "gpt-4"
    assert caught.value.metadata["deployment"] == "secondary"
    assert [
        (a.deployment, a.outcome, a.upstream_http_status) for a in attempts_of(caught.value)
    ] == [
        ("primary", AttemptOutcome.SERVER_ERROR, 503),
        ("secondary", AttemptOutcome.RATE_LIMITED, 429),
    ]


# --- fallback aliases ---------------------------------------------------------------------


async def test_fallback_models_are_walked_after_every_deployment_of_the_model():
    table = routing(("gpt-4", ["a", "b"]), ("llama2", ["c"]), max_attempts=1)
    adapters = {
        "a": ScriptedAdapter(server_error()),
        "b": ScriptedAdapter(server_error(502)),
        "c": ScriptedAdapter(response("from c")),
    }
    router = Router(table, adapters)

    routed = await router.complete(REQUEST, model="gpt-4", fallback_models=["llama2"])

    assert (routed.model_alias, routed.deployment, routed.response.text) == (
        "llama2",
        "c",
        "from c",
    )
    assert [(a.model_alias, a.deployment) for a in routed.attempts] == [
        ("gpt-4", "a"),
        ("gpt-4", "b"),
        ("llama2", "c"),
    ]


async def test_an_unknown_model_or_fallback_is_model_not_found_before_any_call():
    adapter = ScriptedAdapter(response())
    router = Router(routing(("gpt-4", ["a"])), {"a": adapter})

    for model, fallbacks in (("gpt-5", []), ("gpt-4", ["nope"])):
        with pytest.raises(ModelNotFoundError) as caught:
            await router.complete(REQUEST, model=model, fallback_models=fallbacks)
        assert caught.value.reason == "MODEL_NOT_FOUND"
        assert caught.value.metadata["model"] in {"gpt-5", "nope"}
    assert adapter.calls == 0


async def test_the_zero_config_routing_serves_dev_and_nothing_else():
    router = Router(default_routing(), {"dev": DevAdapter()})

    routed = await router.complete(REQUEST, model="dev")

    assert routed.response.provider is ProviderKind.DEV
    assert routed.response.text.startswith(DEV_NOTICE)
    with pytest.raises(ModelNotFoundError):
        await router.complete(REQUEST, model="gpt-4")


def test_a_router_needs_an_adapter_for_every_deployment():
    with pytest.raises(ValueError, match="b"):
        Router(routing(("gpt-4", ["a", "b"])), {"a": ScriptedAdapter(response())})


# --- retries ------------------------------------------------------------------------------


async def test_retries_on_the_same_deployment_honour_retry_after_never_sooner():
    throttled = error_for_http_status(ProviderKind.OPENAI, 429, {"retry-after": "2"}, b"{}")
    adapter = ScriptedAdapter(throttled, throttled, response())
    sleep = RecordingSleep()
    # random() = 0 would make the jittered wait 0: only Retry-After can hold it up.
    router = Router(
        routing(("gpt-4", ["a"]), max_attempts=3), {"a": adapter}, sleep=sleep, random=lambda: 0.0
    )

    routed = await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(60))

    assert sleep.delays == [2.0, 2.0]
    assert adapter.calls == 3
    assert [a.outcome for a in routed.attempts] == [
        AttemptOutcome.RATE_LIMITED,
        AttemptOutcome.RATE_LIMITED,
        AttemptOutcome.SUCCEEDED,
    ]


async def test_retries_back_off_exponentially_with_full_jitter():
    adapter = ScriptedAdapter(server_error(), server_error(), server_error(), response())
    sleep = RecordingSleep()
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0)
    router = Router(
        routing(("gpt-4", ["a"]), max_attempts=4, failure_threshold=10),
        {"a": adapter},
        retry_policy=policy,
        sleep=sleep,
        random=lambda: 0.5,
    )

    await router.complete(REQUEST, model="gpt-4")

    # Half of the caps 1, 2, 4 -> 3 (max_delay).
    assert sleep.delays == [0.5, 1.0, 1.5]


async def test_a_wait_that_would_reach_the_deadline_is_not_made_and_the_next_deployment_is_tried():
    throttled = error_for_http_status(ProviderKind.OPENAI, 429, {"retry-after": "20"}, b"{}")
    primary = ScriptedAdapter(throttled)
    secondary = ScriptedAdapter(response("secondary"))
    sleep = RecordingSleep()
    router = Router(
        routing(("gpt-4", ["a", "b"]), max_attempts=3),
        {"a": primary, "b": secondary},
        sleep=sleep,
    )

    routed = await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(5))

    assert sleep.delays == []
    assert primary.calls == 1
    assert routed.deployment == "b"


async def test_backoff_never_sleeps_past_the_deadline():
    adapter = ScriptedAdapter(server_error())
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    router = Router(
        routing(("gpt-4", ["a"]), max_attempts=10, failure_threshold=100),
        {"a": adapter},
        retry_policy=RetryPolicy(base_delay=1.0, max_delay=100.0),
        sleep=sleep,
        random=lambda: 0.99,
        deadline_clock=clock,
    )
    deadline = clock.now + 10

    with pytest.raises(ProviderUnavailableError) as caught:
        await router.complete(REQUEST, model="gpt-4", deadline=deadline)

    # Caps 1, 2, 4, 8: 0.99, 1.98, 3.96 fit in 10 s together, and then 7.92 would not.
    assert sleep.delays == pytest.approx([0.99, 1.98, 3.96])
    assert len(attempts_of(caught.value)) == 4
    assert all(d is not None and d <= deadline for d in adapter.deadlines)


async def test_each_attempt_gets_the_deployments_timeout_within_the_calls_deadline():
    adapter = ScriptedAdapter(response())
    router = Router(routing(("gpt-4", ["a"]), timeout_seconds=5), {"a": adapter})
    loop = asyncio.get_running_loop()

    before = loop.time()
    await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(60))
    await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(1))
    after = loop.time()

    per_attempt, cut_by_call = adapter.deadlines
    assert before + 5 <= per_attempt <= after + 5
    assert before + 1 <= cut_by_call <= after + 1


async def test_a_deadline_already_past_makes_no_call():
    adapter = ScriptedAdapter(response())
    router = Router(routing(("gpt-4", ["a"])), {"a": adapter})

    with pytest.raises(RoutingDeadlineError) as caught:
        await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(-1))

    assert isinstance(caught.value, DeadlineExceededError)
    assert caught.value.reason == "PROVIDER_TIMEOUT"
    assert adapter.calls == 0


# --- circuit breakers ---------------------------------------------------------------------


async def test_a_single_deployment_alias_fails_fast_with_retry_info_once_its_breaker_opens():
    clock = FakeClock()
    adapter = ScriptedAdapter(server_error())
    router = Router(
        routing(("gpt-4", ["only"]), max_attempts=1, failure_threshold=3, cool_down_seconds=30),
        {"only": adapter},
        clock=clock,
    )
    for _ in range(3):
        with pytest.raises(ProviderUnavailableError):
            await router.complete(REQUEST, model="gpt-4")
    assert router.breaker("only").state is BreakerState.OPEN

    clock.now += 10
    with pytest.raises(CircuitOpenError) as caught:
        await router.complete(REQUEST, model="gpt-4")

    assert adapter.calls == 3
    assert isinstance(caught.value, UnavailableError)
    assert caught.value.reason == "CIRCUIT_OPEN"
    assert caught.value.retry_after == timedelta(seconds=20)
    assert caught.value.metadata["model"] == "gpt-4"
    assert [(a.deployment, a.outcome) for a in attempts_of(caught.value)] == [
        ("only", AttemptOutcome.CIRCUIT_OPEN)
    ]


async def test_an_open_deployment_is_skipped_and_the_next_one_serves():
    clock = FakeClock()
    primary = ScriptedAdapter(server_error())
    secondary = ScriptedAdapter(response("secondary"))
    router = Router(
        routing(("gpt-4", ["a", "b"]), max_attempts=1, failure_threshold=1),
        {"a": primary, "b": secondary},
        clock=clock,
    )
    await router.complete(REQUEST, model="gpt-4")

    routed = await router.complete(REQUEST, model="gpt-4")

    assert primary.calls == 1
    assert [(a.deployment, a.outcome) for a in routed.attempts] == [
        ("a", AttemptOutcome.CIRCUIT_OPEN),
        ("b", AttemptOutcome.SUCCEEDED),
    ]


async def test_after_the_cool_down_exactly_one_concurrent_call_probes_and_its_success_closes():
    clock = FakeClock()
    release_probe = asyncio.Event()

    class GatedAdapter(ScriptedAdapter):
        async def complete(self, request, *, deadline=None):
            self.calls += 1
            if self.calls <= 2:
                raise server_error()
            await release_probe.wait()
            return response("probe")

    adapter = GatedAdapter()
    router = Router(
        routing(("gpt-4", ["only"]), max_attempts=1, failure_threshold=2, cool_down_seconds=30),
        {"only": adapter},
        clock=clock,
    )
    for _ in range(2):
        with pytest.raises(ProviderUnavailableError):
            await router.complete(REQUEST, model="gpt-4")
    clock.now += 30

    probe = asyncio.create_task(router.complete(REQUEST, model="gpt-4"))
    await asyncio.sleep(0)
    others = await asyncio.gather(
        *(router.complete(REQUEST, model="gpt-4") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(other, CircuitOpenError) for other in others)
    assert router.breaker("only").state is BreakerState.HALF_OPEN
    release_probe.set()
    routed = await probe

    assert routed.response.text == "probe"
    assert adapter.calls == 3
    assert router.breaker("only").state is BreakerState.CLOSED
    assert (await router.complete(REQUEST, model="gpt-4")).response.text == "probe"


async def test_a_failed_probe_reopens_the_breaker_for_another_cool_down():
    clock = FakeClock()
    adapter = ScriptedAdapter(server_error())
    router = Router(
        routing(("gpt-4", ["only"]), max_attempts=3, failure_threshold=1, cool_down_seconds=30),
        {"only": adapter},
        clock=clock,
        sleep=RecordingSleep(),
    )
    with pytest.raises(ProviderUnavailableError):
        await router.complete(REQUEST, model="gpt-4")
    assert adapter.calls == 1  # the breaker opened on the first failure: no retries after
    clock.now += 30

    with pytest.raises(ProviderUnavailableError) as caught:
        await router.complete(REQUEST, model="gpt-4")

    assert adapter.calls == 2
    assert [a.outcome for a in attempts_of(caught.value)] == [
        AttemptOutcome.SERVER_ERROR,
        AttemptOutcome.CIRCUIT_OPEN,
    ]
    assert router.breaker("only").state is BreakerState.OPEN
    assert router.breaker("only").retry_after() == 30


async def test_a_rejected_request_does_not_count_against_the_deployment():
    rejected = error_for_http_status(ProviderKind.OPENAI, 400, {}, b"{}")
    router = Router(
        routing(("gpt-4", ["only"]), failure_threshold=1), {"only": ScriptedAdapter(rejected)}
    )

    for _ in range(3):
        with pytest.raises(ProviderRejectedRequestError):
            await router.complete(REQUEST, model="gpt-4")

    assert router.breaker("only").state is BreakerState.CLOSED


async def test_a_cancelled_probe_lets_the_next_caller_probe():
    clock = FakeClock()
    started = asyncio.Event()

    class HangingAdapter(ScriptedAdapter):
        async def complete(self, request, *, deadline=None):
            self.calls += 1
            if self.calls == 1:
                raise server_error()
            if self.calls == 2:
                started.set()
                await asyncio.Event().wait()
            return response("second probe")

    router = Router(
        routing(("gpt-4", ["only"]), max_attempts=1, failure_threshold=1),
        {"only": HangingAdapter()},
        clock=clock,
    )
    with pytest.raises(ProviderUnavailableError):
        await router.complete(REQUEST, model="gpt-4")
    clock.now += 30
    probe = asyncio.create_task(router.complete(REQUEST, model="gpt-4"))
    await started.wait()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    routed = await router.complete(REQUEST, model="gpt-4")

    assert routed.response.text == "second probe"
    assert router.breaker("only").state is BreakerState.CLOSED


# --- cancellation -------------------------------------------------------------------------


class HangingAdapter(ScriptedAdapter):
    """Answers nothing: a call waits until it is cancelled; `entered` is set once it waits.
    Its stream yields `stream_pieces` first."""

    def __init__(self, *, stream_pieces=()) -> None:
        super().__init__(response(), stream_pieces=stream_pieces)
        self.entered = asyncio.Event()

    async def complete(self, request, *, deadline=None):
        self.calls += 1
        self.entered.set()
        await asyncio.Event().wait()

    async def stream(self, request, *, deadline=None):
        self.calls += 1
        try:
            for piece in self.stream_pieces:
                yield TextDelta(piece)
            self.entered.set()
            await asyncio.Event().wait()
        finally:
            self.closed_streams += 1


async def cancelled_error_of(awaitable, started):
    """Run `awaitable` in a task, cancel it once `started` is set, and return the
    CancelledError that left it."""
    caught = []

    async def run():
        try:
            await awaitable
        except asyncio.CancelledError as exc:
            caught.append(exc)
            raise

    task = asyncio.create_task(run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (error,) = caught
    return error


async def test_a_cancelled_call_carries_its_attempts_the_abandoned_one_last():
    hanging = HangingAdapter()
    router = Router(
        routing(("gpt-4", ["a", "b"]), max_attempts=1),
        {"a": ScriptedAdapter(server_error(503)), "b": hanging},
    )

    error = await cancelled_error_of(router.complete(REQUEST, model="gpt-4"), hanging.entered)

    assert [(a.deployment, a.outcome) for a in attempts_of(error)] == [
        ("a", AttemptOutcome.SERVER_ERROR),
        ("b", AttemptOutcome.CANCELLED),
    ]


async def test_a_call_cancelled_while_it_waits_to_retry_carries_the_attempts_so_far():
    waiting = asyncio.Event()

    async def endless_sleep(seconds):
        waiting.set()
        await asyncio.Event().wait()

    adapter = ScriptedAdapter(server_error(503))
    router = Router(routing(("gpt-4", ["a"]), max_attempts=3), {"a": adapter}, sleep=endless_sleep)

    error = await cancelled_error_of(router.complete(REQUEST, model="gpt-4"), waiting)

    assert adapter.calls == 1
    assert [(a.deployment, a.outcome) for a in attempts_of(error)] == [
        ("a", AttemptOutcome.SERVER_ERROR)
    ]


async def test_a_cancelled_stream_carries_its_attempts_and_closes_the_upstream_stream():
    hanging = HangingAdapter(stream_pieces=("Hel",))
    router = Router(routing(("gpt-4", ["a"])), {"a": hanging})

    async def read_all():
        async for _ in router.stream(REQUEST, model="gpt-4"):
            pass

    error = await cancelled_error_of(read_all(), hanging.entered)

    assert hanging.closed_streams == 1
    assert [(a.deployment, a.outcome) for a in attempts_of(error)] == [
        ("a", AttemptOutcome.CANCELLED)
    ]


async def test_what_is_thrown_into_a_waiting_stream_comes_back_with_its_attempts():
    adapter = ScriptedAdapter(response(), stream_pieces=("a", "b"))
    router = Router(routing(("gpt-4", ["only"])), {"only": adapter})
    stream = router.stream(REQUEST, model="gpt-4")
    assert await anext(stream) == TextDelta("a")
    closing = GeneratorExit()

    with pytest.raises(GeneratorExit) as raised:
        await stream.athrow(closing)

    assert raised.value is closing
    assert adapter.closed_streams == 1
    assert [(a.deployment, a.outcome) for a in attempts_of(closing)] == [
        ("only", AttemptOutcome.CANCELLED)
    ]


# --- streaming ----------------------------------------------------------------------------


async def collect(events, received=None):
    """The events of a stream; each is in `received` as soon as it arrives."""
    received = [] if received is None else received
    async for event in events:
        received.append(event)
    return received


async def test_a_stream_fails_over_when_the_primary_breaks_before_the_first_delta(
    wires, provider_server, http_client
):
    wire = wires["openai"]

    async def handle(request, reply):
        await reply.start(200, wire.stream_content_type)
        if request.path.startswith("/primary/"):
            await reply.write(wire.preamble)  # no text yet, then the connection drops
            await reply.drop()
        else:
            await reply.write(wire.preamble + wire.delta("Hel") + wire.delta("lo") + wire.ending)
            await reply.finish()

    provider_server.handler = handle
    router = primary_then_secondary(provider_server, http_client)

    events = await collect(router.stream(REQUEST, model="gpt-4", deadline=deadline_after(30)))

    assert events[:-1] == [TextDelta("Hel"), TextDelta("lo")]
    routed = events[-1]
    assert isinstance(routed, RoutedCompletion)
    assert routed.deployment == "secondary"
    assert routed.response.text == "Hello"
    assert [a.outcome for a in routed.attempts] == [
        AttemptOutcome.CONNECTION_FAILED,
        AttemptOutcome.SUCCEEDED,
    ]


async def test_a_stream_that_broke_after_its_first_delta_does_not_fail_over(
    wires, provider_server, http_client
):
    wire = wires["openai"]

    async def handle(request, reply):
        await reply.start(200, wire.stream_content_type)
        await reply.write(wire.preamble + wire.delta("Hel"))
        await reply.drop()

    provider_server.handler = handle
    router = primary_then_secondary(provider_server, http_client)
    received = []

    with pytest.raises(StreamInterruptedError) as caught:
        await collect(router.stream(REQUEST, model="gpt-4", deadline=deadline_after(30)), received)

    assert received == [TextDelta("Hel")]
    assert "interrupted after output began" in caught.value.message
    assert caught.value.reason == "STREAM_INTERRUPTED"
    assert caught.value.metadata["deployment"] == "primary"
    assert caught.value.metadata["output_began"] == "true"
    assert isinstance(caught.value.__cause__, ProviderUnavailableError)
    assert [(a.deployment, a.outcome) for a in attempts_of(caught.value)] == [
        ("primary", AttemptOutcome.CONNECTION_FAILED)
    ]
    assert [r.path for r in provider_server.requests] == ["/primary/v1/chat/completions"]


async def test_a_stream_retries_a_failure_before_output_on_the_same_deployment():
    adapter = ScriptedAdapter(connection_error(ProviderKind.OPENAI), response("ok"))
    router = Router(
        routing(("gpt-4", ["a"]), max_attempts=2), {"a": adapter}, sleep=RecordingSleep()
    )

    events = await collect(router.stream(REQUEST, model="gpt-4"))

    assert isinstance(events[-1], RoutedCompletion)
    assert [a.outcome for a in events[-1].attempts] == [
        AttemptOutcome.CONNECTION_FAILED,
        AttemptOutcome.SUCCEEDED,
    ]


async def test_a_non_retryable_stream_failure_is_raised_without_fallback():
    rejected = error_for_http_status(ProviderKind.OPENAI, 400, {}, b"{}")
    secondary = ScriptedAdapter(response())
    router = Router(
        routing(("gpt-4", ["a", "b"])), {"a": ScriptedAdapter(rejected), "b": secondary}
    )

    with pytest.raises(ProviderRejectedRequestError):
        await collect(router.stream(REQUEST, model="gpt-4"))

    assert secondary.calls == 0


async def test_a_consumer_that_stops_reading_closes_the_upstream_stream():
    adapter = ScriptedAdapter(response(), stream_pieces=("a", "b", "c"))
    router = Router(routing(("gpt-4", ["only"]), failure_threshold=1), {"only": adapter})

    stream = router.stream(REQUEST, model="gpt-4")
    assert await anext(stream) == TextDelta("a")
    await stream.aclose()

    assert adapter.closed_streams == 1
    assert router.breaker("only").state is BreakerState.CLOSED


async def test_a_stream_timeout_before_output_falls_back(wires, provider_server, http_client):
    wire = wires["openai"]

    async def handle(request, reply):
        if request.path.startswith("/primary/"):
            await reply.wait_for_client_close()
            return
        await reply.start(200, wire.stream_content_type)
        await reply.write(wire.preamble + wire.delta("Hello") + wire.ending)
        await reply.finish()

    provider_server.handler = handle
    router = primary_then_secondary(provider_server, http_client, timeout_seconds=0.2)

    events = await collect(router.stream(REQUEST, model="gpt-4", deadline=deadline_after(60)))

    assert events[0] == TextDelta("Hello")
    assert [a.outcome for a in events[-1].attempts] == [
        AttemptOutcome.TIMED_OUT,
        AttemptOutcome.SUCCEEDED,
    ]


# --- concurrency limits -------------------------------------------------------------------


class GatedAdapter(ScriptedAdapter):
    """Answers once `gate` is set; counts the calls waiting on it."""

    def __init__(self, *outcomes, stream_pieces=()) -> None:
        super().__init__(*outcomes, stream_pieces=stream_pieces)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def complete(self, request, *, deadline=None):
        self.waiting.set()
        await self.gate.wait()
        return await super().complete(request, deadline=deadline)


async def test_a_deployment_at_its_concurrency_limit_is_skipped_for_the_next_one():
    primary = GatedAdapter(response("primary"))
    secondary = ScriptedAdapter(response("secondary"))
    router = Router(
        routing(("gpt-4", ["a", "b"]), max_concurrent_requests=1),
        {"a": primary, "b": secondary},
    )
    first = asyncio.create_task(router.complete(REQUEST, model="gpt-4"))
    await primary.waiting.wait()

    overflow = await router.complete(REQUEST, model="gpt-4")
    primary.gate.set()
    held = await first
    after = await router.complete(REQUEST, model="gpt-4")

    assert (held.deployment, overflow.deployment, after.deployment) == ("a", "b", "a")
    assert [(a.deployment, a.outcome, a.error_reason) for a in overflow.attempts] == [
        ("a", AttemptOutcome.RATE_LIMITED, "PROVIDER_RATE_LIMITED"),
        ("b", AttemptOutcome.SUCCEEDED, ""),
    ]


async def test_a_single_deployment_at_its_limit_is_rate_limited_without_a_call():
    adapter = ScriptedAdapter(response(), stream_pieces=("a", "b"))
    router = Router(routing(("gpt-4", ["only"]), max_concurrent_requests=1), {"only": adapter})
    stream = router.stream(REQUEST, model="gpt-4")
    assert await anext(stream) == TextDelta("a")  # the stream holds the only slot

    with pytest.raises(DeploymentAtCapacityError) as caught:
        await router.complete(REQUEST, model="gpt-4")
    await stream.aclose()

    assert isinstance(caught.value, RateLimitedError)
    assert caught.value.metadata == {"deployment": "only", "provider": "openai", "model": "gpt-4"}
    assert adapter.calls == 0
    assert (await router.complete(REQUEST, model="gpt-4")).deployment == "only"
