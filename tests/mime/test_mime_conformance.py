"""The messages of the imaptest conformance scripts, parsed by mime/ and checked
against the ENVELOPE, BODY, BODY[section] and BINARY[] output the scripts
expect (compared case-insensitively, as imaptest does)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mimetest_support import CONFORMANCE, lower, parse_all, parse_value, read_mbox, read_script

from mailbag.mime.parse import parse_message
from mailbag.mime.sections import binary_section, binary_size, section_bytes
from mailbag.wire.commands import Section

pytestmark = pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="no conformance scripts")


def _fetch_responses(name: str, item: bytes) -> list[tuple[int, bytes]]:
    out = []
    for line in read_script(CONFORMANCE / name):
        m = re.match(rb"\* (\d+) FETCH \(" + item + rb" (.*)\)$", line, re.IGNORECASE)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


def test_envelopes_match_script() -> None:
    msgs = read_mbox(CONFORMANCE / "fetch-envelope.mbox")
    expected = _fetch_responses("fetch-envelope", rb"ENVELOPE")
    assert len(expected) == len(msgs) == 6
    for seq, want in expected:
        got = parse_message(msgs[seq - 1]).envelope
        assert lower(parse_all(got)) == lower(parse_all(want)), (seq, got, want)


def test_body_matches_script() -> None:
    msgs = read_mbox(CONFORMANCE / "fetch-bodystructure.mbox")
    for seq, want in _fetch_responses("fetch-bodystructure", rb"BODY"):
        got = parse_message(msgs[seq - 1]).body
        assert lower(parse_all(got)) == lower(parse_all(want))


def _section(spec: bytes) -> Section:
    """Parse the inside of [...] of a script's FETCH item."""
    m = re.match(rb"([\d.]*?)\.?(header\.fields\.not|header\.fields|header|text|mime)?"
                 rb"(?: \((.*)\))?$", spec, re.IGNORECASE)
    assert m, spec
    part = tuple(int(x) for x in m.group(1).split(b".") if x) if m.group(1) else ()
    text = m.group(2).upper().decode() if m.group(2) else None
    fields = tuple(f.upper() for f in m.group(3).split()) if m.group(3) else ()
    return Section(part=part, text=text, fields=fields)  # type: ignore[arg-type]


_ITEM = re.compile(rb"(body|binary\.size|binary|rfc822\.header|rfc822\.text|rfc822)"
                   rb"(?:\.peek)?(?:\[([^\]]*)\])?(?:<(\d+)(?:\.(\d+))?>)?", re.IGNORECASE)


def _compute(raw: bytes, item: bytes, spec: bytes | None, start: int | None,
             length: int | None) -> bytes | int | None:
    msg = parse_message(raw)
    kind = item.lower()
    if kind == b"rfc822":
        data: bytes | None = raw
    elif kind == b"rfc822.header":
        data = section_bytes(raw, msg, Section(text="HEADER"))
    elif kind == b"rfc822.text":
        data = section_bytes(raw, msg, Section(text="TEXT"))
    elif kind == b"body":
        data = section_bytes(raw, msg, _section(spec or b""))
    elif kind == b"binary.size":
        return binary_size(raw, msg, _section(spec or b"").part)
    else:
        data = binary_section(raw, msg, _section(spec or b"").part)
    if data is not None and start is not None:
        data = data[start:] if length is None else data[start:start + length]
    return data


SCRIPTS = ["fetch-body", "fetch-body-mime", "fetch-body-message-rfc822",
           "fetch-body-message-rfc822-mime", "fetch-binary-mime", "fetch-binary-mime-base64",
           "fetch-binary-mime-qp"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_sections_match_script(name: str) -> None:
    msgs = read_mbox(Path(CONFORMANCE / (name + ".mbox")))
    lines = read_script(CONFORMANCE / name)
    checked = 0
    command: dict[bytes, tuple[int | None, int | None]] = {}
    variables: dict[bytes, bytes | int] = {}
    for line in lines:
        cm = re.match(rb"ok fetch (\d+) (.*)$", line, re.IGNORECASE)
        if cm:
            command = {}
            for im in _ITEM.finditer(cm.group(2)):
                key = im.group(1).lower() + b"[" + (im.group(2) or b"").lower() + b"]"
                command[key] = (int(im.group(3)) if im.group(3) else None,
                                int(im.group(4)) if im.group(4) else None)
            continue
        rm = re.match(rb"\* (\d+) fetch \((.*)\)$", line, re.IGNORECASE | re.DOTALL)
        if not rm:
            continue
        raw = msgs[int(rm.group(1)) - 1]
        body = rm.group(2)
        pos = 0
        while pos < len(body):
            im = _ITEM.match(body, pos)
            if not im:  # "flags (...)" and the like
                _name, pos = parse_value(body, pos)
                pos += 1
                if pos < len(body) and body[pos - 1:pos] == b" ":
                    value, pos = parse_value(body, pos)
                    pos += 1
                continue
            item, spec = im.group(1), im.group(2)
            key = item.lower() + b"[" + (spec or b"").lower() + b"]"
            start, length = command.get(key, (None, None))
            got = _compute(raw, item, spec, start, length)
            pos = im.end() + 1
            if body[pos:pos + 1] == b"$":
                vm = re.match(rb"\$\w+", body[pos:])
                assert vm
                var = vm.group(0)
                pos += len(var) + 1
                if var in variables:
                    assert got == variables[var], (name, key)
                else:
                    assert got is not None
                    variables[var] = got
                checked += 1
                continue
            value, pos = parse_value(body, pos)
            pos += 1
            if isinstance(value, tuple):
                assert got == int(value[1]), (name, key, got, value)
            elif body[im.end() + 1:im.end() + 2] == b"~":
                # imaptest's ~{{{ blocks drop CRs (see imapscript.py)
                assert isinstance(got, bytes)
                assert got.replace(b"\r", b"") == value.replace(b"\r", b""), (name, key, got)  # type: ignore[union-attr]
            else:
                assert got == value, (name, key, got, value)
            checked += 1
    assert checked >= 3
