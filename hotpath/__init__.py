"""hotpath: bounded protocol and record primitives, compiled with Cython, each with a twin.

Nothing here knows about policy, configuration files or the rest of mta: these modules take
bytes and limits and give back events, records or errors. Each compiled module `_name.pyx`
has a pure-Python twin `_name_py.py` with the same API; the facade modules (`parser`,
`queue`) pick the compiled one unless MTA_NO_EXTENSIONS=1 is set or it was not built.
"""

import os

NO_EXTENSIONS = os.environ.get("MTA_NO_EXTENSIONS") == "1"
