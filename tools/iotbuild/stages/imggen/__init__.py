"""imggen: OEMInput.xml → packages → partitions → Flash.ffu (``invoke buildimage``)."""

from .build import ImageOptions, ImageResult, build_image, config_name, output_dir

__all__ = ["ImageOptions", "ImageResult", "build_image", "config_name", "output_dir"]
