"""Post-processing and checks of a generated appréciation (the model card's step 4).

Pure module (no torch, no database). A flag is a warning for the teacher, who always reviews
the text; drafting also uses flags to decide which drafts to regenerate. Messages are in French
because teachers read them; codes are stable identifiers for code and logs.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable

from common.text import strip_accents

from . import grammar
from .flags import CheckFlag

MIN_WORDS = 1
# The prompt asks for fewer than 40 words and the system prompt for 1 to 40: the prompt wins.
MAX_WORDS = 40
# Texts this short say too little for a language detector to judge reliably.
LANGUAGE_MIN_WORDS = 3
# What an erasure (privacy.student_data) writes in place of a student's name in the feedback
# rows it keeps: the row stays (a log of a validation, a dataset row); the dataset export
# leaves out the rows that contain it.
PLACEHOLDER = "[élève]"

# Circulaire 99-104: comments must be precise and benevolent, never vague or humiliating.
# Schools extend this list in the admin (passed as banned_phrases).
DEFAULT_BANNED_PHRASES: tuple[str, ...] = (
    "peut mieux faire",
    "pourrait mieux faire",
    "nul",
    "nulle",
    "nuls",
    "nulles",
    "catastrophique",
    "paresseux",
    "paresseuse",
    "fainéant",
    "fainéante",
    "bon à rien",
    "bonne à rien",
    "aucun effort",
    "lamentable",
    "médiocre",
    "désastreux",
    "désastreuse",
    "irrécupérable",
    "stupide",
    "idiot",
    "idiote",
    "incapable",
    "cancre",
    "minable",
    "pitoyable",
    "honteux",
    "honteuse",
    "sans espoir",
    "perdu d'avance",
)
# Idioms that contain a banned word without judging the student.
_HARMLESS_IDIOMS = ("nul doute", "nulle part")

# Lower weight = lighter flag. A leaked name is the worst (personal data in a report card),
# then a leaked grade (the prompt forbids it), then a text the teacher cannot use as is.
# A grammar or spelling error is a real fault in a report card, yet less grave than a leak or
# a vague or hurtful wording; a typographic space is the lightest.
SEVERITY = {
    "name": 100,
    "grade": 50,
    "language": 40,
    "wording": 30,
    "grammar": 25,
    "spelling": 25,
    "personal": 20,
    "length": 10,
    "too_long_chars": 10,
    "typography": 5,
}
# Codes that flag each error on its own (a span and its suggestions); the others, once a text.
PER_ERROR_CODES = frozenset({"grammar", "spelling", "typography"})

_SINGLE_QUOTES = "'‘’"
_OPENING_QUOTES = '"«“„'
_CLOSING_QUOTES = '"»”'
_DOUBLE_QUOTES = '"«»“”„'
_QUOTES = _DOUBLE_QUOTES + _SINGLE_QUOTES
_SENTENCE_END = ".!?…"
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "`": "'"})

# Words that are numbers: a grade written in letters ("quinze sur vingt", "douze et demi").
# "un"/"une" are articles and "premier", "second", "troisième" name terms: never flagged.
_NUMBER_WORDS = frozenset(
    {
        "zero",
        "deux",
        "trois",
        "quatre",
        "cinq",
        "six",
        "sept",
        "huit",
        "neuf",
        "dix",
        "onze",
        "douze",
        "treize",
        "quatorze",
        "quinze",
        "seize",
        "vingt",
        "vingts",
    }
)
# "les deux trimestres", "ces trois trimestres", "les deux premiers": counting terms, not grades.
_TERM_COUNT_FOLLOWERS = frozenset({"trimestre", "trimestres", "premiers", "derniers"})
# "les deux" means "both".
_BOTH_PRECEDERS = frozenset({"les", "des", "aux", "ces"})
# "neuf" is also "new" ("un regard neuf sur"): a grade only in a grading phrase.
_NEUF_GRADE_FOLLOWERS = frozenset({"points", "virgule", "sur vingt", "sur dix", "de moyenne"})
_NEUF_GRADE_PRECEDERS = frozenset({"obtenu", "moyenne", "moyenne de", "note de"})
# "1er trimestre", "2nde", "3e": a term or a class level, not a grade.
_ORDINAL = re.compile(r"\b[123](?:er|re|ère|ere|e|ème|eme|nd|nde|d|de)\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")

# Impersonal style (the card's system prompt): the comment speaks about the student, neither
# to them ("tu", "vous") nor as the teacher's "je". "nous"/"notre" are left alone: the
# institutional "nous l'encourageons" is common and accepted in French report cards.
_PERSONAL_WORDS = frozenset(
    {"tu", "toi", "ton", "ta", "tes", "te", "je", "me", "moi", "mon", "ma", "mes"}
    | {"vous", "votre", "vos"}
)
_PERSONAL_ELIDED = ("t'", "j'", "m'")

_SPACE_RUN = re.compile(r"\s+")
_KEPT_SPACES = frozenset("\u00a0\u202f")


def _one_space(match: re.Match) -> str:
    return match.group() if match.group() in _KEPT_SPACES else " "


_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def normalize(text: str) -> str:
    """Casefold, strip accents and unify apostrophes, for accent- and case-insensitive matching."""
    return unicodedata.normalize("NFC", strip_accents(text.translate(_APOSTROPHES).casefold()))


def word_count(text: str) -> int:
    """Words as a teacher counts them: "l'élève" and "peut-être" count once."""
    return sum(1 for token in text.split() if any(ch.isalnum() for ch in token))


def collapse_spaces(text: str) -> str:
    """One line, single spaces, trimmed; a lone no-break space (U+00A0) or narrow no-break
    space (U+202F) stays as it is: it is the school's typographic space before « ; : ! ? »."""
    return _SPACE_RUN.sub(_one_space, text).strip()


def clean_text(raw: str) -> str:
    """Tidy a generated text: one line, no surrounding quotes, no unfinished last sentence."""
    text = collapse_spaces(raw)
    text = _strip_quotes(text)
    text = _cut_unfinished_sentence(text)
    return _strip_quotes(text)


def check_text(
    text: str,
    *,
    forbidden_names: Iterable[str] = (),
    banned_phrases: Iterable[str] = (),
    max_chars: int | None = None,
    typographic_spaces: str = "none",
) -> list[CheckFlag]:
    """Every problem found in a (cleaned) text: at most one flag per code, except grammar,
    spelling and typography (Grammalecte), one flag per error with its span and suggestions.

    `typographic_spaces` is the school's space before « ; : ! ? » (see generation.grammar).
    """

    flags = [
        _check_length(text),
        _check_grade(text),
        _check_names(text, forbidden_names),
        _check_language(text),
        _check_personal(text),
        _check_wording(text, banned_phrases),
        _check_chars(text, max_chars),
    ]
    found = [flag for flag in flags if flag is not None]
    # Grammar and spelling mean nothing in another language, or in an empty text.
    if word_count(text) and not any(flag.code == "language" for flag in found):
        # A student's name is not in the dictionary: the name flag says it already, and a
        # spelling flag would quote it once more in the stored flags.
        names = {variant for name in forbidden_names for variant in _name_variants(name)}
        found += [
            flag
            for flag in grammar.check(text, typographic_spaces=typographic_spaces)
            if not (flag.code == "spelling" and normalize(flag.original) in names)
        ]
    return found


def flag_severity(flags: Iterable[CheckFlag]) -> int:
    """A score to rank failing drafts: 0 for none, lower is better.

    Each code counts its weight once, and each further error of a per-error code (grammar,
    spelling, typography) one point more: three misspellings are worse than one, and never as
    grave as a leaked name.
    """
    seen: set[str] = set()
    score = 0
    for flag in flags:
        if flag.code in seen:
            score += 1
            continue
        seen.add(flag.code)
        score += SEVERITY.get(flag.code, max(SEVERITY.values()))
    return score


# --- clean_text helpers ---


def _strip_quotes(text: str) -> str:
    while True:
        before = text
        text = text.strip()
        inner = text[1:-1]
        # «Bon» et «bien» is two quotations, not one quoted text: only strip a pair that
        # encloses no other double quote.
        if (
            len(text) >= 2
            and text[0] in _QUOTES
            and text[-1] in _QUOTES
            and not any(ch in _DOUBLE_QUOTES for ch in inner)
        ):
            text = inner.strip()
        # No French word starts or ends a text with an apostrophe: a single quote there is
        # punctuation. A lone double quote is a leftover of an answer cut before its end.
        text = text.strip(_SINGLE_QUOTES + " ")
        if text[:1] in _OPENING_QUOTES and not any(ch in _CLOSING_QUOTES for ch in text[1:]):
            text = text[1:]
        if text[-1:] in _CLOSING_QUOTES and not any(ch in _OPENING_QUOTES for ch in text[:-1]):
            text = text[:-1]
        if text == before:
            return text


def _cut_unfinished_sentence(text: str) -> str:
    stripped = text.rstrip(_QUOTES + ") ")
    if not stripped or stripped[-1] in _SENTENCE_END:
        return text
    # A sentence ends at . ! ? … followed by a space (not "12.5" or "M.Dupont").
    last_end = -1
    for index, char in enumerate(text):
        if char in _SENTENCE_END and (index + 1 == len(text) or text[index + 1] == " "):
            last_end = index
    if last_end <= 0:
        return text  # no complete sentence: keep what there is, the checks will judge it
    return text[: last_end + 1].strip()


# --- checks ---


def _check_length(text: str) -> CheckFlag | None:
    count = word_count(text)
    if count < MIN_WORDS:
        return CheckFlag("length", "L'appréciation est vide.")
    if count > MAX_WORDS:
        return CheckFlag(
            "length",
            f"L'appréciation compte {count} mots : elle doit en compter {MAX_WORDS} au plus.",
        )
    return None


def _check_grade(text: str) -> CheckFlag | None:
    found: list[str] = []
    without_ordinals = _ORDINAL.sub(" ", text)
    if _DIGIT.search(without_ordinals):
        found.extend(re.findall(r"\d+(?:[.,]\d+)?(?:\s*/\s*\d+)?", without_ordinals))
    words = re.findall(r"[a-z]+", normalize(text))
    for index, word in enumerate(words):
        if word not in _NUMBER_WORDS:
            continue
        previous = words[index - 1] if index > 0 else ""
        following = words[index + 1] if index + 1 < len(words) else ""
        if following in _TERM_COUNT_FOLLOWERS:
            continue
        if word == "deux" and previous in _BOTH_PRECEDERS:
            continue
        if word == "neuf" and not _is_neuf_grade(words, index):
            continue
        found.append(word)
    if not found:
        return None
    return CheckFlag(
        "grade",
        "Une note ou un nombre apparaît dans l'appréciation ("
        + ", ".join(dict.fromkeys(found))
        + ") : les notes ne doivent pas y figurer.",
    )


def _is_neuf_grade(words: list[str], index: int) -> bool:
    after = {" ".join(words[index + 1 : index + 1 + size]) for size in (1, 2)}
    before = {" ".join(words[max(0, index - size) : index]) for size in (1, 2)}
    return bool(after & _NEUF_GRADE_FOLLOWERS or before & _NEUF_GRADE_PRECEDERS)


def _check_names(text: str, forbidden_names: Iterable[str]) -> CheckFlag | None:
    normalized = normalize(text)
    found = []
    for name in forbidden_names:
        for variant in _name_variants(name):
            if _contains_phrase(normalized, variant):
                found.append(name.strip())
                break
    if not found:
        return None
    return CheckFlag(
        "name",
        "Un nom d'élève apparaît dans l'appréciation ("
        + ", ".join(dict.fromkeys(found))
        + ") : retirez-le avant de valider.",
    )


# Particles of compound names ("Le Gall", "da Silva") match as part of the full name only.
_NAME_PARTICLES = frozenset(
    {"de", "du", "des", "le", "la", "les", "d", "l", "van", "von", "der", "den", "da", "di", "dos"}
    | {"del", "della", "el", "al", "ben", "bin", "ibn", "mac", "mc", "y", "e", "et"}
)


def _name_variants(name: str) -> list[str]:
    """The full name, then each meaningful part of it: "Jean-Pierre Le Gall" gives
    "jean-pierre le gall", "jean-pierre", "jean", "pierre", "gall"."""
    full = " ".join(normalize(name).split())
    if not full:
        return []
    variants = [full]
    for part in full.split(" "):
        pieces = [part, *part.split("-")] if "-" in part else [part]
        for piece in pieces:
            piece = piece.strip("-'")
            if len(piece) >= 2 and piece not in _NAME_PARTICLES and piece not in variants:
                variants.append(piece)
    return variants


def _contains_phrase(normalized_text: str, normalized_phrase: str, *, plural: bool = False) -> bool:
    words = normalized_phrase.split()
    if not words:
        return False
    pattern = r"\s+".join(re.escape(word) for word in words)
    if plural:
        pattern += "s?"  # "nul" also catches "nuls", "médiocre" "médiocres"
    # Whole words: "Emma" matches in "d'Emma" but "Pierre" does not in "Jean-Pierre".
    return re.search(rf"(?<![\w-]){pattern}(?![\w-])", normalized_text) is not None


_detector = None
_detector_lock = threading.Lock()


def _language_detector():
    """Built once per process: loading the language models takes a moment and memory."""
    global _detector
    with _detector_lock:
        if _detector is None:
            from lingua import Language, LanguageDetectorBuilder

            _detector = LanguageDetectorBuilder.from_languages(
                Language.FRENCH,
                Language.ENGLISH,
                Language.SPANISH,
                Language.GERMAN,
                Language.ITALIAN,
                Language.PORTUGUESE,
            ).build()
        return _detector


_LANGUAGE_NAMES = {
    "ENGLISH": "anglais",
    "SPANISH": "espagnol",
    "GERMAN": "allemand",
    "ITALIAN": "italien",
    "PORTUGUESE": "portugais",
}


def _check_language(text: str) -> CheckFlag | None:
    if word_count(text) < LANGUAGE_MIN_WORDS:
        return None
    language = _language_detector().detect_language_of(text)
    if language is None or language.name == "FRENCH":
        return None
    name = _LANGUAGE_NAMES.get(language.name, language.name.lower())
    return CheckFlag(
        "language", f"L'appréciation ne semble pas rédigée en français (langue détectée : {name})."
    )


def _check_personal(text: str) -> CheckFlag | None:
    found = []
    for token in _WORD.findall(normalize(text)):
        head = token.split("'")[0]
        if token in _PERSONAL_WORDS or head in _PERSONAL_WORDS:
            found.append(head)
        elif any(token.startswith(prefix) for prefix in _PERSONAL_ELIDED):
            found.append(token[:2])
    if not found:
        return None
    return CheckFlag(
        "personal",
        "L'appréciation n'est pas au style impersonnel ("
        + ", ".join(dict.fromkeys(found))
        + ") : elle doit parler de l'élève à la troisième personne.",
    )


def _check_wording(text: str, banned_phrases: Iterable[str]) -> CheckFlag | None:
    normalized = normalize(text)
    for idiom in _HARMLESS_IDIOMS:
        normalized = re.sub(rf"(?<![\w']){re.escape(idiom)}(?!\w)", " ", normalized)
    found = []
    for phrase in (*DEFAULT_BANNED_PHRASES, *banned_phrases):
        key = " ".join(normalize(phrase).split())
        if key and _contains_phrase(normalized, key, plural=True):
            found.append(phrase.strip())
    if not found:
        return None
    return CheckFlag(
        "wording",
        "Formulation à éviter, peu bienveillante ou trop vague ("
        + ", ".join(f"« {phrase} »" for phrase in dict.fromkeys(found))
        + ").",
    )


def _check_chars(text: str, max_chars: int | None) -> CheckFlag | None:
    if max_chars is None or len(text) <= max_chars:
        return None
    return CheckFlag(
        "too_long_chars",
        f"L'appréciation compte {len(text)} caractères, au-delà de la limite de {max_chars}"
        " fixée par l'établissement.",
    )


# Single checks, for the callers that need one of them alone (the dataset export leaves out
# rows quoting a grade or a name; an erasure replaces a student's names in kept feedback).
check_grade = _check_grade
check_names = _check_names
name_variants = _name_variants


# Words of a school's name that name no place or person ("Lycée Émile-Zola": "lycée" alone
# would match every text that mentions a lycée). Compared normalized (no accents, casefolded).
INSTITUTION_WORDS = frozenset(
    {"lycee", "college", "ecole", "etablissement", "cite", "scolaire", "groupe", "ensemble"}
    | {"general", "generale", "technologique", "professionnel", "professionnelle"}
    | {"polyvalent", "polyvalente", "agricole", "prive", "privee", "public", "publique"}
    | {"international", "internationale", "institut", "lgt", "lp", "lpo", "ept", "saint"}
    | {"sainte", "st", "ste", "notre", "dame", "des", "metiers"}
)
# A maximal run of word characters and hyphens: the boundaries _contains_phrase matches at.
_RUN = re.compile(r"[\w-]+")
_SIMPLE_VARIANT = re.compile(r"^[\w-]+$")


class KnownNames:
    """Many names matched against many texts, as check_names matches them, in linear time.

    check_names runs one regular expression per name variant: fine for a class, too slow for a
    whole school's students and staff against every text of a dataset. A one-word variant
    matches exactly where it equals a whole run of word characters and hyphens of the text, so
    those are looked up in a set; the few others (several words, an apostrophe, a dot in a
    username or an e-mail) keep the regular expression.
    """

    def __init__(self, names: Iterable[str], *, ignore: Iterable[str] = ()) -> None:
        ignored = frozenset(ignore)
        self.words: dict[str, str] = {}
        self.phrases: dict[str, str] = {}
        for name in names:
            if not name or not name.strip():
                continue
            for variant in _name_variants(name):
                if variant in ignored:
                    continue
                target = self.words if _SIMPLE_VARIANT.match(variant) else self.phrases
                target.setdefault(variant, name.strip())

    def __bool__(self) -> bool:
        return bool(self.words or self.phrases)

    def found(self, text: str) -> list[str]:
        """The names the text quotes (each once), as they were given."""
        normalized = normalize(text)
        found = [self.words[run] for run in _RUN.findall(normalized) if run in self.words]
        found += [
            name for phrase, name in self.phrases.items() if _contains_phrase(normalized, phrase)
        ]
        return list(dict.fromkeys(found))
