"""FeatureMerger: merge OEM and board feature manifests and write feature identifier packages."""

from .merge import FmResult, buildfm, input_dir, merged_dir

__all__ = ["FmResult", "buildfm", "input_dir", "merged_dir"]
