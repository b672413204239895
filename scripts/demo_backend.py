#!/usr/bin/env python3
"""A demo backend that says who it is: python3 demo_backend.py PORT NAME

Listens on 127.0.0.1:PORT. An HTTP request (curl) gets "hello from NAME";
any other client (nc) gets a greeting line, then its lines echoed back.
Standard library only."""

import socket
import socketserver
import sys

HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        name = self.server.name
        # Peek without waiting for a line: nc users may type nothing at first.
        self.request.settimeout(0.3)
        try:
            first = self.request.recv(8, socket.MSG_PEEK)
            if not first:
                return  # closed at once: a TCP health probe
        except TimeoutError:
            first = b""  # nothing yet: someone at a terminal
        self.request.settimeout(None)
        if first.startswith(HTTP_METHODS):
            self.http(name)
        else:
            self.chat(name)

    def http(self, name):
        request = self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # skip the headers
        body = f"hello from {name}\n".encode()
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        self.wfile.write(head if request.startswith(b"HEAD ") else head + body)

    def chat(self, name):
        self.wfile.write(f"hello from {name}\n".encode())
        for line in self.rfile:
            self.wfile.write(line)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: demo_backend.py PORT NAME")
    port, name = int(sys.argv[1]), sys.argv[2]
    with Server(("127.0.0.1", port), Handler) as server:
        server.name = name
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
