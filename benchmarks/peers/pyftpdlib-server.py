# pyftpdlib on local disk for the scale benchmark: one user with full rights on a directory,
# passive ports in a given range, no connection limits. Usage:
#   python3 pyftpdlib-server.py HOST PORT DIR USER PASSWORD PASV_FIRST PASV_LAST
# Single process, single thread (pyftpdlib's default FTPServer on epoll); sendfile() for RETR.
import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

host, port, root, user, password, first, last = sys.argv[1:8]
logging.basicConfig(level=logging.ERROR)
authorizer = DummyAuthorizer()
authorizer.add_user(user, password, root, perm="elradfmwMT")
handler = FTPHandler
handler.authorizer = authorizer
handler.passive_ports = range(int(first), int(last) + 1)
handler.timeout = 900
handler.banner = "pyftpdlib ready"
server = FTPServer((host, int(port)), handler)
server.max_cons = 0
server.max_cons_per_ip = 0
server.serve_forever(handle_exit=True)
