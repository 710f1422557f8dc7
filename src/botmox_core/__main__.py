"""``python -m botmox_core``: the same as the ``botmox`` command."""

from botmox_core.cli import main

main()
