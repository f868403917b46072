"""Every ```python block of README.md and docs/**/*.md runs as written.

One process per page, its blocks in order in one namespace (as a reader pasting them into one
session would), in a fresh working directory. A block that is not meant to run is marked in
the page source: `<!-- no-run -->` on the line before its fence.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
NO_RUN = "<!-- no-run -->"
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>.*)$")


def code_blocks(text):
    """[(first line number, language, source, marked no-run)] of the fenced blocks of `text`."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        language = (m["info"].strip().split() or [""])[0]
        previous = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[i + 1:j]]
        blocks.append((i + 2, language, "\n".join(body), previous == NO_RUN))
        i = j + 1
    return blocks


def runnable(page):
    return [(line, src) for line, language, src, no_run in code_blocks(page.read_text())
            if language == "python" and not no_run]


RUNNER = textwrap.dedent("""
    import json, sys
    blocks = json.load(open(sys.argv[1]))
    namespace = {"__name__": "__main__"}
    for name, source in blocks:
        print(f"--- {name}", flush=True)
        exec(compile(source, name, "exec"), namespace)
""")


def _id(page):
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)], ids=_id)
def test_page_examples_run_as_written(page, tmp_path):
    blocks = [(f"{_id(page)}:{line}", src) for line, src in runnable(page)]
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "runner.py", "blocks.json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, (
        f"{_id(page)}: an example failed\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")


def test_no_run_markers_sit_before_python_blocks_and_are_few():
    marked = []
    for page in PAGES:
        text = page.read_text()
        blocks = code_blocks(text)
        assert text.count(NO_RUN) == sum(no_run for *_, no_run in blocks), (
            f"{_id(page)}: a {NO_RUN} marker is not right before a code fence")
        marked += [(page, line) for line, language, _, no_run in blocks if no_run]
        assert all(language == "python" for _, language, _, no_run in blocks if no_run), (
            f"{_id(page)}: {NO_RUN} marks a block that is not Python")
    runs = sum(len(runnable(p)) for p in PAGES)
    assert len(marked) * 5 <= runs, f"{len(marked)} blocks marked no-run of {runs}: {marked}"


def test_code_blocks_are_parsed():
    text = "a\n\n```python\nx = 1\n```\n<!-- no-run -->\n```python\ny = 2\n```\n```bash\nls\n```\n"
    assert code_blocks(text) == [(4, "python", "x = 1", False), (8, "python", "y = 2", True),
                                 (11, "bash", "ls", False)]


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [src for _, language, src, _ in code_blocks(readme)
                if language == "bash" and "pytest" in src]
    assert len(commands) == 1 and commands[0] in ci, (
        "README's test command must appear verbatim in .ci/run")
