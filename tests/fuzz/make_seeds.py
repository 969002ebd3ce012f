#!/usr/bin/python3
"""Writes the seed inputs of the fuzz corpora (tests/fuzz/corpus/{safetensors,json}/seed-*).
Crash inputs that `make fuzz` finds are added beside them as crash-<hash>. Run from the
repository root: /usr/bin/python3 tests/fuzz/make_seeds.py (standard library only)."""
import json, os, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def st(entries, meta=None, pad=True, tail=b""):
    """a safetensors file: entries = [(name, dtype, shape, raw bytes)]"""
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data + tail


def f32(*v): return struct.pack("<%df" % len(v), *v)
def i32(*v): return struct.pack("<%di" % len(v), *v)


SAFETENSORS = {
    "f32_matrix": st([("w", "F32", [2, 3], f32(1, -2, 3.5, 0, 1e-30, -0.0))], {"format": "pt"}),
    "i32_and_meta": st([("ids", "I32", [4], i32(1, 2, -3, 2**31 - 1))], {"format": "pt", "config": '{"d_model":8}'}),
    "scalar_and_empty": st([("s", "F32", [], f32(7)), ("e", "F32", [0, 4], b"")]),
    "f64": st([("d", "F64", [2], struct.pack("<2d", 1.5, -1e300))]),
    "f16_bf16": st([("h", "F16", [2], struct.pack("<2e", 0.5, -2)), ("b", "BF16", [2], b"\x80\x3f\x00\xc0")]),
    "ints": st([("a", "I64", [2], struct.pack("<2q", 5, -6)), ("b", "U8", [3], b"\x00\x7f\xff"),
                ("c", "BOOL", [2], b"\x00\x01"), ("d", "I16", [1], struct.pack("<h", -7))]),
    "gap_and_trailing": st([("x", "F32", [1], f32(1))], tail=b"\x00" * 12),
    "unpadded": st([("x", "I32", [2], i32(3, 4))], pad=False),
    "nan_inf": st([("x", "F32", [3], f32(float("nan"), float("inf"), float("-inf")))]),
    "unicode_name": st([("blocks.0.attn.W_Q\u00e9", "F32", [1, 1], f32(2))], {"note": "\u2603"}),
    "three_d": st([("t", "F32", [2, 1, 2], f32(1, 2, 3, 4)), ("u", "I32", [1, 1, 1], i32(9))]),
    "truncated": st([("w", "F32", [4], f32(1, 2, 3, 4))])[:-5],
    "empty_header": struct.pack("<Q", 2) + b"{}",
}

JSON = {
    "object": b'{"a": 1, "b": [true, false, null], "c": {"d": "e"}}',
    "numbers": b'[0, -0, 1e308, -1.5e-310, 123456789012345678901234567890, 9007199254740993, 0.1, 2E+3]',
    "strings": b'["\\u00e9\\ud83d\\ude00", "\\n\\t\\"\\\\\\/", "", "\xc3\xa9"]',
    "nested": b'[[[[[[[[[[{"k": [1, {"x": []}]}]]]]]]]]]]',
    "duplicate_keys": b'{"a": 1, "a": 2}',
    "safetensors_header": json.dumps({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 2],
                                      "data_offsets": [0, 16]}}).encode(),
    "whitespace": b' \t\r\n{ "x" : [ 1 , 2 ] } \n',
    "bad_trailing_comma": b'[1, 2,]',
    "bad_lone_surrogate": b'"\\ud800"',
    "bad_control_char": b'"a\x01b"',
    "bad_utf8": b'"\xff\xfe"',
    "bad_truncated": b'{"a": [1, 2',
    "bad_nan": b'[NaN, Infinity]',
}

for kind, table in (("safetensors", SAFETENSORS), ("json", JSON)):
    d = os.path.join(ROOT, kind)
    os.makedirs(d, exist_ok=True)
    for name, data in table.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
