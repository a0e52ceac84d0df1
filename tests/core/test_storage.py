"""Storage behaves the same on local paths and on S3 (moto server via AWS_ENDPOINT_URL)."""

import pytest

from velibcast import storage as st
from velibcast.errors import NotFound


def test_write_read_list_delete(any_root, storage):
    a = st.join(any_root, "x", "a.txt")
    b = st.join(any_root, "x", "ab.txt")
    c = st.join(any_root, "y", "c.txt")
    for uri in (a, b, c):
        storage.write_text(uri, uri)
    assert storage.read_text(a) == a
    assert storage.exists(a) and not storage.exists(st.join(any_root, "x", "zzz"))
    # literal prefix semantics, as Batch Transform's S3Prefix: "x/a" matches a.txt and ab.txt
    assert [o.uri for o in storage.list(st.join(any_root, "x", "a"))] == [a, b]
    assert [o.uri for o in storage.list(st.join(any_root, "x") + "/", start_after=a)] == [b]
    storage.delete(a)
    with pytest.raises(NotFound, match="a.txt"):
        storage.read_bytes(a)


def test_put_if_absent_has_one_winner(any_root, storage):
    uri = st.join(any_root, "locks", "l.json")
    assert storage.put_if_absent(uri, b"first") is True
    assert storage.put_if_absent(uri, b"second") is False
    assert storage.read_bytes(uri) == b"first"


def test_listing_paginates_past_one_page(s3_root, storage, monkeypatch):
    from velibcast import constants as C

    monkeypatch.setattr(C, "S3_LIST_PAGE_SIZE", 7)
    for i in range(23):
        storage.write_bytes(st.join(s3_root, "p", f"{i:03d}"), b"x")
    assert len(list(storage.list(st.join(s3_root, "p") + "/"))) == 23


def test_explicit_endpoint_in_client_params(s3_root, aws_env, monkeypatch):
    """Any S3-compatible endpoint works through one ClientParams object."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    s = st.Storage(st.ClientParams(endpoint_url=aws_env, region_name="eu-west-3"))
    s.write_text(st.join(s3_root, "k"), "v")
    assert s.read_text(st.join(s3_root, "k")) == "v"


def test_local_writes_are_atomic_and_hide_temp_files(tmp_path, storage):
    uri = str(tmp_path / "d" / "f.parquet")
    storage.write_bytes(uri, b"1")
    storage.write_bytes(uri, b"2")
    assert storage.read_bytes(uri) == b"2"
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["f.parquet"]
