"""The reference pages (and the changelog, kept at the top of the repository), generated from the code each time the docs are built, so they cannot
drift from it: the CLI from the typer app, the HTTP API from the OpenAPI schema, the settings from
the `Settings` fields' docstrings, the error codes from the exception tree.

An MkDocs hook (`mkdocs.yml`, `hooks:`): `on_files` adds the four pages to the build; nothing is
written into `docs/`.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

GENERATED = "This page is generated from the code when the docs are built; change the code, not this page."


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


# -- CLI ---------------------------------------------------------------------------------------
def cli_page() -> str:
    import typer.main
    from typer.core import TyperOption

    from cli.main import OPERATOR, app

    root = typer.main.get_command(app)
    lines = ["# CLI reference", "", GENERATED, "", f"`keel`: {root.help or ''}", ""]
    lines += [
        "Tenant commands (`query`, `ingest`, `job`, `document`, `delete`) go through the HTTP API with "
        "`KEEL_URL` and `KEEL_API_KEY`; operator commands (marked *operator*) need Redis and Temporal.",
        "",
    ]
    for path, command in _commands(root, ["keel"]):
        kind = " *(operator)*" if path[1] in OPERATOR else ""
        lines += [f"## `{' '.join(path)}`{kind}", "", inspect.cleandoc(command.help or "").split("\n\n")[0], ""]
        params = [p for p in command.params if p.name != "help"]
        if not params:
            continue
        lines += ["| argument | help | default |", "|---|---|---|"]
        for p in params:
            name = ", ".join(f"`{o}`" for o in p.opts) if isinstance(p, TyperOption) else f"`{(p.name or '').upper()}`"
            default = "" if p.required or p.default in (None, "", ()) else f"`{p.default}`"
            text = getattr(p, "help", None) or ""
            lines.append(f"| {name} | {_cell(text)}{' (required)' if p.required else ''} | {_cell(default)} |")
        lines.append("")
    return "\n".join(lines)


def _commands(group: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    for name in sorted(group.commands):
        command = group.get_command(None, name)  # an operator command loads here (cli.main.LazyGroup)
        if getattr(command, "hidden", False):
            continue
        if hasattr(command, "commands"):
            yield from _commands(command, [*path, name])
        else:
            yield [*path, name], command


# -- HTTP API ----------------------------------------------------------------------------------
def http_page() -> str:
    from api.main import app

    schema = app.openapi()
    lines = [
        "# HTTP API reference",
        "",
        GENERATED,
        "",
        f"{schema['info'].get('title', '')} {schema['info'].get('version', '')}. A running server serves the same "
        "schema at `/openapi.json` and browsable at `/docs`. Every route but `/healthz` needs "
        '`Authorization: Bearer <key>`; errors are JSON `{"error": {"code", "message", "request_id"}}` '
        "with the codes in the [error reference](errors.md).",
        "",
    ]
    for path, methods in sorted(schema["paths"].items()):
        for method, op in methods.items():
            lines += [f"## `{method.upper()} {path}`", ""]
            if op.get("summary"):
                lines += [op["summary"], ""]
            if op.get("description"):
                lines += [inspect.cleandoc(op["description"]), ""]
            params = op.get("parameters", [])
            if params:
                lines += ["| parameter | in | required | description |", "|---|---|---|---|"]
                for p in params:
                    lines.append(
                        f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
                        f"{_cell(p.get('description', ''))} |"
                    )
                lines.append("")
            body = op.get("requestBody", {}).get("content", {})
            if body:
                kinds = ", ".join(f"`{k}`" for k in body)
                refs = [_ref(c.get("schema", {})) for c in body.values()]
                named = ", ".join(f"`{r}`" for r in refs if r)
                lines += [f"Body: {kinds}{f' ({named})' if named else ''}.", ""]
            codes = ", ".join(f"`{code}`" for code in sorted(op.get("responses", {})))
            lines += [f"Responses: {codes}.", ""]
    components = schema.get("components", {}).get("schemas", {})
    if components:
        lines += ["## Schemas", ""]
        for name, spec in sorted(components.items()):
            lines += [f"### `{name}`", ""]
            if spec.get("description"):
                lines += [inspect.cleandoc(spec["description"]), ""]
            props = spec.get("properties", {})
            if props:
                required = set(spec.get("required", []))
                lines += ["| field | type | required | description |", "|---|---|---|---|"]
                for field, fspec in props.items():
                    lines.append(
                        f"| `{field}` | {_cell(_type(fspec))} | {'yes' if field in required else 'no'} | "
                        f"{_cell(fspec.get('description', ''))} |"
                    )
                lines.append("")
    return "\n".join(lines)


def _ref(spec: dict[str, Any]) -> str:
    return str(spec.get("$ref", "")).rsplit("/", 1)[-1]


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return _ref(spec)
    if "anyOf" in spec:
        return " or ".join(_type(s) for s in spec["anyOf"])
    if spec.get("type") == "array":
        return f"array of {_type(spec.get('items', {}))}"
    return str(spec.get("type", "any"))


# -- Settings ----------------------------------------------------------------------------------
def settings_page() -> str:
    from keel.config import Settings

    lines = [
        "# Settings reference",
        "",
        GENERATED,
        "",
        inspect.cleandoc(Settings.__doc__ or ""),
        "",
        "| variable | default | description |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        env = field.validation_alias if isinstance(field.validation_alias, str) else f"KEEL_{name.upper()}"
        if field.default_factory is not None:
            default = "(computed)"
        else:
            default = json.dumps(field.default) if not hasattr(field.default, "__fspath__") else str(field.default)
        lines.append(f"| `{env}` | `{_cell(default)}` | {_cell(field.description or '')} |")
    return "\n".join(lines) + "\n"


# -- Errors ------------------------------------------------------------------------------------
def errors_page() -> str:
    from keel import errors

    lines = [
        "# Error codes",
        "",
        GENERATED,
        "",
        "Every failure a caller can see has a stable `code`, the same in the API's JSON, in a job's "
        "file outcomes and in Temporal (the activity failure's type). A 503 carries `Retry-After`; "
        "what to do about each is in the [runbooks](../operations/runbooks.md).",
        "",
        "| code | HTTP | retried | raised as | what it means |",
        "|---|---|---|---|---|",
    ]
    for cls in _tree(errors.KeelError):
        doc = inspect.cleandoc(cls.__doc__) if cls.__doc__ and cls.__doc__ != errors.KeelError.__doc__ else ""
        if cls is errors.KeelError:
            doc = "A failure Keel did not foresee: a bug; the request id finds it in the logs."
        lines.append(
            f"| `{cls.code}` | {cls.http_status} | {'yes' if cls.retryable else 'no'} | `{cls.__name__}` | "
            f"{_cell(doc.split(chr(10) + chr(10))[0])} |"
        )
    return "\n".join(lines) + "\n"


def _tree(root: type) -> Iterator[Any]:
    yield root
    subclasses: list[type] = sorted(root.__subclasses__(), key=lambda c: c.__name__)
    for sub in subclasses:
        yield from _tree(sub)


def changelog_page() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / "CHANGELOG.md").read_text()


PAGES = {
    "changelog.md": changelog_page,
    "reference/cli.md": cli_page,
    "reference/http-api.md": http_page,
    "reference/settings.md": settings_page,
    "reference/errors.md": errors_page,
}


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, page in PAGES.items():
        files.append(File.generated(config, uri, content=page()))
    return files
