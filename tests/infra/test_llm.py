"""`make llm`: the local model's provider and routes, as the workers read them (no model is run here)."""

from __future__ import annotations

import json
from pathlib import Path

from infra import llm
from infra.worker import build_query_steps
from keel.config import Settings
from pipelines.deps import Deps
from tests.scripted_llm import scripted_llm


def test_a_local_model_joins_each_route_after_the_operators_own_links(
    settings: Settings, deps: Deps, tmp_path: Path
) -> None:
    hosted = {"name": "hosted", "base_url": "http://127.0.0.1:9/v1", "model": "big"}
    mine = settings.model_copy(
        update={"data_dir": tmp_path, "providers": [hosted], "routes": {"cheap": [], "strong": ["hosted"]}}
    )
    assert llm.wired(mine) == llm.Wired()  # nothing wired in: nothing changes
    assert build_query_steps(mine, deps).verifier is None
    config = llm.provider_config(mine, 8093, Path("/models/qwen.gguf"))
    llm.config_path(mine).write_text(json.dumps(config))

    activities = build_query_steps(mine, deps)
    assert activities.routes == {"cheap": ["local"], "strong": ["hosted", "local"]}
    local = activities.chain.providers["local"]
    assert local.config.prompt == "answer-small.v1" and local.config.stop == ("\nQuestion:", "\nSources:")  # type: ignore[attr-defined]
    assert local.config.base_url == "http://127.0.0.1:8093/v1" and local.config.max_in_flight == 1  # type: ignore[attr-defined]
    # The wired model reads its own citations back, unless the operator names another or none.
    assert activities.verifier is not None and activities.verifier.provider.model == "qwen"
    other = build_query_steps(mine.model_copy(update={"verifier": "hosted"}), deps)
    assert other.verifier is not None and other.verifier.provider.model == "big"
    assert build_query_steps(mine.model_copy(update={"verifier": "none"}), deps).verifier is None

    llm.down(mine)  # `make down` unwires it
    assert llm.wired(mine) == llm.Wired()
    assert build_query_steps(mine, deps).verifier is None


def test_the_local_model_answers_once_before_the_worker_is_ready(
    settings: Settings, deps: Deps, tmp_path: Path
) -> None:
    """Its weights load and its fixed prompt is cached at start, not on the first user's question."""
    with scripted_llm(["ok"]) as model:
        mine = settings.model_copy(update={"data_dir": tmp_path})
        port = int(model.base_url.rsplit(":", 1)[1].split("/", 1)[0])
        llm.config_path(mine).write_text(json.dumps(llm.provider_config(mine, port, Path("/models/qwen.gguf"))))
        steps = build_query_steps(mine, deps)
    (warm_up,) = model.requests
    assert warm_up["max_tokens"] == 1 and "finished in 1889 [1]." in warm_up["messages"][0]["content"]
    assert "local" in steps.chain.answered  # its first answer to a user is not a cold one
