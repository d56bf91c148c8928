"""The provider client's transport (httpx over aiohttp) against local servers: TLS, httpx's
timeouts, its connection bound, the proxy variables, and what reaches the provider."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mainmast_llm._completion import ChatMessage, CompletionRequest, Role
from mainmast_llm._http_call import deadline_after
from mainmast_llm._http_client import provider_http_client
from mainmast_llm._openai import OpenAIAdapter
from mainmast_llm._provider_errors import FailureKind, ProviderUnavailableError

REQUEST = CompletionRequest(messages=(ChatMessage(Role.USER, "Say hello"),))
ANSWER = {
    "model": "gpt-4o",
    "choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
}


def _self_signed_certificate() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 that is its own authority, and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, ssl.SSLContext]:
    """The test certificate (PEM) and a server context that presents it."""
    certificate_pem, key_pem = _self_signed_certificate()
    chain = tmp_path_factory.mktemp("tls") / "server.pem"
    chain.write_bytes(certificate_pem + key_pem)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(chain)
    return certificate_pem, server_context


def _openai(client: httpx.AsyncClient, url: str) -> OpenAIAdapter:
    return OpenAIAdapter(client, model="gpt-4o", api_key="sk-test-0123456789abcdef", base_url=url)


def answering(body):
    async def handle(request, reply):
        await reply.send(200, body)

    return handle


async def stall(request, reply):
    await reply.wait_for_client_close()


async def test_a_provider_over_tls_is_reached_when_its_certificate_is_trusted(
    certificate, serve_scripted
):
    certificate_pem, server_context = certificate
    trusted = ssl.create_default_context(cadata=certificate_pem.decode())
    async with (
        serve_scripted(tls=server_context) as server,
        provider_http_client(trust_env=False, verify=trusted) as client,
    ):
        server.handler = answering(ANSWER)

        response = await _openai(client, server.url).complete(REQUEST, deadline=deadline_after(30))

    assert response.text == "Hello"
    assert server.url.startswith("https://")


async def test_an_untrusted_certificate_is_a_connection_failure_not_a_timeout(
    certificate, serve_scripted
):
    _, server_context = certificate
    async with (
        serve_scripted(tls=server_context) as server,
        provider_http_client(trust_env=False) as client,
    ):
        server.handler = answering(ANSWER)

        with pytest.raises(ProviderUnavailableError) as caught:
            await _openai(client, server.url).complete(REQUEST, deadline=deadline_after(30))

    assert caught.value.kind is FailureKind.CONNECTION_FAILED
    assert server.requests == []


async def test_httpx_read_timeout_is_a_read_timeout(provider_server, http_client):
    provider_server.handler = stall

    with pytest.raises(httpx.ReadTimeout):
        await http_client.post(
            provider_server.url, content=b"{}", timeout=httpx.Timeout(None, read=0.1)
        )

    await provider_server.client_closed.wait()


async def test_waiting_for_a_connection_past_the_pool_timeout_is_a_timeout(provider_server):
    provider_server.handler = stall
    async with provider_http_client(trust_env=False, max_connections=1) as client:
        holding = asyncio.create_task(client.post(provider_server.url, content=b"{}"))
        while not provider_server.requests:  # noqa: ASYNC110 - the server offers a list
            await asyncio.sleep(0.01)

        with pytest.raises(httpx.TimeoutException):
            await client.post(
                provider_server.url, content=b"{}", timeout=httpx.Timeout(None, pool=0.1)
            )

        holding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holding
    assert provider_server.connections == 1


async def test_max_connections_bounds_the_connections_open_at_once(provider_server):
    async def slow_answer(request, reply):
        await asyncio.sleep(0.02)
        await reply.send(200, ANSWER)

    provider_server.handler = slow_answer
    async with provider_http_client(trust_env=False, max_connections=2) as client:
        responses = await asyncio.gather(
            *(client.post(provider_server.url, content=b"{}") for _ in range(6))
        )

    assert [response.status_code for response in responses] == [200] * 6
    assert provider_server.connections == 2


async def test_with_trust_env_the_proxy_variables_apply(provider_server, monkeypatch):
    for variable in ("ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTP_PROXY", provider_server.url)
    provider_server.handler = answering(ANSWER)
    # A port nothing listens on: only the proxy can answer for it.
    elsewhere = "http://127.0.0.1:9/v1"
    async with provider_http_client(trust_env=True) as client:
        response = await _openai(client, elsewhere).complete(REQUEST, deadline=deadline_after(30))

    assert response.text == "Hello"
    [received] = provider_server.requests
    assert received.target == f"{elsewhere}/chat/completions"


async def test_no_proxy_exempts_a_host_from_the_proxy(provider_server, monkeypatch):
    for variable in ("ALL_PROXY", "all_proxy", "http_proxy", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    provider_server.handler = answering(ANSWER)
    async with provider_http_client(trust_env=True) as client:
        adapter = _openai(client, f"{provider_server.url}/v1")
        response = await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert response.text == "Hello"
    assert provider_server.requests[0].target == "/v1/chat/completions"


async def test_the_provider_gets_the_request_as_httpx_built_it(provider_server, http_client):
    provider_server.handler = answering(ANSWER)

    await http_client.post(
        f"{provider_server.url}/v1/x?api-version=1",
        content=b'{"a": 1}',
        headers={"content-type": "application/json", "authorization": "Bearer sk-x"},
    )

    [received] = provider_server.requests
    assert received.target == "/v1/x?api-version=1"
    assert received.body == b'{"a": 1}'
    assert received.headers["content-type"] == "application/json"
    assert received.headers["authorization"] == "Bearer sk-x"
    assert received.headers["content-length"] == "8"
    assert received.headers["user-agent"].startswith("python-httpx/")
    assert "transfer-encoding" not in received.headers
