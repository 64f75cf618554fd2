"""Prints how it was started, as one JSON line: tests compare `perfdoctor run` with plain python.

No torch here, so the plain-python run it is compared with stays quick.
"""

import json
import sys

print(
    "STARTED-AS "
    + json.dumps(
        {
            "argv": sys.argv,
            "path0": sys.path[0],
            "name": __name__,
            "file": __file__,
            "spec": None if __spec__ is None else __spec__.name,
            "is_main_module": sys.modules["__main__"].__dict__ is globals(),
        }
    ),
    flush=True,
)
