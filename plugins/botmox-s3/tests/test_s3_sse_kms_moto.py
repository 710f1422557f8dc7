"""SSE-KMS needs AWS KMS, which SeaweedFS lacks: shown against moto (SSE-S3 runs on SeaweedFS)."""

from __future__ import annotations

import io

import boto3
from botmox_s3.options import parse_s3_options
from botmox_s3.storage import S3Storage
from moto import mock_aws


@mock_aws
def test_sse_kms_with_a_customer_key() -> None:
    key_id = boto3.client("kms", region_name="eu-central-1").create_key()["KeyMetadata"]["KeyId"]
    boto3.client("s3", region_name="eu-central-1").create_bucket(
        Bucket="kms-bucket",
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    options = parse_s3_options(
        {
            "bucket": "kms-bucket",
            "region": "eu-central-1",
            "sse": "aws:kms",
            "sse_kms_key_id": key_id,
            # multipart from 5 MiB: the KMS headers must travel on CreateMultipartUpload too
            "multipart_threshold_mb": "5",
            "multipart_chunksize_mb": "5",
        }
    )
    store = S3Storage(options)
    try:
        store.put("small.bin", io.BytesIO(b"kms protected"))
        store.put("large.bin", io.BytesIO(b"z" * (11 * 1024 * 1024)))
        for key in ("small.bin", "large.bin"):
            head = store.client.head_object(Bucket="kms-bucket", Key=key)
            assert head["ServerSideEncryption"] == "aws:kms"
            assert key_id in head["SSEKMSKeyId"]
        with store.open("small.bin") as body:
            assert body.read() == b"kms protected"
    finally:
        store.close()
