#!/usr/bin/env python3
"""Fails when files of a crate import each other in a circle (docs/architecture.md, "Rules").

For every crate root given (default: the engine library, posternd and the tray app's library), it follows the `mod x;` declarations to the crate's files, reads every
`use` declaration and every inline `crate::`/`super::`/`self::` path (comments and string
literals removed), and resolves each to the file that holds the named module. An edge runs
from the importing file to that file; `mod x;` itself is no edge. A folder's `mod.rs` that
re-exports a child's item (`pub use child::Item`) therefore depends on the child, and a child
that then imports anything from `super::` closes a circle.

Test code (#[cfg(test)] items, such as a test module that drives several files) is left out
unless --tests is given; --dot prints the graph for Graphviz.

Usage: scripts/import-graph.py [--dot] [--tests] [ROOT.rs ...]   (exit 1 on a circle)
"""

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Every crate: the engine library, posternd, the window process, the tray process and the
# test harness.
DEFAULT_ROOTS = [
    "src-tauri/engine/src/lib.rs",
    "src-tauri/engine/src/main.rs",
    "src-tauri/src/lib.rs",
    "src-tauri/tray/src/lib.rs",
    "tests/src/lib.rs",
]

MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.M)
USE_DECL = re.compile(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
INLINE_PATH = re.compile(r"(?<![\w:])([A-Za-z_]\w*(?:::\w+)+)")
INLINE_MOD = re.compile(r"\bmod\s+(\w+)\s*\{")


def strip(text):
    """Removes comments, string and char literals, keeping line breaks (for line numbers)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not text[i - 1].isalnum()):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i : i + 4]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            out.append("' '")
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


CFG_TEST = re.compile(r"#\[cfg\((?:all\()?test\b[^\]]*\]")


def without_tests(text):
    """Blanks every item under #[cfg(test)] (a `mod tests { ... }`, a `mod transcript;`)."""
    out = list(text)
    for m in CFG_TEST.finditer(text):
        i = m.end()
        depth = 0
        while i < len(text):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    break
            elif ch == ";" and depth == 0:
                break
            i += 1
        for j in range(m.start(), min(i + 1, len(text))):
            if out[j] != "\n":
                out[j] = " "
    return "".join(out)


def expand(tree):
    """`a::{b, c::{d, self}}` -> ["a::b", "a::c::d", "a::c"]; renames (`as x`) dropped."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    return _expand(re.sub(r"\s+", "", tree))


def _expand(tree):
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    inner = rest[: rest.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in filter(None, parts):
        for e in _expand(p):
            out.append(head.rstrip(":") if e == "self" else head + e)
    return out


def read(path, tests):
    text = strip(path.read_text(encoding="utf-8"))
    return text if tests else without_tests(text)


class Crate:
    def __init__(self, root, tests):
        self.tests = tests
        self.root = root
        self.files = {}  # module path (tuple) -> file
        self.modules = set()  # every module path, inline ones included
        self.walk(root, ())

    def walk(self, path, module):
        self.files[module] = path
        self.modules.add(module)
        text = read(path, self.tests)
        if path.name in ("mod.rs", "lib.rs", "main.rs") or module == ():
            folder = path.parent
        else:
            folder = path.parent / path.stem
        for name in MOD_DECL.findall(text):
            for candidate in (folder / f"{name}.rs", folder / name / "mod.rs"):
                if candidate.exists():
                    self.walk(candidate, module + (name,))
                    break
        for name, _ in inline_mods(text):
            self.modules.add(module + tuple(name))

    def file_of(self, module):
        while module not in self.files:
            module = module[:-1]
        return self.files[module]


def inline_mods(text):
    """(nested names, offset) of every inline `mod x { ... }` block, for resolving super::."""
    found, stack, depth = [], [], 0
    pending = {m.end() - 1: m.group(1) for m in INLINE_MOD.finditer(text)}
    spans = []
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
            if i in pending:
                stack.append((pending[i], depth, i))
                found.append(([s[0] for s in stack], i))
        elif ch == "}":
            if stack and stack[-1][1] == depth:
                name, _, start = stack.pop()
                spans.append((start, i, [s[0] for s in stack] + [name]))
            depth -= 1
    inline_mods.spans = spans
    return found


def scope_at(spans, offset):
    best = []
    for start, end, names in spans:
        if start <= offset <= end and len(names) > len(best):
            best = names
    return best


def resolve(crate, module, path):
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = module
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    elif module + (segs[0],) in crate.modules:
        base = module
    else:
        return None  # another crate, std, or an item of this file
    target = base
    for s in segs:
        if target + (s,) in crate.modules:
            target = target + (s,)
        else:
            break
    return crate.file_of(target)


def edges(crate):
    result = {}
    for module, path in crate.files.items():
        text = read(path, crate.tests)
        inline_mods(text)
        spans = inline_mods.spans
        hits = []
        for m in USE_DECL.finditer(text):
            for p in expand(m.group(1)):
                hits.append((m.start(), p))
        for m in INLINE_PATH.finditer(text):
            hits.append((m.start(), m.group(1)))
        for offset, p in hits:
            scope = module + tuple(scope_at(spans, offset))
            target = resolve(crate, scope, p.rstrip(":*").rstrip(":"))
            if target is not None and target != path:
                line = text.count("\n", 0, offset) + 1
                result.setdefault((path, target), (line, p))
    return result


def cycles(nodes, graph):
    """Tarjan: the strongly connected components with more than one file."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main(argv):
    dot = "--dot" in argv
    tests = "--tests" in argv
    roots = [a for a in argv if not a.startswith("--")] or DEFAULT_ROOTS
    failed = False
    for root in roots:
        crate = Crate((REPO / root).resolve(), tests)
        found = edges(crate)
        graph = {}
        for a, b in found:
            graph.setdefault(a, set()).add(b)
        def rel(p):
            return p.relative_to(REPO).as_posix() if p.is_relative_to(REPO) else str(p)

        if dot:
            print(f"digraph {{ // {root}")
            for (a, b) in sorted(found):
                print(f'  "{rel(a)}" -> "{rel(b)}";')
            print("}")
        comps = cycles(sorted(crate.files.values()), graph)
        for comp in comps:
            failed = True
            members = set(comp)
            print(f"import circle in {root}:")
            for (a, b), (line, p) in sorted(found.items()):
                if a in members and b in members:
                    print(f"  {rel(a)}:{line} uses {p} ({rel(b)})")
        if not comps and not dot:
            print(f"{root}: {len(crate.files)} files, {len(found)} imports between them, no circle")
    if failed:
        print("Move what both sides share into a leaf file (docs/architecture.md, \"Rules\").")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
