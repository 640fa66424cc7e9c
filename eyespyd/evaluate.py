"""`eyespyd eval`: how the verdicts on labelled folders compare with the truth.

Blink is the positive class. A photo sent to review is not a blink call: it counts against blink
recall, and it is reported separately as the review rate, the photographer's remaining work.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from eyespyd.pipeline import Result
from eyespyd.verdict import BLINK, KEEP, REVIEW


def summarise(results: Sequence[tuple[Result, str]]) -> dict[str, Any]:
    """Metrics for (result, true label) pairs, the label being "blink" or "keep"."""
    table = {truth: {KEEP: 0, BLINK: 0, REVIEW: 0} for truth in (BLINK, KEEP)}
    for result, truth in results:
        table[truth][result.verdict] += 1
    tp = table[BLINK][BLINK]
    fp = table[KEEP][BLINK]
    fn = table[BLINK][KEEP] + table[BLINK][REVIEW]
    tn = table[KEEP][KEEP] + table[KEEP][REVIEW]
    total = len(results)
    keepers = sum(table[KEEP].values())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    reviewed = table[BLINK][REVIEW] + table[KEEP][REVIEW]
    times = [result.ms for result, _ in results if result.error is None]
    return {
        "photos": total,
        "accuracy": round((tp + tn) / total, 4) if total else 0.0,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "false_blink_rate": round(fp / keepers, 4) if keepers else 0.0,
        "review_rate": round(reviewed / total, 4) if total else 0.0,
        "confusion": table,
        "ms_per_photo": {
            "mean": round(statistics.fmean(times), 1) if times else 0.0,
            "median": round(statistics.median(times), 1) if times else 0.0,
        },
        "errors": [
            {"path": str(r.path), "error": r.error} for r, _ in results if r.error is not None
        ],
        "misclassified": [
            {"path": str(r.path), "truth": truth, "verdict": r.verdict, "score": r.score}
            for r, truth in results
            if (truth == BLINK) != (r.verdict == BLINK)
        ],
    }


def as_text(report: dict[str, Any]) -> str:
    table = report["confusion"]
    ms = report["ms_per_photo"]
    lines = [
        f"photos {report['photos']}",
        f"accuracy {report['accuracy']:.4f}  precision {report['precision']:.4f}"
        f"  recall {report['recall']:.4f}  F1 {report['f1']:.4f}",
        f"false blinks {report['false_blink_rate']:.2%} of keepers"
        f"  review rate {report['review_rate']:.2%}"
        f"  ms per photo {ms['mean']} (median {ms['median']})",
        "",
        f"{'truth / verdict':16}{'keep':>8}{'blink':>8}{'review':>8}",
    ]
    for truth in (BLINK, KEEP):
        row = table[truth]
        lines.append(f"{truth:16}{row[KEEP]:>8}{row[BLINK]:>8}{row[REVIEW]:>8}")
    if report["misclassified"]:
        lines += ["", "misclassified:"]
        lines += [
            f"  {m['truth']:5} -> {m['verdict']:6} {m['score']:.2f}  {m['path']}"
            for m in report["misclassified"]
        ]
    if report["errors"]:
        lines += ["", "unreadable:"]
        lines += [f"  {e['path']}: {e['error']}" for e in report["errors"]]
    return "\n".join(lines)
