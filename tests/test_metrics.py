import math

import torch
from sklearn.metrics import cohen_kappa_score

from rsmg.metrics import DomainMetrics, metrics_from_confusion


def test_metrics_match_sklearn_and_skip_absent_classes():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (500,), generator=g)  # class 3 never present
    p = torch.where(torch.rand(500, generator=g) < 0.7, y, torch.randint(0, 4, (500,), generator=g))
    m = DomainMetrics(["a", "b"], 4)
    m.update(0, p, y)
    res = m.compute()
    assert list(res) == ["a"]
    r = res["a"]
    assert math.isclose(r["oa"], float((p == y).double().mean()), rel_tol=1e-9)
    recalls = [((p == c) & (y == c)).sum().item() / (y == c).sum().item() for c in range(3)]
    assert math.isclose(r["aa"], sum(recalls) / 3, rel_tol=1e-9)
    assert math.isclose(r["kappa"], cohen_kappa_score(y, p), rel_tol=1e-6)
    assert math.isnan(r["per_class"][3])


def test_perfect_and_empty():
    cm = torch.diag(torch.tensor([3, 4]))
    r = metrics_from_confusion(cm)
    assert r["oa"] == r["aa"] == r["kappa"] == 1.0
    assert math.isnan(metrics_from_confusion(torch.zeros(2, 2))["oa"])
