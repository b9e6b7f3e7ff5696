"""The QEMU smoke test: boot a built image under QEMU + UEFI firmware and read its verdict from the serial console."""

from .qemu import SmokeResult, Verdict, boot_disk, choose_accel, kvm_usable, qemu_command
from .run import board_for_product, product_paths, smoketest

__all__ = ["SmokeResult", "Verdict", "board_for_product", "boot_disk", "choose_accel", "kvm_usable",
           "product_paths", "qemu_command", "smoketest"]
