"""Fail on a reference in the docs to something that does not exist: a file, an anchor, a function or a --flag.

Checked in README.md and docs/*.md:
- links ``[text](path#anchor)`` to files of this repository (and the heading an anchor names);
- repository paths written as code (``scripts/x.py``, ``docs/y.md``, ``service/...``);
- dotted names of our packages written as code (``r3hf_client.errors.error_from_response``): the module file exists
  and defines the name (read with ``ast``, nothing is imported);
- ``--flags`` written as code: a flag of ``r3hf`` (every Settings field, explain, score) or of one of our scripts.
  Flags of other tools (pip, curl, trainers) are checked only where the same code line runs one of ours.
In the Python sources, paths written in docstrings and comments (``docs/x.md``, ``runner/prefixes.py``) are checked too.

    .venv/bin/python scripts/check_doc_refs.py   # prints each broken reference with file:line; exit 1 if any
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"r3hf_server": ROOT / "service" / "r3hf_server", "r3hf_client": ROOT / "client" / "r3hf_client"}
TOP_DIRS = ("scripts", "docs", "service", "client", "tests", "load_tests", "experiments", "k8s", "deploy", ".ci")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"(?<![\w/.-])((?:%s)/[\w./-]*[\w/])" % "|".join(re.escape(d) for d in TOP_DIRS))
_SOURCE_PATH = re.compile(r"(?<![\w/.:-])((?:[\w-]+/)+[\w-]+\.(?:py|md|sh|json|ya?ml|toml|html|js|css))\b")
_DOTTED = re.compile(r"\b((?:r3hf_server|r3hf_client)(?:\.\w+)+)")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][\w.-]*)")
# A code line that runs one of our commands: r3hf, or python/bash on a script of this repository.
_OUR_COMMAND = re.compile(
    r"^(?:\$ )?(?:\w+=\S+ )*(?:\S*/)?"
    r"(?:r3hf(?:\s|$)|(?:python3?|bash|sh) (?:-m r3hf_server|(?:scripts|load_tests|experiments)/))"
)
# Where a line names another tool, a bare `--flag` in it is that tool's.
_OTHER_TOOLS = re.compile(
    r"\b(?:openrlhf|slime|verl|trl|areal|docker|podman|pip|kubectl|helm|curl|pytest|torchrun|deepspeed|vllm|sglang)\b",
    re.IGNORECASE,
)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = re.sub(r"[^\w\s-]", "", line.lstrip("#").strip().lower())
            anchors.add(re.sub(r"\s", "-", title))
    return anchors


def known_flags() -> set[str]:
    """``--flags`` our command lines accept: Settings fields, and every ``add_argument("--...")`` in our code."""
    flags = {"--help", "--no-" + "prompt-reuse"}
    settings = (PACKAGES["r3hf_server"] / "settings.py").read_text(encoding="utf-8")
    for name in re.findall(r"^    (\w+): .*= Field\(", settings, flags=re.M):
        flags.add("--" + name.replace("_", "-"))
    for folder in ("service", "scripts", "load_tests", "experiments", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            flags.update(re.findall(r"""add_argument\(\s*(?:["']-\w["'],\s*)?["'](--[a-z][a-z0-9-]*)["']""", text))
    return flags


def defines(module_file: Path, name: str) -> bool:
    tree = ast.parse(module_file.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(t, "id", None) == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == name for a in node.names):
            return True
    return False


def dotted_exists(dotted: str) -> bool:
    """``pkg.module[.Name[.attr]]``: the deepest module file that exists, then its top-level name."""
    parts = dotted.split(".")
    base = PACKAGES[parts[0]]
    for depth in range(len(parts), 0, -1):
        folder = base.joinpath(*parts[1:depth])
        for module_file in (folder.with_suffix(".py"), folder / "__init__.py"):
            if module_file.is_file():
                rest = parts[depth:]
                return not rest or defines(module_file, rest[0])
    return False


def path_exists(text: str, *bases: Path) -> bool:
    text = text.rstrip("/").split("#", 1)[0]
    return any((base / text).exists() for base in (ROOT, *bases))


def markdown_problems(path: Path, flags: set[str]) -> Iterator[str]:
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.relative_to(ROOT)}:{number}"
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        for target in ([] if in_fence else _LINK.findall(line)):
            yield from link_problems(path, target, where)
        other_tool = bool(_OTHER_TOOLS.search(line))
        for code in [line] if in_fence else _CODE.findall(line):
            yield from code_problems(code, flags, where, bare_flags_are_ours=not in_fence and not other_tool)


def link_problems(path: Path, target: str, where: str) -> Iterator[str]:
    if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
        return
    file_part, _, anchor = target.partition("#")
    linked = (path.parent / file_part).resolve() if file_part else path
    if not linked.exists():
        yield f"{where}: link to {target}: no such file"
    elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
        yield f"{where}: link to {target}: {linked.name} has no heading #{anchor}"


def code_problems(code: str, flags: set[str], where: str, bare_flags_are_ours: bool) -> Iterator[str]:
    for match in _PATH.finditer(code):
        found, before = match.group(1), code[: match.start()]
        is_output = re.search(r"(?:--json|--out\w*|-o|>)\s*$", before)  # a file the command writes
        if "*" not in found and "<" not in found and not is_output and not path_exists(found):
            yield f"{where}: {found}: no such file or directory"
    for dotted in _DOTTED.findall(code):
        if not dotted_exists(dotted):
            yield f"{where}: {dotted}: no such module or name"
    ours = _OUR_COMMAND.search(code.strip()) or (bare_flags_are_ours and code.lstrip().startswith("--"))
    for flag in _FLAG.findall(code) if ours else []:
        if flag not in flags and "_" not in flag and "." not in flag:  # ours are --lower-case-with-hyphens
            yield f"{where}: {flag}: no command of ours has this flag"


def source_problems() -> Iterator[str]:
    """Paths named in docstrings and comments of our Python code."""
    for path in [*PACKAGES["r3hf_server"].rglob("*.py"), *PACKAGES["r3hf_client"].rglob("*.py")]:
        package_root = next(base for base in PACKAGES.values() if base in path.parents)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if '"' not in line and "#" not in line and not line.startswith(" " * 4):
                continue
            for found in _SOURCE_PATH.findall(line):
                if not path_exists(found, package_root, path.parent, ROOT / "tests"):
                    yield f"{path.relative_to(ROOT)}:{number}: {found}: no such file"


def problems() -> list[str]:
    flags = known_flags()
    found = [p for md in markdown_files() for p in markdown_problems(md, flags)]
    return found + list(source_problems())


def main() -> int:
    found = problems()
    for problem in found:
        print(problem)
    print(f"{len(found)} broken reference(s)" if found else "every reference in README.md, docs/ and docstrings exists")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
