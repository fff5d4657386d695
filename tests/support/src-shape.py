#!/usr/bin/env python3
"""The shape of src/: no import circle between files, the lower rooms
import nothing above them, and no file but config.rs grows past 500 lines.

Reads every `use` of the crate's own paths (`crate::`, `super::`, `self::`)
and every such path written out in the code, and resolves each name to the file that defines it: a module's own file
when the name is a module, else the file of the module it is named in.
Fails with the circles and the forbidden imports it finds; prints one line
when there are none.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
# The one file allowed past MAX_LINES: every variable, validated in one place.
MAX_LINES, LONG_ALLOWED = 500, {("config",)}
# Rooms that must not import the rooms above them.
LOWER = ("security", "repositories", "domain")
UPPER = ("config", "http", "services")


def module_of(path: Path) -> tuple:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


FILES = {module_of(p): p for p in SRC.rglob("*.rs")}


def resolve(module: tuple) -> tuple:
    """The longest prefix of `module` that is a file's module."""
    for end in range(len(module), -1, -1):
        if module[:end] in FILES:
            return module[:end]
    return ()


def use_paths(text: str):
    """Every path a `use` names, its braces expanded, and every path to
    the crate's own items written out in the code (`super::mfa::f()`)."""
    text = re.sub(r"//[^\n]*", "", text)
    for statement in re.findall(r"\buse\s+([^;]+);", text):
        yield from expand(re.sub(r"\s+", "", statement))
    text = re.sub(r"\buse\s+[^;]+;", "", text)
    yield from re.findall(r"\b(?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+", text)


def expand(path: str):
    brace = path.find("{")
    if brace < 0:
        yield re.sub(r"\bas\b.*$", "", path).split("as")[0]
        return
    prefix, inner = path[:brace], path[brace + 1 : path.rfind("}")]
    depth, start = 0, 0
    for i, c in enumerate(inner + ","):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            item = inner[start:i]
            start = i + 1
            if item:
                yield from expand(prefix + item)


def target(current: tuple, is_mod_file: bool, path: str):
    parts = [p for p in path.split("::") if p]
    if not parts:
        return None
    base = list(current) if is_mod_file else list(current[:-1])
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    elif parts[0] == "self":
        base, parts = list(current), parts[1:]
    elif parts[0] == "super":
        base = list(current)
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
    else:
        return None
    return resolve(tuple(base + parts))


def main() -> int:
    edges = {m: set() for m in FILES}
    for module, path in FILES.items():
        text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", path.read_text(), flags=re.S)
        is_mod_file = path.stem in ("mod", "lib", "main")
        for used in use_paths(text):
            dep = target(module, is_mod_file, used)
            if dep is not None and dep != module and dep != ():
                edges[module].add(dep)
    problems = []
    for module, deps in edges.items():
        if module and module[0] in LOWER:
            for dep in deps:
                if dep and dep[0] in UPPER:
                    problems.append(f"{'/'.join(module)} imports {'/'.join(dep)}")
    # Tarjan's strongly connected components: each of more than one file is a circle.
    index, low, stack, on, counter, circles = {}, {}, [], set(), [0], []

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted("/".join(c) or "lib" for c in component))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    for circle in circles:
        problems.append("import circle: " + " <-> ".join(circle))
    for module, path in FILES.items():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and module not in LONG_ALLOWED:
            problems.append(f"{path.relative_to(SRC.parent)} has {lines} lines (at most {MAX_LINES})")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(
        f"src/ keeps its shape: no import circle among {len(FILES)} files, security, repositories "
        f"and domain import nothing above them, no file but config.rs over {MAX_LINES} lines"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
