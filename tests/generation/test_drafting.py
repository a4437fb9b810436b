"""The drafting loop: generate, clean, check, regenerate the failing ones, keep the best.

The backend here is a scripted stand-in for the backend interface, so each attempt's text is
known and the loop's decisions can be asserted exactly. The real model runs through the same
loop in tests/worker/test_transformers_backend.py.
"""

import pytest

from generation.backends import BaseBackend, GenerationResult
from generation.drafting import DraftItem, draft_with_checks

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
GOOD = "Ensemble satisfaisant, des efforts à poursuivre à l'écrit."
GRADE = "Ensemble satisfaisant avec 14 de moyenne."
GRADE_AND_PERSONAL = "Tu as 14 de moyenne, bravo."
PERSONAL = "Tu fournis un travail sérieux."


class ScriptedBackend(BaseBackend):
    """Answers each key with the next text of its script and records every call."""

    def __init__(self, scripts, *, reverse=False, drop=None):
        super().__init__()
        self.scripts = {key: list(texts) for key, texts in scripts.items()}
        self.calls = []
        self.reverse = reverse
        self.drop = drop

    def model_info(self):
        return {"test_model": True}

    def generate(self, requests, *, seed=None, on_result=None, on_progress=None):
        # Hands nothing out as it comes: draft_with_checks takes the results at the end.
        self.calls.append(([request.key for request in requests], seed))
        results = [
            GenerationResult(key=request.key, text=self.scripts[request.key].pop(0))
            for request in requests
            if request.key != self.drop
        ]
        return results[::-1] if self.reverse else results


def items(*keys, **kwargs):
    return [DraftItem(key=key, messages=MESSAGES, **kwargs) for key in keys]


def test_passing_drafts_need_one_batch():
    backend = ScriptedBackend({"a": [GOOD], "b": [f"« {GOOD} »"]})
    outcomes = draft_with_checks(backend=backend, items=items("a", "b"), max_attempts=3, seed=7)
    assert backend.calls == [(["a", "b"], 7)]
    assert [(o.key, o.text, o.flags, o.attempts) for o in outcomes] == [
        ("a", GOOD, (), 1),
        ("b", GOOD, (), 1),
    ]
    assert outcomes[1].raw_texts == (f"« {GOOD} »",)  # the raw text, before cleaning
    assert all(outcome.ok for outcome in outcomes)


def test_only_failing_drafts_are_regenerated_in_one_batch_with_the_next_seed():
    backend = ScriptedBackend({"a": [GRADE, GOOD], "b": [GOOD], "c": [PERSONAL, PERSONAL, GOOD]})
    outcomes = draft_with_checks(
        backend=backend, items=items("a", "b", "c"), max_attempts=3, seed=100
    )
    assert backend.calls == [(["a", "b", "c"], 100), (["a", "c"], 101), (["c"], 102)]
    assert [(o.key, o.text, o.attempts, o.ok) for o in outcomes] == [
        ("a", GOOD, 2, True),
        ("b", GOOD, 1, True),
        ("c", GOOD, 3, True),
    ]
    assert outcomes[2].raw_texts == (PERSONAL, PERSONAL, GOOD)


def test_without_a_seed_every_attempt_is_unseeded():
    backend = ScriptedBackend({"a": [GRADE, GOOD]})
    draft_with_checks(backend=backend, items=items("a"), max_attempts=2, seed=None)
    assert [seed for _keys, seed in backend.calls] == [None, None]


def test_when_every_attempt_fails_the_least_bad_is_kept_with_its_flags():
    backend = ScriptedBackend({"a": [GRADE_AND_PERSONAL, PERSONAL, GRADE]})
    (outcome,) = draft_with_checks(backend=backend, items=items("a"), max_attempts=3, seed=1)
    assert outcome.attempts == 3
    assert outcome.text == PERSONAL  # personal (20) is lighter than grade (50) or both
    assert [flag.code for flag in outcome.flags] == ["personal"]
    assert outcome.raw_texts == (GRADE_AND_PERSONAL, PERSONAL, GRADE)
    assert not outcome.ok


def test_equally_bad_attempts_keep_the_first():
    backend = ScriptedBackend({"a": [PERSONAL, "Tu progresses bien."]})
    (outcome,) = draft_with_checks(backend=backend, items=items("a"), max_attempts=2, seed=1)
    assert outcome.text == PERSONAL
    assert outcome.attempts == 2


def test_item_constraints_reach_the_checks():
    text = "Emma fournit un travail régulier et sérieux."
    backend = ScriptedBackend({"a": [text], "b": [text], "c": [text], "d": [text]})
    drafts = [
        DraftItem(key="a", messages=MESSAGES),
        DraftItem(key="b", messages=MESSAGES, forbidden_names=("Emma Martin",)),
        DraftItem(key="c", messages=MESSAGES, banned_phrases=("régulier",)),
        DraftItem(key="d", messages=MESSAGES, max_chars=10),
    ]
    outcomes = draft_with_checks(backend=backend, items=drafts, max_attempts=1, seed=None)
    assert [[flag.code for flag in o.flags] for o in outcomes] == [
        [],
        ["name"],
        ["wording"],
        ["too_long_chars"],
    ]


def test_results_are_matched_by_key_and_returned_in_item_order():
    backend = ScriptedBackend({"a": [GOOD], "b": [GRADE], "c": [PERSONAL]}, reverse=True)
    outcomes = draft_with_checks(
        backend=backend, items=items("a", "b", "c"), max_attempts=1, seed=0
    )
    assert [(o.key, o.text) for o in outcomes] == [("a", GOOD), ("b", GRADE), ("c", PERSONAL)]


def test_a_missing_result_is_an_error_not_a_silent_drop():
    backend = ScriptedBackend({"a": [GOOD], "b": [GOOD]}, drop="b")
    with pytest.raises(RuntimeError, match="answered 1 of 2"):
        draft_with_checks(backend=backend, items=items("a", "b"), max_attempts=1, seed=0)


def test_no_items_no_generation():
    backend = ScriptedBackend({})
    assert draft_with_checks(backend=backend, items=[], max_attempts=3, seed=0) == []
    assert backend.calls == []


@pytest.mark.parametrize(
    ("drafts", "max_attempts", "message"),
    [
        (items("a"), 0, "max_attempts must be at least 1"),
        (items("a", "a"), 2, "keys must be unique"),
    ],
)
def test_invalid_arguments(drafts, max_attempts, message):
    with pytest.raises(ValueError, match=message):
        draft_with_checks(
            backend=ScriptedBackend({"a": [GOOD]}), items=drafts, max_attempts=max_attempts, seed=0
        )
