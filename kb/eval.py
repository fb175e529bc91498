"""``omohub kb eval FILE``: measure answer/hand-off quality on a CLINC150-layout data set.

FILE is a JSON object with ``train``, ``val``, ``test``, ``oos_val``, ``oos_test``
(lists of ``[query, label]``; label ``oos`` = out of scope) and optionally
``articles``: ``{label: {"title", "answer"}}``. The knowledge base is built from
``train`` (+ article titles and answers), the confidence curve and threshold are
tuned on ``val`` + ``oos_val`` only, and the report is on ``test`` + ``oos_test``.
The last line printed is one JSON object; a figure that cannot be computed (no test
queries to time, no ``oos_test``…) is null. A file that cannot be used (missing, not JSON,
not in that layout) is a ``DatasetError`` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from kb.articles import Article
from kb.embedding import Embedder, load_default_embedder
from kb.index import KnowledgeBase
from kb.tuning import OOS, tune

Row = tuple[str, str | None]
Printer = Callable[[str], Any]
SPLITS = ("train", "val", "test", "oos_val", "oos_test")


class DatasetError(ValueError):
    """A file ``kb eval`` cannot use: missing, not JSON, or not in the CLINC150 layout."""


def _is_pair(row: object) -> bool:
    return isinstance(row, list) and len(row) == 2 and all(isinstance(v, str) for v in row)


def layout_problem(data: object) -> str | None:
    """What keeps ``data`` from being in the CLINC150 layout, or None when it is."""
    if not isinstance(data, dict):
        return f"expected an object with {', '.join(SPLITS)}"
    if "train" not in data:
        return "it has no 'train' split"
    for split in SPLITS:
        rows = data.get(split)
        if rows is not None and not isinstance(rows, list):
            return f"'{split}' must be a list of [query, label]"
        for index, row in enumerate(rows or []):
            if not _is_pair(row):
                return f"{split}[{index}] must be [query, label], not {json.dumps(row)[:80]}"
    articles = data.get("articles") or {}
    if not isinstance(articles, dict) or not all(isinstance(a, dict) for a in articles.values()):
        return "'articles' must map each label to {\"title\", \"answer\"}"
    return None


def _rows(data: dict[str, Any], *splits: str) -> list[Row]:
    rows: list[Row] = []
    for split in splits:
        for item in data.get(split) or []:
            query, label = str(item[0]), str(item[1])
            rows.append((query, None if label == OOS else label))
    return rows


def build_articles(data: dict[str, Any]) -> list[Article]:
    """One article per in-scope train label; its train queries become example questions."""
    questions: dict[str, list[str]] = defaultdict(list)
    for query, label in _rows(data, "train"):
        if label is not None:
            questions[label].append(query)
    meta = data.get("articles") or {}
    articles = []
    for label in sorted(set(questions) | set(meta)):
        info = meta.get(label) or {}
        articles.append(
            Article(
                id=label,
                title=str(info.get("title") or ""),
                body=str(info.get("answer") or ""),
                locale="",
                questions=tuple(questions.get(label, ())),
            )
        )
    return articles


def _progress(stage: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if done == total or done % 500 == 0:
            print(f"[kb eval] {stage}: {done}/{total}", file=sys.stderr, flush=True)

    return report


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def _measure(kb: KnowledgeBase, rows: Sequence[Row]) -> tuple[list[str | None], list[float]]:
    predictions: list[str | None] = []
    timings: list[float] = []
    report = _progress("test")
    kb.forget_queries()  # time every test query as seen for the first time
    for index, (query, _gold) in enumerate(rows):
        started = time.perf_counter()
        decision = kb.decide(query)
        timings.append((time.perf_counter() - started) * 1000.0)
        predictions.append(decision.answer.article_id if decision.answer else None)
        report(index + 1, len(rows))
    return predictions, timings


def _print_confusions(rows: Sequence[Row], predictions: Sequence[str | None], out: Printer) -> None:
    confusions = Counter(
        (gold or OOS, predicted or OOS)
        for (_q, gold), predicted in zip(rows, predictions, strict=True)
        if gold != predicted
    )
    out(f"confusions (gold -> predicted), {sum(confusions.values())} errors:")
    for (gold, predicted), count in confusions.most_common(40):
        out(f"  {count:4d}  {gold} -> {predicted}")


def _report(kb: KnowledgeBase, data: dict[str, Any], verbose: bool, out: Printer) -> dict:
    in_scope, out_of_scope = _rows(data, "test"), _rows(data, "oos_test")
    predictions, timings = _measure(kb, in_scope + out_of_scope)
    in_pred, oos_pred = predictions[: len(in_scope)], predictions[len(in_scope) :]
    hits = sum(p == g for (_q, g), p in zip(in_scope, in_pred, strict=True))
    accuracy = hits / len(in_scope) if in_scope else None
    recall = sum(p is None for p in oos_pred) / len(out_of_scope) if out_of_scope else None
    if verbose:
        out(f"threshold={kb.threshold:.4f} calibration={kb.calibration} weights={kb.weights}")
        _print_confusions(in_scope + out_of_scope, predictions, out)
    return {
        "in_scope_accuracy": None if accuracy is None else round(accuracy, 4),
        "oos_recall": None if recall is None else round(recall, 4),
        "p50_ms": _percentile(timings, 50),
        "p99_ms": _percentile(timings, 99),
        "n_test": len(in_scope),
        "n_oos_test": len(out_of_scope),
    }


def _build(data: dict[str, Any], embedder: Embedder | str | None) -> KnowledgeBase:
    chosen = load_default_embedder() if embedder == "auto" else embedder
    mode = "embeddings" if chosen else "lexical only"
    print(f"[kb eval] building index ({mode})", file=sys.stderr, flush=True)
    return KnowledgeBase(build_articles(data), chosen)  # type: ignore[arg-type]


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    except ValueError as exc:  # not UTF-8, or not JSON
        raise DatasetError(f"{path}: not a JSON file ({exc})") from exc
    problem = layout_problem(data)
    if problem is not None:
        raise DatasetError(f"{path}: not in the CLINC150 layout: {problem}")
    return data  # type: ignore[no-any-return]


def run_eval(
    path: str, verbose: bool = False, out: Printer = print, embedder: Embedder | str | None = "auto"
) -> dict[str, Any]:
    """Build from train, tune on val + oos_val, report on test + oos_test (last line: JSON)."""
    data = _load(path)
    kb = _build(data, embedder)
    tune(kb, _rows(data, "val", "oos_val"), progress=_progress("val"))
    result = _report(kb, data, verbose, out)
    out(json.dumps(result))
    return result


def val_folds(data: dict[str, Any], folds: int = 2) -> list[dict[str, Any]]:
    """Split val/oos_val into folds (each label spread evenly); each fold becomes the test."""
    seen: Counter[str] = Counter()
    fold_of: list[int] = []
    for _query, label in data.get("val") or []:
        fold_of.append(seen[label] % folds)
        seen[label] += 1
    oos = data.get("oos_val") or []
    result = []
    for k in range(folds):
        result.append(
            {
                **data,
                "val": [r for r, f in zip(data.get("val") or [], fold_of, strict=True) if f != k],
                "test": [r for r, f in zip(data.get("val") or [], fold_of, strict=True) if f == k],
                "oos_val": [r for i, r in enumerate(oos) if i % folds != k],
                "oos_test": [r for i, r in enumerate(oos) if i % folds == k],
            }
        )
    return result


def run_val_cross_validation(
    path: str, folds: int = 2, out: Printer = print, embedder: Embedder | str | None = "auto"
) -> dict[str, Any]:
    """For data sets whose test split is held out: tune on some val folds, report on the rest.

    The test split is never read. Figures are pooled over the folds (micro-averaged).
    """
    data = _load(path)
    kb = _build(data, embedder)
    results = []
    for fold in val_folds(data, folds):
        tune(kb, _rows(fold, "val", "oos_val"), progress=_progress("val fold"))
        results.append(_report(kb, fold, False, out))
    n_test = sum(r["n_test"] for r in results)
    n_oos = sum(r["n_oos_test"] for r in results)
    pooled = {
        "in_scope_accuracy": _pooled(results, "in_scope_accuracy", "n_test"),
        "oos_recall": _pooled(results, "oos_recall", "n_oos_test"),
        "p50_ms": _median(r["p50_ms"] for r in results),
        "p99_ms": max((r["p99_ms"] for r in results if r["p99_ms"] is not None), default=None),
        "n_test": n_test,
        "n_oos_test": n_oos,
        "folds": folds,
    }
    out(json.dumps(pooled))
    return pooled


def _pooled(results: Sequence[dict[str, Any]], rate: str, count: str) -> float | None:
    """A rate over every fold's queries (each fold's weighted by its count); None without any."""
    total = sum(r[count] for r in results)
    if not total:
        return None
    return round(sum((r[rate] or 0) * r[count] for r in results) / total, 4)


def _median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


def eval_command(path: str, verbose: bool = False, cross_validate: bool = False) -> int:
    """``omohub kb eval FILE`` (and ``python -m kb.eval``): the exit status; a file that
    cannot be used is one line on stderr, not a traceback."""
    try:
        if cross_validate:
            run_val_cross_validation(path)
        else:
            run_eval(path, verbose=verbose)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    paths = [a for a in args if not a.startswith("--")]
    if len(paths) != 1:
        print("usage: python -m kb.eval FILE [--verbose] [--cv-val]", file=sys.stderr)
        return 2
    return eval_command(paths[0], verbose="--verbose" in args, cross_validate="--cv-val" in args)


if __name__ == "__main__":
    raise SystemExit(main())
