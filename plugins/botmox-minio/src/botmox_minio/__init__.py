"""botmox-minio: artifacts in a private MinIO bucket (builds on botmox-s3).

::

    BOTMOX_STORAGE=minio
    BOTMOX_MINIO_ENDPOINT=http://minio:9000            # what the botmox server uses
    BOTMOX_MINIO_PUBLIC_ENDPOINT=https://files.example  # what VMs use; presigned URLs carry it
    BOTMOX_MINIO_BUCKET=artifacts
    BOTMOX_MINIO_ACCESS_KEY=...
    BOTMOX_MINIO_SECRET_KEY=...
"""

from botmox_minio.options import parse_minio_options
from botmox_minio.storage import MinioStorage

__all__ = ["MinioStorage", "parse_minio_options"]
