"""The start-up privacy check: refuse or warn when the bucket can be read anonymously."""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from botmox_s3.plugin import build_s3_storage
from botmox_s3.privacy import PROBE_PREFIX, check_bucket_privacy
from botmox_s3.testing import SeaweedFS
from moto import mock_aws

from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError


def _public_read_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
    )


def test_private_bucket_passes_and_leaves_no_probe_object(
    s3_env: dict[str, str], seaweedfs: SeaweedFS, bucket: str
) -> None:
    store = build_s3_storage(load_settings(environ=s3_env))
    try:
        report = store.verify_privacy()
    finally:
        store.close()
    assert not report.is_public
    # SeaweedFS has no public access block API; the check says so instead of guessing.
    assert any("public access block" in item for item in report.unverified)
    client = seaweedfs.client()
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=PROBE_PREFIX)
    finally:
        client.close()
    assert listed.get("KeyCount", 0) == 0


def test_public_policy_refuses_to_start(
    s3_env: dict[str, str], seaweedfs: SeaweedFS, bucket: str
) -> None:
    client = seaweedfs.client()
    try:
        client.put_bucket_policy(Bucket=bucket, Policy=_public_read_policy(bucket))
    finally:
        client.close()
    with pytest.raises(ConfigurationError) as caught:
        build_s3_storage(load_settings(environ=s3_env))
    message = caught.value.message
    assert "is not private" in message
    assert "policy" in message
    assert "read anonymously" in message  # the probe confirms it
    assert "BOTMOX_S3_PRIVACY_CHECK=warn" in message


def test_public_acl_refuses_to_start(
    s3_env: dict[str, str], seaweedfs: SeaweedFS, bucket: str
) -> None:
    client = seaweedfs.client()
    try:
        client.put_bucket_acl(Bucket=bucket, ACL="public-read")
    finally:
        client.close()
    with pytest.raises(ConfigurationError, match="ACL grants READ to everyone"):
        build_s3_storage(load_settings(environ=s3_env))


def test_warn_mode_starts_but_logs_loudly(
    s3_env: dict[str, str],
    seaweedfs: SeaweedFS,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = seaweedfs.client()
    try:
        client.put_bucket_policy(Bucket=bucket, Policy=_public_read_policy(bucket))
    finally:
        client.close()
    env = {**s3_env, "BOTMOX_S3_PRIVACY_CHECK": "warn"}
    with caplog.at_level(logging.WARNING, logger="botmox_s3"):
        store = build_s3_storage(load_settings(environ=env))
    store.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("SECURITY" in w and "is not private" in w for w in warnings)


def test_off_mode_skips_the_check(
    s3_env: dict[str, str], seaweedfs: SeaweedFS, bucket: str
) -> None:
    client = seaweedfs.client()
    try:
        client.put_bucket_acl(Bucket=bucket, ACL="public-read")
    finally:
        client.close()
    store = build_s3_storage(load_settings(environ={**s3_env, "BOTMOX_S3_PRIVACY_CHECK": "off"}))
    try:
        assert not store.verify_privacy().checked
    finally:
        store.close()


# -- AWS-only APIs: moto ----------------------------------------------------------------------
# SeaweedFS answers NotImplemented for GetPublicAccessBlock, so the public access block logic is
# shown against moto. moto does not enforce anonymous denial, so the anonymous probe is skipped
# here (it is shown against SeaweedFS above).


@mock_aws
def test_public_access_block_neutralises_a_public_acl() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="blocked-bucket")
    client.put_bucket_acl(Bucket="blocked-bucket", ACL="public-read")
    client.put_public_access_block(
        Bucket="blocked-bucket",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    report = check_bucket_privacy(client, bucket="blocked-bucket", anonymous_client=None)
    assert not report.is_public
    assert any("ACL" in note and "neutralised" in note for note in report.notes)
    assert not any("public access block" in item for item in report.unverified)


@mock_aws
def test_partial_public_access_block_does_not_hide_a_public_acl() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="half-blocked")
    client.put_bucket_acl(Bucket="half-blocked", ACL="public-read")
    client.put_public_access_block(
        Bucket="half-blocked",
        PublicAccessBlockConfiguration={"BlockPublicAcls": True, "IgnorePublicAcls": False},
    )
    report = check_bucket_privacy(client, bucket="half-blocked", anonymous_client=None)
    assert report.is_public
    assert any("ACL grants READ to everyone" in reason for reason in report.public_reasons)


@mock_aws
def test_missing_public_access_block_is_not_itself_public() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="plain-bucket")
    report = check_bucket_privacy(client, bucket="plain-bucket", anonymous_client=None)
    assert not report.is_public
    assert report.unverified == ("anonymous probe (skipped)",)
