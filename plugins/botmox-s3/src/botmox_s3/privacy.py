"""Start-up check that the artifact bucket is private.

Four looks, each recorded in a :class:`PrivacyReport`:

1. ``GetPublicAccessBlock``: all four flags on means AWS ignores public ACLs and policies.
2. ``GetBucketPolicyStatus`` (AWS's own verdict on the policy).
3. ``GetBucketAcl``: grants to the ``AllUsers`` / ``AuthenticatedUsers`` groups.
4. An anonymous probe: a small object is written with the storage's credentials, then read and
   the bucket listed *without* credentials; both must be refused. This is the check that holds
   on every S3-compatible server, whatever subset of the configuration APIs it implements.

Servers that do not implement an API (SeaweedFS answers ``NotImplemented`` for the public
access block, for instance) are noted as *unverified*, not as public; the probe still decides.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from botmox_core.errors import ConfigurationError
from botmox_s3.error_mapping import client_error_code

__all__ = ["PROBE_PREFIX", "PrivacyReport", "check_bucket_privacy", "enforce_privacy"]

PROBE_PREFIX = ".botmox-privacy-probe/"
"""Key prefix of the probe objects (deleted right after the probe)."""

_PUBLIC_GROUPS = {
    "http://acs.amazonaws.com/groups/global/AllUsers": "everyone",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "any AWS account",
}
_UNSUPPORTED = frozenset({"NotImplemented", "501", "MethodNotAllowed", "405", "XNotImplemented"})
_BLOCK_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@attrs.frozen
class PrivacyReport:
    """What the privacy check found.

    Attributes:
        bucket: the bucket checked.
        checked: False when the check was switched off.
        public_reasons: evidence that the bucket (or its objects) can be read without the
            storage's credentials. Empty means private.
        unverified: checks the server could not answer (not implemented, denied ...).
        notes: findings that do not make the bucket public (for example a public ACL that a
            public access block neutralises).
    """

    bucket: str
    checked: bool = True
    public_reasons: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def is_public(self) -> bool:
        """Whether any evidence of public access was found."""
        return bool(self.public_reasons)


def check_bucket_privacy(
    client: BaseClient,
    *,
    bucket: str,
    anonymous_client: BaseClient | None,
    put_args: Mapping[str, Any] | None = None,
) -> PrivacyReport:
    """Look at ``bucket`` with ``client`` and probe it with ``anonymous_client`` (unsigned).

    ``put_args`` are extra PutObject arguments for the probe object (server-side encryption).
    ``anonymous_client=None`` skips the probe (recorded as unverified). Never raises for what
    the server answers; the anonymous client is closed before returning.
    """
    public: list[str] = []
    unverified: list[str] = []
    notes: list[str] = []
    configured: list[str] = []  # public findings of ACL/policy, void if the block is on

    blocked = _public_access_blocked(client, bucket, unverified)
    _policy_findings(client, bucket, configured, unverified)
    _acl_findings(client, bucket, configured, unverified)
    if blocked:
        notes.extend(
            f"{finding} (neutralised by the public access block)" for finding in configured
        )
    else:
        public.extend(configured)
    if anonymous_client is None:
        unverified.append("anonymous probe (skipped)")
    else:
        try:
            _anonymous_probe(
                client, anonymous_client, bucket, dict(put_args or {}), public, unverified
            )
        finally:
            anonymous_client.close()
    return PrivacyReport(
        bucket=bucket,
        public_reasons=tuple(public),
        unverified=tuple(unverified),
        notes=tuple(notes),
    )


def enforce_privacy(
    report: PrivacyReport,
    mode: str,
    logger: logging.Logger,
    *,
    setting: str = "BOTMOX_S3_PRIVACY_CHECK",
) -> None:
    """Act on ``report``: ``refuse`` raises :class:`ConfigurationError` when the bucket is
    public, ``warn`` logs a warning, ``off`` does nothing."""
    if mode == "off" or not report.checked:
        return
    for item in report.unverified:
        logger.info("bucket %r privacy: could not verify %s", report.bucket, item)
    for item in report.notes:
        logger.info("bucket %r privacy: %s", report.bucket, item)
    if not report.is_public:
        return
    message = f"bucket {report.bucket!r} is not private: " + "; ".join(report.public_reasons)
    if mode == "refuse":
        raise ConfigurationError(
            f"{message}. Make the bucket private, or set {setting}=warn to start anyway"
        )
    logger.warning("SECURITY: %s. Artifacts can be downloaded without a lease.", message)


def _answer(exc: ClientError) -> str:
    return client_error_code(exc) or "error"


def _public_access_blocked(client: BaseClient, bucket: str, unverified: list[str]) -> bool:
    try:
        config = client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        code = _answer(exc)
        if code == "NoSuchPublicAccessBlockConfiguration":
            return False
        reason = "not implemented by the server" if code in _UNSUPPORTED else code
        unverified.append(f"public access block ({reason})")
        return False
    except BotoCoreError as exc:
        unverified.append(f"public access block ({type(exc).__name__})")
        return False
    return all(bool(config.get(flag)) for flag in _BLOCK_FLAGS)


def _policy_findings(
    client: BaseClient, bucket: str, public: list[str], unverified: list[str]
) -> None:
    try:
        status = client.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]
    except ClientError as exc:
        code = _answer(exc)
        if code == "NoSuchBucketPolicy":
            return
        reason = "not implemented by the server" if code in _UNSUPPORTED else code
        unverified.append(f"bucket policy status ({reason})")
        return
    except BotoCoreError as exc:
        unverified.append(f"bucket policy status ({type(exc).__name__})")
        return
    if status.get("IsPublic"):
        public.append("the bucket policy grants public access")


def _acl_findings(
    client: BaseClient, bucket: str, public: list[str], unverified: list[str]
) -> None:
    try:
        grants = client.get_bucket_acl(Bucket=bucket).get("Grants", [])
    except ClientError as exc:
        code = _answer(exc)
        reason = "not implemented by the server" if code in _UNSUPPORTED else code
        unverified.append(f"bucket ACL ({reason})")
        return
    except BotoCoreError as exc:
        unverified.append(f"bucket ACL ({type(exc).__name__})")
        return
    for grant in grants:
        who = _PUBLIC_GROUPS.get(str(grant.get("Grantee", {}).get("URI", "")))
        if who:
            public.append(f"the bucket ACL grants {grant.get('Permission', '?')} to {who}")


def _anonymous_probe(
    client: BaseClient,
    anonymous: BaseClient,
    bucket: str,
    put_args: dict[str, Any],
    public: list[str],
    unverified: list[str],
) -> None:
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"botmox privacy probe\n", **put_args)
    except (ClientError, BotoCoreError) as exc:
        reason = _answer(exc) if isinstance(exc, ClientError) else type(exc).__name__
        unverified.append(f"anonymous read probe (could not write the probe object: {reason})")
        _anonymous_list(anonymous, bucket, public, unverified)
        return
    try:
        try:
            anonymous.get_object(Bucket=bucket, Key=key)["Body"].close()
            public.append("an object could be read anonymously (without credentials)")
        except ClientError as exc:
            if _answer(exc) not in ("AccessDenied", "403", "Forbidden"):
                unverified.append(f"anonymous read probe (answered {_answer(exc)})")
        except BotoCoreError as exc:
            unverified.append(f"anonymous read probe ({type(exc).__name__})")
        _anonymous_list(anonymous, bucket, public, unverified)
    finally:
        try:
            client.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError):
            unverified.append(f"probe object {key!r} could not be deleted")


def _anonymous_list(
    anonymous: BaseClient, bucket: str, public: list[str], unverified: list[str]
) -> None:
    try:
        anonymous.list_objects_v2(Bucket=bucket, MaxKeys=1)
        public.append("the bucket could be listed anonymously")
    except ClientError as exc:
        if _answer(exc) not in ("AccessDenied", "403", "Forbidden"):
            unverified.append(f"anonymous list probe (answered {_answer(exc)})")
    except BotoCoreError as exc:
        unverified.append(f"anonymous list probe ({type(exc).__name__})")
