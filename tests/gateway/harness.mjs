// tests/gateway/harness.mjs -- runs client scenarios twice: straight against
// the fake upstream (tests/fake-upstream, model "strict") and through porch,
// and says per scenario and per half what failed and why.
//
// A scenario is async (t) => result.  t.base is the base URL of this half
// (".../v1"), t.fetch a fetch that records each JSON body the client sends
// (give it to the client), t.check / t.eq / t.ok assert (a failed assertion
// is recorded, the scenario goes on), t.upstream() the requests the upstream
// received during this half (from its GET .../_requests).  What the scenario
// returns is compared between the halves: porch must give what the upstream
// gave.  After the porch half, the fields the client sent must have reached
// the upstream with the same JSON values.
//
// Output, one line per half:
//   RESULT <direct|porch> <scenario> <pass|fail>
// preceded, for a failure, by lines
//   FAIL <half> <scenario>: <what>: got <json>, want <json>
// and a summary at the end.  The exit status is 1 if any half failed.

import { inspect } from "node:util";

// the fields that must reach the upstream unchanged: any other field the
// client sent and the upstream got otherwise (stream, stream_options,
// model...) is only noted
export const PASSED_THROUGH = ["messages", "tools", "tool_choice", "parallel_tool_calls",
	"response_format", "seed", "logprobs", "top_logprobs", "logit_bias", "presence_penalty",
	"frequency_penalty", "user", "metadata", "service_tier", "x_custom", "n", "temperature",
	"top_p", "stop", "max_tokens", "max_completion_tokens"];

// JSON with sorted keys: equal JSON values give equal texts
export function canon(v) {
	if (v === undefined) return "undefined";
	if (v === null || typeof v !== "object") return JSON.stringify(v);
	if (Array.isArray(v)) return "[" + v.map(canon).join(",") + "]";
	return "{" + Object.keys(v).sort().filter((k) => v[k] !== undefined)
		.map((k) => JSON.stringify(k) + ":" + canon(v[k])).join(",") + "}";
}

export function same(a, b) {
	return canon(a) === canon(b);
}

function short(v, n = 400) {
	let s;
	try { s = canon(v); } catch { s = inspect(v); }
	return s.length > n ? s.slice(0, n) + "...(" + s.length + " chars)" : s;
}

// where two JSON values differ: "path: got X, want Y", at most 6 of them
function diff(got, want, path = "", out = []) {
	if (out.length >= 6 || same(got, want)) return out;
	const obj = (v) => v !== null && typeof v === "object";
	if (obj(got) && obj(want) && Array.isArray(got) === Array.isArray(want)) {
		const keys = new Set([...Object.keys(want), ...Object.keys(got)]);
		for (const k of keys) {
			const p = Array.isArray(want) ? `${path}[${k}]` : path ? `${path}.${k}` : k;
			diff(got[k], want[k], p, out);
		}
		return out;
	}
	out.push(`${path || "the value"}: got ${short(got, 200)}, want ${short(want, 200)}`);
	return out;
}

// "got X, want Y", or where they differ when that is long
function describe(got, want) {
	const whole = `got ${short(got)}, want ${short(want)}`;
	const d = diff(got, want);
	return d.length > 0 && whole.length > 240 ? d.join("; ") : whole;
}

class Failed extends Error {}

export class Half {
	constructor(name, base, upstreamBase) {
		this.name = name;            // "direct" or "porch"
		this.base = base;
		this.upstreamBase = upstreamBase;
		this.failures = [];
		this.notes = [];
		this.sent = [];               // bodies the client sent, parsed
		this.fetch = async (url, init) => {
			const body = init?.body;
			if (typeof body === "string") {
				try { this.sent.push(JSON.parse(body)); } catch { this.sent.push(body); }
			}
			return fetch(url, init);
		};
	}
	// records a failure unless got equals want (as JSON values)
	eq(what, got, want) {
		if (same(got, want))
			return true;
		this.failures.push(`${what}: ${describe(got, want)}`);
		return false;
	}
	// records a failure unless cond; got is shown
	ok(what, cond, got) {
		if (!cond)
			this.failures.push(`${what}: got ${short(got)}`);
		return !!cond;
	}
	// as ok, and stops the scenario: what follows depends on it
	need(what, cond, got) {
		if (!this.ok(what, cond, got))
			throw new Failed(what);
	}
	// the gateway may try a request again (a 429), or refuse it itself as
	// the upstream would: another number of requests at the upstream than
	// the client sent is noted, not failed
	looseCount() {
		this.loose = true;
	}
	note(text) {
		this.notes.push(text);
	}
	async upstreamTotal() {
		const r = await fetch(this.upstreamBase + "/_requests");
		return (await r.json()).total;
	}
	// the requests the upstream received since this half began
	async upstream() {
		const r = await fetch(this.upstreamBase + "/_requests");
		const j = await r.json();
		return j.requests.filter((q) => q.n > this.from);
	}
}

// sent and received bodies, paired in order
async function checkPassedThrough(t) {
	const got = (await t.upstream()).filter((q) => /\/chat\/completions$|\/completions$/.test(q.path.split("?")[0]));
	const sent = t.sent.filter((b) => typeof b === "object");
	if (got.length !== sent.length) {
		const what = `requests at the upstream: got ${got.length}, want ${sent.length} (one per client request)`;
		if (t.loose) t.note(what); else t.failures.push(what);
	}
	const n = Math.min(got.length, sent.length);
	for (let i = 0; i < n; i++) {
		const a = sent[sent.length - n + i], b = got[got.length - n + i].body;
		if (b === null || typeof b !== "object") {
			t.failures.push(`request ${i + 1} at the upstream: its body is not JSON: ${short(got[i].raw)}`);
			continue;
		}
		for (const k of Object.keys(a)) {
			if (same(a[k], b[k])) continue;
			const what = `request ${i + 1}: field "${k}" at the upstream`;
			if (PASSED_THROUGH.includes(k))
				t.failures.push(`${what}: ${describe(b[k], a[k])} (want: as the client sent it)`);
			else
				t.note(`${what} is ${short(b[k], 120)}, the client sent ${short(a[k], 120)}`);
		}
		const added = Object.keys(b).filter((k) => !(k in a));
		if (added.length > 0)
			t.note(`request ${i + 1}: the upstream got fields the client did not send: ` +
				added.map((k) => `"${k}": ${short(b[k], 80)}`).join(", "));
	}
}

export async function run(title, scenarios, argv) {
	const [direct, porch] = argv;
	if (!direct) {
		console.error(`usage: node ${title}.mjs UPSTREAM-BASE-URL [PORCH-BASE-URL] [SCENARIO...]\n` +
			"  UPSTREAM-BASE-URL: tests/fake-upstream's .../v1; PORCH-BASE-URL: porch's .../v1 in front of it");
		process.exit(2);
	}
	const only = argv.slice(2);
	const halves = porch && porch !== "-" ? [["direct", direct], ["porch", porch]] : [["direct", direct]];
	const count = { pass: 0, fail: 0 };
	const failed = { direct: [], porch: [] };
	for (const [name, fn] of Object.entries(scenarios)) {
		if (only.length && !only.includes(name)) continue;
		const results = {};
		for (const [hname, base] of halves) {
			const t = new Half(hname, base, direct);
			t.from = await t.upstreamTotal();
			let result;
			try {
				result = await fn(t);
			} catch (e) {
				if (!(e instanceof Failed)) {
					const status = e?.status !== undefined ? ` (status ${e.status})` : "";
					t.failures.push(`threw ${e?.constructor?.name ?? "error"}${status}: ${String(e?.message ?? e).slice(0, 500)}`);
				}
			}
			results[hname] = result;
			if (hname === "porch") {
				if (results.direct !== undefined && result !== undefined)
					t.eq("the result, against the direct half's", result, results.direct);
				try { await checkPassedThrough(t); } catch (e) { t.failures.push(`reading the upstream's requests: ${e.message}`); }
			} else {
				// the harness itself: straight to the upstream every field arrives as sent
				try { await checkPassedThrough(t); } catch (e) { t.failures.push(`reading the upstream's requests: ${e.message}`); }
				for (const n of t.notes) t.failures.push(`direct: ${n}`);
				t.notes = [];
			}
			for (const f of t.failures) console.log(`FAIL ${hname} ${name}: ${f}`);
			for (const n of t.notes) console.log(`NOTE ${hname} ${name}: ${n}`);
			const ok = t.failures.length === 0;
			console.log(`RESULT ${hname} ${name} ${ok ? "pass" : "fail"}`);
			count[ok ? "pass" : "fail"]++;
			if (!ok) failed[hname].push(name);
		}
	}
	console.log(`${title}: ${count.pass} halves passed, ${count.fail} failed` +
		(failed.direct.length ? `; direct failed: ${failed.direct.join(" ")}` : "") +
		(failed.porch.length ? `; through porch failed: ${failed.porch.join(" ")}` : ""));
	process.exit(count.fail ? 1 : 0);
}
