"""tests/mcp_servers/hostile_server.py, started after it spawns a grandchild in a session of its
own (`setsid`), outside the server's process group, which writes its pid to the file named
first on the command line and sleeps (issue 26: such grandchildren outlived evalkit).

    escaping_server.py PID_FILE [--ignore-eof]

With `--ignore-eof` the server writes its own pid to PID_FILE.server and, once its stdin ends,
keeps running instead of exiting (issue 26: after a kill -9 of evalkit such a server was orphaned).
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

pid_file = sys.argv[1]
ignore_eof = "--ignore-eof" in sys.argv[2:]
subprocess.Popen([sys.executable, "-c", f"import os, time; open({pid_file!r}, 'w').write(str(os.getpid())); time.sleep(300)"],
                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if ignore_eof:
    Path(pid_file + ".server").write_text(str(os.getpid()))
sys.argv = [str(Path(__file__).with_name("hostile_server.py"))]
runpy.run_path(sys.argv[0], run_name="__main__")
if ignore_eof:
    time.sleep(300)
