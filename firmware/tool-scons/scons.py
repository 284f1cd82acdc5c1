"""Offline stand-in for PlatformIO's tool-scons package.

PlatformIO runs ``<tool-scons>/scons.py``; the registry copy cannot be downloaded here, so this
runs the SCons that pip installed next to platformio (pinned together in requirements.txt).
"""

import sys

from SCons.Script.Main import main

if __name__ == "__main__":
    sys.exit(main())
