"""Summarise a ``py-spy record --format raw`` file: inclusive and self share per function.

Usage: python bench/rollout/pyspy_top.py FILE [--top 40] [--match rollwave]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_name(f) for f in stack.split(";")]
        # the first item of a py-spy raw stack may be the thread/process name
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    print(f"{total} samples")
    print("inclusive:")
    for name, n in inclusive.most_common():
        if args.match in name:
            print(f"  {100 * n / total:5.1f}%  {n:7d}  {name}")
            args.top -= 1
            if args.top <= 0:
                break
    print("self:")
    for name, n in own.most_common(25):
        print(f"  {100 * n / total:5.1f}%  {n:7d}  {name}")


if __name__ == "__main__":
    main()
