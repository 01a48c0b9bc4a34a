"""numpy brute-force references and result checks shared by the e2e tests.

Conventions (Milvus'):
- L2 scores are SQUARED Euclidean distances, smaller is better;
- IP and COSINE scores are similarities, larger is better.
A search result is accepted when, for every query, it has exactly the expected number of
hits, the ids are distinct candidates (they pass the filter / partition / range), every
returned distance equals the reference distance of that id, and the i-th returned distance
equals the i-th best reference distance (after the offset). So hits may be reordered only
among (near-)ties; distances are compared with a small relative tolerance.
"""

import math

import numpy as np

RTOL = 1e-4
ATOL = 1e-4


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    # Values in [-1, 1) so IP scores have both signs.
    return (rng(seed).random((n, dim), dtype=np.float32) * 2.0 - 1.0).astype(np.float32)


def higher_is_better(metric: str) -> bool:
    m = metric.upper()
    if m in ("IP", "COSINE"):
        return True
    if m == "L2":
        return False
    raise ValueError(metric)


def scores(metric: str, base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(nq, n) reference scores in float64."""
    b = np.asarray(base, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim == 1:
        q = q[None, :]
    m = metric.upper()
    if m == "L2":
        d = (q * q).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (q @ b.T)
        return np.maximum(d, 0.0)
    if m == "IP":
        return q @ b.T
    if m == "COSINE":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
        return qn @ bn.T
    raise ValueError(metric)


def close(a: float, b: float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol)


def expected_scores(row_scores: np.ndarray, mask, metric: str, limit: int, offset: int = 0) -> np.ndarray:
    """The sorted best scores after the offset (what a correct server returns as distances)."""
    s = row_scores if mask is None else row_scores[np.asarray(mask, dtype=bool)]
    s = np.sort(s)
    if higher_is_better(metric):
        s = s[::-1]
    return s[offset : offset + limit]


def expected_ids(row_scores: np.ndarray, pks, mask, metric: str, limit: int, offset: int = 0) -> list:
    """The reference id list (one valid order among ties)."""
    idx = np.arange(len(row_scores))
    if mask is not None:
        idx = idx[np.asarray(mask, dtype=bool)]
    s = row_scores[idx]
    order = np.argsort(-s if higher_is_better(metric) else s, kind="stable")
    return [pks[i] for i in idx[order][offset : offset + limit]]


def check_hits(hits, row_scores: np.ndarray, pk_to_row: dict, metric: str, limit: int,
               offset: int = 0, mask=None, where: str = ""):
    """Checks one query's hits against the brute-force reference (see module docstring)."""
    want = expected_scores(row_scores, mask, metric, limit, offset)
    got_ids = [h.id for h in hits]
    got_d = [float(h.distance) for h in hits]
    ctx = f"{where} metric={metric} limit={limit} offset={offset}"
    assert len(hits) == len(want), (
        f"{ctx}: got {len(hits)} hits, expected {len(want)}; got ids {got_ids[:10]}, "
        f"distances {got_d[:10]}, expected distances {list(want[:10])}"
    )
    assert len(set(got_ids)) == len(got_ids), f"{ctx}: duplicate ids in {got_ids}"
    for i, (pk, d) in enumerate(zip(got_ids, got_d)):
        assert pk in pk_to_row, f"{ctx}: hit {i} has unknown id {pk!r}"
        row = pk_to_row[pk]
        if mask is not None:
            assert bool(mask[row]), f"{ctx}: hit {i} id {pk!r} does not satisfy the filter/partition/range"
        assert close(d, row_scores[row]), (
            f"{ctx}: hit {i} id {pk!r} distance {d} but reference distance of that id is {row_scores[row]}"
        )
        assert close(d, want[i]), (
            f"{ctx}: hit {i} id {pk!r} distance {d}, expected the {offset + i}-th best {want[i]}; "
            f"got {list(zip(got_ids, got_d))[:10]} expected distances {list(want[:10])}"
        )


def check_search(res, base, pks, queries, metric, limit, offset=0, mask=None, where=""):
    """Checks a whole (batched) search result. mask: None, one bool array, or one per query."""
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q[None, :]
    assert len(res) == len(q), f"{where}: {len(res)} result lists for nq={len(q)}"
    all_scores = scores(metric, base, q)
    pk_to_row = {pk: i for i, pk in enumerate(pks)}
    for qi in range(len(q)):
        m = mask
        if mask is not None and np.asarray(mask).ndim == 2:
            m = mask[qi]
        check_hits(res[qi], all_scores[qi], pk_to_row, metric, limit, offset, m, where=f"{where} query {qi}")


def rows_by_pk(rows, pk="id") -> dict:
    out = {}
    for r in rows:
        assert r[pk] not in out, f"duplicate pk {r[pk]!r} in query result"
        out[r[pk]] = r
    return out


def assert_vec_close(got, want, where=""):
    g = np.asarray(got, dtype=np.float32)
    w = np.asarray(want, dtype=np.float32)
    assert g.shape == w.shape, f"{where}: vector shape {g.shape} != {w.shape}"
    assert np.allclose(g, w, rtol=1e-6, atol=1e-7), f"{where}: vector {g[:4]}... != {w[:4]}..."
