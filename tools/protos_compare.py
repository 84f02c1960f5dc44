"""Whether committed generated code means what the .proto files say, whatever made it.

``python tools/protos.py check`` compares meaning, not bytes, so that a developer with another
grpcio-tools release gets no false alarm from version stamps in headers: a ``_pb2.py`` is
compared by the FileDescriptorProto it embeds, a ``.pyi`` by its classes, fields and
constructor arguments, a ``_pb2_grpc.py`` by its classes, methods, method paths and
(de)serializers. Generated code is read with :mod:`ast`, never imported.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable

from google.protobuf import descriptor_pb2, text_format

__all__ = ["GENERATED_SUFFIXES", "GRPC", "PB2", "PYI", "difference", "embedded_descriptor"]

PB2 = "_pb2.py"
PYI = "_pb2.pyi"
GRPC = "_pb2_grpc.py"
GENERATED_SUFFIXES = (PB2, PYI, GRPC)

_DIFF_LINES = 40


def embedded_descriptor(source: str) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto a generated ``_pb2.py`` registers, read without importing it."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            return descriptor_pb2.FileDescriptorProto.FromString(node.args[0].value)
    raise ValueError("no AddSerializedFile(b'...') call: not a protoc-generated _pb2 module")


def difference(name: str, actual: str, expected: str) -> str | None:
    """Why ``actual`` does not mean what ``expected`` means, or None when it does."""
    try:
        if name.endswith(PB2):
            return _text_difference(_descriptor_text(actual), _descriptor_text(expected))
        if name.endswith(PYI):
            return _text_difference(_pyi_outline(actual), _pyi_outline(expected))
        if name.endswith(GRPC):
            return _text_difference(_grpc_outline(actual), _grpc_outline(expected))
    except (SyntaxError, ValueError) as exc:
        return f"not readable as generated code ({exc})"
    return "content differs"


def _descriptor_text(source: str) -> str:
    descriptor = embedded_descriptor(source)
    descriptor.ClearField("source_code_info")
    _clear_json_names(descriptor.message_type)
    return text_format.MessageToString(descriptor)


def _clear_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for item in message.field:
            item.ClearField("json_name")
        _clear_json_names(message.nested_type)


def _pyi_outline(source: str) -> str:
    """Classes with their annotated names and constructor arguments, one per line."""
    lines: list[str] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                lines.append(f"{prefix}{node.target.id}: {ast.unparse(node.annotation)}")
            elif isinstance(node, ast.FunctionDef):
                arguments = [a.arg for a in node.args.args + node.args.kwonlyargs]
                lines.append(f"{prefix}{node.name}({', '.join(arguments)})")
            elif isinstance(node, ast.ClassDef):
                lines.append(f"class {prefix}{node.name}")
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(source).body, "")
    return "\n".join(lines)


def _grpc_outline(source: str) -> str:
    """Classes and functions, method paths and (de)serializers, one per line."""
    outline: list[str] = []
    details: set[str] = set()
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            methods = [n.name for n in node.body if isinstance(n, ast.FunctionDef)]
            outline.append(f"class {node.name}: {', '.join(methods)}")
        elif isinstance(node, ast.FunctionDef):
            outline.append(f"def {node.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("/") and node.value.count("/") == 2:
                details.add(f"path {node.value}")
        elif isinstance(node, ast.keyword) and node.arg and node.arg.endswith("serializer"):
            details.add(f"{node.arg} {ast.unparse(node.value)}")
    return "\n".join(outline + sorted(details))


def _text_difference(actual: str, expected: str) -> str | None:
    if actual == expected:
        return None
    diff = list(
        difflib.unified_diff(
            actual.splitlines(), expected.splitlines(), "committed", "from .proto", lineterm="", n=2
        )
    )
    shown = diff[:_DIFF_LINES]
    if len(diff) > _DIFF_LINES:
        shown.append(f"... {len(diff) - _DIFF_LINES} more lines")
    return "differs from its .proto file\n    " + "\n    ".join(shown)
