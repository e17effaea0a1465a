"""A collector's UTF-8 JSON as ASCII text: each non-ASCII character as its JSON ``\\u`` escape.

Python stores a string at 1, 2 or 4 bytes a character, whichever its widest character
needs: one job named 東京 makes a 485 MB document of a million sessions take 970 MB as
``str``, and ``validate`` needs a UTF-8 copy of it besides for msgspec. Escaped, the text
means the same JSON, is its own UTF-8 at 1 byte a character and is read in place: the
parse of a million sessions then peaks at 0.95 GiB instead of 1.85 (bench/RESULTS.md).
Python's codecs and ``re`` do the escaping one character or match at a time (3.4 s and
5.5 s at that size); here numpy finds the runs of non-ASCII bytes and each distinct run is
escaped once (a job's name repeats in each of its sessions).
"""

from __future__ import annotations

import json
from functools import lru_cache
from itertools import pairwise

import numpy as np


def ascii_json(data: bytes) -> str:
    """``data``, UTF-8 JSON (no BOM), as ASCII text that decodes to the same JSON values.

    Outside strings JSON is ASCII, so only string contents change. Raises
    ``UnicodeDecodeError`` when ``data`` is not UTF-8.
    """
    if data.isascii():
        return data.decode("ascii")
    high = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) >= 0x80)  # every byte of a multi-byte character
    breaks = np.flatnonzero(np.diff(high) != 1) + 1
    runs = np.column_stack((high[np.r_[0, breaks]], high[np.r_[breaks - 1, high.size - 1]] + 1))
    whole = memoryview(data)
    pieces: list[bytes | memoryview] = [
        whole[start:end] for start, end in pairwise([0, *runs.ravel().tolist(), len(data)])
    ]
    pieces[1::2] = [_escaped(bytes(run)) for run in pieces[1::2]]
    return b"".join(pieces).decode("ascii")


@lru_cache(maxsize=1 << 16)  # a job name repeats in each of its sessions
def _escaped(run: bytes) -> bytes:
    return json.dumps(run.decode("utf-8"))[1:-1].encode("ascii")
