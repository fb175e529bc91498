from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.eval import build_articles, run_eval, run_val_cross_validation, val_folds

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


def test_unknown_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_eval(str(tmp_path / "missing.json"), out=lambda _line: None, embedder=None)


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
