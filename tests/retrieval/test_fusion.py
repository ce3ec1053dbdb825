import pytest

from retrieval.fusion import fuse, normalise


def test_zscore_drops_each_lists_scale_and_offset() -> None:
    cosines = [0.81, 0.62, 0.55, None]
    bm25 = [None, 14.0, 9.5, 3.0]
    base = fuse(cosines, bm25, "zscore", 0.5)
    rescaled = fuse(
        [None if v is None else 3 * v - 1 for v in cosines], [None if v is None else v / 7 for v in bm25], "zscore", 0.5
    )
    assert base == pytest.approx(rescaled)


def test_a_candidate_missing_from_a_list_takes_its_lowest_value() -> None:
    for method in ("minmax", "zscore"):
        out = normalise([2.0, 1.0, None], method)
        assert out[2] == out[1] == min(out)
    ranks = normalise([2.0, 1.0, None], "rrf")
    assert ranks[0] > ranks[1] > ranks[2]


def test_the_weight_moves_the_order_and_rrf_ignores_it() -> None:
    dense = [0.9, 0.5, 0.4]
    sparse = [2.0, 12.0, 1.0]
    assert max(range(3), key=fuse(dense, sparse, "zscore", 0.9).__getitem__) == 0
    assert max(range(3), key=fuse(dense, sparse, "zscore", 0.1).__getitem__) == 1
    assert fuse(dense, sparse, "rrf", 0.1) == fuse(dense, sparse, "rrf", 0.9)


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse([1.0], [1.0], "max", 0.5)
