"""iotbuild: Windows 10 IoT Core packages, feature manifests and images, built on Linux.

Layers (imports point downward only): ``tasks``/``cli`` -> ``stages`` -> ``models`` -> ``formats``.
"""

__version__ = "0.1.0"
