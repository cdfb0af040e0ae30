"""Small display filters for traces: durations, span-type colours, assessment values."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

SPAN_TYPE_CLASSES = {
    "AGENT": "t-agent",
    "CHAIN": "t-chain",
    "LLM": "t-llm",
    "CHAT_MODEL": "t-llm",
    "RETRIEVER": "t-retriever",
    "RERANKER": "t-retriever",
    "EMBEDDING": "t-embedding",
    "TOOL": "t-tool",
    "PARSER": "t-parser",
}


@register.filter
def duration(ms: float | int | None) -> str:
    """``1834`` → ``1.83 s``; ``12`` → ``12 ms``; ``0.4`` → ``0.4 ms``."""
    if ms is None:
        return "—"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms".replace(".0 ms", " ms")


@register.filter
def span_type_class(span_type: str) -> str:
    return SPAN_TYPE_CLASSES.get(span_type, "t-other")


@register.filter
def badge_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(map(str, value))[:40]
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


@register.filter
def value_class(value: Any) -> str:
    """Colour for a feedback value: green for pass-like, red for fail-like, neutral otherwise."""
    if value is True or (isinstance(value, str) and value.lower() in {"yes", "pass", "correct", "good"}):
        return "v-pass"
    if value is False or (isinstance(value, str) and value.lower() in {"no", "fail", "incorrect", "bad"}):
        return "v-fail"
    return "v-neutral"


SPAN_TREE_LIMIT = 500


@register.simple_tag
def span_tree(nodes: list[Any], span_url: str, open_depth: int = 2, limit: int = SPAN_TREE_LIMIT) -> str:
    """The span tree as nested ``<details>``, built in Python: thousands of spans in a few ms.

    ``nodes`` is the depth-first list from ``rendering.flatten``; only the first ``limit``
    are drawn (the caller offers a "show all" link when there are more).
    """
    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    parts: list[str] = []
    open_stack: list[int] = []  # depths of <details> left open
    for node in nodes[:limit]:
        while open_stack and open_stack[-1] >= node.depth:
            open_stack.pop()
            parts.append("</div></details>")
        span = node.span
        url = f"{span_url}?span={escape(span.span_id)}"
        error = node.is_error
        row = (
            f'<a class="span-link" href="{url}#span-detail" hx-get="{url}" hx-target="#span-detail" '
            f'hx-swap="outerHTML" data-span="{escape(span.span_id)}">'
            f'<span class="badge type {span_type_class(span.span_type)}">{escape(span.span_type)}</span> '
            f'<span class="span-name">{escape(span.name)}</span></a>'
            f'<span class="dur">{duration(span.duration_ms)}</span>'
            f'<svg class="bar" viewBox="0 0 1000 10" preserveAspectRatio="none" aria-hidden="true">'
            f'<rect x="{node.offset}" width="{node.width}" height="10"/></svg>'
        )
        if error:
            message = node.exceptions[0]["type"] + ": " + node.exceptions[0]["message"] if node.exceptions else ""
            shown = escape(message or span.status_message or "error")
            row += f'<span class="span-error" title="{escape(span.status_message)}">⚠ {shown}</span>'
        css = "span-row error" if error else "span-row"
        if node.children:
            is_open = " open" if node.depth < open_depth else ""
            parts.append(
                f'<details class="span-node"{is_open}><summary class="{css}">{row}</summary><div class="span-children">'
            )
            open_stack.append(node.depth)
        else:
            parts.append(f'<div class="span-leaf {css}">{row}</div>')
    parts.extend("</div></details>" for _ in open_stack)
    return mark_safe("".join(parts))


@register.filter
def preview_text(preview: str) -> str:
    """A request/response preview made readable: ``{"question": "Hi"}`` → ``Hi``; chat → last message."""
    import orjson

    from traces.rendering import messages_from_inputs, messages_from_outputs

    if not preview or preview[0] not in '{["':
        return preview
    try:
        value = orjson.loads(preview)
    except orjson.JSONDecodeError:
        return preview
    if isinstance(value, str):
        return value
    messages = messages_from_inputs(value) or messages_from_outputs(value)
    if messages:
        return messages[-1].text or preview
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), str):
        return next(iter(value.values()))
    return preview


@register.filter
def pretty(value: Any) -> str:
    from traces.rendering import pretty_json

    return pretty_json(value, limit=2000)


@register.inclusion_tag("traces/_shortened.html")
def shortened(shown: Any, base: str) -> dict[str, Any]:
    """Under a cut value: how much is left off, and "show all" / download links to the stored value.

    ``shown`` is anything with ``hidden_chars`` and ``ref`` (``ShownText``, ``ChatMessage``) or a
    ``ValueRef``; ``base`` is the page's URL (the trace page or the review item).
    """
    ref = getattr(shown, "ref", shown)
    hidden = getattr(shown, "hidden_chars", 0)
    partial = bool(ref is not None and getattr(ref, "partial", False))
    return {"show": bool(hidden) or partial, "hidden": hidden, "ref": ref, "base": base}


def _source_link(span: Any, span_url: str) -> SafeString:
    url = f"{span_url}?span={quote(span.span_id, safe='')}"
    return format_html(
        '<span class="badge type {1}">{2}</span>\xa0<a class="source-link" href="{0}#span-detail" hx-get="{0}" '
        'hx-target="#span-detail" hx-swap="outerHTML">{3}</a>',
        url,
        span_type_class(span.span_type),
        span.span_type,
        span.name,
    )


@register.simple_tag
def conversation_source(conversation: Any, span_url: str) -> str:
    """Which span the conversation shown comes from (``conversation.ConversationSpans``), with links."""
    source = conversation.source
    request, response, root = source.request, source.response, source.root
    if request is None and response is None:
        return ""
    if source.from_root:
        return format_html("From the root span {}.", _source_link(root, span_url))
    if source.same_span:
        return format_html(
            "From span {}: the root span <strong>{}</strong> recorded no request or response.",
            _source_link(request or response, span_url),
            root.name if root is not None else "",
        )

    def side(label: str, span: Any) -> SafeString:
        if span is None:
            return format_html("{} recorded by no span", label)
        where = "the root span" if root is not None and span.span_id == root.span_id else "span"
        return format_html("{} from {} {}", label, where, _source_link(span, span_url))

    return format_html("{} · {}.", side("Request", request), side("response", response))
