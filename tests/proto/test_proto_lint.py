"""The API's conventions, checked on the compiled descriptors (see proto/README.md).

The .proto files are what other city applications read, so the rules are enforced rather than
hoped for: naming (AIP / buf style), one request and response per call, the shared paging
messages, Timestamp and Duration for time, and a comment on every element.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2

API = ("common", "telemetry", "identity", "records", "monitoring", "alerts")
PAGE_REQUEST = ".smartcity.common.v1.PageRequest"
PAGE_RESPONSE = ".smartcity.common.v1.PageResponse"
TIMESTAMP = ".google.protobuf.Timestamp"
DURATION = ".google.protobuf.Duration"

FieldProto = descriptor_pb2.FieldDescriptorProto
MessageProto = descriptor_pb2.DescriptorProto
EnumProto = descriptor_pb2.EnumDescriptorProto

# Field numbers inside descriptor.proto, used to address elements in SourceCodeInfo.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def _messages(messages: list[MessageProto], prefix: str) -> Iterator[tuple[str, MessageProto]]:
    for message in messages:
        if message.options.map_entry:
            continue
        name = f"{prefix}.{message.name}"
        yield name, message
        yield from _messages(list(message.nested_type), name)


def _enums(file: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[str, EnumProto]]:
    prefix = f".{file.package}"
    for enum in file.enum_type:
        yield f"{prefix}.{enum.name}", enum
    for name, message in _messages(list(file.message_type), prefix):
        for enum in message.enum_type:
            yield f"{name}.{enum.name}", enum


def _all_messages(descriptors) -> dict[str, MessageProto]:
    found = {}
    for file in descriptors.file:
        found.update(_messages(list(file.message_type), f".{file.package}"))
    return found


def _all_fields(descriptors) -> Iterator[tuple[str, FieldProto]]:
    for name, message in _all_messages(descriptors).items():
        for item in message.field:
            yield f"{name}.{item.name}", item


def test_every_api_package_is_smartcity_name_v1(descriptors) -> None:
    files = {file.name: file for file in descriptors.file}
    assert sorted(files) == sorted(f"smartcity/{name}/v1/{name}.proto" for name in API)
    for name in API:
        file = files[f"smartcity/{name}/v1/{name}.proto"]
        assert file.package == f"smartcity.{name}.v1"
        assert file.syntax == "proto3"


def test_services_are_named_after_their_package(descriptors) -> None:
    for file in descriptors.file:
        name = file.package.split(".")[1]
        assert [s.name for s in file.service] in ([], [f"{name.capitalize()}Service"]), file.name


def test_every_rpc_has_its_own_request_and_response(descriptors) -> None:
    messages = _all_messages(descriptors)
    used: set[str] = set()
    for file in descriptors.file:
        for service in file.service:
            for method in service.method:
                where = f"{service.name}.{method.name}"
                assert not method.client_streaming, f"{where}: client streams are not used"
                assert method.input_type == f".{file.package}.{method.name}Request", where
                assert method.output_type == f".{file.package}.{method.name}Response", where
                used.update((method.input_type, method.output_type))
    standalone = {
        name
        for name in messages
        if name.endswith(("Request", "Response"))
        and name not in {*used, PAGE_REQUEST, PAGE_RESPONSE}
    }
    assert not standalone, f"request/response messages that belong to no RPC: {standalone}"
    embedded = {
        f"{name}.{item.name}" for name, item in _all_fields(descriptors) if item.type_name in used
    }
    assert not embedded, f"RPC messages reused as field types: {embedded}"


def test_enums_have_prefixed_values_and_an_unspecified_zero(descriptors) -> None:
    for file in descriptors.file:
        for name, enum in _enums(file):
            prefix = _upper_snake(enum.name)
            assert enum.value[0].number == 0, name
            assert enum.value[0].name == f"{prefix}_UNSPECIFIED", name
            for value in enum.value:
                assert value.name.startswith(f"{prefix}_"), f"{name}.{value.name}"
                assert re.fullmatch(r"[A-Z][A-Z0-9_]*", value.name), f"{name}.{value.name}"


def test_names_follow_the_style(descriptors) -> None:
    for name, message in _all_messages(descriptors).items():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", message.name), name
        for item in message.field:
            assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", item.name), f"{name}.{item.name}"
    for file in descriptors.file:
        for service in file.service:
            for method in service.method:
                assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", method.name), method.name


def test_time_is_timestamp_and_duration(descriptors) -> None:
    for name, item in _all_fields(descriptors):
        if item.type_name == TIMESTAMP:
            assert item.name == "time" or item.name.endswith("_time"), f"{name}: name *_time"
        if item.name == "time" or item.name.endswith("_time"):
            assert item.type_name == TIMESTAMP, f"{name}: an instant is a Timestamp"
        if re.search(r"_(seconds|secs|ms|millis|minutes|hours|days)$", item.name):
            pytest.fail(f"{name}: a span is a google.protobuf.Duration, not a number with a unit")


def test_lists_page_with_the_shared_messages(descriptors) -> None:
    messages = _all_messages(descriptors)
    for file in descriptors.file:
        for service in file.service:
            for method in service.method:
                request = messages[method.input_type]
                response = messages[method.output_type]
                paged_request = {f.name: f.type_name for f in request.field}.get("page")
                paged_response = {f.name: f.type_name for f in response.field}.get("page")
                if method.name.startswith(("List", "Search")):
                    assert paged_request == PAGE_REQUEST, f"{method.name}Request.page"
                assert (paged_request == PAGE_REQUEST) == (paged_response == PAGE_RESPONSE), (
                    f"{method.name}: a paged request needs a paged response and back"
                )
    for name, item in _all_fields(descriptors):
        if item.name in ("page_size", "page_token", "next_page_token"):
            assert name.startswith(".smartcity.common.v1.Page"), f"{name}: use PageRequest"
        if item.type_name in (PAGE_REQUEST, PAGE_RESPONSE):
            assert item.name == "page", f"{name}: paging fields are named page"


def _documented_elements(
    file: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[tuple[int, ...], str]]:
    """Every element that needs a comment, as (SourceCodeInfo path, name)."""

    def enum_elements(enum: EnumProto, path: tuple[int, ...], name: str):
        yield path, name
        for v, value in enumerate(enum.value):
            yield (*path, _ENUM_VALUE, v), f"{name}.{value.name}"

    def message_elements(message: MessageProto, path: tuple[int, ...], name: str):
        if message.options.map_entry:
            return
        yield path, name
        for f, item in enumerate(message.field):
            yield (*path, _MESSAGE_FIELD, f), f"{name}.{item.name}"
        for o, oneof in enumerate(message.oneof_decl):
            if not oneof.name.startswith("_"):  # proto3 `optional` makes a synthetic oneof
                yield (*path, _MESSAGE_ONEOF, o), f"{name}.{oneof.name}"
        for n, nested in enumerate(message.nested_type):
            yield from message_elements(
                nested, (*path, _MESSAGE_NESTED, n), f"{name}.{nested.name}"
            )
        for e, enum in enumerate(message.enum_type):
            yield from enum_elements(enum, (*path, _MESSAGE_ENUM, e), f"{name}.{enum.name}")

    for m, message in enumerate(file.message_type):
        yield from message_elements(message, (_FILE_MESSAGE, m), message.name)
    for e, enum in enumerate(file.enum_type):
        yield from enum_elements(enum, (_FILE_ENUM, e), enum.name)
    for s, service in enumerate(file.service):
        yield (_FILE_SERVICE, s), service.name
        for r, method in enumerate(service.method):
            yield (_FILE_SERVICE, s, _SERVICE_METHOD, r), f"{service.name}.{method.name}"


def test_every_element_has_a_leading_comment(descriptors) -> None:
    checked = 0
    undocumented = []
    for file in descriptors.file:
        comments = {
            tuple(location.path): location.leading_comments.strip()
            for location in file.source_code_info.location
        }
        assert comments, f"{file.name}: compiled without source info"
        for path, name in _documented_elements(file):
            checked += 1
            if not comments.get(path):
                undocumented.append(f"{file.name}: {name}")
    assert not undocumented, "elements without a leading comment:\n" + "\n".join(undocumented)
    assert checked > 500


def test_comment_check_notices_a_missing_comment(protos: ModuleType, scratch) -> None:
    """The walk above really looks at comments: strip one and it must be found."""
    proto_dir, _ = scratch
    path = proto_dir / "smartcity/records/v1/records.proto"
    text = path.read_text()
    comment = (
        "  // Version number: 1 at creation, one more with each update or delete. Output only.\n"
    )
    assert comment in text
    path.write_text(text.replace(comment, ""))
    compiled = protos.descriptor_set(proto_dir, include_source_info=True)
    records = next(f for f in compiled.file if f.name.endswith("records.proto"))
    comments = {
        tuple(loc.path): loc.leading_comments.strip() for loc in records.source_code_info.location
    }
    missing = [name for path, name in _documented_elements(records) if not comments.get(path)]
    assert missing == ["Record.version"]


def test_buf_lint_accepts_the_api(protos: ModuleType) -> None:
    """buf's own STANDARD and COMMENTS rules (proto/buf.yaml), from the buf-bin package."""
    buf = shutil.which("buf", path=sysconfig.get_path("scripts")) or shutil.which("buf")
    if buf is None:
        pytest.skip("buf is not installed (pip install buf-bin)")
    done = subprocess.run(
        [buf, "lint"],
        cwd=Path(protos.DEFAULT_PROTO_DIR),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
