"""Pure-Python container parsers that locate embedded JPEG previews without reading whole files.

`read_jpeg` reads a JPEG's header (size, orientation, MPF previews), `read_raw` a RAW file's
previews, orientation and full size, `sniff` tells a format from its first bytes. They read
metadata with a few small seeks and reads, whatever the file's size, and report every malformed
input as a ContainerError.
"""

from __future__ import annotations

from eyespyd.containers.jpeg import read_jpeg
from eyespyd.containers.raw import read_raw
from eyespyd.containers.results import JpegInfo, Preview, RawInfo
from eyespyd.containers.sniff import sniff

__all__ = ["JpegInfo", "Preview", "RawInfo", "read_jpeg", "read_raw", "sniff"]
