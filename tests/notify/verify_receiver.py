"""A webhook receiver that verifies every delivery with the published Standard Webhooks library
(PyPI `standardwebhooks`), not with mc-ledger's code. Prints one JSON line per request:
{"path", "id", "ok", "error", "body"}; answers 204 when the signature verifies, 400 when not.
Usage: python verify_receiver.py SECRET   (prints "listening PORT" first)"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

hook = Webhook(sys.argv[1])
# Requests are served on threads: one line at a time, or two could share a line.
out = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            hook.verify(body, headers)
            ok, error = True, None
        except Exception as e:  # the library's WebhookVerificationError, or anything else
            ok, error = False, repr(e)
        line = json.dumps({"path": self.path, "id": headers.get("webhook-id"), "ok": ok,
                           "error": error, "body": body.decode("utf-8", "replace")})
        with out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        self.send_response(204 if ok else 400)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
