"""Each option list (strategies, baselines, truncation modes, item forms) is defined once, in
r3hf_client/options.py, and every other place derives it: the wire models, the server, the CLI, the eval script and
the playground (which reads the OpenAPI schema)."""

from __future__ import annotations

import argparse
import ast
import typing
from pathlib import Path

import pytest

from r3hf_client import options, wire
from r3hf_client.options import Baseline, ItemForm, Redistribution, Truncation, choices

ROOT = Path(__file__).resolve().parents[2]
LISTS = {name: choices(getattr(options, name)) for name in ("Redistribution", "Baseline", "Truncation", "ItemForm")}


def test_the_wire_models_use_the_option_lists():
    fields = wire.TokenRewardsRequest.model_fields
    assert fields["redistribution"].annotation is Redistribution
    assert fields["baseline"].annotation is Baseline
    assert fields["truncation"].annotation is Truncation
    assert tuple(wire.ITEM_FORMS) == choices(ItemForm)


def test_the_server_handles_every_option():
    from r3hf_server.api.convert import TO_INPUT
    from r3hf_server.redistribution import RedistributionOptions, token_rewards
    from r3hf_server.runner.base import TruncationMode

    assert set(TO_INPUT) == set(wire.ITEM_FORMS.values())
    assert TruncationMode is Truncation
    for strategy in choices(Redistribution):
        for baseline in choices(Baseline):
            result = token_rewards([0.0, 1.0, 3.0], 1, 3, RedistributionOptions(strategy, 1.0, baseline), [0.2, 0.3, 0.5])
            assert len(result.token_rewards) == 2, strategy


def _choices_of(parser: argparse.ArgumentParser, command: str) -> dict[str, tuple]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {a.dest: tuple(a.choices) for a in sub._actions if a.choices}


@pytest.mark.parametrize("command", ["explain", "score"])
def test_cli_choices_come_from_the_lists(command):
    from r3hf_server.cli import build_parser

    found = _choices_of(build_parser(), command)
    assert found["redistribution"] == choices(Redistribution)
    assert found["baseline"] == choices(Baseline)
    assert found["truncation"] == choices(Truncation)


def test_the_playground_reads_its_menus_from_the_openapi_schema(fake_client):
    page = (ROOT / "service" / "r3hf_server" / "playground" / "index.html").read_text()
    script = (ROOT / "service" / "r3hf_server" / "playground" / "playground.js").read_text()
    for value in LISTS["Redistribution"] + LISTS["Baseline"]:
        assert f'value="{value}"' not in page, value
    assert "TokenRewardsRequest.properties" in script and '"openapi.json"' in script
    fields = fake_client.get("/openapi.json").json()["components"]["schemas"]["TokenRewardsRequest"]["properties"]
    assert tuple(fields["redistribution"]["enum"]) == choices(Redistribution)
    assert tuple(fields["baseline"]["enum"]) == choices(Baseline)


def _literal_lists(path: Path) -> list[tuple[int, set[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            found.append((node.lineno, values))
        elif isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            found.append((node.lineno, {e.value for e in elts if isinstance(e, ast.Constant)}))
    return found


def test_no_module_writes_an_option_list_out_again():
    """Two or more values of one list written side by side anywhere else is a second copy of it."""
    sources = [*(ROOT / "service").rglob("*.py"), *(ROOT / "client").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
    for path in sources:
        if path.name == "options.py":
            continue
        for line, values in _literal_lists(path):
            for name, listed in LISTS.items():
                assert len(values & set(listed)) < 2, f"{path.relative_to(ROOT)}:{line} repeats {name} {sorted(values)}"


def test_the_eval_script_scores_every_strategy():
    pytest.importorskip("numpy")
    import importlib.util

    spec = importlib.util.spec_from_file_location("eval_credit", ROOT / "scripts" / "eval_credit.py")
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert tuple(module.STRATEGIES) == choices(Redistribution)
    assert typing.get_args(Redistribution) == LISTS["Redistribution"]
