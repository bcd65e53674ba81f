"""An OpenAI-compatible chat-completions endpoint for tests, written apart from
cto-ledger's own server: it replays a cto-ledger model script per agent role (the word
after `# ` in the system prompt; answer N for a request holding N assistant messages),
streaming server-sent events. It appends each Authorization header it receives to
AUTH_LOG, so a test can prove the key reached the endpoint (and nowhere else).

usage: openai_stub.py SCRIPT.json PORT_FILE AUTH_LOG
"""

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

script = json.load(open(sys.argv[1]))
port_file, auth_log = sys.argv[2], sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(auth_log, "a") as f:
            f.write((self.headers.get("Authorization") or "-") + "\n")
        system = next(m["content"] for m in body["messages"] if m["role"] in ("system", "developer"))
        if isinstance(system, list):
            system = "".join(p.get("text", "") for p in system)
        role = re.match(r"\s*# (\w+)", system).group(1).lower()
        turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
        answer = script["roles"][role][turn]
        events = []
        if answer.get("content"):
            events.append({"content": answer["content"]})
        for i, call in enumerate(answer.get("tool_calls", [])):
            events.append({"tool_calls": [{"index": i, "id": f"stub_{role}_{turn}_{i}", "type": "function",
                                           "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}]})
        finish = "tool_calls" if answer.get("tool_calls") else "stop"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for delta in events + [None]:
            choice = {"index": 0, "delta": delta or {}, "finish_reason": None if delta else finish}
            chunk = {"id": "stub", "object": "chat.completion.chunk", "model": body["model"], "choices": [choice]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
