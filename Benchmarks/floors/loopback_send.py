#!/usr/bin/env python3
"""The kernel's share of a fanout delivery on this machine, without any server around it.

One process sends 1,320 bytes (a fanout frame's size) to each of 999 loopback TCP sockets
(TCP_NODELAY), 25 rounds a second for 200 rounds, as `scripts/bench server`'s fanout phase
pushes; a second process drains them with epoll. Prints the sender's user and system CPU per
send: the system part is what any server pays per delivery for the send on loopback.

    python3 Benchmarks/floors/loopback_send.py
"""
import os
import selectors
import socket
import time

N, ROUNDS, SIZE = 999, 200, 1320
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(2048)
port = listener.getsockname()[1]
pid = os.fork()
if pid == 0:
    selector = selectors.DefaultSelector()
    for _ in range(N):
        peer = socket.create_connection(("127.0.0.1", port))
        peer.setblocking(False)
        selector.register(peer, selectors.EVENT_READ)
    received = 0
    while received < N * ROUNDS * SIZE:
        for key, _ in selector.select():
            received += len(key.fileobj.recv(65536))
    os._exit(0)
sockets = []
for _ in range(N):
    accepted, _ = listener.accept()
    accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sockets.append(accepted)
payload = b"x" * SIZE
before = os.times()
for _ in range(ROUNDS):
    for s in sockets:
        s.send(payload)
    time.sleep(0.04)
after = os.times()
os.waitpid(pid, 0)
sends = N * ROUNDS
print(f"per send: user {1e6 * (after.user - before.user) / sends:.2f} µs, "
      f"system {1e6 * (after.system - before.system) / sends:.2f} µs ({sends} sends)")
