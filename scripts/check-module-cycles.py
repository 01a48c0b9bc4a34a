#!/usr/bin/env python3
"""Fails when two modules of one crate use each other (a two-file cycle).

For every crate (a directory with Cargo.toml and src/), each module file is read and
the sibling modules it names (`use crate::x`, `crate::x::`, `super::x` from a child)
are collected; a pair of modules that name each other is reported. Child modules
(`a/b.rs`) count as part of their top-level module `a`, so a parent and its own
children may use each other freely; cycles between different top-level modules may
not. Run from the repository root: scripts/check-module-cycles.py
"""
import pathlib
import re
import sys

ROOTS = ["shared", "services", "loadtest", "tests"]
USE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUP = re.compile(r"\bcrate::\{")
SUPER = re.compile(r"\bsuper::([a-z_][a-z0-9_]*)")


def group_names(text: str):
    """Top-level names inside `crate::{a::X, b, c::{..}}` groups."""
    out = set()
    for m in GROUP.finditer(text):
        depth, i, token, start = 1, m.end(), "", True
        while i < len(text) and depth:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if depth == 1 and c == ",":
                start = True
            elif start and (c.isalnum() or c == "_"):
                token += c
            elif token:
                out.add(token)
                token, start = "", False
            i += 1
    return out


def top_module(src: pathlib.Path, f: pathlib.Path) -> str:
    rel = f.relative_to(src).with_suffix("")
    first = rel.parts[0]
    return "" if first in ("lib", "main") else first


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def crate_cycles(src: pathlib.Path):
    uses = {}
    for f in src.rglob("*.rs"):
        if "bin" in f.relative_to(src).parts[:1]:
            continue
        m = top_module(src, f)
        if not m:
            continue
        text = strip_comments(f.read_text())
        names = set(USE.findall(text)) | group_names(text)
        if f.parent == src:
            # In a top-level module, `super::x` is the sibling module `x`.
            names |= set(SUPER.findall(text))
        uses.setdefault(m, set()).update(n for n in names if n != m)
    found = []
    for a, targets in uses.items():
        for b in targets:
            if a < b and a in uses.get(b, set()):
                found.append((a, b))
    return found


def main() -> int:
    bad = []
    for root in ROOTS:
        for cargo in pathlib.Path(root).rglob("Cargo.toml"):
            src = cargo.parent / "src"
            if "target" in cargo.parts or not src.is_dir():
                continue
            for a, b in crate_cycles(src):
                bad.append(f"{cargo.parent}: {a}.rs <-> {b}.rs")
    for line in sorted(bad):
        print(f"module cycle: {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
