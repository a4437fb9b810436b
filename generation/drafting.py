"""Generate, clean, check and regenerate: a batch of drafts with their flags.

Pure module (no torch, no database): the caller passes a backend and plain items, and stores
the outcomes. Every item comes back: a draft that still fails after the last attempt is kept
(the least bad one) with its flags, for the teacher to judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from generation.backends import BaseBackend, GenerationRequest
from generation.checks import CheckFlag, check_text, clean_text, flag_severity
from generation.grammar import SPACES_NONE, apply_typographic_spaces


@dataclass(frozen=True)
class DraftItem:
    key: str
    messages: list[dict[str, str]]
    forbidden_names: tuple[str, ...] = ()
    banned_phrases: tuple[str, ...] = ()
    max_chars: int | None = None
    # The school's space before « ; : ! ? » (generation.grammar.SPACES_*).
    typographic_spaces: str = SPACES_NONE


@dataclass(frozen=True)
class DraftOutcome:
    key: str
    text: str
    flags: tuple[CheckFlag, ...]
    attempts: int
    # Every generated text, uncleaned, in attempt order: what the model really said.
    raw_texts: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.flags


@dataclass
class _Best:
    text: str
    flags: list[CheckFlag]
    raw_texts: list[str]


def draft_with_checks(
    *,
    backend: BaseBackend,
    items: Sequence[DraftItem],
    max_attempts: int,
    seed: int | None,
) -> list[DraftOutcome]:
    """One outcome per item, in the items' order.

    The whole batch is generated at once; only the items whose text fails a check are
    regenerated, again as one batch, up to max_attempts generations in all. With a seed,
    attempt i uses seed + i, so a regeneration does not repeat the text it replaces.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}.")
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("Draft item keys must be unique.")
    best: dict[str, _Best] = {}
    attempts: dict[str, int] = {}
    pending = list(items)
    for attempt in range(max_attempts):
        if not pending:
            break
        results = backend.generate(
            [GenerationRequest(key=item.key, messages=item.messages) for item in pending],
            seed=None if seed is None else seed + attempt,
        )
        by_key = {result.key: result for result in results}
        missing = [item.key for item in pending if item.key not in by_key]
        if missing or len(results) != len(pending):
            raise RuntimeError(
                f"The backend answered {len(results)} of {len(pending)} requests"
                f" (missing keys: {missing[:5]})."
            )
        still_failing = []
        for item in pending:
            raw = by_key[item.key].text
            # The school's typographic spaces are the platform's to set in a model's draft:
            # a draft is not regenerated for a space (a teacher's text is never retouched).
            text = apply_typographic_spaces(clean_text(raw), item.typographic_spaces)
            flags = check_text(
                text,
                forbidden_names=item.forbidden_names,
                banned_phrases=item.banned_phrases,
                max_chars=item.max_chars,
                typographic_spaces=item.typographic_spaces,
            )
            attempts[item.key] = attempt + 1
            previous = best.get(item.key)
            raw_texts = [*(previous.raw_texts if previous else []), raw]
            # Ties keep the earlier draft: a later one is not better for being later.
            if previous is None or flag_severity(flags) < flag_severity(previous.flags):
                best[item.key] = _Best(text=text, flags=flags, raw_texts=raw_texts)
            else:
                previous.raw_texts = raw_texts
            if flags:
                still_failing.append(item)
        pending = still_failing
    return [
        DraftOutcome(
            key=item.key,
            text=best[item.key].text,
            flags=tuple(best[item.key].flags),
            attempts=attempts[item.key],
            raw_texts=tuple(best[item.key].raw_texts),
        )
        for item in items
    ]
