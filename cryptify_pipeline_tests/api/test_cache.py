"""Bodies kept by key and fingerprint, bounded in bytes."""

from cryptify_pipeline.api.cache import ResponseCache


def test_a_body_is_served_only_for_the_fingerprint_it_was_built_from():
    cache = ResponseCache()
    cache.put("week", (168, 1000), b"old")
    assert cache.get("week", (168, 1000)) == b"old"
    assert cache.get("week", (168, 1001)) is None  # a row rewritten since
    assert cache.get("month", (168, 1000)) is None
    cache.put("week", (169, 2000), b"new")
    assert cache.get("week", (169, 2000)) == b"new"
    assert cache.size == (1, 3)


def test_the_least_recently_used_bodies_go_first():
    cache = ResponseCache(max_bytes=10)
    cache.put("a", 1, b"aaaa")
    cache.put("b", 1, b"bbbb")
    assert cache.get("a", 1) == b"aaaa"  # now b is the least recently used
    cache.put("c", 1, b"cccc")
    assert (cache.get("a", 1), cache.get("b", 1), cache.get("c", 1)) == (b"aaaa", None, b"cccc")
    assert cache.size == (2, 8)


def test_a_body_larger_than_the_cache_is_not_kept():
    cache = ResponseCache(max_bytes=3)
    cache.put("big", 1, b"four")
    assert cache.get("big", 1) is None and cache.size == (0, 0)
