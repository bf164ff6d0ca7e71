"""Every value a doc table labels as a paper's quotes the paper, and the quote is in the paper's text.

A table row whose last cell (its source) starts with ``Deng`` or ``Revisiting`` must hold at least one
``"quote"``; each quote must appear in that paper's text in ``../shared/papers/`` (case, whitespace and
typographic quotes normalised; ``[...]`` marks an editorial insertion, left out of the match). Skipped
when the papers are not there (``$JAXRLVR_PAPERS`` or ``../shared/papers`` beside the checkout: the
development machine only)."""

import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAPERS = pathlib.Path(os.environ.get("JAXRLVR_PAPERS") or ROOT.parent / "shared" / "papers").expanduser()
FILES = {
    "Deng": "decomposing_entropy_performance_exchange_2508.02260.md",
    "Revisiting": "revisiting_entropy_in_rlvr_2511.05993.md",
}
DOCS = ("docs/training.md", "docs/algorithms.md", "docs/ood_eval.md")


def _norm(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text).strip().lower()


def sourced_rows():
    """(doc, row text, paper, [quotes]) for every table row whose source cell starts with a paper's name."""
    out = []
    for doc in DOCS:
        for line in (ROOT / doc).read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
            if len(cells) < 2:
                continue
            source = cells[-1]
            paper = next((p for p in FILES if source.startswith(p)), None)
            if paper:
                out.append((doc, line, paper, re.findall(r'"([^"]+)"', source)))
    return out


ROWS = sourced_rows()


def test_the_doc_tables_cite_both_papers():
    assert {p for _, _, p, _ in ROWS} == set(FILES) and len(ROWS) >= 30


@pytest.mark.skipif(not PAPERS.is_dir(), reason="../shared/papers is not here")
@pytest.mark.parametrize("doc,row,paper,quotes", ROWS, ids=[f"{d}:{r[:60]}" for d, r, _, _ in ROWS])
def test_each_quoted_value_is_in_the_papers_text(doc, row, paper, quotes):
    assert quotes, f"{doc}: a value sourced to {paper} quotes nothing: {row}"
    text = _norm((PAPERS / FILES[paper]).read_text())
    for q in quotes:
        parts = [_norm(p) for p in re.split(r"\[[^\]]*\]", q) if p.strip()]
        assert all(p in text for p in parts), f"{doc}: {q!r} is not in {FILES[paper]}"
