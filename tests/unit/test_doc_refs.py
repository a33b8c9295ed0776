"""The docs promise only what exists: scripts/check_doc_refs.py finds no broken reference, and it does find
planted ones (a missing file, anchor, name or flag). Also the README's promises about the client's errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def checker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_doc_refs", ROOT / "scripts" / "check_doc_refs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_every_file_anchor_name_and_flag_the_docs_mention_exists():
    assert checker().problems() == []


def test_the_checker_finds_what_is_missing():
    check = checker()
    flags = check.known_flags()
    readme = ROOT / "README.md"

    def code(text: str, bare: bool = True) -> list[str]:
        return list(check.code_problems(text, flags, "x", bare_flags_are_ours=bare))

    assert code("scripts/no_such_script.py") and not code("scripts/check_doc_refs.py")
    assert code("r3hf_client.errors.NoSuchError") and not code("r3hf_client.errors.error_from_response")
    assert code("r3hf serve --max-batch-tokenz 8") and not code("r3hf serve --max-batch-tokens 8")
    assert code("--no-such-setting") and not code("--no-such-setting", bare=False)
    assert not code("pip install --no-deps x") and not code("python bench.py --json docs/new-output.json")
    assert list(check.link_problems(readme, "docs/no-such.md", "x"))
    assert list(check.link_problems(readme, "docs/client.md#no-such-heading", "x"))
    assert not list(check.link_problems(readme, "https://example.org/anything", "x"))


def test_one_client_exception_class_per_error_type():
    from r3hf_client.errors import _EXCEPTION_BY_TYPE, HTTP_STATUS, ErrorType

    assert set(_EXCEPTION_BY_TYPE) == {kind.value for kind in ErrorType} == {kind.value for kind in HTTP_STATUS}
    assert len(set(_EXCEPTION_BY_TYPE.values())) == len(_EXCEPTION_BY_TYPE)
