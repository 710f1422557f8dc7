"""botmox-s3: artifacts in a private AWS S3 (or S3-compatible) bucket, read only through
short-lived SigV4 presigned URLs.

Install it beside botmox, then select it::

    BOTMOX_STORAGE=s3
    BOTMOX_S3_BUCKET=my-artifacts
    BOTMOX_S3_REGION=eu-central-1

Options are listed in :class:`botmox_s3.options.S3Options`; the storage itself is
:class:`botmox_s3.storage.S3Storage`. ``botmox_s3.testing`` starts a real SeaweedFS S3 server for
tests.
"""

from botmox_s3.options import S3Options, parse_s3_options
from botmox_s3.privacy import PrivacyReport
from botmox_s3.storage import S3Storage, make_s3_client

__all__ = ["PrivacyReport", "S3Options", "S3Storage", "make_s3_client", "parse_s3_options"]
