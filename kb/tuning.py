"""Fit the confidence curve and choose the one answer/hand-off threshold on validation data.

Objective (the same for every data set): the share of right decisions over
``val`` + ``oos_val`` — answer when the top article is right, hand off when it is
wrong or the question is out of scope. It is the event the confidence curve is
fitted to predict, so the threshold lands where "right" becomes more likely than
"wrong". (``balanced_objective`` — in-scope accuracy + out-of-scope recall — was
the first choice; see docs/benchmarks.md, "Knowledge base", for why it was replaced.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kb.index import Calibration, KnowledgeBase

OOS = "oos"


@dataclass
class Outcome:
    """What the knowledge base scored for one validation query."""

    gold: str | None  # None = out of scope
    predicted: str | None
    top: float
    margin: float

    @property
    def correct(self) -> bool:
        return self.gold is not None and self.predicted == self.gold


def score_query(kb: KnowledgeBase, query: str, gold: str | None) -> Outcome:
    hits = kb.search(query, limit=2)
    if not hits:
        return Outcome(gold, None, 0.0, 0.0)
    runner_up = hits[1].score if len(hits) > 1 else 0.0
    return Outcome(gold, hits[0].article_id, hits[0].score, hits[0].score - runner_up)


def fit_calibration(outcomes: Sequence[Outcome], l2: float = 1e-2) -> Calibration:
    """Logistic regression of 'the top article is right' on (score, margin), by Newton steps."""
    if not outcomes:
        return Calibration()
    x = np.array([[o.top, o.margin, 1.0] for o in outcomes])
    y = np.array([1.0 if o.correct else 0.0 for o in outcomes])
    if y.min() == y.max():
        return Calibration()
    w = np.zeros(3)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        gradient = x.T @ (p - y) + l2 * np.r_[w[:2], 0.0]
        hessian = (x.T * (p * (1 - p))) @ x + l2 * np.diag([1.0, 1.0, 0.0]) + 1e-9 * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Calibration(top_weight=float(w[0]), margin_weight=float(w[1]), bias=float(w[2]))


def objective(confidences: np.ndarray, outcomes: Sequence[Outcome], threshold: float) -> float:
    """Share of right decisions: answered and right, or handed off and not right."""
    answered = confidences >= threshold
    correct = np.array([o.correct for o in outcomes])
    return float(np.mean(answered == correct))


def balanced_objective(
    confidences: np.ndarray, outcomes: Sequence[Outcome], threshold: float
) -> float:
    """In-scope accuracy + out-of-scope recall (kept for comparison; not used by ``tune``)."""
    answered = confidences >= threshold
    in_scope = np.array([o.gold is not None for o in outcomes])
    correct = np.array([o.correct for o in outcomes])
    if in_scope.all() or not in_scope.any():
        return float(np.mean(answered == correct))
    accuracy = np.mean(answered[in_scope] & correct[in_scope])
    recall = np.mean(~answered[~in_scope])
    return float(accuracy + recall)


def choose_threshold(confidences: np.ndarray, outcomes: Sequence[Outcome]) -> float:
    """The threshold maximising the objective; midpoints between observed confidences."""
    values = np.unique(confidences)
    candidates = np.r_[0.0, (values[:-1] + values[1:]) / 2, 1.0]
    best = max(candidates, key=lambda t: (objective(confidences, outcomes, t), -abs(t - 0.5)))
    return float(best)


def tune(
    kb: KnowledgeBase,
    rows: Sequence[tuple[str, str | None]],
    progress: Callable[[int, int], None] | None = None,
) -> list[Outcome]:
    """Set ``kb.calibration`` and ``kb.threshold`` from validation rows (gold None = oos);
    without any, both stay as they are (there is nothing to fit them to)."""
    outcomes = []
    for index, (query, gold) in enumerate(rows):
        outcomes.append(score_query(kb, query, gold))
        if progress:
            progress(index + 1, len(rows))
    if not outcomes:
        return outcomes
    kb.calibration = fit_calibration(outcomes)
    confidences = np.array([kb.calibration.confidence(o.top, o.margin) for o in outcomes])
    kb.threshold = choose_threshold(confidences, outcomes)
    return outcomes
