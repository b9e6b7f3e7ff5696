"""Windows registry hive files (REGF): the project's own writer and reader, and the image step's merge rules.

    keys = merge_keys([(pkg.name, pkg.registry) for pkg in packages])
    for hive, hive_keys in split_by_hive(keys).items():
        with atomic_output(root / hive) as out:
            write_hive(out, hive_keys, root_name="ROOT", timestamp=build_epoch(), file_name=hive)
    with open(root / "SOFTWARE", "rb") as f:
        keys = read_hive(f)

Written hives are version 1.5. Reference: /work/shared/reference/cab-authenticode-registry.md §5
(hivex cannot create a hive; §5.3 the layout of one), checked by hivex and regipy in
tests/formats/test_regf.py.
"""

from .merge import HIVES, append_multi_sz, canonical_path, describe, merge_keys, split_by_hive
from .reader import HiveReader, decode_value, read_hive
from .records import (
    DEFAULT_SECURITY_DESCRIPTOR,
    BaseBlock,
    BigData,
    FastLeaf,
    HashLeaf,
    HBin,
    IndexLeaf,
    IndexRoot,
    KeyNode,
    KeyValue,
    SecurityKey,
    checksum,
    lh_hash,
)
from .writer import HiveInfo, write_hive

__all__ = [
    "DEFAULT_SECURITY_DESCRIPTOR", "HIVES", "BaseBlock", "BigData", "FastLeaf", "HBin", "HashLeaf",
    "HiveInfo",
    "HiveReader", "IndexLeaf", "IndexRoot", "KeyNode", "KeyValue", "SecurityKey", "append_multi_sz",
    "canonical_path", "checksum", "decode_value", "describe", "lh_hash", "merge_keys", "read_hive",
    "split_by_hive", "write_hive",
]
