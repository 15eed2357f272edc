"""Calibrated relevance: the chance that a hit is evidence for its query, from its dense and lexical scores, so
that `min_score` means the same thing for every query. A logistic model fitted on labelled benchmark hits by
`bench/calibration.py` (figures in bench/results/calibration.md) for the bundled all-MiniLM-L6-v2."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    intercept: float
    dense: float  # per unit of cosine similarity
    lexical: float  # per unit of lexical match share in [0, 1]
    lexical_match: float  # for matching the query's words at all
    no_vector: float  # for a memory not embedded yet (its dense score is unknown)

    def relevance(self, dense: float | None, lexical: float | None) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit(dense, lexical)))

    def logit(
        self, dense: float | None, lexical: float | None, dense_weight: float = 1.0, lexical_weight: float = 1.0
    ) -> float:
        """The relevance's log-odds, each side's evidence scaled by its weight."""
        logit = self.intercept + dense_weight * (self.no_vector if dense is None else self.dense * dense)
        if lexical is not None:
            logit += lexical_weight * (self.lexical_match + self.lexical * lexical)
        return logit


# Fitted by `python bench/calibration.py` (bench/results/calibration.md).
MINILM = Calibration(intercept=-9.708, dense=8.790, lexical=3.976, lexical_match=1.118, no_vector=4.775)
