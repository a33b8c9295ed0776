"""Trainers load adapter modules by file path (OpenRLHF's python-file mode, verl's custom_reward_function.path and
reward_manager.module.path), with no parent package: every adapter must load that way."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import r3hf_client.adapters

ADAPTER_FILES = sorted(p for p in Path(r3hf_client.adapters.__file__).parent.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", ADAPTER_FILES, ids=[p.stem for p in ADAPTER_FILES])
def test_adapter_loads_standalone_by_file_path(path):
    spec = importlib.util.spec_from_file_location(f"standalone_{path.stem}", path)  # as OpenRLHF and verl do
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__name__ == f"standalone_{path.stem}"


def test_the_entry_points_trainers_look_up_are_there():
    def load(name: str):  # type: ignore[no-untyped-def]
        path = Path(r3hf_client.adapters.__file__).parent / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"entry_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    assert callable(load("openrlhf").reward_func)
    assert callable(load("verl").compute_score)
    manager = load("verl_dense").R3HFRewardManager
    assert callable(manager.assemble_rm_scores) and hasattr(manager, "run_single") and callable(manager.__call__)
    assert callable(load("areal").reward_fn)
