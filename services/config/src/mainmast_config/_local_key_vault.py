"""A local Azure Key Vault: an HTTPS server that speaks the vault's secrets REST API.

It exists so that the real `azure-keyvault-secrets` client (sync and aio) can be tested and
measured against something that answers as the vault does: secrets by name and version,
the paged listing with `nextLink`, the 401 bearer challenge, 404 `SecretNotFound`, and
faults on command (429 with Retry-After, 500, slow answers, dropped connections). It uses a
certificate authority and a server certificate made when it starts; clients trust it
through `ca_path`. Test fakes ship with the product, as `mainmast.testing` does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, Self
from urllib.parse import parse_qs, quote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOCAL_VAULT_TOKEN: Final = "local-key-vault-access-token"  # noqa: S105 -- a fake, by design
"""The bearer token the local vault accepts."""

CHALLENGE_RESOURCE: Final = "https://vault.azure.net"
"""The resource the 401 challenge names, as the real vault's does."""

_CHALLENGE: Final = (
    'Bearer authorization="https://login.microsoftonline.com/'
    f'00000000-0000-0000-0000-000000000000", resource="{CHALLENGE_RESOURCE}"'
)


@dataclass(frozen=True, slots=True)
class Fault:
    """What the vault does instead of answering one request."""

    status: int = 0
    """Answer with this HTTP status and a Key Vault error body (0: answer normally)."""
    retry_after: str | None = None
    """A Retry-After header to send with the status."""
    delay: float = 0.0
    """Seconds to wait before answering (or dropping)."""
    drop: bool = False
    """Close the connection without an answer."""


@dataclass(slots=True)
class _Version:
    value: str
    version: str
    created: int
    enabled: bool
    content_type: str
    tags: dict[str, str]


@dataclass(slots=True)
class _State:
    secrets: dict[str, list[_Version]] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class LocalKeyVault:
    """A local vault on 127.0.0.1 (an ephemeral port unless given); use as a context manager.

    `set_secret` adds versions, `fail_next` queues faults for the next authorised requests,
    `requests` lists the authorised requests answered or faulted (method, path).
    """

    def __init__(self, *, page_size: int = 25, port: int = 0) -> None:
        if page_size < 1:
            raise ValueError("a listing page holds at least one secret")
        self._page_size = page_size
        self._port = port
        self._state = _State()
        self._directory: Path | None = None
        self._context: ssl.SSLContext | None = None
        self._server: _VaultServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The vault URL, `https://127.0.0.1:<port>`."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        """The port the vault listens on (or did, while it is down)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        if self._port:
            return self._port
        raise RuntimeError("the local vault has not started")

    @property
    def ca_path(self) -> str:
        """The PEM file of the certificate authority that signed the vault's certificate."""
        if self._directory is None:
            raise RuntimeError("the local vault has not started")
        return str(self._directory / "ca.pem")

    @property
    def requests(self) -> list[tuple[str, str]]:
        """The authorised requests so far, as (method, path with query)."""
        with self._state.lock:
            return list(self._state.requests)

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str = "",
        tags: dict[str, str] | None = None,
        enabled: bool = True,
    ) -> str:
        """Add a new version of `name` (a Key Vault name); return its version id."""
        version = uuid.uuid4().hex
        entry = _Version(value, version, int(time.time()), enabled, content_type, dict(tags or {}))
        with self._state.lock:
            self._state.secrets.setdefault(name.lower(), []).append(entry)
        return version

    def delete_secret(self, name: str) -> None:
        """Remove `name` and all its versions."""
        with self._state.lock:
            self._state.secrets.pop(name.lower(), None)

    def fail_next(self, fault: Fault, *, count: int = 1) -> None:
        """Answer the next `count` authorised requests with `fault`."""
        with self._state.lock:
            self._state.faults.extend([fault] * count)

    def start(self) -> None:
        """Start serving in a background thread, on the port of the last run if there was one.

        The certificates are made on the first start and kept until `close`, so clients
        that trusted the vault before it went down trust it when it comes back.
        """
        if self._server is not None:
            raise RuntimeError("the local vault is running already")
        context = self._context
        if context is None or self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="local-key-vault-"))
            context = self._context = _server_context(self._directory)
        server = _VaultServer(("127.0.0.1", self._port), _Handler, self._state, self._page_size)
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server = server
        self._port = self.port
        self._state.stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Go down: stop serving and cut every connection (slow answers are cut short)."""
        server, self._server = self._server, None
        if server is not None:
            self._state.stopping.set()
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop, and remove the certificates."""
        self.stop()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
            self._context = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _VaultServer(ThreadingHTTPServer):
    # Handler threads are joined on close; `close_connections` first unblocks them.
    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        state: _State,
        page_size: int,
    ) -> None:
        super().__init__(address, handler)
        self.state = state
        self.page_size = page_size
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection and remember it, so that stopping can cut it."""
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        """Forget a connection its handler is done with, and close it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open connection, as a vault that goes down does."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about connections cut by stopping or by a client that went away."""
        if not self.state.stopping.is_set():
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out in separate writes: with Nagle's algorithm on, every
    # answer on a kept-alive connection waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _VaultServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read their own output."""

    def do_GET(self) -> None:
        """Answer a Key Vault GET: a secret, or a page of the listing."""
        state = self.server.state
        if self.headers.get("Authorization") != f"Bearer {LOCAL_VAULT_TOKEN}":
            self._send(401, {"error": {"code": "Unauthorized", "message": "Unauthorized"}})
            return
        with state.lock:
            state.requests.append(("GET", self.path))
            fault = state.faults.popleft() if state.faults else None
        if fault is not None and self._apply(fault):
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if "api-version" not in query:
            self._send(400, _error("BadParameter", "The api-version parameter is missing."))
            return
        parts = [part for part in url.path.split("/") if part]
        if parts == ["secrets"]:
            self._send(200, self._page(query))
        elif len(parts) in (2, 3) and parts[0] == "secrets":
            self._send_secret(parts[1], parts[2] if len(parts) == 3 else "")
        else:
            self._send(404, _error("NotFound", "No such operation."))

    def _apply(self, fault: Fault) -> bool:
        if fault.delay and self.server.state.stopping.wait(fault.delay):
            self.close_connection = True
            return True
        if fault.drop:
            self.close_connection = True
            return True
        if fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            code = "Throttled" if fault.status == 429 else "InternalServerError"
            self._send(fault.status, _error(code, f"Fault {fault.status}."), headers)
            return True
        return False

    def _send_secret(self, name: str, version: str) -> None:
        with self.server.state.lock:
            versions = list(self.server.state.secrets.get(name.lower(), []))
        chosen = [entry for entry in versions if entry.version == version] if version else []
        if not version and versions:
            chosen = [versions[-1]]
        if not chosen:
            identifier = f"{name}/{version}" if version else name
            message = f"A secret with (name/id) {identifier} was not found in this key vault."
            self._send(404, _error("SecretNotFound", message))
            return
        entry = chosen[0]
        if not entry.enabled:
            message = "Operation get is not allowed on a disabled secret."
            self._send(403, _error("Forbidden", message, inner="SecretDisabled"))
            return
        body = self._properties(name, entry, with_version=True)
        body["value"] = entry.value
        self._send(200, body)

    def _page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.server.state.lock:
            latest = sorted(
                (name, versions[-1]) for name, versions in self.server.state.secrets.items()
            )
        start = int(query.get("$skiptoken", ["0"])[0])
        size = min(int(query.get("maxresults", [str(self.server.page_size)])[0]) or 1, 25)
        size = min(size, self.server.page_size)
        page = latest[start : start + size]
        body: dict[str, Any] = {
            "value": [self._properties(name, entry, with_version=False) for name, entry in page],
            "nextLink": None,
        }
        if start + size < len(latest):
            api_version = quote(query["api-version"][0])
            body["nextLink"] = (
                f"{self._base()}/secrets?api-version={api_version}"
                f"&$skiptoken={start + size}&maxresults={size}"
            )
        return body

    def _properties(self, name: str, entry: _Version, *, with_version: bool) -> dict[str, Any]:
        identifier = f"{self._base()}/secrets/{name}"
        if with_version:
            identifier += f"/{entry.version}"
        properties: dict[str, Any] = {
            "id": identifier,
            "attributes": {
                "enabled": entry.enabled,
                "created": entry.created,
                "updated": entry.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": entry.tags,
        }
        if entry.content_type:
            properties["contentType"] = entry.content_type
        return properties

    def _base(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("WWW-Authenticate", _CHALLENGE)
        for header, value in (headers or {}).items():
            self.send_header(header, value)
        self.end_headers()
        self.wfile.write(payload)


def _error(code: str, message: str, *, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return {"error": error}


def _server_context(directory: Path) -> ssl.SSLContext:
    """A TLS context with a fresh server certificate, its CA written to `ca.pem`."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local key vault test CA")])
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(
        server_certificate.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return context
