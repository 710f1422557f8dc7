"""Operations the ``botmox`` CLI runs against an installation: key rotation
(:mod:`botmox_core.ops.keys`) and backup and restore (:mod:`botmox_core.ops.backup`)."""
