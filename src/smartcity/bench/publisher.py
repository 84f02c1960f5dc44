"""A load generator for the benchmarks: publishes a file of prepared messages to JetStream
from its own process, as agents do, so that the process being measured does not also pay
for producing its input.

``python -m smartcity.bench.publisher NATS_URL FILE``; the file holds records of a 2-byte
subject length, the subject, a 4-byte payload length and the payload (big-endian).
"""

from __future__ import annotations

import asyncio
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import nats


def write_messages(path: Path, messages: Sequence[tuple[str, bytes]]) -> None:
    with path.open("wb") as out:
        for subject, data in messages:
            encoded = subject.encode()
            out.write(struct.pack(">H", len(encoded)) + encoded)
            out.write(struct.pack(">I", len(data)) + data)


def read_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    blob = path.read_bytes()
    offset = 0
    while offset < len(blob):
        (size,) = struct.unpack_from(">H", blob, offset)
        subject = blob[offset + 2 : offset + 2 + size].decode()
        offset += 2 + size
        (length,) = struct.unpack_from(">I", blob, offset)
        yield subject, blob[offset + 4 : offset + 4 + length]
        offset += 4 + length


async def publish(url: str, path: Path) -> None:
    messages = list(read_messages(path))
    connection = await nats.connect(url)
    js = connection.jetstream()
    print("publishing", flush=True)  # the measuring side starts its clock here
    pending = []
    for subject, data in messages:
        pending.append(await js.publish_async(subject, data))
        if len(pending) >= 512:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await connection.close()


if __name__ == "__main__":
    asyncio.run(publish(sys.argv[1], Path(sys.argv[2])))
