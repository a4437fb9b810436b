"""Generate, clean, check and regenerate: a batch of drafts with their flags.

Pure module (no torch, no database): the caller passes a backend and plain items, and stores
the outcomes. Every item comes back: a draft that still fails after the last attempt is kept
(the least bad one) with its flags, for the teacher to judge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from generation.backends import (
    BaseBackend,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
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
    on_outcome: Callable[[DraftOutcome], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[DraftOutcome]:
    """One outcome per item, in the items' order.

    The whole batch is generated at once; only the items whose text fails a check are
    regenerated, again as one batch, up to max_attempts generations in all. With a seed,
    attempt i uses seed + i, so a regeneration does not repeat the text it replaces.

    on_outcome, when given, gets each item's final outcome as soon as it is known: a text
    that passes, or the last attempt's best; while the backend still generates the others
    when the backend hands out results as they come (BaseBackend.generate's on_result).
    on_progress is handed to the backend.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}.")
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("Draft item keys must be unique.")
    best: dict[str, _Best] = {}
    attempts: dict[str, int] = {}
    final: dict[str, DraftOutcome] = {}
    pending = list(items)
    for attempt in range(max_attempts):
        if not pending:
            break
        by_item = {item.key: item for item in pending}
        seen: dict[str, GenerationResult] = {}
        still_failing: list[str] = []
        last = attempt == max_attempts - 1

        def take(
            result: GenerationResult,
            *,
            attempt=attempt,
            by_item=by_item,
            seen=seen,
            still_failing=still_failing,
            last=last,
        ) -> None:
            item = by_item.get(result.key)
            if item is None or result.key in seen:
                return  # an unknown or repeated key: the count check below says so
            seen[result.key] = result
            if _judge(item, result.text, attempt=attempt, best=best, attempts=attempts):
                still_failing.append(item.key)
                if not last:
                    return
            final[item.key] = _outcome(item.key, best=best, attempts=attempts)
            if on_outcome is not None:
                on_outcome(final[item.key])

        results = backend.generate(
            [GenerationRequest(key=item.key, messages=item.messages) for item in pending],
            seed=None if seed is None else seed + attempt,
            on_result=take,
            on_progress=on_progress,
        )
        by_key = {result.key: result for result in results}
        missing = [item.key for item in pending if item.key not in by_key]
        if missing or len(results) != len(pending):
            raise RuntimeError(
                f"The backend answered {len(results)} of {len(pending)} requests"
                f" (missing keys: {missing[:5]})."
            )
        # A backend that does not hand results out as they come: all of them now.
        for item in pending:
            if item.key not in seen:
                take(by_key[item.key])
        failing = set(still_failing)
        pending = [item for item in pending if item.key in failing and item.key not in final]
    return [final[item.key] for item in items]


def _judge(
    item: DraftItem,
    raw: str,
    *,
    attempt: int,
    best: dict[str, _Best],
    attempts: dict[str, int],
) -> list[CheckFlag]:
    """Clean and check one generated text, keep it if it is the item's best; its flags."""
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
    return flags


def _outcome(key: str, *, best: dict[str, _Best], attempts: dict[str, int]) -> DraftOutcome:
    return DraftOutcome(
        key=key,
        text=best[key].text,
        flags=tuple(best[key].flags),
        attempts=attempts[key],
        raw_texts=tuple(best[key].raw_texts),
    )
