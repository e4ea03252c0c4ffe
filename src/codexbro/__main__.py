import os
import sys

# `python -m codexbro` puts the working directory first on sys.path. Drop it before anything else is
# imported: a workspace file named like a module codexbro imports (argparse.py, json.py, …) must
# never be that module.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from codexbro.cli.main import entry

entry()
