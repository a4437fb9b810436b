"""The rows a training run learns from: the pseudonymous rows of the dataset export (its own
code, exports.dataset and exports.builders, not a copy), from the schools whose feedback may
train shared models, split into train / validation / test by student AND teacher.

The split keeps every student's texts, and every teacher's, on one side: rows are the edges of
the student–teacher graph, and each connected component goes to one split (the largest
first, equal sizes in the order of a salted hash, each to the split furthest below its
target: deterministic, balanced).
Where one component holds nearly everything (a school's teachers share their classes), students
and teachers are each hashed to a split and the rows joining two sides are left out (counted).
Nothing written by this module names a student or a teacher, nor carries a database id.

A local copy of the original dataset (`eltorio/appreciation`, Parquet or CSV) may be added to
the train split only: its rows have no student or teacher, and the held-out splits measure the
platform's own teachers.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from classes.models import School
from exports import builders
from exports.dataset import dataset_selection, validated_prompt
from generation.checks import MAX_WORDS, check_grade, word_count
from generation.models import Feedback

TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
SPLITS = (TRAIN, VALIDATION, TEST)

SFT = "sft"
DPO = "dpo"
# The export format each method trains on (TRL's conversational rows).
METHOD_FORMATS = {SFT: builders.CHAT_JSONL, DPO: builders.PREFERENCE_JSONL}

SPLIT_BY_COMPONENTS = "components"
SPLIT_BY_CUT = "cut"


class TrainingDataError(ValueError):
    """A French message for the person who started the run."""


@dataclass
class TrainingData:
    """TRL rows per split (plain dicts, as the export writes them) and their snapshot."""

    method: str
    splits: dict[str, list[dict]]
    schools: int
    left_out: Counter = field(default_factory=Counter)
    split_strategy: str = SPLIT_BY_COMPONENTS
    original_rows: int = 0

    def counts(self) -> dict[str, int]:
        return {name: len(self.splits[name]) for name in SPLITS}

    def content_sha256(self) -> str:
        """A hash of every row and the split it is in: any changed row changes it."""
        digest = hashlib.sha256()
        for name in SPLITS:
            for row in self.splits[name]:
                digest.update(name.encode())
                digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
                digest.update(b"\n")
        return digest.hexdigest()

    def snapshot(self) -> dict:
        sha = self.content_sha256()
        return {
            "id": f"snapshot-{sha[:12]}",
            "sha256": sha,
            "method": self.method,
            "rows": self.counts(),
            "schools": self.schools,
            "split": self.split_strategy,
            "left_out": dict(self.left_out),
            "original_dataset_rows": self.original_rows,
            "original_dataset_in": TRAIN if self.original_rows else None,
        }

    def write(self, folder: Path) -> None:
        """One JSONL file per split (the rows carry no name and no database id)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in SPLITS:
            lines = "".join(
                json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"
                for row in self.splits[name]
            )
            (folder / f"{name}.jsonl").write_text(lines, encoding="utf-8")
        (folder / "snapshot.json").write_text(
            json.dumps(self.snapshot(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )

    @classmethod
    def read(cls, folder: Path) -> TrainingData:
        snapshot = json.loads((folder / "snapshot.json").read_text(encoding="utf-8"))
        splits = {
            name: [
                json.loads(line)
                for line in (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            for name in SPLITS
        }
        return cls(
            method=snapshot["method"],
            splits=splits,
            schools=snapshot["schools"],
            left_out=Counter(snapshot.get("left_out") or {}),
            split_strategy=snapshot["split"],
            original_rows=snapshot.get("original_dataset_rows", 0),
        )


def opted_in_school_ids() -> list[int]:
    return list(
        School.objects.filter(feedback_trains_shared_models=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def school_row_counts() -> list[tuple[School, int]]:
    """Each opted-in school and its number of training rows (the chat export's), for the page."""
    return [
        (school, len(dataset_selection(fmt=builders.CHAT_JSONL, school_id=school.pk).rows))
        for school in School.objects.filter(feedback_trains_shared_models=True).order_by("name")
    ]


def training_data_build(
    *,
    method: str = SFT,
    original_dataset_path: str | Path | None = None,
    validation_share: float | None = None,
    test_share: float | None = None,
) -> TrainingData:
    """The rows of the opted-in schools, split by student and teacher, plus the original
    dataset's rows in the train split when a path is given."""
    if method not in METHOD_FORMATS:
        raise TrainingDataError(f"Méthode d'entraînement inconnue : {method}.")
    shares = {
        VALIDATION: (
            settings.APPRECIATION_TRAINING_VALIDATION_SHARE
            if validation_share is None
            else validation_share
        ),
        TEST: settings.APPRECIATION_TRAINING_TEST_SHARE if test_share is None else test_share,
    }
    shares[TRAIN] = 1.0 - shares[VALIDATION] - shares[TEST]
    split = _split_dataset_rows(method=method, shares=shares)
    builder = builders.DATASET_BUILDERS[METHOD_FORMATS[method]]
    data = TrainingData(
        method=method,
        splits={name: _trl_rows(builder(split.rows[name]), method=method) for name in SPLITS},
        schools=split.schools,
        left_out=split.left_out,
        split_strategy=split.strategy,
    )
    if original_dataset_path:
        if method != SFT:
            raise TrainingDataError(
                "Le jeu de données d'origine n'a pas de brouillons écartés : il ne sert qu'à"
                " l'apprentissage supervisé (SFT), pas aux préférences (DPO)."
            )
        original = original_dataset_rows(original_dataset_path)
        data.splits[TRAIN].extend(_trl_rows(builders.dataset_chat_jsonl(original), method=SFT))
        data.original_rows = len(original)
    return data


@dataclass
class _SplitRows:
    rows: dict[str, list[builders.DatasetRow]]
    schools: int
    left_out: Counter
    strategy: str


def _split_dataset_rows(*, method: str, shares: dict[str, float]) -> _SplitRows:
    """The export's rows of the opted-in schools, assigned to train / validation / test."""
    school_ids = opted_in_school_ids()
    rows: list[builders.DatasetRow] = []
    left_out: Counter = Counter()
    for school_id in school_ids:
        selection = dataset_selection(fmt=METHOD_FORMATS[method], school_id=school_id)
        rows.extend(selection.rows)
        left_out.update({str(reason): count for reason, count in selection.left_out.items()})
    people = _people_of_rows(rows)
    assignment, strategy, cross = _assign_splits(rows, people=people, shares=shares)
    if cross:
        left_out["student_and_teacher_on_two_sides"] += cross
    return _SplitRows(
        rows={name: [row for row in rows if assignment.get(id(row)) == name] for name in SPLITS},
        schools=len(school_ids),
        left_out=left_out,
        strategy=strategy,
    )


def held_out_rows(*, row_ids: set[int] | None = None) -> list[builders.DatasetRow]:
    """The test split's rows as the export builds them (with their pseudonymous inputs), for
    the evaluation: today's split, or, given a training run's test ids, those of its rows that
    still exist (an erased student's rows are gone from both)."""
    shares = {
        VALIDATION: settings.APPRECIATION_TRAINING_VALIDATION_SHARE,
        TEST: settings.APPRECIATION_TRAINING_TEST_SHARE,
    }
    shares[TRAIN] = 1.0 - shares[VALIDATION] - shares[TEST]
    split = _split_dataset_rows(method=SFT, shares=shares)
    if row_ids is None:
        return split.rows[TEST]
    return [row for name in SPLITS for row in split.rows[name] if row.row_id in row_ids]


def _trl_rows(content: bytes, *, method: str) -> list[dict]:
    """The export's JSONL lines as dicts. SFT: the last (assistant) message becomes the
    completion, so the loss is on the teacher's text only, not on the fixed prompt."""
    result = []
    for line in content.decode("utf-8").splitlines():
        row = json.loads(line)
        if method == SFT:
            messages = row.pop("messages")
            row["prompt"] = messages[:-1]
            row["completion"] = messages[-1:]
        result.append(row)
    return result


def _people_of_rows(rows: list[builders.DatasetRow]) -> dict[int, tuple[int | None, int | None]]:
    """feedback id -> (student id, teacher id); in memory only. One query."""
    feedback_ids = {row.feedback_id for row in rows if row.feedback_id is not None}
    return {
        pk: (student_id, teacher_id)
        for pk, student_id, teacher_id in Feedback.objects.filter(pk__in=feedback_ids).values_list(
            "pk", "appreciation__student_id", "validated_by_id"
        )
    }


def _salted_fraction(key: str) -> float:
    salt = settings.APPRECIATION_TRAINING_SPLIT_SALT
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _row_nodes(row, people) -> list[str]:
    student_id, teacher_id = people.get(row.feedback_id, (None, None))
    nodes = []
    if student_id is not None:
        nodes.append(f"s{student_id}")
    if teacher_id is not None:
        nodes.append(f"t{teacher_id}")
    # A row whose student and teacher are both gone (erased) stands alone.
    return nodes or [f"r{row.row_id}"]


def _assign_splits(rows, *, people, shares) -> tuple[dict[int, str], str, int]:
    """row (by id()) -> split; the strategy; the rows left out for joining two sides."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    row_nodes = [_row_nodes(row, people) for row in rows]
    for nodes in row_nodes:
        root = find(nodes[0])
        for node in nodes[1:]:
            other = find(node)
            if other != root:
                parent[max(root, other)] = min(root, other)
                root = min(root, other)
    components: dict[str, list[int]] = defaultdict(list)
    for index, nodes in enumerate(row_nodes):
        components[find(nodes[0])].append(index)
    total = len(rows)
    # The component's smallest node names it whatever the order rows came in.
    members: dict[str, str] = {}
    for node in list(parent):
        root = find(node)
        members[root] = min(members.get(root, node), node)
    # Largest first (the small ones then fill the gaps), the salted hash between equals.
    order = sorted(
        components,
        key=lambda root: (
            -len(components[root]),
            _salted_fraction(members[root]),
            members[root],
        ),
    )
    filled = dict.fromkeys(SPLITS, 0)
    by_component: dict[int, str] = {}
    for root in order:
        size = len(components[root])
        # The split furthest below its target number of rows.
        name = max(
            (split for split in SPLITS if shares[split] > 0),
            key=lambda split: (shares[split] * total - filled[split], -SPLITS.index(split)),
        )
        filled[name] += size
        for index in components[root]:
            by_component[index] = name
    held_out_empty = total and any(
        shares[name] > 0 and filled[name] == 0 for name in (VALIDATION, TEST)
    )
    if not held_out_empty:
        return (
            {id(rows[index]): name for index, name in by_component.items()},
            SPLIT_BY_COMPONENTS,
            0,
        )
    # One component holds (nearly) everything: each person gets a split, and a row stays only
    # where its student and its teacher are on the same side.
    bounds = [(shares[TRAIN], TRAIN), (shares[TRAIN] + shares[VALIDATION], VALIDATION)]

    def side(node: str) -> str:
        value = _salted_fraction(node)
        for bound, name in bounds:
            if value < bound:
                return name
        return TEST

    result: dict[int, str] = {}
    cross = 0
    for row, nodes in zip(rows, row_nodes, strict=True):
        sides = {side(node) for node in nodes}
        if len(sides) == 1:
            result[id(row)] = sides.pop()
        else:
            cross += 1
    return result, SPLIT_BY_CUT, cross


# --- The original dataset (eltorio/appreciation), from a local copy --------------------------

ORIGINAL_COLUMNS = builders.DATASET_CSV_COLUMNS


def original_dataset_rows(path: str | Path) -> list[builders.DatasetRow]:
    """The rows of a local Parquet or CSV copy of `eltorio/appreciation`, as dataset rows with
    the prompt the platform sends for those inputs. Rows breaking the rules (a rating off the
    0-10 scale, a grade quoted in the text, over 40 words, an average missing) are left out.
    Raises TrainingDataError (French) for a file that cannot be read."""
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"Fichier introuvable : {path}.")
    try:
        table = _read_table(path)
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise TrainingDataError(
            f"Le fichier {path.name} n'a pas pu être lu comme un fichier Parquet ou CSV"
            f" ({type(exc).__name__})."
        ) from exc
    missing = [name for name in ORIGINAL_COLUMNS if name not in table.column_names]
    if missing:
        raise TrainingDataError(
            "Le fichier ne suit pas le format du jeu de données eltorio/appreciation : colonne(s)"
            f" manquante(s) : {', '.join(missing)}."
        )
    chat_date = settings.APPRECIATION_CHAT_DATE
    rows = []
    for index, record in enumerate(table.select(list(ORIGINAL_COLUMNS)).to_pylist()):
        row = _original_row(record, index=index, chat_date=chat_date)
        if row is not None:
            rows.append(row)
    if not rows:
        raise TrainingDataError(
            "Aucune ligne utilisable dans le jeu de données d'origine (saisies incomplètes,"
            " note citée dans le commentaire ou commentaire trop long)."
        )
    return rows


def _read_table(path: Path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        return pq.read_table(path)
    if path.suffix.lower() == ".csv":
        # Every column as text: a blank grade stays blank, numbers are parsed below.
        return pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={name: "string" for name in ORIGINAL_COLUMNS},
                strings_can_be_null=True,
            ),
        )
    raise ValueError("extension")


def _number(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip().replace(",", ".")
        if not value:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN: a blank cell


def _original_row(record: dict, *, index: int, chat_date: str) -> builders.DatasetRow | None:
    text = str(record.get("commentaire") or "").strip()
    trimester = _number(record.get("trimestre"))
    if not text or trimester is None:
        return None
    inputs = {
        "subject": str(record.get("matière") or "").strip() or "Histoire-Géographie",
        "trimester": int(trimester),
        "repeating": bool(_number(record.get("redoublant"))),
        "averages": [
            _number(record.get("note 1er trimestre")),
            _number(record.get("note 2ème trimestre")),
            _number(record.get("note 3ème trimestre")),
        ],
        "behaviour": _number(record.get("comportement 0-10")),
        "participation": _number(record.get("participation 0-10")),
        "work": _number(record.get("travail 0-10")),
    }
    if check_grade(text) is not None or word_count(text) > MAX_WORDS:
        return None
    prompt = validated_prompt(inputs)  # None for a missing average or a rating off 0-10
    if prompt is None:
        return None
    row_id = _number(record.get("Id"))
    return builders.DatasetRow(
        row_id=int(row_id) if row_id is not None else index,
        prompt_messages=prompt,
        final_text=text,
        inputs=inputs,
        chat_date=chat_date,
    )
