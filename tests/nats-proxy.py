#!/usr/bin/env python3
"""nats-proxy.py -- a TCP proxy the NATS tests control, to cut one node's
connection to nats-server while the others keep theirs.

    nats-proxy.py PORT-FILE STATE-FILE UPSTREAM-PORT

Listens on 127.0.0.1, on a port it picks (written to PORT-FILE), and
forwards each connection to 127.0.0.1:UPSTREAM-PORT.  SIGUSR1 cuts: every
connection is closed and the port stops listening (a client's reconnects
are refused); SIGUSR2 listens again on the same port.  STATE-FILE says
"up N" or "cut N" once each is done (N counts the changes), so a test
waits on it rather than on time.
"""
import os
import selectors
import signal
import socket
import sys

want = {"cut": False, "up": False}


def on_usr1(signum, frame):
    want["cut"] = True


def on_usr2(signum, frame):
    want["up"] = True


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    s.setblocking(False)
    return s


def main():
    port_file, state_file, upstream = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    sel = selectors.DefaultSelector()
    lst = listen(0)
    port = lst.getsockname()[1]
    sel.register(lst, selectors.EVENT_READ, None)
    peers = {}  # socket -> the socket it forwards to
    changes = 0
    write_atomic(state_file, "up %d\n" % changes)
    write_atomic(port_file, "%d\n" % port)

    def close_pair(s):
        o = peers.pop(s, None)
        for x in (s, o):
            if x is None:
                continue
            peers.pop(x, None)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    while True:
        if want["cut"]:
            want["cut"] = False
            for s in list(peers):
                close_pair(s)
            if lst is not None:
                sel.unregister(lst)
                lst.close()
                lst = None
            changes += 1
            write_atomic(state_file, "cut %d\n" % changes)
        if want["up"]:
            want["up"] = False
            if lst is None:
                lst = listen(port)
                sel.register(lst, selectors.EVENT_READ, None)
            changes += 1
            write_atomic(state_file, "up %d\n" % changes)
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            if s is lst:
                try:
                    c, _ = lst.accept()
                except OSError:
                    continue
                try:
                    u = socket.create_connection(("127.0.0.1", upstream), timeout=5)
                except OSError:
                    c.close()
                    continue
                c.setblocking(True)
                u.setblocking(True)
                peers[c] = u
                peers[u] = c
                sel.register(c, selectors.EVENT_READ, None)
                sel.register(u, selectors.EVENT_READ, None)
                continue
            if s not in peers:
                continue
            try:
                data = s.recv(65536)
                if data:
                    peers[s].sendall(data)
                    continue
            except OSError:
                pass
            close_pair(s)


if __name__ == "__main__":
    main()
