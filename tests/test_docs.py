"""The docs run as written (docs/testing.md, "The docs' own test").

Every ```sh block of README.md, docs/*.md and loadtests/README.md runs in a fresh bash, each
block on its own (nothing carries over from one block to the next, as in a new terminal),
against the stack `ADMIN_TOKEN=op-secret make run` starts: Redis from redis.conf with the
demo data, the API, a ticket key in var/. Here that stack runs on free ports in a temp dir
that links the repository's files, with a var/ of its own; the base URL
(`http://127.0.0.1:8000`) and Redis's port (6379) are the only words changed. Every block
runs twice, all of them once and then all again, against the same data: a walkthrough must
work again on what the first run left (sold seats, used customers). A block runs under
`set -e -o pipefail`, must exit 0, print no traceback, and show no problem+json `code` but
the ones its markers expect. Markers are HTML comments on the lines right before a block:

    <!-- norun: why it cannot run here (a server that runs until Ctrl-C, a JWT you supply) -->
    <!-- expects: ALREADY_CHECKED_IN -->  problem codes it shows on purpose (each must show)
    <!-- shows: text -->                   text its output must contain
    <!-- server: AUTH_MODE=jwt ... -->      the API `make run` starts with these variables
                                            (started here on the same Redis, once)

The other checks here are cheap: shell blocks are ```sh (so that none escapes the run), every
docs page is linked from the README, relative links and their anchors resolve, the pay
protocol's tables in docs/design.md are engine/pay.py's, and no page quotes the suite's size.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import engine.pay
from devstack.api_server import Server, default_server, server
from devstack.demo_stack import seed
from devstack.redis_server import RedisServer
from engine.tickets import new_key_pem

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
         REPO / "loadtests" / "README.md"]
SHELLS = {"sh", "bash", "shell", "console", "zsh", "shell-session"}
ADMIN_TOKEN = "op-secret"  # the one the docs' walkthroughs start `make run` with
FENCE = re.compile(r"^```(\S*)\s*$")
MARK = re.compile(r"^<!--\s*(norun|expects|shows|server):\s*(.*?)\s*-->\s*$")
CODE = re.compile(r'"code"\s*:\s*"([A-Z][A-Z_]+)"')


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    norun: str | None = None
    expects: set[str] = field(default_factory=set)
    shows: list[str] = field(default_factory=list)
    server: tuple[tuple[str, str], ...] = ()  # the API's variables beyond make run's
    marked: bool = False

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the markers on the lines right before it."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    marks: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        if m := MARK.match(lines[i]):
            marks.append((m[1], m[2]))
        elif f := FENCE.match(lines[i]):
            start, i = i, i + 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            b = Block(page, start + 1, f[1], "\n".join(lines[start + 1:i]), marked=bool(marks))
            for kind, value in marks:
                if kind == "norun":
                    b.norun = value
                elif kind == "expects":
                    b.expects |= set(value.split())
                elif kind == "server":
                    b.server = tuple(tuple(v.split("=", 1)) for v in value.split())
                else:
                    b.shows.append(value)
            found.append(b)
            marks = []
        else:
            marks = []  # a marker belongs to the block right below it, nothing else
        i += 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]
RUNNABLE = [b for b in ALL if b.lang == "sh" and b.norun is None]


def test_every_shell_block_is_sh_and_every_marker_is_on_one() -> None:
    assert RUNNABLE, "no runnable block found: is the fence syntax still ```sh?"
    for b in ALL:
        assert b.lang not in SHELLS - {"sh"}, f"{b.where}: write ```sh, so that the run sees it"
        assert not b.marked or b.lang == "sh", f"{b.where}: a marker on a ```{b.lang} block"
        if b.norun is not None:
            assert b.norun, f"{b.where}: say why the block cannot run (<!-- norun: why -->)"
            assert not (b.expects or b.shows or b.server), f"{b.where}: norun and a run's marker"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose(page: Path) -> str:
    """The page without its fenced blocks."""
    lines, in_fence = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence:
            lines.append(line)
    return "\n".join(lines)


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page).splitlines():
        if m := re.match(r"^#{1,6} (.+)$", line):
            s = slug(m[1])
            out.add(f"{s}-{seen[s]}" if s in seen else s)
            seen[s] = seen.get(s, 0) + 1
    return out


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_links_resolve_and_the_readme_links_every_page() -> None:
    for page in PAGES:
        for target in LINK.findall(prose(page)):
            if re.match(r"[a-z]+:", target):
                continue  # http:, mailto:
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.relative_to(REPO)}: a link to {target}: no such file"
            if anchor and dest.suffix == ".md":
                assert anchor in anchors(dest), \
                    f"{page.relative_to(REPO)}: a link to {target}: no such heading"
    readme = (REPO / "README.md").read_text()
    for doc in sorted((REPO / "docs").glob("*.md")):
        assert f"](docs/{doc.name}" in readme, f"README.md does not link docs/{doc.name}"


def test_the_pay_tables_in_the_design_page_are_engine_pay() -> None:
    def rows(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines()
                if re.match(r"\s*(state|record)\s{2,}", line)
                or re.match(r"\s*(HELD|PAYING|PAID|\(none\)|D:|V:|any|other)\b.*\s{2,}", line)]

    ours = rows((REPO / "docs" / "design.md").read_text())
    assert ours and ours == rows(engine.pay.__doc__ or ""), \
        "docs/design.md's pay tables differ from engine/pay.py's docstring: copy them over"


def test_no_page_quotes_the_suite_size() -> None:
    """The number of tests and the suite's time change with every commit: pytest prints them."""
    for page in PAGES:
        for m in re.finditer(r"\b\d[\d,]*\s+(tests|passed|skipped)\b", page.read_text()):
            raise AssertionError(f"{page.relative_to(REPO)}: {m[0]!r}: let pytest say it")


# --- the run -----------------------------------------------------------------------------
@dataclass
class Stack:
    work: Path  # the shell's working directory: the repository's files, a var/ of its own
    redis: RedisServer
    env: dict[str, str]  # the API's, as make run sets it
    apis: dict[tuple[tuple[str, str], ...], Server] = field(default_factory=dict)

    def api(self, extra: tuple[tuple[str, str], ...] = ()) -> Server:
        """make run's API, with ``extra`` variables set: one server each, started once."""
        if extra not in self.apis:
            self.apis[extra] = server(default_server(), "api.app:app",
                                      {**self.env, **dict(extra)}).start()
        return self.apis[extra]

    def script(self, block: Block) -> str:
        """The block as written, but for the ports of this stack."""
        port = self.api(block.server).port
        text = block.text.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        text = text.replace("localhost:8000", f"127.0.0.1:{port}")
        text = text.replace("127.0.0.1:6379", f"127.0.0.1:{self.redis.port}")
        return re.sub(r"\bredis-cli\b(?! -p)", f"redis-cli -p {self.redis.port}", text)

    def shell_env(self) -> dict[str, str]:
        """A new terminal's: no venv on PATH, nothing the test process set."""
        path = [p for p in os.environ["PATH"].split(":") if "/.venv" not in p]
        return {"PATH": ":".join(path), "HOME": str(self.work / "var"), "LANG": "C.UTF-8",
                "TERM": "dumb"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("redis-server") is None:
        pytest.exit("redis-server is not on PATH: run `make test`, which installs it", 2)
    if missing := [c for c in ("curl", "bash", "python3") if shutil.which(c) is None]:
        pytest.skip(f"{', '.join(missing)} not on PATH: the docs' snippets use them")
    work = tmp_path_factory.mktemp("docs")
    for entry in REPO.iterdir():
        if entry.name not in {"var", ".git"}:
            (work / entry.name).symlink_to(entry)
    key = work / "var" / "ticket-signing-key.pem"
    key.parent.mkdir()
    key.write_text(new_key_pem())
    key.chmod(0o600)
    redis_server = RedisServer(work / "var").start()
    stack = Stack(work, redis_server, {"REDIS_URL": redis_server.url, "ADMIN_TOKEN": ADMIN_TOKEN,
                                      "TICKET_SIGNING_KEY_FILE": str(key)})
    try:
        seed(redis_server.url)
        stack.api()
        yield stack
    finally:
        for api in stack.apis.values():
            api.stop()
        redis_server.stop()


@pytest.mark.parametrize("block", [pytest.param(b, id=f"run{n}-{b.where}")
                                   for n in (1, 2) for b in RUNNABLE])
def test_the_block_runs(stack: Stack, block: Block) -> None:
    with subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", stack.script(block)],
                          cwd=stack.work, env=stack.shell_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as shell:
        try:
            out, err = shell.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)  # the block's children too
            out, err = shell.communicate()
            raise AssertionError(f"{block.where}: still running after 30 s\n{out}\n{err}") from None
    done = subprocess.CompletedProcess(shell.args, shell.returncode, out, err)
    said = f"{block.where}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, said
    assert "Traceback" not in done.stdout + done.stderr, said
    assert set(CODE.findall(done.stdout)) == block.expects, said
    for text in block.shows:
        assert text in done.stdout, f"{text!r} not shown: {said}"
