#!/usr/bin/env python3
"""nats-client.py -- load for the NATS tests: N chat completions through an
http source, C at a time, each with its own prompt; checks each answer.

    nats-client.py PORT N C [--stream] [--words W] [--ids FILE] [--sessions S]
                   [--fails FILE]

Prints one line: "sent N ok K shed S failed F wrong W" and, with --ids,
writes each answered request's X-Request-Id (one a line).  With --sessions,
request i has the session "s<i mod S>" (X-Session-Id).  An answer is
wrong when its text is not the prompt (the echo worker answers with the
prompt), or when a streamed one's pieces do not add up to it.  With
--fails, writes why each failed and wrong one was (one a line).
"""
import http.client
import json
import sys
import threading


def one(port, i, stream, words, sessions):
    prompt = "r%d " % i + " ".join("w%d" % k for k in range(words))
    body = {"model": "echo", "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        headers = {"Content-Type": "application/json"}
        if sessions:
            headers["X-Session-Id"] = "s%d" % (i % sessions)
        c.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        r = c.getresponse()
        data = r.read().decode("utf-8", "replace")
        rid = r.getheader("X-Request-Id") or ""
    except Exception as e:  # a refused or reset connection: counted failed
        return ("failed", str(e), "")
    finally:
        c.close()
    if r.status in (429, 503):
        return ("shed", data, rid)
    if r.status != 200:
        return ("failed", "%d %s" % (r.status, data), rid)
    if stream:
        text, done = "", False
        for line in data.split("\n"):
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            ch = json.loads(line[6:])
            if "error" in ch:
                return ("failed", line, rid)
            text += ch["choices"][0]["delta"].get("content") or ""
        if not done:
            return ("failed", "no [DONE]: " + data[-200:], rid)
    else:
        text = json.loads(data)["choices"][0]["message"]["content"]
    if text.strip() != prompt:
        return ("wrong", "%r != %r" % (text, prompt), rid)
    return ("ok", "", rid)


def main():
    port, n, conc = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    stream = "--stream" in sys.argv
    words = 3
    ids = None
    fails = None
    if "--fails" in sys.argv:
        fails = sys.argv[sys.argv.index("--fails") + 1]
    why_all = []
    if "--words" in sys.argv:
        words = int(sys.argv[sys.argv.index("--words") + 1])
    sessions = 0
    if "--sessions" in sys.argv:
        sessions = int(sys.argv[sys.argv.index("--sessions") + 1])
    if "--ids" in sys.argv:
        ids = sys.argv[sys.argv.index("--ids") + 1]
    counts = {"ok": 0, "shed": 0, "failed": 0, "wrong": 0}
    seen = []
    examples = []
    lock = threading.Lock()
    nxt = [0]

    def worker():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            kind, why, rid = one(port, i, stream, words, sessions)
            with lock:
                counts[kind] += 1
                if rid:
                    seen.append(rid)
                if kind in ("failed", "wrong"):
                    why_all.append(kind + " " + why.replace("\n", " ")[:500])
                if kind in ("failed", "wrong") and len(examples) < 5:
                    examples.append(why[:300])

    ts = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if fails:
        with open(fails, "w") as f:
            f.write("".join(w + "\n" for w in why_all))
    if ids:
        with open(ids, "w") as f:
            f.write("\n".join(seen) + "\n")
    print("sent %d ok %d shed %d failed %d wrong %d" % (
        n, counts["ok"], counts["shed"], counts["failed"], counts["wrong"]))
    for e in examples:
        print("  e.g. " + e, file=sys.stderr)


main()
