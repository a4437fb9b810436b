"""The order of a French class list, as bytes any database compares the same way.

Why ICU: SQLite and PostgreSQL under "C"/"C.UTF-8" sort names by code point (Bertrand before
Bénard, LE GALL before Lambert, Œuvray after Vincent, « de La Fontaine » last), and a libc
collation differs from one server to the next. ICU's French collation (CLDR) is the reference
for accents, case, ligatures and punctuation; a hand-written key would get some of them wrong.
Its sort key is plain bytes: stored in Student.sort_key, it orders the same under SQLite, under
any PostgreSQL collation, and in Python.
"""

from __future__ import annotations

import threading
import unicodedata

import icu

# ICU's merge separator: it sorts below every character at every strength, so the whole last
# name is compared (letters, then accents, then case) before the first name (ICU's documented
# way to sort a pair of fields, see ucol_mergeSortkeys).
FIELD_SEPARATOR = "\ufffe"

_local = threading.local()


def _collator() -> icu.Collator:
    # One collator per thread: ICU collators are cheap to keep, and not promised thread-safe.
    collator = getattr(_local, "collator", None)
    if collator is None:
        collator = icu.Collator.createInstance(icu.Locale("fr_FR"))
        # Spaces, apostrophes and hyphens are ignored but for breaking ties (N'Diaye before
        # Nguyen, « de La Fontaine » among the D's), as a French class list reads them.
        collator.setAttribute(
            icu.UCollAttribute.ALTERNATE_HANDLING, icu.UCollAttributeValue.SHIFTED
        )
        collator.setStrength(icu.Collator.QUATERNARY)
        collator.setAttribute(icu.UCollAttribute.NORMALIZATION_MODE, icu.UCollAttributeValue.ON)
        _local.collator = collator
    return collator


def _clean(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name or "").split())


def student_sort_key(last_name: str, first_name: str) -> bytes:
    """The key of a student in a French class list: last name, then first name."""
    return bytes(
        _collator().getSortKey(f"{_clean(last_name)}{FIELD_SEPARATOR}{_clean(first_name)}")
    )
