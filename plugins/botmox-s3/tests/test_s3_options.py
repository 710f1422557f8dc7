"""Option validation: clear ConfigurationErrors naming the variable, never a secret."""

from __future__ import annotations

import pytest
from botmox_s3.options import MIB, parse_s3_options

from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError

SECRET = "s3cr3t-value-never-printed"


def test_minimal_options_and_defaults() -> None:
    options = parse_s3_options({"bucket": "artifacts"})
    assert options.bucket == "artifacts"
    assert options.region == "us-east-1"
    assert options.sse == "none"
    assert options.privacy_check == "refuse"
    assert options.multipart_threshold == 16 * MIB


def test_env_variables_reach_the_options() -> None:
    settings = load_settings(
        environ={
            "BOTMOX_S3_BUCKET": "artifacts",
            "BOTMOX_S3_REGION": "eu-central-1",
            "BOTMOX_S3_ENDPOINT_URL": "https://s3.example.test/",
            "BOTMOX_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "BOTMOX_S3_SECRET_ACCESS_KEY": SECRET,
            "BOTMOX_S3_ADDRESSING_STYLE": "PATH",
            "BOTMOX_S3_SSE": "aws:kms",
            "BOTMOX_S3_SSE_KMS_KEY_ID": "alias/botmox",
            "BOTMOX_S3_PRIVACY_CHECK": "warn",
        }
    )
    options = parse_s3_options(settings.plugin_options("s3"))
    assert options.endpoint_url == "https://s3.example.test"
    assert options.addressing_style == "path"
    assert options.sse == "aws:kms" and options.sse_kms_key_id == "alias/botmox"
    assert options.privacy_check == "warn"
    assert SECRET not in repr(options)
    assert "AKIDEXAMPLE" not in repr(options)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "BOTMOX_S3_BUCKET is required"),
        ({"bucket": "Bad_Bucket"}, "BOTMOX_S3_BUCKET='Bad_Bucket' is not a valid bucket name"),
        ({"bucket": "ok-bucket", "sse": "rot13"}, "BOTMOX_S3_SSE='rot13' is not one of"),
        ({"bucket": "ok-bucket", "privacy_check": "maybe"}, "BOTMOX_S3_PRIVACY_CHECK"),
        ({"bucket": "ok-bucket", "addressing_style": "x"}, "BOTMOX_S3_ADDRESSING_STYLE"),
        ({"bucket": "ok-bucket", "endpoint_url": "s3.local:9000"}, "absolute http(s) URL"),
        ({"bucket": "ok-bucket", "sse_kms_key_id": "k"}, "not 'aws:kms'"),
        ({"bucket": "ok-bucket", "multipart_chunksize_mb": "4"}, "between 5 and"),
        ({"bucket": "ok-bucket", "max_concurrency": "lots"}, "is not a number"),
        ({"bucket": "ok-bucket", "bukket": "x"}, "unknown option BOTMOX_S3_BUKKET"),
        ({"bucket": "ok-bucket", "spool_dir": "/no/such/dir"}, "is not a directory"),
        ({"bucket": "ok-bucket", "access_key_id": "AKID"}, "set both"),
    ],
)
def test_bad_options_are_configuration_errors(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_s3_options(raw)
    assert message in caught.value.message
    assert caught.value.code == "CONFIGURATION_ERROR"


def test_secret_never_appears_in_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_s3_options({"secret_access_key": SECRET})
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        parse_s3_options(
            {"bucket": "ok-bucket", "secret_access_key": SECRET, "endpoint_url": "ftp://x"}
        )
    assert SECRET not in str(caught.value)


def test_aliases_name_the_other_plugins_variables() -> None:
    with pytest.raises(ConfigurationError, match="BOTMOX_MINIO_SECRET_KEY"):
        parse_s3_options(
            {"bucket": "ok-bucket", "access_key": "AKID"},
            env_prefix="BOTMOX_MINIO_",
            aliases={"access_key": "access_key_id", "secret_key": "secret_access_key"},
        )
