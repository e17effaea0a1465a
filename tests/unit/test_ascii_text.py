"""The collector's JSON as ASCII text: the same JSON values, 1 byte a character."""

from __future__ import annotations

import codecs
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veeam_efficiency.collectors.ascii_text import ascii_json
from veeam_efficiency.collectors.replay import read_replay_file

# every character JSON can carry in a string, lone surrogates aside (UTF-8 cannot encode them)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(value=VALUES)
def test_any_json_reads_the_same_once_escaped(value: object) -> None:
    data = json.dumps(value, ensure_ascii=False).encode()
    text = ascii_json(data)
    assert text.isascii()
    assert json.loads(text) == value


def test_each_character_becomes_its_json_escape() -> None:
    data = '{"job_name": "Sicherung Größe ✓ 東京 😀", "n": "\\u00e9"}'.encode()
    assert ascii_json(data) == (
        '{"job_name": "Sicherung Gr\\u00f6\\u00dfe \\u2713 \\u6771\\u4eac \\ud83d\\ude00", "n": "\\u00e9"}'
    )


def test_ascii_is_returned_as_it_is() -> None:
    assert ascii_json(b'{"a": "b\\u00e9"}') == '{"a": "b\\u00e9"}'


@pytest.mark.parametrize("data", [b'{"a": "\xe9"}', b'{"a": "\xff"}', b'{"a": "\xc3"}'], ids=["latin-1", "ff", "cut"])
def test_bytes_that_are_not_utf8_are_refused(data: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        ascii_json(data)


@pytest.mark.parametrize("window", [None, (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))])
def test_a_replay_file_reaches_validate_as_ascii(tmp_path: Path, window: tuple[datetime, datetime] | None) -> None:
    sessions = [{"creation_time": f"2026-11-0{day}T10:00:00Z", "job_name": "東京 ✓"} for day in (1, 3)]
    path = tmp_path / "vbr01.json"
    document = {"vbr_host": "東京", "sessions": sessions}
    path.write_bytes(codecs.BOM_UTF8 + json.dumps(document, ensure_ascii=False).encode())
    text = read_replay_file(str(path), root=tmp_path, window=window)
    assert text.isascii()
    assert json.loads(text)["sessions"] == (sessions if window is None else sessions[:1])
