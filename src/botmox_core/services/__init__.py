"""Services: the use cases of botmox, written against ports only.

Build them all at once with :func:`botmox_core.bootstrap.bootstrap`; each takes the caller's
:class:`~botmox_core.services.principal.Principal` and raises :mod:`botmox_core.errors`.
"""

from botmox_core.services.downloads import DownloadService, ResolvedDownload
from botmox_core.services.leases import IssuedLease, LeaseService
from botmox_core.services.licences import LicenceAdmin
from botmox_core.services.principal import Principal, utcnow
from botmox_core.services.releases import AssignmentView, ReleaseService
from botmox_core.services.tokens import CreatedToken, TokenService
from botmox_core.services.vms import VmRegistry

__all__ = [
    "AssignmentView",
    "CreatedToken",
    "DownloadService",
    "IssuedLease",
    "LeaseService",
    "LicenceAdmin",
    "Principal",
    "ReleaseService",
    "ResolvedDownload",
    "TokenService",
    "VmRegistry",
    "utcnow",
]
