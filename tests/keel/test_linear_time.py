"""Every regular expression Keel runs on text runs in time linear in that text.

Questions, documents, answers and schemas are written by whoever sends them, and one pattern
that backtracks on a run of spaces freezes the process that evaluates it (the GIL is held while
it does). So the rule is structural, and tested from two sides:

- each pattern is a module-level constant, where this test can find it (an AST check forbids
  compiling or calling `re` with a literal inside a function, so a new pattern cannot hide);
- each pattern found by walking Keel's modules is fed adversarial texts built from its own
  words and from the characters that make patterns backtrack (runs of whitespace, repeated
  words, nested near-matches, a mismatch at the end), at 1x, 10x and 100x size, and the time
  ratio between sizes must stay near the size ratio. A ratio is compared, never a time, so a
  slow or busy machine does not fail it; a superlinear pattern's ratio is 100x per 10x of size.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import pkgutil
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every room of Keel whose code may see text from a caller or a document.
PACKAGES = [
    "keel", "contracts", "encoders", "ingestion", "index", "vectorstore", "stores", "observability", "temporal",
    "gateway", "retrieval", "caches", "guardrails", "generation", "pipelines", "activities", "workflows", "app",
    "api", "cli", "infra", "evaluation", "bench", "conversations",
]  # fmt: skip
RE_CALLS = {"compile", "search", "match", "fullmatch", "findall", "finditer", "sub", "subn", "split"}
# Ten times the size may cost this many times the time before a pattern counts as superlinear.
# Linear patterns measure 5-12 here (a fixed cost per call makes small sizes relatively dear);
# quadratic ones measure near 100 and cubic ones near 1,000.
MAX_RATIO = 30.0
# A single search that takes this long at the smallest size is a failure on its own.
MAX_BASE_SECONDS = 0.05
# A measurement that runs this long is stopped and counts as superlinear: linear patterns take
# well under a tenth of it at 16,000 characters even on a busy machine; a superlinear one would
# take minutes or hours there.
CAP_SECONDS = 3.0


def _modules() -> Iterator[str]:
    for package in PACKAGES:
        yield package
        path = ROOT / package
        for info in pkgutil.walk_packages([str(path)], prefix=f"{package}."):
            yield info.name


def _patterns_in(value: object, depth: int = 0) -> Iterator[re.Pattern[str]]:
    if isinstance(value, re.Pattern):
        if isinstance(value.pattern, str):
            yield value
    elif depth < 2 and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _patterns_in(item, depth + 1)
    elif depth < 2 and isinstance(value, dict):
        for item in value.values():
            yield from _patterns_in(item, depth + 1)


def _all_patterns() -> dict[str, re.Pattern[str]]:
    found: dict[str, re.Pattern[str]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            for i, pattern in enumerate(_patterns_in(value)):
                found.setdefault(f"{pattern.pattern}/{pattern.flags}", pattern)
                _OWNER.setdefault(f"{pattern.pattern}/{pattern.flags}", f"{name}.{attr}[{i}]")
    return found


_OWNER: dict[str, str] = {}
_WORD_IN_SOURCE = re.compile(r"[A-Za-z]{2,}")
_ESCAPE = re.compile(r"\\.")
# Characters that make patterns backtrack: separators, word characters of each class, the
# punctuation patterns anchor on, and a non-ASCII letter (some text takes another engine).
RUNS = [" ", "\n", "\t", " \n", "a", "A", "1", "_", ".", ",", "-", "'", "[", "]", "<", ">", ":", "#", "*", '"', "é"]


def _words(pattern: re.Pattern[str]) -> list[str]:
    """The literal words a pattern looks for, which an attacker would repeat to lead it on."""
    words = _WORD_IN_SOURCE.findall(_ESCAPE.sub(" ", pattern.pattern))
    return sorted(set(words), key=words.index)[:12]


def adversarial(pattern: re.Pattern[str], n: int) -> Iterator[tuple[str, str]]:
    """(shape, text) pairs of about n repetitions each."""
    for c in RUNS:
        yield f"run {c!r}", c * n
        yield f"word then run {c!r} then mismatch", "x" + c * n + "!"
    for w in [*_words(pattern), "Ab", "ab1"]:
        for sep in (" ", "  ", "\n", ", ", "-"):
            yield f"{w!r} repeated with {sep!r}", (w + sep) * n + "!"
        yield f"{w!r} then spaces then mismatch", w + " " * n + "x"
        yield f"{w!r} then spaces and tabs then mismatch", w + " \t" * n + "x"
        yield f"{w!r}. repeated", (w + ". ") * n
        yield f"{w!r} nested near-matches", (w[: max(1, len(w) - 1)] + " ") * n + w[:-1]


class _TooSlow(Exception):
    pass


def _raise_too_slow(signum: int, frame: object) -> None:
    raise _TooSlow


@contextlib.contextmanager
def _cap(seconds: float) -> Iterator[None]:
    """Interrupt a search past `seconds` (Python's regex engine checks for signals as it runs),
    then give the alarm back to pytest-timeout as it was."""
    handler = signal.signal(signal.SIGALRM, _raise_too_slow)
    left, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if left:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, left - (time.monotonic() - started)))


def _seconds(pattern: re.Pattern[str], text: str) -> float:
    """The best of up to three timings of a search and a substitution over `text`; infinity if
    the measurement ran past CAP_SECONDS."""
    best = float("inf")
    try:
        with _cap(CAP_SECONDS):
            for _ in range(3):
                loops = 0
                start = time.perf_counter()
                while True:
                    pattern.search(text)
                    pattern.sub("", text)
                    loops += 1
                    elapsed = time.perf_counter() - start
                    if elapsed > 0.002 or loops >= 50:
                        break
                best = min(best, elapsed / loops)
                if elapsed > 0.05:  # one long call is measurement enough
                    break
    except _TooSlow:
        return float("inf")
    return best


def _grows(pattern: re.Pattern[str], small: str, large: str) -> str | None:
    """Why the step from `small` to `large` (ten times its size) is superlinear, if it is."""
    for _ in range(3):  # measured three times before failing: a busy machine can stall a measurement
        t_small = _seconds(pattern, small)
        if t_small > MAX_BASE_SECONDS:
            return f"{t_small * 1000:.0f} ms at {len(small)} chars"
        t_large = _seconds(pattern, large)
        if t_large / t_small <= MAX_RATIO:
            return None
    if t_large == float("inf"):
        return f"over {CAP_SECONDS} s at {len(large)} chars"
    return f"x{t_large / t_small:.0f} from {len(small)} to {len(large)} chars"


def superlinear(pattern: re.Pattern[str], base: int = 16, first: bool = False) -> list[str]:
    """The shapes on which ten times the text costs over MAX_RATIO times the time (the first
    one only, when `first`)."""
    sizes = [dict(adversarial(pattern, base * k)) for k in (1, 10, 100)]
    slow = []
    for shape in sizes[0]:
        why = _grows(pattern, sizes[0][shape], sizes[1][shape]) or _grows(pattern, sizes[1][shape], sizes[2][shape])
        if why:
            slow.append(f"{shape}: {why}")
            if first:
                break
    return slow


PATTERNS = _all_patterns()


def test_the_walk_finds_the_patterns_that_screen_untrusted_text() -> None:
    owners = set(_OWNER.values())
    for expected in ("guardrails.injection._COMPILED", "ingestion.chunk._SENTENCE_END", "keel.words.BM25_TOKEN"):
        assert any(o.startswith(expected) for o in owners), expected
    assert len(PATTERNS) > 50


@pytest.mark.parametrize("key", sorted(PATTERNS), ids=lambda k: _OWNER[k])
def test_pattern_runs_in_linear_time(key: str) -> None:
    slow = superlinear(PATTERNS[key])
    assert not slow, f"{_OWNER[key]} ({PATTERNS[key].pattern[:120]!r}) is superlinear on: {slow}"


def test_a_superlinear_pattern_is_caught() -> None:
    # The check itself must be able to fail: nested quantifiers over a run of spaces.
    assert superlinear(re.compile(r"\s+(?:a\s+)?\s*\s*x"), first=True)
    assert superlinear(re.compile(r"^(\w+\s?)*$"), first=True)
    assert superlinear(re.compile(r"\s+x"), first=True)  # quadratic: a search starts at every space
    assert not superlinear(re.compile(r"(?<!\s)\s+x"))


def _inline_regex_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.func.attr in RE_CALLS
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} re.{node.func.attr}")
    return found


def test_patterns_are_module_constants_where_the_walk_finds_them() -> None:
    inline = [c for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py")) for c in _inline_regex_calls(p)]
    assert not inline, f"compile these at module level so the linear-time test sees them: {inline}"
