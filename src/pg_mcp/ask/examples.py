"""Verified examples for the prompt: the few notes examples nearest to the question."""

from __future__ import annotations

from typing import Any

from pg_mcp.refs.notes import MAX_EXAMPLES_IN_PROMPT


def nearest(
    examples: list[dict[str, Any]], question: str, k: int = MAX_EXAMPLES_IN_PROMPT
) -> list[dict[str, Any]]:
    """The ``k`` examples whose questions share the most terms with ``question`` (token
    overlap, IDF-weighted over the examples; CJK bigrams count too). None shared: none."""
    import math

    from pg_mcp.ask.context import question_terms

    if not examples:
        return []
    q = question_terms(question)
    terms = [question_terms(str(e.get("question", ""))) for e in examples]
    df: dict[str, int] = {}
    for ts in terms:
        for t in ts:
            df[t] = df.get(t, 0) + 1
    n = len(examples)
    scored = []
    for i, ts in enumerate(terms):
        shared = q & ts
        score = sum(math.log(1.0 + n / df[t]) for t in shared)
        if score > 0:
            scored.append((-score, i))
    return [examples[i] for _, i in sorted(scored)[:k]]
