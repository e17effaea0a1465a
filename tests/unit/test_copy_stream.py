"""The COPY rows as a file pandas reads while they arrive: every byte once, in order, whatever the sizes."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from veeam_efficiency.history_reads import _CopyStream


@given(blocks=st.lists(st.binary(max_size=40), max_size=30), buffer_size=st.integers(1, 64))
def test_the_stream_reads_back_every_block_in_order(blocks: list[bytes], buffer_size: int) -> None:
    stream = io.BufferedReader(_CopyStream(memoryview(block) for block in blocks), buffer_size=buffer_size)
    pieces = []
    while piece := stream.read(buffer_size + 3):
        pieces.append(piece)
    assert b"".join(pieces) == b"".join(blocks)
    assert stream.read() == b""
