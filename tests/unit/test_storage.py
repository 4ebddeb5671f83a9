"""LocalStorage against S3 semantics, key safety and open_storage's dispatch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lake import storage as storage_mod
from lake.storage import (
    TMP_SUFFIX,
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    UnsafeKeyError,
    check_key,
    open_storage,
)

# Chosen so that folder-by-folder order differs from S3's global byte order:
# '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30) < 'A' < '_' < 'a'.
KEYS = [
    "a.txt",
    "a/b",
    "a-b",
    "a/c/d",
    "a/c-d",
    "a0",
    "a/b.c",
    "a/bb/x",
    "b",
    "A/z",
    "_/y",
    "a/c/e/f",
]


def _files_on_disk(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    s = LocalStorage(tmp_path / "root")
    for key in KEYS:
        s.write(key, key.encode())
    return s


def test_list_is_in_s3_byte_order(store: LocalStorage) -> None:
    listed = [o.key for o in store.list()]
    assert listed == sorted(KEYS)
    # Python's str order is code point order, which is UTF-8 byte order: double check
    assert listed == sorted(KEYS, key=lambda k: k.encode("utf-8"))
    # a few pairs whose order a per-folder walk would get wrong
    assert listed.index("a-b") < listed.index("a.txt") < listed.index("a/b") < listed.index("a0")
    assert listed.index("a/c-d") < listed.index("a/c/d")


def test_list_reports_size_and_aware_mtime(store: LocalStorage) -> None:
    info = {o.key: o for o in store.list()}
    assert info["a/c/d"].size == len(b"a/c/d")
    assert info["a/c/d"].last_modified.tzinfo is not None


def test_prefix_is_a_string_prefix_not_a_folder(store: LocalStorage) -> None:
    assert [o.key for o in store.list("a")] == sorted(k for k in KEYS if k.startswith("a"))
    assert [o.key for o in store.list("a/")] == sorted(k for k in KEYS if k.startswith("a/"))
    assert [o.key for o in store.list("a/b")] == ["a/b", "a/b.c", "a/bb/x"]
    assert [o.key for o in store.list("a/c")] == ["a/c-d", "a/c/d", "a/c/e/f"]
    assert [o.key for o in store.list("a/c/")] == ["a/c/d", "a/c/e/f"]
    assert list(store.list("nope/")) == []
    assert list(store.list("a/zz")) == []


@pytest.mark.parametrize(
    "start_after", ["", "a", "a-b", "a.txt", "a/", "a/b", "a/c", "a/c/d", "a0", "zzz"]
)
def test_start_after_is_strictly_after_across_folders(
    store: LocalStorage, start_after: str
) -> None:
    expected = sorted(k for k in KEYS if k > start_after)
    assert [o.key for o in store.list(start_after=start_after or None)] == expected


def test_start_after_combined_with_prefix(store: LocalStorage) -> None:
    got = [o.key for o in store.list("a/", start_after="a/b.c")]
    assert got == sorted(k for k in KEYS if k.startswith("a/") and k > "a/b.c")
    # start_after before the prefix: the whole prefix
    assert [o.key for o in store.list("a/c/", start_after="a")] == ["a/c/d", "a/c/e/f"]
    # start_after beyond the prefix: nothing
    assert list(store.list("a/", start_after="b")) == []


def test_write_is_atomic_and_temp_files_are_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = LocalStorage(tmp_path)
    s.write("x/old", b"old")
    seen_mid_write: dict[str, object] = {}
    real_replace = os.replace

    def spying_replace(src, dst):
        # the temp file is on disk, fully written, but not yet renamed
        seen_mid_write["tmp_name"] = Path(src).name
        seen_mid_write["tmp_bytes"] = Path(src).read_bytes()
        seen_mid_write["listed"] = [o.key for o in s.list()]
        seen_mid_write["exists"] = s.exists("x/new")
        real_replace(src, dst)

    monkeypatch.setattr(storage_mod.os, "replace", spying_replace)
    s.write("x/new", b"payload")

    assert str(seen_mid_write["tmp_name"]).endswith(TMP_SUFFIX)
    assert seen_mid_write["tmp_bytes"] == b"payload"
    assert seen_mid_write["listed"] == ["x/old"]
    assert seen_mid_write["exists"] is False
    assert s.read("x/new") == b"payload"
    assert _files_on_disk(tmp_path) == ["x/new", "x/old"]


def test_failed_write_leaves_no_temp_file_and_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = LocalStorage(tmp_path)
    s.write("k", b"v1")

    def failing_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(storage_mod.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        s.write("k", b"v2")
    assert s.read("k") == b"v1"
    assert _files_on_disk(tmp_path) == ["k"]


def test_a_write_failing_midway_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = LocalStorage(tmp_path)
    s.write("d/k", b"v1")

    def full_disk(fd, data):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage_mod.os, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        s.write("d/k", b"v2")
    with pytest.raises(OSError, match="No space left"):
        s.write("new/k", b"v2")
    monkeypatch.undo()
    assert s.read("d/k") == b"v1"
    assert _files_on_disk(tmp_path) == ["d/k"]


def test_a_write_makes_its_folder_only_when_missing_and_unlinks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file into a folder that exists is a temp file written and renamed: no mkdir and
    no unlink (a small object's file paid for both, the unlink failing); a missing folder
    is made with its parents, and a deleted one again."""
    s = LocalStorage(tmp_path / "root")
    calls: list[tuple[str, str]] = []
    for name in ("mkdir", "unlink"):
        real = getattr(os, name)

        def spy(path, *args, real=real, name=name, **kwargs):  # type: ignore[no-untyped-def]
            calls.append((name, os.path.relpath(path, tmp_path)))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(storage_mod.os, name, spy)

    s.write("a/b/k1", b"1")
    assert ("mkdir", "root/a/b") in calls and not [c for c in calls if c[0] == "unlink"]
    calls.clear()
    s.write("a/b/k2", b"2")
    s.write("a/b/k1", b"one")
    assert calls == []
    (tmp_path / "root" / "a" / "b" / "k1").unlink()
    (tmp_path / "root" / "a" / "b" / "k2").unlink()
    (tmp_path / "root" / "a" / "b").rmdir()
    s.write("a/b/k3", b"3")
    assert s.read("a/b/k3") == b"3"
    assert _files_on_disk(tmp_path) == ["root/a/b/k3"]


def test_overwrite_replaces_content(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.write("a/b", b"one")
    s.write("a/b", b"two")
    assert s.read("a/b") == b"two"
    assert [o.key for o in s.list()] == ["a/b"]


def test_stray_temp_file_is_never_listed(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.write("d/real", b"1")
    (tmp_path / "d" / f".real.deadbeef{TMP_SUFFIX}").write_bytes(b"half")
    assert [o.key for o in s.list()] == ["d/real"]


def test_missing_key_read_and_delete_raise_object_not_found(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    with pytest.raises(ObjectNotFound):
        s.read("no/such/key")
    with pytest.raises(ObjectNotFound):
        s.delete("no/such/key")
    assert s.exists("no/such/key") is False


def test_exists_and_delete(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.write("p/q", b"x")
    assert s.exists("p/q") is True
    assert s.exists("p") is False  # a folder is not an object
    s.delete("p/q")
    assert s.exists("p/q") is False
    assert list(s.list()) == []
    with pytest.raises(ObjectNotFound):
        s.read("p/q")


@pytest.mark.parametrize(
    "key", ["../x", "/etc/passwd", "a/../../b", "a//b", "a\\b", "", "./a", "a/.", "a/", "a\x00b"]
)
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    s = LocalStorage(tmp_path / "root")
    with pytest.raises(UnsafeKeyError):
        s.write(key, b"x")
    with pytest.raises(UnsafeKeyError):
        s.read(key)
    with pytest.raises(UnsafeKeyError):
        s.delete(key)
    with pytest.raises(UnsafeKeyError):
        s.exists(key)
    # nothing was written anywhere under tmp_path
    assert _files_on_disk(tmp_path) == []


@pytest.mark.parametrize("prefix", ["../", "/etc", "a//", "a\\"])
def test_unsafe_prefixes_are_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(UnsafeKeyError):
        list(LocalStorage(tmp_path).list(prefix))


def test_check_key_allows_listing_prefixes() -> None:
    assert check_key("", allow_prefix=True) == ""
    assert check_key("a/b/", allow_prefix=True) == "a/b/"
    assert check_key("a/b-c.d", allow_prefix=False) == "a/b-c.d"


def test_open_storage_file_uri_and_plain_path(tmp_path: Path) -> None:
    from_uri = open_storage(tmp_path.as_uri())
    assert isinstance(from_uri, LocalStorage)
    assert from_uri.root == tmp_path.resolve()
    from_path = open_storage(str(tmp_path))
    assert isinstance(from_path, LocalStorage)
    assert from_path.root == tmp_path.resolve()
    from_uri.write("k/v", b"data")
    assert (tmp_path / "k" / "v").read_bytes() == b"data"
    assert from_path.read("k/v") == b"data"


def test_open_storage_file_uri_with_escaped_characters(tmp_path: Path) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()
    s = open_storage(folder.as_uri())
    assert isinstance(s, LocalStorage)
    assert s.root == folder.resolve()


def test_open_storage_s3_uses_given_client() -> None:
    dummy = object()
    s = open_storage("s3://my-bucket/some/prefix/", s3_client=dummy)
    assert isinstance(s, S3Storage)
    assert s.bucket == "my-bucket"
    assert s.prefix == "some/prefix/"
    assert s.client is dummy
    assert s.uri_of("a/b.gz") == "s3://my-bucket/some/prefix/a/b.gz"
    bare = open_storage("s3://bucket", s3_client=dummy)
    assert isinstance(bare, S3Storage)
    assert bare.prefix == ""
    assert bare.uri_of("k") == "s3://bucket/k"


def test_s3_uri_of_refuses_unsafe_keys() -> None:
    s = S3Storage("b", "p", client=object())
    with pytest.raises(UnsafeKeyError):
        s.uri_of("../escape")


@pytest.mark.parametrize("uri", ["ftp://host/path", "gs://bucket/x", "http://example.com/x"])
def test_open_storage_unsupported_scheme(uri: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        open_storage(uri)


def test_open_storage_s3_without_bucket() -> None:
    with pytest.raises(ValueError):
        open_storage("s3:///prefix", s3_client=object())


def test_local_storage_streams_and_reads_ranges(tmp_path) -> None:
    from lake.storage import LocalStorage, ObjectNotFound

    storage = LocalStorage(tmp_path)
    payload = bytes(range(256)) * 100
    storage.write("d/blob", payload)
    with storage.open("d/blob") as stream:
        assert stream.read(10) == payload[:10]
    assert storage.read_range("d/blob", 250, 12) == payload[250:262]
    with pytest.raises(ObjectNotFound):
        storage.open("d/missing")


# names around '/' in byte order, a space, punctuation and non-ASCII: hostile, and chosen so
# that a folder's name order and its keys' order disagree
HOSTILE_PARTS = ["a", "a-", "a.b", "a0", "ab", " x", "!", "é", "~z", "a b", "_", "Z", "a\t"]


def hostile_keys(seed: int, count: int = 60) -> list[str]:
    import random

    rng = random.Random(seed)
    keys = {
        "/".join(rng.choice(HOSTILE_PARTS) for _ in range(rng.randint(1, 3))) for _ in range(count)
    }
    # a key may not also be a folder of another key on a local disk
    return sorted(k for k in keys if not any(o.startswith(k + "/") for o in keys))


def cursors(keys: list[str]) -> list[str]:
    """Every key, every prefix of one, and each of those with a last character bumped."""
    prefixes = {k[:n] for k in keys for n in range(1, len(k) + 1)}
    bumped = {p[:-1] + chr(ord(p[-1]) + 1) for p in prefixes} | {
        p[:-1] + chr(ord(p[-1]) - 1) for p in prefixes
    }
    return sorted(prefixes | bumped | {"", "\x7f", "é/é"})


def hostile_store(tmp_path: Path, seed: int) -> tuple[list[str], LocalStorage]:
    keys = hostile_keys(seed)
    store = LocalStorage(tmp_path / "root")
    for key in keys:
        store.write(key, b"x")
    return keys, store


@pytest.mark.parametrize("seed", range(4))
def test_start_after_matches_s3_order_for_hostile_names(tmp_path: Path, seed: int) -> None:
    keys, store = hostile_store(tmp_path, seed)
    for cursor in cursors(keys):
        for prefix in ("", "a/", "a", "a-/"):
            want = [k for k in keys if k > cursor and k.startswith(prefix)]
            got = [o.key for o in store.list(prefix, start_after=cursor or None)]
            assert got == want, (cursor, prefix)


def test_bounded_listing_stats_only_what_it_may_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing from a cursor near a large folder's end looks at the entries after the
    cursor (and names the cursor starts with), not at every entry of the folder."""
    store = LocalStorage(tmp_path / "root")
    for n in range(500):
        store.write(f"h/{n:05d}.gz", b"x")
    looked: list[str] = []
    real_lstat, real_stat = os.lstat, os.stat

    def lstat(path, *args, **kwargs):
        looked.append(str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(storage_mod.os, "lstat", lstat)
    monkeypatch.setattr(
        storage_mod.os, "scandir", lambda *a, **k: pytest.fail("scandir reads every entry")
    )
    listed = [o.key for o in store.list("h/", start_after="h/00497.gz")]
    assert listed == ["h/00498.gz", "h/00499.gz"]
    # the two after the cursor, and a name equal to it (it could be a folder)
    assert len([p for p in looked if "/h/" in p]) == 3
    monkeypatch.setattr(storage_mod.os, "stat", real_stat)


@pytest.mark.parametrize("seed", range(4))
def test_partial_name_prefixes_match_s3_for_hostile_names(tmp_path: Path, seed: int) -> None:
    """A prefix ending inside a name (a ledger hour's `<hour>-`) lists what S3 would."""
    keys, store = hostile_store(tmp_path, seed)
    for prefix in cursors(keys):
        want = [k for k in keys if k.startswith(prefix)]
        assert [o.key for o in store.list(prefix)] == want, prefix
        for cursor in (prefix, prefix[:-1], keys[len(keys) // 2]):
            want_after = [k for k in want if k > cursor]
            got = [o.key for o in store.list(prefix, start_after=cursor or None)]
            assert got == want_after, (prefix, cursor)


def test_a_partial_name_prefix_stats_only_the_names_it_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing one hour's manifests in a stream's flat ledger folder looks at that hour's
    entries, not at every manifest of every hour (which made a range run's per-hour totals
    seeding quadratic in the hours on a local lake)."""
    store = LocalStorage(tmp_path / "root")
    for hour in range(20):
        for n in range(25):
            store.write(f"_state/cleaned/s/20261101T{hour:02d}-{n:03d}.v1.json", b"{}")
    looked: list[str] = []
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        looked.append(str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(storage_mod.os, "lstat", lstat)
    listed = [o.key for o in store.list("_state/cleaned/s/20261101T07-")]
    assert listed == [f"_state/cleaned/s/20261101T07-{n:03d}.v1.json" for n in range(25)]
    assert len([p for p in looked if "/s/2026" in p]) == 25  # not the folder's 500
    looked.clear()
    after = "_state/cleaned/s/20261101T07-019.v1.json"
    assert len(list(store.list("_state/cleaned/s/20261101T07-", start_after=after))) == 5
    # the five after the cursor, and a name equal to it (it could be a folder)
    assert len([p for p in looked if "/s/2026" in p]) == 6
