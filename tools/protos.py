#!/usr/bin/env python3
"""Generate the Python code of the public API from ``proto/``, and check that it is current.

The generated modules are committed, so that ``pip install`` needs no protoc; this tool is the
only writer of them. ``generate`` rewrites the whole tree (and removes what a deleted .proto
left behind); ``check`` fails, naming each file, when the committed code does not say what the
.proto files say.

``check`` compares meaning, not bytes (``protos_compare.py``, beside this file, says how), so
that another grpcio-tools release gives no false alarm; a file identical to the fresh output
is accepted without looking further.

The functions are importable (the tests load this file by path); ``main`` is the command line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Literal

from google.protobuf import descriptor_pb2

# The comparison sits beside this file; the tests load this file by path, without its folder
# on sys.path, so it puts the folder there itself.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from protos_compare import GENERATED_SUFFIXES, GRPC, PB2, difference, embedded_descriptor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROTO_DIR = ROOT / "proto"
DEFAULT_OUT_DIR = ROOT / "src"

INIT = "__init__.py"

# Exit codes of the command line.
EXIT_OK = 0
EXIT_STALE = 1
EXIT_ERROR = 2


class ProtosError(Exception):
    """The .proto files cannot be compiled, or the directories are unusable."""


@dataclass(frozen=True)
class Problem:
    """One generated file that does not match the .proto files."""

    path: Path
    kind: Literal["missing", "stale", "extra"]
    detail: str = ""

    def __str__(self) -> str:
        text = f"{_display(self.path)}: {self.kind}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class Changes:
    """What ``generate`` did to the output tree."""

    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def well_known_include() -> Path:
    """The ``google/protobuf/*.proto`` files bundled with grpcio-tools."""
    return Path(str(resources.files("grpc_tools") / "_proto"))


def find_protos(proto_dir: Path) -> list[PurePosixPath]:
    """Every .proto file under ``proto_dir``, relative to it, in a stable order."""
    if not proto_dir.is_dir():
        raise ProtosError(f"{_display(proto_dir)}: not a directory")
    protos = sorted(
        PurePosixPath(p.relative_to(proto_dir).as_posix()) for p in proto_dir.rglob("*.proto")
    )
    if not protos:
        raise ProtosError(f"{_display(proto_dir)}: no .proto files found")
    return protos


def run_protoc(proto_dir: Path, protos: Iterable[PurePosixPath], options: Sequence[str]) -> None:
    """Run the protoc bundled with grpcio-tools; raise :class:`ProtosError` with its message."""
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={proto_dir}",
        f"--proto_path={well_known_include()}",
        *options,
        *(str(p) for p in protos),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise ProtosError(f"protoc failed:\n{message}")


def descriptor_set(
    proto_dir: Path = DEFAULT_PROTO_DIR,
    *,
    include_source_info: bool = False,
    include_imports: bool = False,
) -> descriptor_pb2.FileDescriptorSet:
    """Compile the .proto files into a FileDescriptorSet (with comments if asked)."""
    protos = find_protos(proto_dir)
    with tempfile.TemporaryDirectory(prefix="smartcity-protos-") as tmp:
        out = Path(tmp) / "descriptors.pb"
        options = [f"--descriptor_set_out={out}"]
        if include_source_info:
            options.append("--include_source_info")
        if include_imports:
            options.append("--include_imports")
        run_protoc(proto_dir, protos, options)
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def render(proto_dir: Path = DEFAULT_PROTO_DIR) -> dict[PurePosixPath, bytes]:
    """The complete generated tree, as ``{path relative to the output root: content}``.

    Besides protoc's output this holds an ``__init__.py`` for every package below the root
    package (the root, ``smartcity``, is hand-written), and leaves out the ``_pb2_grpc.py`` of
    files that declare no service: protoc writes one anyway, holding nothing but imports.
    """
    protos = find_protos(proto_dir)
    with tempfile.TemporaryDirectory(prefix="smartcity-protos-") as tmp:
        out = Path(tmp)
        run_protoc(
            proto_dir,
            protos,
            [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"],
        )
        tree = {
            PurePosixPath(p.relative_to(out).as_posix()): p.read_bytes()
            for p in sorted(out.rglob("*"))
            if p.is_file()
        }
    for path in [p for p in tree if p.name.endswith(GRPC)]:
        pb2 = path.with_name(path.name.removesuffix(GRPC) + PB2)
        if not embedded_descriptor(tree[pb2].decode()).service:
            del tree[path]
    for package in sorted({parent for p in list(tree) for parent in _packages(p)}):
        tree[package / INIT] = init_text(package).encode()
    return tree


def init_text(package: PurePosixPath) -> str:
    """The ``__init__.py`` of a generated package: says where the code comes from."""
    dotted = ".".join(package.parts)
    return (
        f'"""Generated code of the ``{dotted}`` API; do not edit.\n'
        "\n"
        f"Source: ``proto/{package}/``. Change the .proto files there and run\n"
        "``python tools/protos.py generate``.\n"
        '"""\n'
    )


def generate(proto_dir: Path = DEFAULT_PROTO_DIR, out_dir: Path = DEFAULT_OUT_DIR) -> Changes:
    """Bring ``out_dir`` in line with ``proto_dir``: write what changed, remove what is stale."""
    expected = render(proto_dir)
    changes = Changes()
    for rel, content in sorted(expected.items()):
        target = out_dir / rel
        if target.is_file() and target.read_bytes() == content:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        changes.written.append(target)
    for rel in sorted(_generated_files(out_dir, expected)):
        if rel not in expected:
            (out_dir / rel).unlink()
            changes.removed.append(out_dir / rel)
    for directory in sorted({p.parent for p in changes.removed}, key=lambda p: -len(p.parts)):
        _remove_if_empty(directory, stop=out_dir)
    return changes


def check(proto_dir: Path = DEFAULT_PROTO_DIR, out_dir: Path = DEFAULT_OUT_DIR) -> list[Problem]:
    """Every generated file under ``out_dir`` that is missing, stale or left over."""
    expected = render(proto_dir)
    problems: list[Problem] = []
    for rel, content in sorted(expected.items()):
        target = out_dir / rel
        if not target.is_file():
            problems.append(Problem(target, "missing"))
            continue
        actual = target.read_bytes()
        if actual == content:
            continue
        reason = difference(rel.name, actual.decode(errors="replace"), content.decode())
        if reason is not None:
            problems.append(Problem(target, "stale", reason))
    for rel in sorted(_generated_files(out_dir, expected)):
        if rel not in expected:
            problems.append(
                Problem(out_dir / rel, "extra", "no .proto file generates it; run generate")
            )
    return problems


def _packages(path: PurePosixPath) -> list[PurePosixPath]:
    """Package directories of a generated file, below the root package."""
    parents = list(path.parents)[:-1]  # drop "."
    return [p for p in parents if len(p.parts) > 1]


def _generated_files(out_dir: Path, expected: dict[PurePosixPath, bytes]) -> set[PurePosixPath]:
    """Files under the generated root packages that this tool wrote (now or in the past)."""
    found: set[PurePosixPath] = set()
    roots = {rel.parts[0] for rel in expected}
    for root in sorted(roots):
        base = out_dir / root
        if not base.is_dir():
            continue
        for path in base.rglob("*.py*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            rel = PurePosixPath(path.relative_to(out_dir).as_posix())
            if path.name.endswith(GENERATED_SUFFIXES):
                found.add(rel)
            elif path.name == INIT and len(rel.parts) > 2:
                text = path.read_text(encoding="utf-8", errors="replace")
                if text == init_text(rel.parent):
                    found.add(rel)
    return found


def _remove_if_empty(directory: Path, stop: Path) -> None:
    """Remove a package directory left with nothing but bytecode caches, and its empty parents
    up to (not including) ``stop``."""
    while directory != stop and stop in directory.parents and directory.is_dir():
        entries = [p for p in directory.iterdir() if p.name != "__pycache__"]
        if entries:
            return
        cache = directory / "__pycache__"
        if cache.is_dir():
            for item in cache.iterdir():
                item.unlink()
            cache.rmdir()
        directory.rmdir()
        directory = directory.parent


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tools/protos.py",
        description=(
            "Generate the Python gRPC/protobuf code of the smartcity API from the .proto files, "
            "or check that the committed generated code is current."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "generate": "rewrite the generated code from the .proto files and remove stale files",
        "check": (
            "exit with status 1, naming each file, if the generated code is missing, stale "
            "or left over from a deleted .proto file"
        ),
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "--proto-dir",
            type=Path,
            default=DEFAULT_PROTO_DIR,
            help="root of the .proto files (default: the repository's proto/)",
        )
        command.add_argument(
            "--out-dir",
            type=Path,
            default=DEFAULT_OUT_DIR,
            help="root the Python packages are generated into (default: the repository's src/)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "generate":
            changes = generate(arguments.proto_dir, arguments.out_dir)
            for path in changes.written:
                print(f"wrote {_display(path)}")
            for path in changes.removed:
                print(f"removed {_display(path)}")
            if not changes.written and not changes.removed:
                print("generated code is already up to date")
            return EXIT_OK
        problems = check(arguments.proto_dir, arguments.out_dir)
    except ProtosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if problems:
        print(
            f"generated code does not match the .proto files ({len(problems)} file(s)):",
            file=sys.stderr,
        )
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print("run: python tools/protos.py generate", file=sys.stderr)
        return EXIT_STALE
    print("generated code matches the .proto files")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
