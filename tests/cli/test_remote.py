"""The tenant commands over HTTP, against a real API-only process (`infra.api`) whose jobs and
queries run on the test stack's worker: what a user with only a URL and a key can do."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from cli import main
from gateway.keys import INGEST, QUERY, KeyStore
from infra.services import free_port
from stores.keys import tenant_docs_key
from tests.conftest import SAMPLES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.stack
@pytest.mark.usefixtures("worker")
async def test_a_user_with_a_url_and_a_key_ingests_asks_reads_and_deletes(
    api_url: str, redis_client: redis.Redis, tenant: str, tmp_path: Path
) -> None:
    _, token = KeyStore(redis_client).create(tenant=tenant, roles=[INGEST, QUERY], name="cli")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "faq.txt").write_bytes((SAMPLES / "faq.txt").read_bytes())
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 nope")
    env = {"KEEL_URL": api_url, "KEEL_API_KEY": token}

    def keel(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main.app, list(args), env=env)
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(keel, "ingest", str(folder))
    assert code == 0 and "1 ingested" in out and "1 failed" in out and "corrupt" in out.lower(), out
    code, again = await asyncio.to_thread(keel, "ingest", str(folder / "faq.txt"))
    assert code == 0 and "1 unchanged" in again, again

    code, out = await asyncio.to_thread(keel, "query", "How do I retry failed files?")
    assert code == 0 and "keel ingest" in out.lower() and "[1]" in out and "faq.txt" in out, out
    request = re.search(r"request (\S+)", out)
    assert request is not None
    code, streamed = await asyncio.to_thread(keel, "query", "How do I retry failed files?", "--stream")
    assert code == 0 and "faq.txt" in streamed, streamed

    (doc_id,) = [str(d) for d in redis_client.smembers(tenant_docs_key(tenant))]  # the one that ingested
    # An API-only process beside the embedded Qdrant cannot open the index, and says so (the
    # server that hosts the workers reads documents: tests/api/test_documents_api.py).
    code, out = await asyncio.to_thread(keel, "document", doc_id)
    assert code == 2 and "index_not_here" in out, out
    code, out = await asyncio.to_thread(keel, "delete", doc_id)
    assert code == 0 and out.startswith("deleted"), out
    code, out = await asyncio.to_thread(keel, "delete", doc_id)
    assert code == 0 and out.startswith("absent"), out


def test_without_a_key_or_a_server_the_commands_say_so(tmp_path: Path) -> None:
    runner = CliRunner()
    no_key = runner.invoke(main.app, ["query", "hi"], env={"KEEL_API_KEY": "", "KEEL_DATA_DIR": str(tmp_path)})
    assert no_key.exit_code == 2 and "missing_key" in no_key.output
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = runner.invoke(main.app, ["query", "hi"], env={"KEEL_API_KEY": "keel_x_y", "KEEL_URL": nowhere})
    assert down.exit_code == 2 and "api_unreachable" in down.output and nowhere in down.output


def test_the_tenant_commands_and_help_import_nothing_of_the_server() -> None:
    probe = (
        "import sys; from cli.main import app; from typer.testing import CliRunner; "
        "out = CliRunner().invoke(app, ['--help']).output; "
        "heavy = sorted(m for m in ('temporalio', 'redis', 'torch', 'presidio_analyzer', 'app.ingest', 'keel.config') "
        "if m in sys.modules); print(heavy, 'Operator commands' in out, 'Tenant commands' in out)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] True True", done.stdout + done.stderr
