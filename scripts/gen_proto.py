"""Regenerate the Python code of the contracts, or check that the committed code is current.

    python scripts/gen_proto.py            # regenerate (what `make proto` runs)
    python scripts/gen_proto.py --check    # exit 1 listing every file that drifted

Each proto package directory `proto/mainmast/<service>/<version>/` becomes the Python package
`clients/src/mainmast/<service>/<version>/`: `*_pb2.py` and `*_pb2_grpc.py` from grpcio-tools,
`*.pyi` stubs from mypy-protobuf, and an `__init__.py`. That directory is generated as a whole:
it is deleted and written again from a clean slate, so a removed .proto file leaves nothing
behind. The parent package (`mainmast/<service>/__init__.py`, hand-written) is never touched.
Generated imports are never rewritten: the proto import path is the Python import path.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROTO_ROOT = REPO_ROOT / "proto"
DEFAULT_PACKAGE_ROOT = REPO_ROOT / "clients" / "src"
# Generated packages live under this top-level package, both in proto/ and in the SDK.
TOP_LEVEL_PACKAGE = "mainmast"
PLUGINS = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")
# Byte-compiled files appear next to the generated code whenever it is imported; git ignores
# them, and so does the drift check.
IGNORED_DIRECTORY_NAMES = frozenset({"__pycache__"})
IGNORED_SUFFIXES = frozenset({".pyc"})


class GenerationError(Exception):
    """protoc or one of its plugins failed, or a tool it needs is missing."""


@dataclass(frozen=True)
class Drift:
    """How a generated tree differs from the committed one (paths relative to the package root)."""

    changed: tuple[Path, ...]
    missing: tuple[Path, ...]
    extra: tuple[Path, ...]

    def __bool__(self) -> bool:
        """True when anything differs."""
        return bool(self.changed or self.missing or self.extra)


def proto_packages(proto_root: Path) -> list[Path]:
    """The directories (relative to `proto_root`) that hold .proto files, sorted."""
    directories = {
        path.parent.relative_to(proto_root)
        for path in (proto_root / TOP_LEVEL_PACKAGE).rglob("*.proto")
    }
    return sorted(directories)


def generated_packages(package_root: Path) -> list[Path]:
    """The directories (relative to `package_root`) that hold generated `*_pb2.py` modules."""
    top = package_root / TOP_LEVEL_PACKAGE
    if not top.is_dir():
        return []
    return sorted({path.parent.relative_to(package_root) for path in top.rglob("*_pb2.py")})


def _well_known_types_include() -> Path:
    """grpcio-tools' bundled google/protobuf/*.proto, so imports of well-known types resolve."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        raise GenerationError("grpcio-tools is not installed (it is a dev dependency: uv sync)")
    return Path(spec.origin).parent / "_proto"


def _plugin_path(name: str) -> Path:
    """Where a protoc plugin is: next to this interpreter (a virtualenv) first, then PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise GenerationError(f"{name} not found (mypy-protobuf is a dev dependency: uv sync)")
    return Path(found)


def _protoc(proto_root: Path, options: list[str], proto_files: list[Path]) -> None:
    """Run grpcio-tools' protoc once with `options` over `proto_files`.

    Only proto/ and the well-known types are on the include path: errors travel as
    google.rpc.Status in gRPC status details, so no contract imports googleapis' protos.
    """
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={proto_root}",
        f"--proto_path={_well_known_types_include()}",
        *options,
        *(str(path) for path in proto_files),
    ]
    # The command is built here from fixed options and paths found on disk; no shell.
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise GenerationError(f"protoc failed (exit {result.returncode}):\n{result.stderr}")


def _files_with_services(proto_root: Path, proto_files: list[Path], scratch: Path) -> list[Path]:
    """The files among `proto_files` that declare a service, read from protoc's descriptor set."""
    descriptor_set_path = scratch / "descriptors.binpb"
    _protoc(proto_root, [f"--descriptor_set_out={descriptor_set_path}"], proto_files)
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set_path.read_bytes())
    with_services = {file.name for file in descriptor_set.file if file.service}
    return [
        path for path in proto_files if path.relative_to(proto_root).as_posix() in with_services
    ]


def _run_protoc(proto_root: Path, output_root: Path) -> None:
    """Compile the .proto files under `proto_root` into `output_root`.

    Messages and their stubs come from every file; gRPC modules only from the files that declare
    a service, since grpcio-tools would otherwise write an empty `_pb2_grpc.py` for each of the
    others.
    """
    proto_files = sorted((proto_root / TOP_LEVEL_PACKAGE).rglob("*.proto"))
    if not proto_files:
        raise GenerationError(f"no .proto files under {proto_root / TOP_LEVEL_PACKAGE}")
    plugins = [f"--plugin={name}={_plugin_path(name)}" for name in PLUGINS]
    _protoc(
        proto_root,
        [*plugins, f"--python_out={output_root}", f"--mypy_out={output_root}"],
        proto_files,
    )
    with tempfile.TemporaryDirectory(prefix="gen_proto-descriptors-") as scratch:
        service_files = _files_with_services(proto_root, proto_files, Path(scratch))
    if service_files:
        grpc_outputs = [f"--grpc_python_out={output_root}", f"--mypy_grpc_out={output_root}"]
        _protoc(proto_root, [*plugins, *grpc_outputs], service_files)


def _init_module_text(package: Path) -> str:
    return (
        f'"""Generated from proto/{package.as_posix()} by scripts/gen_proto.py; do not edit."""\n'
    )


def generate(proto_root: Path, output_root: Path) -> list[Path]:
    """Generate every proto package under `proto_root` into the empty directory `output_root`.

    Returns the generated package directories, relative to `output_root`.
    """
    packages = proto_packages(proto_root)
    _run_protoc(proto_root, output_root)
    for package in packages:
        (output_root / package / "__init__.py").write_text(_init_module_text(package))
    return packages


def _tracked_files(root: Path) -> set[Path]:
    """Every file under `root`, relative to it, byte-compiled files left out."""
    if not root.is_dir():
        return set()
    return {
        path.relative_to(root)
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix not in IGNORED_SUFFIXES
        and IGNORED_DIRECTORY_NAMES.isdisjoint(path.relative_to(root).parts)
    }


def compare(expected_root: Path, actual_root: Path, packages: list[Path]) -> Drift:
    """Compare the `packages` directories of a fresh generation with the committed ones."""
    changed: list[Path] = []
    missing: list[Path] = []
    extra: list[Path] = []
    for package in packages:
        expected = _tracked_files(expected_root / package)
        actual = _tracked_files(actual_root / package)
        missing.extend(package / name for name in expected - actual)
        extra.extend(package / name for name in actual - expected)
        changed.extend(
            package / name
            for name in expected & actual
            if (expected_root / package / name).read_bytes()
            != (actual_root / package / name).read_bytes()
        )
    return Drift(tuple(sorted(changed)), tuple(sorted(missing)), tuple(sorted(extra)))


def install(generated_root: Path, package_root: Path, packages: list[Path]) -> None:
    """Replace each package directory under `package_root` with its freshly generated one.

    A package that no longer has .proto files (it is missing from `generated_root`) is removed.
    """
    for package in packages:
        target = package_root / package
        if target.exists():
            shutil.rmtree(target)
        source = generated_root / package
        if source.is_dir():
            shutil.copytree(source, target)


def _display(path: Path) -> str:
    """A path relative to the repository when it is inside it, for messages."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _report(drift: Drift, package_root: Path) -> str:
    lines = ["generated code differs from proto/; run `make proto` and commit the result:"]
    for label, paths in (
        ("changed", drift.changed),
        ("missing", drift.missing),
        ("extra", drift.extra),
    ):
        lines.extend(f"  {label}: {_display(package_root / path)}" for path in paths)
    return "\n".join(lines)


def run(*, proto_root: Path, package_root: Path, check: bool) -> int:
    """Regenerate into `package_root`, or with `check` only compare; returns the exit code."""
    with tempfile.TemporaryDirectory(prefix="gen_proto-") as scratch:
        generated_root = Path(scratch)
        generated = generate(proto_root, generated_root)
        # Directories generated earlier from packages that no longer exist count too.
        packages = sorted(set(generated) | set(generated_packages(package_root)))
        if check:
            drift = compare(generated_root, package_root, packages)
            if drift:
                print(_report(drift, package_root), file=sys.stderr)
                return 1
            print(f"generated code is up to date ({len(generated)} packages)")
            return 0
        install(generated_root, package_root, packages)
    for package in generated:
        print(f"generated {_display(package_root / package)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into a scratch directory and fail if the committed code differs",
    )
    parser.add_argument(
        "--proto-root", type=Path, default=DEFAULT_PROTO_ROOT, help="where the .proto files are"
    )
    parser.add_argument(
        "--package-root",
        type=Path,
        default=DEFAULT_PACKAGE_ROOT,
        help="where the Python packages are",
    )
    arguments = parser.parse_args(argv)
    try:
        return run(
            proto_root=arguments.proto_root.resolve(),
            package_root=arguments.package_root.resolve(),
            check=arguments.check,
        )
    except GenerationError as error:
        print(f"gen_proto: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
