"""French grammar, spelling and typography, checked by Grammalecte (the model card's step 4,
« vérification longueur/ton/grammaire »).

Grammalecte comes from Debian's `python3-grammalecte` package (CI and both images install it):
it ships the code and its dictionaries, nothing is fetched at run time. `pygrammalecte` on PyPI
is not an option: it downloads Grammalecte from grammalecte.net on first use, which cannot
work in CI nor on a school's closed server.

Debian installs it for Debian's own Python, in /usr/lib/python3/dist-packages, which the
project's venv does not see. Putting that whole folder on sys.path would also expose every
other Debian Python package (old versions, compiled for another interpreter) to the project:
only the `grammalecte` package is imported from `GRAMMALECTE_PATH`, by file location. It is
pure Python and uses the standard library only. An installation importable from the venv
itself (`import grammalecte`) is used when the folder has none.

Without Grammalecte the platform works: the check reports itself unavailable (logged once,
shown by `manage.py check_model`) and invents no flag.

Pure module (no database). Loaded once per process, lazily on the first text (about 0.4 s
with the first parse, which compiles the rules), then a few milliseconds per text. Grammalecte
keeps its state in module globals: loading and every parse run under one lock.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from generation.flags import CheckFlag

logger = logging.getLogger(__name__)

DEFAULT_GRAMMALECTE_PATH = "/usr/lib/python3/dist-packages"

# The school's choice of space before « ; : ! ? » (classes.models.School.typographic_spaces).
SPACES_NONE = "none"  # no rule: the school does not ask for typographic spaces
SPACES_NARROW = "narrow"  # U+202F, the narrow no-break space (« espace fine insécable »)
SPACES_NBSP = "nbsp"  # U+00A0, the no-break space (« espace insécable »)
_SPACE_CHARS = {SPACES_NARROW: "\u202f", SPACES_NBSP: "\u00a0"}
_SPACE_NAMES = {SPACES_NARROW: "une espace fine insécable", SPACES_NBSP: "une espace insécable"}

# At most this many grammar, spelling and typography flags per text: a draft with more is
# regenerated anyway, and spelling suggestions cost a few milliseconds per word.
MAX_FLAGS = 8

# Longer « words » are noise (a pasted URL, a key held down): no suggestion is worth its cost.
_MAX_SUGGESTED_WORD = 30
# Grammalecte's options (gc_options) that judge typing habits, not French: the straight
# apostrophe of « l'élève » (what Pronote and every keyboard type), straight quotes and
# « ... », spaces the cleaning collapses anyway, units, numbers (the grade check's business),
# markup. Grammar, agreement, confusions, conjugation, hyphens and capitals stay on.
# « nbsp » (spaces before « ; : ! ? ») follows the school's choice.
_OPTIONS_OFF = ("apos", "typo", "eepi", "esp", "tab", "unit", "num", "nf", "chim", "latex", "md")
# Grammalecte's error types that are typography: flagged under their own, lighter code.
_TYPOGRAPHY_TYPES = frozenset({"nbsp", "esp", "typo", "apos", "unit"})
# Acronyms (SVT, HGGSP, EPS) are not in the dictionary and are not misspellings.
_ACRONYM = re.compile(r"^[A-ZÀ-Ý]{2,}$")
# A no-break space before « ; : ! ? » (of the kind the school did not choose: _space_kind_flags).
_NO_BREAK_BEFORE_PUNCT = re.compile(r"[\u00a0\u202f](?=[;:!?])")
# Where a typographic space goes: between a word and a run of « ; : ! ? » that ends a
# clause (followed by a space or the end), replacing the plain space if there is one. Not in
# « 14:30 » nor « http:// ».
_SPACE_SLOT = re.compile(r"(?<=[^\s;:!?])[ \u00a0\u202f]?(?=[;:!?]+(?:\s|$))")


@dataclass(frozen=True)
class GrammarStatus:
    available: bool
    detail: str  # where it was loaded from and its version, or why it is unavailable
    load_seconds: float = 0.0


_lock = threading.Lock()
_status: GrammarStatus | None = None
_checker = None  # grammalecte.GrammarChecker once loaded
_default_options: dict[str, bool] = {}


def configured_path() -> str:
    """`settings.GRAMMALECTE_PATH` when Django is configured, else Debian's folder."""
    try:
        from django.conf import settings

        if settings.configured:
            return getattr(settings, "GRAMMALECTE_PATH", DEFAULT_GRAMMALECTE_PATH)
    except ImportError:  # pragma: no cover - Django is always installed here
        pass
    return DEFAULT_GRAMMALECTE_PATH


def status() -> GrammarStatus:
    """Load Grammalecte once per process (logged once either way) and say whether it works."""
    global _status
    with _lock:
        if _status is None:
            _status = _load(configured_path())
            if _status.available:
                logger.info(
                    "Grammar checker loaded in %.2f s: %s", _status.load_seconds, _status.detail
                )
            else:
                logger.warning(
                    "Grammar checker unavailable, texts are not checked for grammar: %s",
                    _status.detail,
                )
        return _status


def reset() -> None:
    """Forget the loaded checker (tests, or a changed GRAMMALECTE_PATH)."""
    global _status, _checker
    with _lock:
        _status = None
        _checker = None
        _default_options.clear()


def _import_grammalecte(path: str):
    """The `grammalecte` package from `path` alone, or the venv's own, or None."""
    if "grammalecte" in sys.modules:
        return sys.modules["grammalecte"]
    package = Path(path) / "grammalecte" if path else None
    if package is not None and (package / "__init__.py").is_file():
        spec = importlib.util.spec_from_file_location(
            "grammalecte", package / "__init__.py", submodule_search_locations=[str(package)]
        )
        module = importlib.util.module_from_spec(spec)
        # Registered before it runs: its own modules import each other as grammalecte.*.
        sys.modules["grammalecte"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop("grammalecte", None)
            raise
        return module
    if importlib.util.find_spec("grammalecte") is not None:
        import grammalecte

        return grammalecte
    return None


def _load(path: str) -> GrammarStatus:
    global _checker
    started = time.perf_counter()
    try:
        grammalecte = _import_grammalecte(path)
        if grammalecte is None:
            return GrammarStatus(
                False,
                f"no grammalecte package in GRAMMALECTE_PATH ({path or 'empty'}) nor in the"
                " Python environment; install Debian's python3-grammalecte",
            )
        checker = grammalecte.GrammarChecker("fr")
        # Grammalecte's load() prints and swallows its own errors: check what it built.
        if checker.getSpellChecker() is None:
            return GrammarStatus(False, "Grammalecte loaded without its French dictionary")
        _default_options.update(checker.getGCEngine().getDefaultOptions())
        _checker = checker
        # The first parse compiles the rules (most of the load time): done now, under the lock.
        checker.getParagraphErrors("Les élèves sont sérieux.", dOptions=_options(SPACES_NBSP))
    except Exception as exc:  # a broken installation must not break drafting
        _checker = None
        return GrammarStatus(False, f"Grammalecte failed to load: {type(exc).__name__}: {exc}")
    engine = _checker.getGCEngine()
    location = Path(getattr(grammalecte, "__file__", "") or path).parent
    return GrammarStatus(
        True,
        f"Grammalecte {getattr(engine, 'version', '?')} from {location}",
        load_seconds=time.perf_counter() - started,
    )


def _options(typographic_spaces: str) -> dict[str, bool]:
    options = dict(_default_options)
    options.update(dict.fromkeys(_OPTIONS_OFF, False))
    options["nbsp"] = typographic_spaces in _SPACE_CHARS
    return options


def check(text: str, *, typographic_spaces: str = SPACES_NONE) -> list[CheckFlag]:
    """Grammar, spelling and typography flags of a text, one per error, in text order; none
    when Grammalecte is unavailable. Offsets are in characters (code points) of `text`."""
    if not text.strip() or not status().available:
        return []
    try:
        with _lock:
            grammar_errors, spelling_errors = _checker.getParagraphErrors(
                text, dOptions=_options(typographic_spaces)
            )
            grammar_errors = list(grammar_errors)
            flags = _grammar_flags(text, grammar_errors, typographic_spaces)
            flags += _spelling_flags(text, spelling_errors, grammar_errors)
    except Exception:  # Grammalecte choking on a text must not block a validation
        logger.exception("Grammalecte failed on a text of %s characters", len(text))
        return []
    flags += _space_kind_flags(text, typographic_spaces)
    flags.sort(key=lambda flag: (flag.start or 0, flag.code))
    return flags[:MAX_FLAGS]


def apply_typographic_spaces(text: str, typographic_spaces: str) -> str:
    """The school's space before « ; : ! ? », for the model's drafts only: a draft is not
    regenerated for a space, while a teacher's own text changes only on their click."""
    space = _SPACE_CHARS.get(typographic_spaces)
    if space is None:
        return text
    return _SPACE_SLOT.sub(space, text)


def _apostrophes_like(text: str, suggestions: Iterable[str]) -> list[str]:
    """Grammalecte suggests the typographic apostrophe (« C’est »): a text typed with the
    straight one (every keyboard, Pronote) gets its suggestions with the straight one."""
    if "’" in text:
        return list(suggestions)
    return [suggestion.replace("’", "'") for suggestion in suggestions]


def _excerpt(text: str, start: int, end: int) -> str:
    return text[start:end].strip() or text[start:end]


def _grammar_flags(text: str, errors: list[dict], typographic_spaces: str) -> list[CheckFlag]:
    flags = []
    for error in errors:
        start, end = int(error["nStart"]), int(error["nEnd"])
        message = " ".join(str(error.get("sMessage", "")).split())
        suggestions = _apostrophes_like(text, (str(s) for s in error.get("aSuggestions", ()) if s))
        if error.get("sType") in _TYPOGRAPHY_TYPES:
            space = _SPACE_CHARS.get(typographic_spaces)
            if error.get("sType") == "nbsp" and space:
                # Grammalecte suggests U+00A0 and accepts both kinds: the school chose one.
                suggestions = [
                    s.replace("\u00a0", space).replace("\u202f", space) for s in suggestions
                ]
                message = (
                    f"Il manque {_SPACE_NAMES[typographic_spaces]} (choix de l'établissement)."
                )
            code, label = "typography", "Typographie"
        else:
            code, label = "grammar", "Grammaire"
        flags.append(
            CheckFlag(
                code,
                f"{label} (« {_excerpt(text, start, end)} ») : {message}",
                start=start,
                end=end,
                original=text[start:end],
                suggestions=tuple(dict.fromkeys(suggestions))[:5],
            )
        )
    return flags


def _spelling_flags(
    text: str, errors: Iterable[dict], grammar_errors: list[dict]
) -> list[CheckFlag]:
    flagged = {(int(e["nStart"]), int(e["nEnd"])) for e in grammar_errors}
    flags = []
    for error in errors:
        word = str(error["sValue"])
        start, end = int(error["nStart"]), int(error["nEnd"])
        if _ACRONYM.match(word) or (start, end) in flagged:
            continue
        if len(flags) >= MAX_FLAGS:
            break
        suggestions = []
        if len(word) <= _MAX_SUGGESTED_WORD:
            groups = _checker.getSpellChecker().suggest(word)
            suggestions = _apostrophes_like(text, (s for group in groups for s in group))
        flags.append(
            CheckFlag(
                "spelling",
                f"Orthographe : « {word} » est absent du dictionnaire.",
                start=start,
                end=end,
                original=text[start:end],
                suggestions=tuple(dict.fromkeys(suggestions))[:5],
            )
        )
    return flags


def _space_kind_flags(text: str, typographic_spaces: str) -> list[CheckFlag]:
    """Grammalecte accepts either no-break space: the school's report cards use one kind."""
    space = _SPACE_CHARS.get(typographic_spaces)
    if space is None:
        return []
    return [
        CheckFlag(
            "typography",
            f"Typographie (« {text[m.end()]} ») : l'établissement demande"
            f" {_SPACE_NAMES[typographic_spaces]} avant « {text[m.end()]} ».",
            start=m.start(),
            end=m.end() + 1,
            original=text[m.start() : m.end() + 1],
            suggestions=(space + text[m.end()],),
        )
        for m in _NO_BREAK_BEFORE_PUNCT.finditer(text)
        if m.group() != space
    ]
