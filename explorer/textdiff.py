"""Word-level differences between the full and the ablated model's answers, as highlighted HTML."""

from __future__ import annotations

import difflib
import html

# Shape carries the meaning (struck through / bold underlined); the colours (orange and blue, Okabe-Ito) only help.
REMOVED_STYLE = "background:#f0c48a;text-decoration:line-through;"
ADDED_STYLE = "background:#9fd0f0;font-weight:600;text-decoration:underline;"


def word_diff(full: str, ablated: str) -> list[tuple[str, str]]:
    """(tag, text) runs: tag "same", "removed" (only in the full answer) or "added" (only in the ablated one)."""
    a, b = full.split(), ablated.split()
    runs: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            runs.append(("same", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            runs.append(("removed", " ".join(a[i1:i2])))
        if j2 > j1:
            runs.append(("added", " ".join(b[j1:j2])))
    return runs


def highlight(full: str, ablated: str) -> tuple[str, str]:
    """HTML of both answers with the words that differ marked (escaped: model output is never trusted)."""
    full_parts, ablated_parts = [], []
    for tag, text in word_diff(full, ablated):
        escaped = html.escape(text)
        if tag == "same":
            full_parts.append(escaped)
            ablated_parts.append(escaped)
        elif tag == "removed":
            full_parts.append(f'<span style="{REMOVED_STYLE}" title="not in the ablated answer">{escaped}</span>')
        else:
            ablated_parts.append(f'<span style="{ADDED_STYLE}" title="not in the full answer">{escaped}</span>')
    return " ".join(full_parts) or "<i>(empty)</i>", " ".join(ablated_parts) or "<i>(empty)</i>"


def comparison_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    """An HTML table of (prompt, full answer, ablated answer, full verdict, ablated verdict): the differences in
    the answers highlighted, a changed verdict in bold. Every text is escaped and kept on one line, so the table
    stays one HTML block that markdown leaves alone."""
    lines = ['<table style="width:100%;border-collapse:collapse;font-size:0.9rem">',
             "<thead><tr><th style='text-align:left'>Prompt</th><th style='text-align:left'>Full model</th>"
             "<th style='text-align:left'>Components off</th></tr></thead><tbody>"]
    for prompt, full, ablated, full_verdict, ablated_verdict in rows:
        full_html, ablated_html = highlight(full, ablated)
        shown_verdict = html.escape(ablated_verdict)
        if ablated_verdict != full_verdict:
            shown_verdict = f"<b>{shown_verdict} (was {html.escape(full_verdict)})</b>"
        lines.append(
            "<tr style='border-top:1px solid #ccc'>"
            f"<td style='vertical-align:top;padding:4px'>{html.escape(' '.join(prompt.split()))}</td>"
            f"<td style='vertical-align:top;padding:4px'>{full_html}<br><small>{html.escape(full_verdict)}"
            "</small></td>"
            f"<td style='vertical-align:top;padding:4px'>{ablated_html}<br><small>{shown_verdict}</small></td></tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)
