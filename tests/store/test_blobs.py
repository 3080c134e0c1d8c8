"""Both result stores behind one interface: a local directory and a real S3 wire-protocol server
(moto's server mode in a subprocess)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from openveo.store.blobs import BlobMissing, LocalBlobs, StorageUnavailable, open_blobs
from openveo.store.s3 import S3Blobs
from tests.e2e.cluster import S3Server


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3") / "s3.log")
    yield server
    server.close()


@pytest.fixture()
def s3_env(s3_server, monkeypatch):
    for name, value in S3Server.CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobs(tmp_path / "results")
    server = request.getfixturevalue("s3_env")
    return open_blobs(f"s3://{server.bucket}/{tmp_path.name}", tmp_path, s3_endpoint_url=server.url)


def staged(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "staging" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_put_read_and_delete_a_job_s_folder(store, tmp_path):
    source = staged(tmp_path, "video-0.mp4", b"\x00\x00\x00\x18ftypmp42 not really a video")
    store.put("jobs/abc/attempt-1/video-0.mp4", source)
    store.put("jobs/abc/attempt-1/thumbnail-0.jpg", staged(tmp_path, "t.jpg", b"jpeg"))
    store.put("jobs/abcd/attempt-1/video-0.mp4", staged(tmp_path, "other.mp4", b"another job"))
    assert not source.exists()  # moved or uploaded, never left behind
    assert store.read_bytes("jobs/abc/attempt-1/video-0.mp4").endswith(b"not really a video")

    store.delete_prefix("jobs/abc")
    with pytest.raises(BlobMissing):
        store.read_bytes("jobs/abc/attempt-1/video-0.mp4")
    with pytest.raises(BlobMissing):
        store.read_bytes("jobs/abc/attempt-1/thumbnail-0.jpg")
    assert store.read_bytes("jobs/abcd/attempt-1/video-0.mp4") == b"another job"  # a prefix, not a match


def test_keys_cannot_escape_the_store(store, tmp_path):
    with pytest.raises(ValueError):
        store.put("../outside.mp4", staged(tmp_path, "x.mp4", b"x"))


def test_s3_links_are_presigned_with_the_right_type(s3_env, tmp_path):
    import time

    store = S3Blobs(s3_env.bucket, "links", endpoint_url=s3_env.url)
    store.put("jobs/j/attempt-1/video-0.mp4", staged(tmp_path, "v.mp4", b"mp4 bytes"))
    url = store.presigned_url("jobs/j/attempt-1/video-0.mp4", time.time() + 3600)
    assert url.startswith(f"{s3_env.url}/{s3_env.bucket}/links/jobs/j/attempt-1/video-0.mp4?")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=" in url
    reply = httpx.get(url)
    assert reply.status_code == 200 and reply.content == b"mp4 bytes"
    assert reply.headers["content-type"] == "video/mp4"  # browsers play it inline
    assert LocalBlobs(tmp_path).presigned_url("any", time.time() + 60) is None  # the API signs those


def test_more_than_a_thousand_files_are_deleted(s3_env, tmp_path):
    """delete_objects takes 1000 keys at most; delete_prefix pages through them."""
    store = S3Blobs(s3_env.bucket, "many", endpoint_url=s3_env.url)
    client = s3_env.client()
    for index in range(1005):
        client.put_object(Bucket=s3_env.bucket, Key=f"many/jobs/big/{index}.jpg", Body=b"x")
    store.delete_prefix("jobs/big")
    assert s3_env.keys("many/jobs/big/") == []


def test_an_unusable_store_is_refused_with_the_reason(s3_env, tmp_path):
    with pytest.raises(StorageUnavailable, match="no-such-bucket"):
        open_blobs("s3://no-such-bucket/x", tmp_path, s3_endpoint_url=s3_env.url).check()
    with pytest.raises(StorageUnavailable, match="s3://BUCKET"):
        open_blobs("gs://elsewhere", tmp_path)
    with pytest.raises(StorageUnavailable, match="s3://BUCKET"):
        open_blobs("s3://", tmp_path)


def test_links_are_signed_for_the_bucket_s_own_region(s3_env, tmp_path):
    """A bucket in another region than the configured one: presigned links must name its region."""
    import time

    s3_env.client().create_bucket(
        Bucket="faraway", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    store = S3Blobs("faraway", "p", endpoint_url=s3_env.url)  # AWS_DEFAULT_REGION says us-east-1
    store.check()
    store.put("jobs/j/video-0.mp4", staged(tmp_path, "v.mp4", b"far"))
    url = store.presigned_url("jobs/j/video-0.mp4", time.time() + 60)
    assert "%2Feu-west-1%2Fs3%2Faws4_request" in url  # the credential scope of the signature
    assert httpx.get(url).content == b"far"
