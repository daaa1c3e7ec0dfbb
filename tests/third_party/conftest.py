"""The vendored httpx test tree is not part of egress's own collection: it runs in a separate
pytest process (tests/integration/test_httpx_suite.py) with its own pytest.ini."""

collect_ignore = ["httpx"]
