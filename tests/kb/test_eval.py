from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from kb.eval import (
    DatasetError,
    build_articles,
    main,
    run_eval,
    run_val_cross_validation,
    val_folds,
)

TOPICS = {
    "tea": [
        "how do I store tea",
        "keep green tea fresh",
        "tea storage tips",
        "best way to keep tea",
    ],
    "kettle": [
        "how do I descale my kettle",
        "white residue in kettle",
        "clean the kettle inside",
        "kettle limescale",
    ],
    "points": ["how do points work", "use my loyalty points", "points balance", "earn points"],
    "hours": [
        "what time do you open",
        "store opening hours",
        "are you open on sunday",
        "closing time",
    ],
}
OOS = [
    "what is the weather tomorrow",
    "who won the football",
    "book a flight to paris",
    "sing me a song",
    "tell me a joke",
    "what is the capital of peru",
]


def dataset(tmp_path: Path, with_oos_test: bool = True, **extra) -> Path:
    data = {
        "train": [[q, label] for label, qs in TOPICS.items() for q in qs[:3]],
        "val": [
            ["store tea", "tea"],
            ["descale kettle", "kettle"],
            ["points balance?", "points"],
            ["opening hours", "hours"],
        ],
        "oos_val": [[q, "oos"] for q in OOS[:3]],
        "test": [[qs[3], label] for label, qs in TOPICS.items()],
        "oos_test": [[q, "oos"] for q in OOS[3:]] if with_oos_test else [],
        **extra,
    }
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_last_line_is_the_json_summary(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_eval(str(dataset(tmp_path)), verbose=True, out=lines.append, embedder=None)
    summary = json.loads(lines[-1])
    assert summary == result
    assert set(summary) == {
        "in_scope_accuracy",
        "oos_recall",
        "p50_ms",
        "p99_ms",
        "n_test",
        "n_oos_test",
    }
    assert (summary["n_test"], summary["n_oos_test"]) == (4, 3)
    assert 0.0 <= summary["in_scope_accuracy"] <= 1.0 and 0.0 <= summary["oos_recall"] <= 1.0
    assert summary["in_scope_accuracy"] >= 0.5
    assert summary["p50_ms"] <= summary["p99_ms"]
    assert any(line.startswith("threshold=") for line in lines)


def test_oos_recall_is_null_without_oos_test(tmp_path: Path) -> None:
    lines: list[str] = []
    run_eval(str(dataset(tmp_path, with_oos_test=False)), out=lines.append, embedder=None)
    summary = json.loads(lines[-1])
    assert summary["oos_recall"] is None and summary["n_oos_test"] == 0
    assert len(lines) == 1  # not verbose: only the summary


def test_threshold_never_depends_on_the_test_split(tmp_path: Path) -> None:
    first: list[str] = []
    run_eval(str(dataset(tmp_path)), verbose=True, out=first.append, embedder=None)
    poisoned = dataset(tmp_path, test=[["what is the weather tomorrow", "tea"]] * 5)
    second: list[str] = []
    run_eval(str(poisoned), verbose=True, out=second.append, embedder=None)
    assert first[0] == second[0]  # "threshold=… calibration=… weights=…"


def test_articles_add_titles_and_answers(tmp_path: Path) -> None:
    data = json.loads(
        dataset(
            tmp_path,
            articles={
                "tea": {"title": "Storing tea", "answer": "Keep it sealed and dry."},
                "extra": {"title": "Gift wrapping", "answer": "We wrap for free."},
            },
        ).read_text()
    )
    articles = {a.id: a for a in build_articles(data)}
    assert articles["tea"].title == "Storing tea" and articles["tea"].questions
    assert articles["extra"].body == "We wrap for free." and not articles["extra"].questions
    assert articles["kettle"].body == ""


UNUSABLE = {
    "missing.json": None,
    "not-json.json": "train: [[a, b]]",
    "not-utf8.json": b"\xff\xfe{}",
    "a-list.json": [["how do I store tea", "tea"]],
    "no-train.json": {"test": [["how do I store tea", "tea"]]},
    "train-a-string.json": {"train": "how do I store tea"},
    "row-not-a-pair.json": {"train": [["how do I store tea", "tea"], ["no label"]]},
    "label-not-text.json": {"train": [["how do I store tea", 7]]},
    "articles-a-list.json": {"train": [["how do I store tea", "tea"]], "articles": ["tea"]},
}


def _unusable(tmp_path: Path, name: str) -> str:
    path, content = tmp_path / name, UNUSABLE[name]
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_text(json.dumps(content), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_an_unusable_file_is_one_error_naming_it(tmp_path: Path, name: str) -> None:
    path = _unusable(tmp_path, name)
    with pytest.raises(DatasetError) as refused:
        run_eval(path, out=lambda _line: None, embedder=None)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


@pytest.mark.parametrize("argv", [["FILE"], ["FILE", "--verbose"], ["FILE", "--cv-val"]])
def test_python_m_kb_eval_explains_an_unusable_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    path = _unusable(tmp_path, "not-json.json")
    assert main([path if arg == "FILE" else arg for arg in argv]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {path}: not a JSON file " \
        "(Expecting value: line 1 column 1 (char 0))\n" and captured.out == ""


def test_empty_test_lists_give_null_figures_and_no_warnings(tmp_path: Path) -> None:
    lines: list[str] = []
    empty = dataset(tmp_path, test=[], oos_test=[], val=[], oos_val=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "Mean of empty slice" and the like
        result = run_eval(str(empty), out=lines.append, embedder=None)
    assert json.loads(lines[-1]) == result == {
        "in_scope_accuracy": None, "oos_recall": None, "p50_ms": None, "p99_ms": None,
        "n_test": 0, "n_oos_test": 0}


def test_cross_validation_without_val_gives_null_figures(tmp_path: Path) -> None:
    empty = dataset(tmp_path, val=[], oos_val=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_val_cross_validation(str(empty), out=lambda _line: None, embedder=None)
    assert (result["in_scope_accuracy"], result["oos_recall"]) == (None, None)
    assert (result["p50_ms"], result["p99_ms"], result["n_test"]) == (None, None, 0)


def test_val_folds_never_touch_test_and_cover_val(tmp_path: Path) -> None:
    data = json.loads(dataset(tmp_path).read_text())
    data["val"] += [["tea please", "tea"], ["kettle help", "kettle"]]
    folds = val_folds(data, folds=2)
    held_out = [row for fold in folds for row in fold["test"]]
    assert sorted(map(tuple, held_out)) == sorted(map(tuple, data["val"]))
    for fold in folds:
        assert not set(map(tuple, fold["test"])) & set(map(tuple, fold["val"]))
        assert {label for _q, label in fold["test"]} <= {label for _q, label in data["val"]}
    assert sum(len(f["oos_test"]) for f in folds) == len(data["oos_val"])


def test_cross_validation_reports_pooled_figures(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_val_cross_validation(str(dataset(tmp_path)), out=lines.append, embedder=None)
    assert json.loads(lines[-1]) == result
    assert result["n_test"] == 4 and result["n_oos_test"] == 3 and result["folds"] == 2
