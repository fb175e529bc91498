"""A per-article classifier trained when the index is built: multinomial logistic regression
(softmax) on the example questions' sentence embeddings.

Nearest-neighbour similarity asks "which example looks most like the query?"; the classifier
learns which directions of the embedding space tell one article from its neighbours
(``shopping_list`` vs ``shopping_list_update``), from the articles' own example questions —
no validation data, so the live bot and ``kb eval`` train it the same way.

Training is full-batch Adam in numpy (float32): about 150 passes of two matrix products.
For CLINC150's 15,000 questions × 150 labels that is a few seconds on one core; for a shop's
few hundred articles, well under one. Inputs are L2-normalised embeddings scaled by
``SCALE``, so the learnt logits divided by ``SCALE`` are on the same scale as a cosine
similarity and combine with the other signals without per-data-set weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALE = 20.0
L2 = 1e-3
STEPS = 150
LEARNING_RATE = 0.05


@dataclass(frozen=True)
class SoftmaxClassifier:
    weights: np.ndarray  # (dim, labels)
    bias: np.ndarray  # (labels,)

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        labels: np.ndarray,
        n_labels: int,
        steps: int = STEPS,
        l2: float = L2,
        scale: float = SCALE,
        learning_rate: float = LEARNING_RATE,
    ) -> SoftmaxClassifier:
        """Fit on rows of ``vectors`` (L2-normalised) labelled ``labels`` (0..n_labels-1)."""
        n, dim = vectors.shape
        x = np.hstack([vectors.astype(np.float32) * scale, np.ones((n, 1), np.float32)])
        target = np.zeros((n, n_labels), np.float32)
        target[np.arange(n), labels] = 1.0
        decay = np.full((dim + 1, 1), l2, np.float32)
        decay[-1] = 0.0  # the bias is not regularised
        w = np.zeros((dim + 1, n_labels), np.float32)
        m = np.zeros_like(w)
        v = np.zeros_like(w)
        beta1, beta2 = 0.9, 0.999
        for t in range(1, steps + 1):
            z = x @ w
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p -= target
            gradient = x.T @ p
            gradient /= n
            gradient += decay * w
            m = beta1 * m + (1 - beta1) * gradient
            v = beta2 * v + (1 - beta2) * gradient * gradient
            step = learning_rate * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + 1e-8)
            w -= step.astype(np.float32)
        # logits / scale = vector @ weights + bias: cosine-like units
        return cls(weights=np.ascontiguousarray(w[:-1]), bias=w[-1] / scale)

    def scores(self, vector: np.ndarray) -> np.ndarray:
        """Logits divided by the training scale, one per label (for one query vector)."""
        return vector @ self.weights + self.bias

    def probabilities(self, vector: np.ndarray, scale: float = SCALE) -> np.ndarray:
        z = self.scores(vector) * scale
        z = np.exp(z - z.max())
        return z / z.sum()
