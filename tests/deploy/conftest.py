"""Session fixtures for the deployment checks: each overlay rendered once."""

from __future__ import annotations

import pytest
import yaml

from deploy_helpers import render_overlays


@pytest.fixture(scope="session")
def rendered_text() -> dict[str, str]:
    return render_overlays()


@pytest.fixture(scope="session")
def rendered(rendered_text) -> dict[str, list[dict]]:
    return {overlay: [d for d in yaml.safe_load_all(text) if d] for overlay, text in rendered_text.items()}
