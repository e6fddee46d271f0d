"""docs/protocol.md's byte-level examples must be exactly what the code produces."""

from __future__ import annotations

import re
from pathlib import Path

import nacl.signing

from p2pcrew.feed import content as c
from p2pcrew.feed.entry import create_entry, decode_entry, lipmaa, verify_signature

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
CHECK = re.compile(r"<!-- check: (?P<name>[\w.]+) -->\s*```\w*\n(?P<body>.*?)```", re.S)


def documented() -> dict[str, str]:
    return {m["name"]: "".join(m["body"].split()) for m in CHECK.finditer(DOC.read_text())}


def generated() -> dict[str, str]:
    key = nacl.signing.SigningKey(bytes(range(32)))
    p1 = c.encode_content(c.Post(text="hello crew", time=1_700_000_000_000))
    e1 = create_entry(key, 1, None, None, p1)
    p2 = c.encode_content(c.Request(kind="ask", title="drill", category="tools", time=1_700_000_060_000))
    e2 = create_entry(key, 2, e1.id, e1.id, p2)
    return {
        "author": bytes(key.verify_key).hex(),
        "entry1.payload": p1.hex(),
        "entry1.signing": e1.signing_bytes.hex(),
        "entry1.header": e1.header.hex(),
        "entry1.id": e1.id.hex(),
        "entry2.payload": p2.hex(),
        "entry2.header": e2.header.hex(),
        "entry2.id": e2.id.hex(),
    }


def test_every_documented_example_matches_the_code() -> None:
    doc, code = documented(), generated()
    assert set(doc) >= set(code), f"examples missing from the doc: {set(code) - set(doc)}"
    for name, value in code.items():
        assert doc[name] == value, f"docs/protocol.md example {name} is stale"


def test_documented_headers_verify_on_their_own() -> None:
    doc = documented()
    for name in ("entry1.header", "entry2.header"):
        verify_signature(decode_entry(bytes.fromhex(doc[name])))


def test_documented_lipmaa_values() -> None:
    text = DOC.read_text()
    assert "lipmaa(1..13) = 0, 1, 2, 1, 4, 5, 6, 4, 8, 9, 10, 8, 4" in text
    assert [lipmaa(n) for n in range(1, 14)] == [0, 1, 2, 1, 4, 5, 6, 4, 8, 9, 10, 8, 4]


def test_documented_network_key() -> None:
    from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY

    assert P2PCREW_NETWORK_KEY.hex() in DOC.read_text()
