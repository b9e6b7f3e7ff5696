"""Board preparation: the stand-in boot chain a board's ``Board.xml`` describes (``invoke bsp.prepare``)."""

from .prepare import (PREPARED_FILES, PreparedBootChain, default_cache_dir, default_debs_dirs, find_debs,
                      prepare_boot_chain)

__all__ = ["PREPARED_FILES", "PreparedBootChain", "default_cache_dir", "default_debs_dirs", "find_debs",
           "prepare_boot_chain"]
