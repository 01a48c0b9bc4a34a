"""Quickstart: the Milvus quickstart, unchanged, against Ferrovec.

```python
from pymilvus import MilvusClient
import random

client = MilvusClient("http://localhost:19530")

if client.has_collection(collection_name="demo_collection"):
    client.drop_collection(collection_name="demo_collection")
client.create_collection(
    collection_name="demo_collection",
    dimension=768,  # the vectors used in this demo have 768 dimensions
)

docs = [
    "Artificial intelligence was founded as an academic discipline in 1956.",
    "Alan Turing was the first person to conduct substantial research in AI.",
    "Born in Maida Vale, London, Turing was raised in southern England.",
]
# Use an embedding model in real life; random vectors keep this example self-contained.
vectors = [[random.uniform(-1, 1) for _ in range(768)] for _ in docs]
data = [
    {"id": i, "vector": vectors[i], "text": docs[i], "subject": "history"}
    for i in range(len(vectors))
]
res = client.insert(collection_name="demo_collection", data=data)
print(res)

res = client.search(
    collection_name="demo_collection",
    data=[vectors[0]],
    limit=2,
    output_fields=["text", "subject"],
)
print(res)

res = client.query(
    collection_name="demo_collection",
    filter="subject == 'history'",
    output_fields=["text", "subject"],
)
print(res)

res = client.delete(collection_name="demo_collection", filter="subject == 'history'")
print(res)
```
"""

import re

import numpy as np

from helpers import check_search

COLLECTION = "demo_collection"


def _code() -> str:
    m = re.search(r"```python\n(.*?)```", __doc__, re.S)
    assert m, "no code block in the module docstring"
    return m.group(1)


def test_quickstart(uri, client):
    code = _code()
    assert 'MilvusClient("http://localhost:19530")' in code
    code = code.replace('"http://localhost:19530"', repr(uri))

    printed = []
    ns = {"print": lambda *a, **k: printed.append(a[0] if len(a) == 1 else a), "__name__": "quickstart"}
    try:
        exec(compile(code, "quickstart", "exec"), ns)

        assert len(printed) == 4, printed
        inserted, searched, queried, deleted = printed
        vectors, docs = ns["vectors"], ns["docs"]

        # insert: three rows, ids as given.
        assert inserted["insert_count"] == 3
        assert list(inserted["ids"]) == [0, 1, 2]

        # search: the query vector is row 0, so row 0 comes first with COSINE similarity 1;
        # the runner-up is the numpy COSINE reference's second.
        assert len(searched) == 1 and len(searched[0]) == 2
        check_search(searched, np.array(vectors, dtype=np.float32), [0, 1, 2],
                     np.array([vectors[0]], dtype=np.float32), "COSINE", 2, where="quickstart search")
        top = searched[0][0]
        assert top["id"] == 0
        assert abs(top["distance"] - 1.0) < 1e-4
        for hit in searched[0]:
            assert hit["entity"] == {"text": docs[hit["id"]], "subject": "history"}

        # query: all three rows with the requested fields (and the primary key).
        assert sorted(queried, key=lambda r: r["id"]) == [
            {"id": i, "text": docs[i], "subject": "history"} for i in range(3)
        ]

        # delete by filter: three rows removed.
        assert deleted == {"delete_count": 3} or deleted.get("delete_count") == 3, deleted
        left = client.query(COLLECTION, filter="", output_fields=["count(*)"], consistency_level="Strong")
        assert left[0]["count(*)"] == 0

        # The README's later steps: the collection is there, with the quick-setup shape.
        d = client.describe_collection(COLLECTION)
        assert [f["name"] for f in d["fields"]] == ["id", "vector"]
        assert d["enable_dynamic_field"] is True
    finally:
        if client.has_collection(COLLECTION):
            client.drop_collection(COLLECTION)


def test_quickstart_runs_twice(uri, client):
    """Running the script again (has_collection -> drop -> create) works the same."""
    code = _code().replace('"http://localhost:19530"', repr(uri))
    try:
        for _ in range(2):
            printed = []
            exec(compile(code, "quickstart", "exec"), {"print": printed.append, "__name__": "quickstart"})
            assert printed[0]["insert_count"] == 3
            assert len(printed[2]) == 3
    finally:
        if client.has_collection(COLLECTION):
            client.drop_collection(COLLECTION)
