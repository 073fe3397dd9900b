#!/usr/bin/env python3
"""Turns triad-bench JSON lines (stdin) into the Markdown table used in
BENCHMARKS.md: seconds, bytes per party per element, rounds."""
import json
import sys

print("| op | n | seconds | bytes/party/element | rounds | transport | threads |")
print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    n = m.get("n") or m.get("rows") or 1
    per = m["bytes_per_party"] / n if n else 0
    name = m.get("op") or m.get("phase")
    print(
        f"| {name} | {n:,} | {m['seconds']:.4f} | {per:.2f} | {m['rounds']} "
        f"| {m['transport']} | {m.get('threads', '')} |"
    )
