"""Microsoft Cabinet (MS-CAB) files: a streaming writer, a reader and the MSZIP codec.

    with open("pkg.cab.partial", "wb") as out:
        write_cab(out, [CabSource("man.dsm.xml", path=dsm)], epoch=source_date_epoch)
    with CabReader.open("pkg.cab") as cab:
        cab.verify(); data = cab.read("man.dsm.xml")

Reference: /work/shared/reference/cab-authenticode-registry.md §1 (layout) and §2.1 (signed cabs).
"""

from .checksum import cab_checksum, cfdata_checksum
from .mszip import MszipCompressor, MszipDecompressor
from .reader import CabReader, extract_with_cabextract
from .records import (
                      ATTR_ARCH,
                      ATTR_EXEC,
                      ATTR_HIDDEN,
                      ATTR_NAME_IS_UTF,
                      ATTR_RDONLY,
                      ATTR_SYSTEM,
                      CfData,
                      CfFile,
                      CfFolder,
                      CfHeader,
                      CfReserveSizes,
                      Compression,
                      dos_datetime,
)
from .writer import CabSource, CabWriteResult, write_cab

__all__ = [
    "ATTR_ARCH", "ATTR_EXEC", "ATTR_HIDDEN", "ATTR_NAME_IS_UTF", "ATTR_RDONLY", "ATTR_SYSTEM",
    "CabReader", "CabSource", "CabWriteResult", "CfData", "CfFile", "CfFolder", "CfHeader", "CfReserveSizes",
    "Compression", "MszipCompressor", "MszipDecompressor", "cab_checksum", "cfdata_checksum", "dos_datetime",
    "extract_with_cabextract", "write_cab",
]
