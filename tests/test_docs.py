"""The documentation stays true to the tree: generated pages are fresh, links resolve, limits hold.

``docs/results.md`` and ``benchmarks/results/SUMMARY.md`` are generated from the results files by
``benchmarks/make_docs.py``; a results file added, moved or rerun without regenerating them fails here. The
README keeps to what a newcomer reads (150 lines, 1,600 words, prose lines of at most 120 characters), and no
docstring in ``src/`` runs past 40 lines: the long reasoning lives in ``docs/decisions.md``.
"""

import ast
import re
import sys
from pathlib import Path

import pytest

from _paths import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import make_docs

DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_DOCSTRING_LINES = 40


def test_generated_docs_match_the_results_files():
    stale = [p.relative_to(REPO).as_posix() for p in make_docs.stale()]
    assert not stale, (
        f"{stale} out of date with benchmarks/results/: run .venv/bin/python benchmarks/make_docs.py"
    )


def test_every_results_folder_is_a_section_of_results_md():
    text = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    folders = [p for p in (REPO / "benchmarks" / "results").iterdir() if p.is_dir() and any(p.glob("*.md"))]
    assert folders
    for folder in folders:
        for f in folder.glob("*.md"):
            if f.name.startswith(
                "_tmp"
            ):  # a running lane's provisional table (git-ignored; make_docs skips it)
                continue
            assert f"](../benchmarks/results/{folder.name}/{f.name})" in text, f"{f} not in docs/results.md"
    loose = [p.name for p in (REPO / "benchmarks" / "results").glob("*.md") if p.name != "SUMMARY.md"]
    assert not loose, (
        f"results files outside a study folder: {loose} (move them to benchmarks/results/<study>/)"
    )


def test_a_new_results_file_makes_the_docs_stale(tmp_path, monkeypatch):
    """The freshness check can fail: a results file the generated pages do not know about is caught."""
    results = tmp_path / "results"
    (results / "fvmgn_speed").mkdir(parents=True)
    (results / "fvmgn_speed" / "cpu_batch64.md").write_text(
        "# FVMGN training speed\n\n## Key numbers\n\n- a: 1\n"
    )
    monkeypatch.setattr(make_docs, "RESULTS", results)
    monkeypatch.setattr(make_docs, "SUMMARY", results / "SUMMARY.md")
    monkeypatch.setattr(make_docs, "RESULTS_DOC", tmp_path / "results_doc.md")
    for path, text in make_docs.outputs().items():
        path.write_text(text, encoding="utf-8")
    assert make_docs.stale() == []
    (results / "new_study").mkdir()
    (results / "new_study" / "speed.md").write_text("# New\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert make_docs.stale() == [tmp_path / "results_doc.md"]
    assert "| 1 | 2 |" in make_docs.render_results()
    assert "## New study" in make_docs.render_results()


def _prose_lines(text: str) -> list[str]:
    """Lines outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def test_readme_is_short_enough_to_read():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    assert len(text.split()) <= 1600
    long = [line[:60] for line in _prose_lines(text) if len(line) > 120]
    assert not long, f"README prose lines over 120 characters: {long}"


def test_readme_starts_with_the_two_commands():
    lines = [
        ln for ln in (REPO / "README.md").read_text(encoding="utf-8").splitlines() if ln.startswith("bash ")
    ]
    assert lines[:2] == [
        "bash scripts/setup.sh && RSMG_DATA_ROOT=../shared/data bash scripts/main_job.sh",
        "bash scripts/setup.sh && .venv/bin/python -m pytest -q",
    ]


def _anchors(markdown: str) -> set[str]:
    """Explicit ``<a id>`` anchors and GitHub's heading anchors (lower case, punctuation dropped, ``-``)."""
    ids = set(re.findall(r'<a id="([^"]+)"', markdown))
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.M):
        ids.add(make_docs.anchor(heading))
    return ids


@pytest.mark.parametrize("page", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    missing = []
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"^\[[^\]]+\]: (\S+)", text, flags=re.M)
    for target in targets:
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists() or (
            anchor and path.suffix == ".md" and anchor not in _anchors(path.read_text(encoding="utf-8"))
        ):
            missing.append(target)
    assert not missing, f"{page.name}: links to missing files or anchors {missing}"


def test_code_points_only_at_sections_that_exist():
    """``docs/decisions.md#x`` in a docstring or comment names a section of decisions.md."""
    anchors = _anchors((REPO / "docs" / "decisions.md").read_text(encoding="utf-8"))
    cited = {
        (p.relative_to(REPO).as_posix(), a)
        for folder in ("src", "benchmarks", "experiments")
        for p in (REPO / folder).rglob("*")
        if p.suffix in {".py", ".yaml"}
        for a in re.findall(r"decisions\.md#([\w-]+)", p.read_text(encoding="utf-8"))
    }
    assert cited, "no code cites docs/decisions.md (the pattern is wrong)"
    unknown = sorted((p, a) for p, a in cited if a not in anchors)
    assert not unknown, f"decisions.md has no section for {unknown}"


def _docstrings(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                out.append((getattr(node, "name", "<module>"), len(doc.splitlines())))
    return out


def test_no_docstring_runs_past_40_lines():
    long = [
        f"{p.relative_to(REPO)}:{name} ({n} lines)"
        for p in sorted((REPO / "src").rglob("*.py"))
        for name, n in _docstrings(p)
        if n > MAX_DOCSTRING_LINES
    ]
    assert not long, (
        f"docstrings over {MAX_DOCSTRING_LINES} lines (move the reasoning to docs/decisions.md): {long}"
    )


def test_the_docstring_check_counts_lines(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""One.\n\nTwo.\n"""\n\n\ndef g():\n    """' + "x\n" * 41 + '    """\n')
    assert dict(_docstrings(f)) == {"<module>": 3, "g": 42}


MAX_MODULE_LINES = 600  # issue 23: a module longer than this holds more than one responsibility


def test_no_module_in_src_runs_past_600_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in sorted((REPO / "src").rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by responsibility): {long}"


@pytest.mark.parametrize(
    "path", sorted((REPO / "benchmarks" / "results").glob("*/*.md")), ids=lambda p: p.stem
)
def test_a_results_file_that_standardises_a_target_with_its_own_statistics_says_transductive(path):
    """Issue 21: no transductive number is presented without the word (old per-scene-standardised runs)."""
    text = path.read_text(encoding="utf-8")
    if any(k in text for k in ("per-scene standardised", "scene-standardised", "standardize_stats: scene")):
        assert "transductive" in text.lower(), f"{path.name}: add the transductive note (see ablations.md)"


def test_the_summary_carries_the_transductive_note_of_the_files_it_digests():
    text = (REPO / "benchmarks" / "results" / "fvmgn_accuracy" / "ablations.md").read_text(encoding="utf-8")
    note = next(ln for ln in text.splitlines() if ln.startswith("> **Transductive"))
    assert make_docs.digest(text)[0] == note
    assert note in (REPO / "benchmarks" / "results" / "SUMMARY.md").read_text(encoding="utf-8")
