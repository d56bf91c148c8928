"""The v1 contracts: generated code is current and importable, the services offer what the
service issues need, error reasons are wire-ready, and buf's lint and breaking checks run."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from mainmast.llm.v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
GEN_PROTO = REPO_ROOT / "scripts" / "gen_proto.py"
BUF_BREAKING = REPO_ROOT / "scripts" / "buf_breaking.sh"
BUF = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "buf"
GENERATED_ROOT = REPO_ROOT / "clients" / "src"
UPPER_SNAKE_CASE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")


@dataclass(frozen=True)
class ServiceContract:
    """What one service's contract must offer, from its issue."""

    package: str  # the proto package, which is also the Python package of the generated code
    service: str
    module: str
    unary_methods: frozenset[str]
    server_streaming_methods: frozenset[str]
    error_reasons: frozenset[str]

    @property
    def full_name(self) -> str:
        """The service's fully qualified protobuf name."""
        return f"{self.package}.{self.service}"


CONTRACTS = (
    ServiceContract(
        package="mainmast.auth.v1",
        service="AuthService",
        module="auth_service_pb2",
        unary_methods=frozenset(
            {
                # tokens and keys
                "IssueToken",
                "RevokeTokens",
                "IntrospectToken",
                "GetJwks",
                "RotateSigningKey",
                # authorization
                "Check",
                "BatchCheck",
                # administration
                "GetTenant",
                "ListTenants",
                "CreateTenant",
                "DisableTenant",
                "GetUser",
                "ListUsers",
                "CreateUser",
                "DisableUser",
                "SetUserPassword",
                "GetServiceAccount",
                "ListServiceAccounts",
                "CreateServiceAccount",
                "DisableServiceAccount",
                "AssignRole",
                "UnassignRole",
                "ListRoleAssignments",
                "GrantRolePermission",
                "RevokeRolePermission",
                "ListRolePermissions",
            }
        ),
        server_streaming_methods=frozenset(),
        error_reasons=frozenset(
            {
                "CREDENTIALS_MISSING",
                "INVALID_CREDENTIALS",
                "TOKEN_MALFORMED",
                "TOKEN_TOO_LARGE",
                "TOKEN_ALGORITHM_NOT_ALLOWED",
                "TOKEN_KEY_UNKNOWN",
                "TOKEN_CRITICAL_HEADER_UNSUPPORTED",
                "TOKEN_SIGNATURE_INVALID",
                "TOKEN_CLAIM_MISSING",
                "TOKEN_EXPIRED",
                "TOKEN_NOT_YET_VALID",
                "TOKEN_ISSUER_MISMATCH",
                "TOKEN_AUDIENCE_MISMATCH",
                "TOKEN_TYPE_MISMATCH",
                "TOKEN_REVOKED",
                "REFRESH_TOKEN_REUSED",
                "USER_DISABLED",
                "SERVICE_ACCOUNT_DISABLED",
                "TENANT_DISABLED",
                "LOGIN_THROTTLED",
                "PERMISSION_MISSING",
                "TENANT_ACCESS_DENIED",
                "PASSWORD_POLICY_VIOLATION",
                "INVALID_PERMISSION",
            }
        ),
    ),
    ServiceContract(
        package="mainmast.config.v1",
        service="ConfigService",
        module="config_service_pb2",
        unary_methods=frozenset(
            {"GetSecret", "BatchGetSecrets", "ListSecrets", "GetSetting", "BatchGetSettings"}
        ),
        server_streaming_methods=frozenset({"WatchSecrets"}),
        error_reasons=frozenset(
            {
                "CREDENTIALS_MISSING",
                "SECRET_ACCESS_DENIED",
                "SECRET_NOT_FOUND",
                "SECRET_VERSION_NOT_FOUND",
                "SETTING_NOT_FOUND",
                "SETTING_TYPE_MISMATCH",
                "BACKEND_UNAVAILABLE",
                "BACKEND_THROTTLED",
            }
        ),
    ),
    ServiceContract(
        package="mainmast.llm.v1",
        service="LlmService",
        module="llm_service_pb2",
        unary_methods=frozenset({"Complete", "ListModels", "GetUsage"}),
        server_streaming_methods=frozenset({"StreamComplete"}),
        error_reasons=frozenset(
            {
                "CREDENTIALS_MISSING",
                "PERMISSION_MISSING",
                "MODEL_NOT_FOUND",
                "PROVIDER_REJECTED_REQUEST",
                "PROVIDER_UNAVAILABLE",
                "PROVIDER_RATE_LIMITED",
                "PROVIDER_TIMEOUT",
                "CIRCUIT_OPEN",
                "STREAM_INTERRUPTED",
                "REQUESTS_PER_MINUTE_EXCEEDED",
                "TOKENS_PER_MINUTE_EXCEEDED",
                "BUDGET_EXHAUSTED",
            }
        ),
    ),
)
CONTRACT_PARAMS = [pytest.param(contract, id=contract.service) for contract in CONTRACTS]
# Methods that change state take an optional request_id that makes them idempotent.
MUTATION_PREFIXES = ("Create", "Disable", "Set", "Assign", "Unassign", "Grant", "Revoke", "Rotate")


def _generated_module_names() -> list[str]:
    modules = sorted(GENERATED_ROOT.glob("mainmast/*/v*/*.py"))
    return [
        ".".join(path.relative_to(GENERATED_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in modules
    ]


def _service_module(contract: ServiceContract) -> ModuleType:
    return importlib.import_module(f"{contract.package}.{contract.module}")


def _service_descriptor(contract: ServiceContract) -> ServiceDescriptor:
    file_descriptor: FileDescriptor = _service_module(contract).DESCRIPTOR
    return file_descriptor.services_by_name[contract.service]


def _gen_proto(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN_PROTO), *arguments],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )


def _require_buf() -> Path:
    """The buf executable `make lint` installs; a missing one fails under CI, skips locally."""
    if BUF.is_file():
        return BUF
    reason = f"buf is not installed at {BUF.relative_to(REPO_ROOT)} (make lint installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


# ---------------------------------------------------------------- generated code


def test_committed_generated_code_matches_the_protos() -> None:
    result = _gen_proto("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generation_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        result = _gen_proto("--package-root", str(root))
        assert result.returncode == 0, result.stderr
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert [
        path for path in files if (first / path).read_bytes() != (second / path).read_bytes()
    ] == []


def test_drift_check_lists_every_changed_missing_and_extra_file(tmp_path: Path) -> None:
    assert _gen_proto("--package-root", str(tmp_path)).returncode == 0
    package = tmp_path / "mainmast" / "auth" / "v1"
    with (package / "resources_pb2.py").open("a") as changed:
        changed.write("# edited by hand\n")
    (package / "error_reason_pb2.pyi").unlink()
    (package / "leftover_pb2.py").write_text("")
    # Byte-compiled files are not part of the committed tree, so they never count as drift.
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "resources_pb2.cpython-311.pyc").write_bytes(b"\0")

    result = _gen_proto("--check", "--package-root", str(tmp_path))

    assert result.returncode == 1
    assert f"changed: {package / 'resources_pb2.py'}" in result.stderr
    assert f"missing: {package / 'error_reason_pb2.pyi'}" in result.stderr
    assert f"extra: {package / 'leftover_pb2.py'}" in result.stderr
    assert "__pycache__" not in result.stderr


def test_drift_check_flags_generated_packages_whose_protos_are_gone(tmp_path: Path) -> None:
    assert _gen_proto("--package-root", str(tmp_path)).returncode == 0
    orphan = tmp_path / "mainmast" / "retired" / "v1"
    orphan.mkdir(parents=True)
    (orphan / "thing_pb2.py").write_text("")

    result = _gen_proto("--check", "--package-root", str(tmp_path))

    assert result.returncode == 1
    assert f"extra: {orphan / 'thing_pb2.py'}" in result.stderr


def test_generation_starts_from_a_clean_slate_and_spares_the_handwritten_parent(
    tmp_path: Path,
) -> None:
    service_package = tmp_path / "mainmast" / "auth"
    (service_package / "v1").mkdir(parents=True)
    handwritten = service_package / "__init__.py"
    handwritten.write_text('"""The typed client lives here."""\n')
    stale = service_package / "v1" / "removed_service_pb2.py"
    stale.write_text("")

    result = _gen_proto("--package-root", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert (service_package / "v1" / "auth_service_pb2.py").is_file()
    assert handwritten.read_text() == '"""The typed client lives here."""\n'


@pytest.mark.parametrize("module_name", _generated_module_names())
def test_generated_module_imports(module_name: str) -> None:
    assert importlib.import_module(module_name).__name__ == module_name


def test_every_service_package_was_generated() -> None:
    generated = set(_generated_module_names())
    for contract in CONTRACTS:
        assert f"{contract.package}.{contract.module}" in generated
        assert f"{contract.package}.{contract.module}_grpc" in generated


# ---------------------------------------------------------------- services


@pytest.mark.parametrize("contract", CONTRACT_PARAMS)
def test_service_offers_the_methods_its_issue_needs(contract: ServiceContract) -> None:
    methods = _service_descriptor(contract).methods_by_name
    expected = contract.unary_methods | contract.server_streaming_methods
    assert sorted(expected - set(methods)) == []
    for name in expected:
        method = methods[name]
        assert not method.client_streaming, name
        assert method.server_streaming == (name in contract.server_streaming_methods), name


@pytest.mark.parametrize("contract", CONTRACT_PARAMS)
def test_service_descriptor_is_in_the_default_pool(contract: ServiceContract) -> None:
    generated = _service_descriptor(contract)
    pooled = descriptor_pool.Default().FindServiceByName(contract.full_name)
    assert pooled.full_name == contract.full_name
    assert pooled.file.name == generated.file.name
    assert [method.name for method in pooled.methods] == [
        method.name for method in generated.methods
    ]


@pytest.mark.parametrize("contract", CONTRACT_PARAMS)
def test_servicer_and_stub_are_generated_for_every_method(contract: ServiceContract) -> None:
    grpc_module = importlib.import_module(f"{contract.package}.{contract.module}_grpc")
    servicer = getattr(grpc_module, f"{contract.service}Servicer")
    assert hasattr(grpc_module, f"{contract.service}Stub")
    for method in _service_descriptor(contract).methods:
        assert callable(getattr(servicer, method.name)), method.name


@pytest.mark.parametrize("contract", CONTRACT_PARAMS)
def test_list_methods_paginate_per_aip_158(contract: ServiceContract) -> None:
    for method in _service_descriptor(contract).methods:
        if not method.name.startswith("List"):
            continue
        request, response = method.input_type.fields_by_name, method.output_type.fields_by_name
        assert request["page_size"].type == request["page_size"].TYPE_INT32, method.name
        assert "page_token" in request, method.name
        assert "next_page_token" in response, method.name


@pytest.mark.parametrize("contract", CONTRACT_PARAMS)
def test_mutations_take_a_request_id(contract: ServiceContract) -> None:
    mutations = [
        method
        for method in _service_descriptor(contract).methods
        if method.name.startswith(MUTATION_PREFIXES)
    ]
    for method in mutations:
        assert "request_id" in method.input_type.fields_by_name, method.name


@pytest.mark.parametrize("contract", CONTRACT_PARAMS)
def test_contracts_import_only_their_own_package_and_well_known_types(
    contract: ServiceContract,
) -> None:
    own_prefix = contract.package.replace(".", "/") + "/"
    file_descriptor: FileDescriptor = _service_module(contract).DESCRIPTOR
    files = [file_descriptor, *file_descriptor.dependencies]
    for file in files:
        for dependency in file.dependencies:
            assert dependency.name.startswith((own_prefix, "google/protobuf/")), dependency.name


class _EchoLlmServicer(llm_service_pb2_grpc.LlmServiceServicer):
    """Answers from the request itself, so the test sees what crossed the wire."""

    async def Complete(  # noqa: N802 - the generated servicer's method name
        self,
        request: llm_service_pb2.CompleteRequest,
        context: grpc.aio.ServicerContext[
            llm_service_pb2.CompleteRequest, llm_service_pb2.CompleteResponse
        ],
    ) -> llm_service_pb2.CompleteResponse:
        text = request.input.messages[-1].content
        return llm_service_pb2.CompleteResponse(
            completion=resources_pb2.Completion(text=text, model_alias=request.input.model)
        )

    async def ListModels(  # noqa: N802 - the generated servicer's method name
        self,
        request: llm_service_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[
            llm_service_pb2.ListModelsRequest, llm_service_pb2.ListModelsResponse
        ],
    ) -> llm_service_pb2.ListModelsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this test")

    async def GetUsage(  # noqa: N802 - the generated servicer's method name
        self,
        request: llm_service_pb2.GetUsageRequest,
        context: grpc.aio.ServicerContext[
            llm_service_pb2.GetUsageRequest, llm_service_pb2.GetUsageResponse
        ],
    ) -> llm_service_pb2.GetUsageResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this test")

    async def StreamComplete(  # noqa: N802 - the generated servicer's method name
        self,
        request: llm_service_pb2.StreamCompleteRequest,
        context: grpc.aio.ServicerContext[
            llm_service_pb2.StreamCompleteRequest, llm_service_pb2.StreamCompleteResponse
        ],
    ) -> AsyncIterator[llm_service_pb2.StreamCompleteResponse]:
        words = request.input.messages[-1].content.split(" ")
        for word in words:
            yield llm_service_pb2.StreamCompleteResponse(
                delta=resources_pb2.CompletionDelta(text=word)
            )
        yield llm_service_pb2.StreamCompleteResponse(
            completion=resources_pb2.Completion(text="".join(words))
        )


async def test_generated_stub_and_servicer_talk_over_a_real_aio_server() -> None:
    server = grpc.aio.server()
    llm_service_pb2_grpc.add_LlmServiceServicer_to_server(_EchoLlmServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = llm_service_pb2_grpc.LlmServiceStub(channel)
            completion_input = resources_pb2.CompletionInput(
                model="gpt-4",
                fallback_models=["llama2"],
                messages=[
                    resources_pb2.Message(
                        role=resources_pb2.ROLE_USER, content="Summarize this document"
                    )
                ],
                temperature=0.0,
            )
            unary = await stub.Complete(llm_service_pb2.CompleteRequest(input=completion_input))
            events = [
                event
                async for event in stub.StreamComplete(
                    llm_service_pb2.StreamCompleteRequest(input=completion_input)
                )
            ]
    finally:
        await server.stop(grace=None)

    assert unary.completion.text == "Summarize this document"
    assert unary.completion.model_alias == "gpt-4"
    assert [event.WhichOneof("event") for event in events] == ["delta"] * 3 + ["completion"]
    assert [event.delta.text for event in events[:-1]] == ["Summarize", "this", "document"]
    assert events[-1].completion.text == "Summarizethisdocument"


def test_optional_sampling_fields_tell_unset_from_zero() -> None:
    unset = resources_pb2.CompletionInput(model="gpt-4")
    zero = resources_pb2.CompletionInput(model="gpt-4", temperature=0.0, max_tokens=0)
    assert not unset.HasField("temperature")
    assert not unset.HasField("max_tokens")
    assert zero.HasField("temperature")
    assert zero.HasField("max_tokens")


# ---------------------------------------------------------------- error reasons


@pytest.mark.parametrize("contract", CONTRACT_PARAMS)
def test_error_reasons_are_wire_ready(contract: ServiceContract) -> None:
    module = importlib.import_module(f"{contract.package}.error_reason_pb2")
    enum = module.DESCRIPTOR.enum_types_by_name["ErrorReason"]
    names = [value.name for value in enum.values]
    numbers = [value.number for value in enum.values]

    assert enum.values[0].name == "ERROR_REASON_UNSPECIFIED"
    assert enum.values[0].number == 0
    assert [name for name in names if not UPPER_SNAKE_CASE.fullmatch(name)] == []
    assert len(set(names)) == len(names)
    assert len(set(numbers)) == len(numbers)
    assert sorted(contract.error_reasons - set(names)) == []


# ---------------------------------------------------------------- buf


def test_buf_lint_passes() -> None:
    buf = _require_buf()
    result = subprocess.run(
        [str(buf), "lint"], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _scratch_repository(tmp_path: Path) -> Path:
    """A folder laid out like this repository: buf.yaml, proto/ and the script."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "proto" / "demo" / "v1").mkdir(parents=True)
    shutil.copy2(BUF_BREAKING, root / "scripts" / BUF_BREAKING.name)
    (root / "buf.yaml").write_text(
        "version: v2\nmodules:\n  - path: proto\nbreaking:\n  use:\n    - FILE\n"
    )
    (root / "proto" / "demo" / "v1" / "thing.proto").write_text(
        'syntax = "proto3";\n\npackage demo.v1;\n\n'
        "message Thing {\n  string name = 1;\n  int32 size = 2;\n}\n"
    )
    return root


def _isolated_git_environment(tmp_path: Path) -> dict[str, str]:
    """No user or system git configuration, and no repository above `tmp_path`."""
    return {
        **os.environ,
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "mainmast tests",
        "GIT_AUTHOR_EMAIL": "tests@mainmast.invalid",
        "GIT_COMMITTER_NAME": "mainmast tests",
        "GIT_COMMITTER_EMAIL": "tests@mainmast.invalid",
    }


def _git(root: Path, env: dict[str, str], *arguments: str) -> None:
    subprocess.run(["git", *arguments], cwd=root, env=env, check=True, capture_output=True)


def _commit_all_on_main(root: Path, env: dict[str, str]) -> None:
    _git(root, env, "init", "--quiet", "--initial-branch=main")
    _git(root, env, "add", "--all")
    _git(root, env, "commit", "--quiet", "--message=contracts")


def _buf_breaking(root: Path, buf: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "scripts" / BUF_BREAKING.name), str(buf)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        # From outside the repository: the script must not depend on the caller's folder.
        cwd=root.parent,
    )


def test_buf_breaking_skips_outside_a_git_repository(tmp_path: Path) -> None:
    root = _scratch_repository(tmp_path)
    # buf must not even be started: a path to nothing proves it.
    result = _buf_breaking(root, tmp_path / "no-buf-here", _isolated_git_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "not inside a git repository" in result.stdout


def test_buf_breaking_skips_while_main_has_no_protos(tmp_path: Path) -> None:
    root = _scratch_repository(tmp_path)
    env = _isolated_git_environment(tmp_path)
    protos = root / "proto"
    shutil.move(protos, tmp_path / "proto-not-yet-committed")
    _commit_all_on_main(root, env)
    shutil.move(tmp_path / "proto-not-yet-committed", protos)

    result = _buf_breaking(root, tmp_path / "no-buf-here", env)

    assert result.returncode == 0, result.stderr
    assert "main has no .proto files yet" in result.stdout


def test_buf_breaking_accepts_a_compatible_change(tmp_path: Path) -> None:
    buf = _require_buf()
    root = _scratch_repository(tmp_path)
    env = _isolated_git_environment(tmp_path)
    _commit_all_on_main(root, env)
    thing = root / "proto" / "demo" / "v1" / "thing.proto"
    thing.write_text(thing.read_text().replace("}\n", "  string colour = 3;\n}\n"))

    result = _buf_breaking(root, buf, env)

    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_fails_on_a_deleted_field(tmp_path: Path) -> None:
    buf = _require_buf()
    root = _scratch_repository(tmp_path)
    env = _isolated_git_environment(tmp_path)
    _commit_all_on_main(root, env)
    thing = root / "proto" / "demo" / "v1" / "thing.proto"
    thing.write_text(thing.read_text().replace("  int32 size = 2;\n", ""))

    result = _buf_breaking(root, buf, env)

    assert result.returncode != 0
    assert 'field "2" with name "size"' in result.stdout + result.stderr
