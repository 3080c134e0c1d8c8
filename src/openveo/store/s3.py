"""Result files in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...), so workers and API servers
on different hosts share them without a shared disk. Clients download through presigned URLs.

Credentials and region come from boto3's usual chain (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_REGION`, `~/.aws`, instance roles). A custom endpoint (`OPENVEO_S3_ENDPOINT_URL`, or boto3's own
`AWS_ENDPOINT_URL_S3`) is addressed path-style, which every S3-compatible server understands.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from openveo.store.blobs import BlobMissing, StorageUnavailable, content_type

MAX_PRESIGN_S = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


class S3Blobs:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise StorageUnavailable("S3 storage needs boto3: pip install 'openveo[s3]'") from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        endpoint_url = (
            endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        config = Config(
            signature_version="s3v4",  # presigned URLs every region and S3-compatible server accepts
            s3={"addressing_style": "path"} if endpoint_url else {},
            retries={"mode": "standard", "max_attempts": 5},
        )
        self.region: str | None = None  # the bucket's own, once `check()` has asked (presigning needs it)
        self._local = threading.local()  # boto3 clients are thread-safe, sessions are not: one each
        self._make = lambda: boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=config, region_name=self.region
        )

    @classmethod
    def from_uri(cls, uri: str, *, endpoint_url: str | None = None) -> S3Blobs:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageUnavailable(f"storage must look like s3://BUCKET/PREFIX, not {uri!r}")
        return cls(parsed.netloc, parsed.path, endpoint_url=endpoint_url)

    @property
    def client(self):
        client = getattr(self._local, "client", None)
        if client is None or (self.region and client.meta.region_name != self.region):
            client = self._local.client = self._make()
        return client

    def object_key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, source: Path) -> None:
        self.client.upload_file(
            str(source), self.bucket, self.object_key(key), ExtraArgs={"ContentType": content_type(key)}
        )
        source.unlink(missing_ok=True)

    def read_bytes(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise BlobMissing(key) from None
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"s3://{self.bucket}: {exc}") from None

    def delete_prefix(self, prefix: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.object_key(prefix).rstrip("/") + "/"
        )
        for page in pages:
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:  # a page holds at most 1000 keys, the most one delete_objects takes
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def local_path(self, key: str) -> Path | None:
        return None

    def presigned_url(self, key: str, expires_at: float) -> str:
        lifetime = int(min(max(expires_at - time.time(), 1), MAX_PRESIGN_S))
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=lifetime,
        )

    def check(self) -> None:
        """Fail early, with the bucket's name, when it cannot be reached."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            where = self.client.meta.endpoint_url
            raise StorageUnavailable(f"cannot use bucket {self.bucket!r} at {where}: {exc}") from None
        # A presigned URL must be signed for the bucket's region, which may not be the configured one.
        self.region = answer["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region") or self.region
