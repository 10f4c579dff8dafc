"""``GET /docs``: the OpenAPI document as one plain HTML page, rendered by the server.

No JavaScript and nothing loaded from elsewhere (styles are inline), so the page reads the
same offline, in any browser, and there are no third-party assets to ship or keep current.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

from mm_bronze.ingest.http import openapi

Json = dict[str, Any]

CODE = re.compile(r"``?([^`]+)``?")  # `code` in the document, ``code`` in docstrings
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1f23; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem;
     margin-top: 2.5rem; } h3 { margin-top: 2rem; }
code { background: #f3f4f6; padding: 0 .25rem; border-radius: 3px; font-size: 90%; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
.method { display: inline-block; min-width: 3.5rem; text-align: center; color: #fff;
          border-radius: 4px; padding: 0 .4rem; font-weight: 600; font-size: 85%; }
.get { background: #0969da; } .post { background: #1a7f37; }
.delete { background: #cf222e; } .put, .patch { background: #9a6700; }
.muted { color: #57606a; }
"""


def text(value: str) -> str:
    """Escaped text with `code` spans, paragraphs on blank lines."""
    paragraphs = [p.replace("\n", " ") for p in value.strip().split("\n\n")]
    return "".join(f"<p>{inline(p)}</p>" for p in paragraphs)


def inline(value: str) -> str:
    return CODE.sub(r"<code>\1</code>", html.escape(value))


def type_of(schema: Json) -> str:
    """A short readable type: ``string (uuid)``, ``array of Finding``, ``ErrorBody``."""
    if "$ref" in schema:
        name = html.escape(schema["$ref"].rsplit("/", 1)[-1])
        return f'<a href="#schema-{name}">{name}</a>'
    if "anyOf" in schema:
        return " or ".join(type_of(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(f"<code>{html.escape(str(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{html.escape(str(schema['const']))}</code>"
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    detail = schema.get("format") or (f"pattern {schema['pattern']}" if "pattern" in schema else "")
    return html.escape(f"{kind} ({detail})" if detail else kind)


def operation(path: str, method: str, op: Json) -> str:
    anchor = html.escape(op.get("operationId", f"{method}-{path}"))
    out = [
        f'<h3 id="{anchor}"><span class="method {method}">{method.upper()}</span> '
        f"<code>{html.escape(path)}</code></h3>",
        f"<p><strong>{inline(op.get('summary', ''))}</strong></p>",
    ]
    if op.get("description"):
        out.append(text(op["description"]))
    token = "bearer token (once API clients exist)" if op.get("security") else "none"
    out.append(f'<p class="muted">Authentication: {token}</p>')
    if op.get("parameters"):
        out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>about</th></tr>")
        for p in op["parameters"]:
            required = " (required)" if p.get("required") else ""
            out.append(
                f"<tr><td><code>{html.escape(p['name'])}</code>{required}</td>"
                f"<td>{html.escape(p['in'])}</td><td>{type_of(p['schema'])}</td>"
                f"<td>{inline(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        out.append(f"<p>Request body: {inline(body.get('description', ''))}</p><ul>")
        for media, content in body["content"].items():
            out.append(f"<li><code>{html.escape(media)}</code>: {type_of(content['schema'])}</li>")
        out.append("</ul>")
    out.append("<table><tr><th>status</th><th>when</th><th>body</th><th>headers</th></tr>")
    for status, response in op["responses"].items():
        bodies = [
            f"{type_of(c['schema'])} <span class='muted'>{html.escape(media)}</span>"
            for media, c in response.get("content", {}).items()
        ]
        headers = ", ".join(f"<code>{html.escape(h)}</code>" for h in response.get("headers", {}))
        out.append(
            f"<tr><td><code>{html.escape(status)}</code></td>"
            f"<td>{inline(response['description'])}</td>"
            f"<td>{'<br>'.join(bodies)}</td><td>{headers}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def schema_section(name: str, schema: Json) -> str:
    anchor = html.escape(name)
    out = [f'<h3 id="schema-{anchor}">{anchor}</h3>']
    if schema.get("description"):
        out.append(text(schema["description"]))
    required = set(schema.get("required", ()))
    out.append("<table><tr><th>field</th><th>type</th><th>required</th><th>about</th></tr>")
    for field, prop in schema.get("properties", {}).items():
        about = inline(prop.get("description", ""))
        if "examples" in prop:
            about += " e.g. " + ", ".join(
                f"<code>{html.escape(str(e))}</code>" for e in prop["examples"]
            )
        out.append(
            f"<tr><td><code>{html.escape(field)}</code></td><td>{type_of(prop)}</td>"
            f"<td>{'yes' if field in required else 'no'}</td><td>{about}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def render(document: Json) -> str:
    """The whole page for ``document``."""
    info = document["info"]
    title = html.escape(info["title"])
    operations = [
        (path, method, op)
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    ]
    contents = "".join(
        f'<li><a href="#{html.escape(op["operationId"])}">{method.upper()} '
        f"{html.escape(path)}</a> — {inline(op.get('summary', ''))}</li>"
        for path, method, op in operations
    )
    schemas = document["components"]["schemas"]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title} HTTP API</title><style>{STYLE}</style></head><body>",
            f"<h1>{title} HTTP API</h1>",
            f'<p class="muted">version {html.escape(info["version"])} · OpenAPI '
            f'{html.escape(document["openapi"])} · <a href="openapi.json">openapi.json</a></p>',
            text(info.get("description", "")),
            f"<h2>Routes</h2><ul>{contents}</ul>",
            *(operation(path, method, op) for path, method, op in operations),
            "<h2>Bodies</h2>",
            *(schema_section(name, schemas[name]) for name in sorted(schemas)),
            "</body></html>",
        ]
    )


@functools.cache
def encoded() -> bytes:
    """The page for the door's own document, rendered once."""
    return render(openapi.document()).encode()
