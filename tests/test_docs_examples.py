"""Every ```python block of README.md and docs/**/*.md runs as written.

Each page's blocks run in order in one fresh namespace (as a reader pasting them into one
session would), in a fresh working directory. The pages of one test worker share one Python
process, which imports TensorFlow once (about 8 s a page otherwise) and clears Keras' session
and matplotlib's figures between pages; the process is restarted after a page that fails.
A block that is not meant to run is marked in the page source: `<!-- no-run -->` on the line
before its fence.
"""

import json
import os
import re
import select
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
    import contextlib, io, json, os, sys, traceback
    protocol = os.fdopen(os.dup(1), "w")     # replies; fd 1 now goes to the log (fd 2), so
    os.dup2(2, 1)                             # output from C code cannot garble them
    import keras, tensorflow, tfp_flows       # noqa: F401  (imported once for every page)
    import matplotlib.pyplot as plt           # Agg: MPLBACKEND in PageRunner's environment
    for request in sys.stdin:
        cwd, blocks = json.loads(request)
        os.chdir(cwd)
        output, ok = io.StringIO(), True
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            namespace = {"__name__": "__main__"}
            try:
                for name, source in blocks:
                    print(f"--- {name}", flush=True)
                    exec(compile(source, name, "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                ok = False
        keras.backend.clear_session()
        plt.close("all")
        protocol.write(json.dumps([ok, output.getvalue()[-6000:]]) + "\\n")
        protocol.flush()
""")


class PageRunner:
    """One long-lived Python process that runs pages on request (see the module docstring)."""

    def __init__(self, workdir):
        self.workdir, self.process = Path(workdir), None
        (self.workdir / "runner.py").write_text(RUNNER)

    def _start(self):
        env = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
        self.log = open(self.workdir / "runner.log", "w")  # noqa: SIM115  (kept open)
        self.process = subprocess.Popen([sys.executable, str(self.workdir / "runner.py")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True, cwd=self.workdir, env=env)

    def run(self, blocks, cwd, timeout=1800):
        """(ok, the page's printed output and traceback)."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        self.process.stdin.write(json.dumps([str(cwd), blocks]) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        reply = self.process.stdout.readline() if ready else ""
        if not reply:  # crashed or timed out: report the log, start afresh next time
            self.close()
            log = (self.workdir / "runner.log").read_text()[-6000:]
            return False, f"the page runner died or timed out after {timeout} s\n{log}"
        ok, output = json.loads(reply)
        if not ok:
            self.close()  # a failed page may leave state behind: the next page starts clean
        return ok, output

    def close(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.log.close()
        self.process = None


@pytest.fixture(scope="session")
def page_runner(tmp_path_factory):
    runner = PageRunner(tmp_path_factory.mktemp("page_runner"))
    yield runner
    runner.close()


def _id(page):
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)], ids=_id)
def test_page_examples_run_as_written(page, tmp_path, page_runner):
    blocks = [(f"{_id(page)}:{line}", src) for line, src in runnable(page)]
    ok, output = page_runner.run(blocks, tmp_path)
    assert ok, f"{_id(page)}: an example failed\n{output}"


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
