#!/usr/bin/python3
"""e2e helper: serves one file over HTTP on a free loopback port, and holds every download
half-way until a release file exists — so a node agent's build is known to be inside its
block-devices step (downloading the image) for as long as a test needs.

    gated_http.py FILE PORT_FILE RELEASE_FILE LOG_FILE

Writes the port to PORT_FILE once listening; appends "started <path>" to LOG_FILE when a download
begins and "finished <path>" or "aborted <path>" when it ends. Runs until killed.
"""
import http.server
import os
import sys
import time

path, port_file, release, log = sys.argv[1:5]
data = open(path, "rb").read()


def note(text):
    with open(log, "a") as f:
        f.write(text + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        note("started " + self.path)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            half = len(data) // 2
            self.wfile.write(data[:half])
            self.wfile.flush()
            end = time.time() + 300
            while not os.path.exists(release) and time.time() < end:
                time.sleep(0.05)
            self.wfile.write(data[half:])
            self.wfile.flush()
            note("finished " + self.path)
        except OSError:
            note("aborted " + self.path)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
