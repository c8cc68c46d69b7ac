// tests/gateway/openai.mjs -- the official openai npm client against an
// OpenAI-compatible gateway: each scenario runs straight against
// tests/fake-upstream (model "strict", which checks requests and answers as
// OpenAI does) and then through porch, and must give the same results.
//
//   node openai.mjs UPSTREAM-BASE-URL [PORCH-BASE-URL|-] [SCENARIO...]
//
// e.g. node openai.mjs http://127.0.0.1:40001/v1 http://127.0.0.1:40002/v1
// Run it from a folder where `npm install openai` was run, with
// harness.mjs beside it (tests/gateway-clients.sh copies both there).
// See harness.mjs for the output.

import OpenAI from "openai";
import { run, same } from "./harness.mjs";

const M = "strict";
const client = (t, opts = {}) => new OpenAI({ baseURL: t.base, apiKey: "sk-gateway-test",
	fetch: t.fetch, timeout: 30000, ...opts });

const weatherTool = { type: "function", function: { name: "get_weather",
	description: "The weather in a city", parameters: { type: "object",
		properties: { city: { type: "string" } }, required: ["city"] } } };
const question = { role: "user", content: "What is the weather in Paris?" };

// the prompt_tokens the fake counts: bytes of the messages' text and urls / 4 + 3
function promptTokens(messages) {
	let bytes = 0;
	for (const m of messages) {
		if (typeof m.content === "string") bytes += Buffer.byteLength(m.content);
		else if (Array.isArray(m.content))
			for (const p of m.content)
				bytes += Buffer.byteLength(p.type === "text" ? p.text : p.image_url?.url ?? "");
	}
	return Math.floor(bytes / 4) + 3;
}

const details = {
	prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
	completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0,
		accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};

// a stream's chunks put together: per choice content, tool calls (by
// index), finish_reason, logprobs; and the usage chunk
async function collect(stream) {
	const out = { chunks: 0, choices: [], usage: undefined, fingerprints: new Set(), usageChunkHadChoices: undefined };
	for await (const chunk of stream) {
		out.chunks++;
		if (chunk.system_fingerprint) out.fingerprints.add(chunk.system_fingerprint);
		if (chunk.usage) { out.usage = chunk.usage; out.usageChunkHadChoices = chunk.choices?.length; }
		for (const ch of chunk.choices ?? []) {
			const c = out.choices[ch.index] ??= { content: null, tool_calls: [], finish_reason: null, logprobs: [] , role: null };
			const d = ch.delta ?? {};
			if (d.role) c.role = d.role;
			if (typeof d.content === "string") c.content = (c.content ?? "") + d.content;
			for (const tc of d.tool_calls ?? []) {
				const a = c.tool_calls[tc.index] ??= { id: "", type: "", function: { name: "", arguments: "" } };
				if (tc.id) a.id += tc.id;
				if (tc.type) a.type = tc.type;
				if (tc.function?.name) a.function.name += tc.function.name;
				if (tc.function?.arguments) a.function.arguments += tc.function.arguments;
			}
			if (ch.logprobs?.content) c.logprobs.push(...ch.logprobs.content);
			if (ch.finish_reason) c.finish_reason = ch.finish_reason;
		}
	}
	out.fingerprints = [...out.fingerprints];
	return out;
}

function checkToolCall(t, what, tc) {
	t.need(`${what}: a tool call`, tc, tc);
	t.eq(`${what}: tool call id`, tc.id, "call_1");
	t.eq(`${what}: tool call type`, tc.type, "function");
	t.eq(`${what}: function name`, tc.function?.name, "get_weather");
	let args;
	try { args = JSON.parse(tc.function?.arguments); } catch { args = tc.function?.arguments; }
	t.eq(`${what}: arguments (parsed)`, args, { city: "Paris" });
}

// the error fn throws; an answer instead is a failure
async function expectError(t, fn) {
	let r;
	try {
		r = await fn();
	} catch (e) {
		t.need(`an OpenAI.APIError (got ${e?.constructor?.name}: ${e?.message})`, e instanceof OpenAI.APIError, e?.message);
		return e;
	}
	t.need("an error, not an answer", false, r);
}

const scenarios = {
	// the model asks for the tool, the client answers, the model finishes
	"tool-loop": async (t) => {
		const c = client(t);
		const messages = [{ role: "system", content: "You answer weather questions." }, question];
		const r1 = await c.chat.completions.create({ model: M, messages, tools: [weatherTool],
			tool_choice: "auto", parallel_tool_calls: false });
		const ch = r1.choices?.[0];
		t.need("round 1: a choice", ch, r1);
		t.eq("round 1: finish_reason", ch.finish_reason, "tool_calls");
		t.eq("round 1: content", ch.message.content, null);
		checkToolCall(t, "round 1", ch.message.tool_calls?.[0]);
		messages.push(ch.message);
		messages.push({ role: "tool", tool_call_id: ch.message.tool_calls[0].id, content: "sunny, 21 C" });
		const r2 = await c.chat.completions.create({ model: M, messages, tools: [weatherTool] });
		t.eq("round 2: finish_reason", r2.choices?.[0]?.finish_reason, "stop");
		t.eq("round 2: content", r2.choices?.[0]?.message?.content, "The weather is: sunny, 21 C");
		return { r1: ch.message, r2: r2.choices?.[0]?.message?.content };
	},

	"tool-loop-stream": async (t) => {
		const c = client(t);
		const messages = [question];
		const s1 = await collect(await c.chat.completions.create({ model: M, messages,
			tools: [weatherTool], tool_choice: "auto", stream: true }));
		const ch = s1.choices[0];
		t.need("round 1: a choice in the stream", ch, s1);
		t.eq("round 1: finish_reason", ch.finish_reason, "tool_calls");
		t.eq("round 1: role", ch.role, "assistant");
		t.eq("round 1: no text", ch.content ?? "", "");
		t.eq("round 1: tool calls", ch.tool_calls.length, 1);
		checkToolCall(t, "round 1 (deltas put together)", ch.tool_calls[0]);
		t.ok("round 1: the arguments came in more than one chunk", s1.chunks >= 4, s1.chunks);
		messages.push({ role: "assistant", content: null, tool_calls: ch.tool_calls });
		messages.push({ role: "tool", tool_call_id: ch.tool_calls[0].id, content: "rain" });
		const s2 = await collect(await c.chat.completions.create({ model: M, messages,
			tools: [weatherTool], stream: true }));
		t.eq("round 2: finish_reason", s2.choices[0]?.finish_reason, "stop");
		t.eq("round 2: content", s2.choices[0]?.content, "The weather is: rain");
		return { calls: ch.tool_calls, text: s2.choices[0]?.content, chunks: [s1.chunks, s2.chunks] };
	},

	// a conversation that ends with a tool message, built by hand
	"ends-with-tool": async (t) => {
		const r = await client(t).chat.completions.create({ model: M, messages: [question,
			{ role: "assistant", content: null, tool_calls: [{ id: "call_7", type: "function",
				function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
			{ role: "tool", tool_call_id: "call_7", content: "foggy" }] });
		t.eq("finish_reason", r.choices?.[0]?.finish_reason, "stop");
		t.eq("content", r.choices?.[0]?.message?.content, "The weather is: foggy");
		return r.choices?.[0]?.message?.content;
	},

	// user -> assistant(tool_calls) -> tool -> user reaches the upstream whole
	// (the strict model refuses a tool call without its answer, or the reverse)
	"history-with-tools": async (t) => {
		const messages = [question,
			{ role: "assistant", content: null, tool_calls: [{ id: "call_a", type: "function",
				function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
			{ role: "tool", tool_call_id: "call_a", content: "sunny" },
			{ role: "assistant", content: "It is sunny in Paris." },
			{ role: "user", content: "and tomorrow?" }];
		const r = await client(t).chat.completions.create({ model: M, messages });
		t.eq("content", r.choices?.[0]?.message?.content, "you said: and tomorrow?");
		const got = (await t.upstream()).at(-1)?.body?.messages;
		t.eq("the messages at the upstream", got, messages);
		return r.choices?.[0]?.message?.content;
	},

	// a request the upstream refuses: its 400 and message reach the client
	"refused-by-upstream": async (t) => {
		const e = await expectError(t, () => client(t, { maxRetries: 0 }).chat.completions.create({
			model: M, messages: [question, { role: "tool", tool_call_id: "call_9", content: "x" }] }));
		t.eq("status", e.status, 400);
		t.ok("message is the upstream's", /must be a response to a preceeding message with 'tool_calls'/.test(e.message), e.message);
		t.eq("param", e.param, "messages.[1].role");
		return { status: e.status, param: e.param };
	},

	// OpenAI refuses stream_options without stream: so must the gateway, or
	// pass it on and let the upstream refuse it
	"stream-options-without-stream": async (t) => {
		t.looseCount();
		const e = await expectError(t, () => client(t, { maxRetries: 0 }).chat.completions.create({
			model: M, messages: [question], stream_options: { include_usage: true } }));
		t.eq("status", e.status, 400);
		t.eq("param", e.param, "stream_options");
		return { status: e.status, param: e.param };
	},

	"json-mode": async (t) => {
		const r = await client(t).chat.completions.create({ model: M, seed: 7,
			response_format: { type: "json_object" },
			messages: [{ role: "system", content: "Answer in JSON." }, { role: "user", content: "capital of France" }] });
		const text = r.choices?.[0]?.message?.content;
		let obj;
		try { obj = JSON.parse(text); } catch { obj = undefined; }
		t.ok("the content parses as JSON", obj !== undefined, text);
		t.eq("the JSON", obj, { answer: "you said: capital of France" });
		t.eq("finish_reason", r.choices?.[0]?.finish_reason, "stop");
		return obj;
	},

	"json-schema": async (t) => {
		const r = await client(t).chat.completions.create({ model: M,
			response_format: { type: "json_schema", json_schema: { name: "city", strict: true,
				schema: { type: "object", additionalProperties: false, required: ["name", "population"],
					properties: { name: { type: "string" }, population: { type: "integer" } } } } },
			messages: [{ role: "user", content: "a big city" }] });
		let obj;
		try { obj = JSON.parse(r.choices?.[0]?.message?.content); } catch { obj = undefined; }
		t.eq("the JSON", obj, { name: "you said: a big city", population: 42 });
		return obj;
	},

	"image-part": async (t) => {
		const url = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
		const messages = [{ role: "user", content: [{ type: "text", text: "What is in this picture?" },
			{ type: "image_url", image_url: { url, detail: "low" } }] }];
		const r = await client(t).chat.completions.create({ model: M, messages });
		t.eq("content", r.choices?.[0]?.message?.content, "I saw 1 image, the first at " + url.slice(0, 24));
		t.eq("usage.prompt_tokens (counts the url)", r.usage?.prompt_tokens, promptTokens(messages));
		return r.choices?.[0]?.message?.content;
	},

	"logprobs": async (t) => {
		const r = await client(t).chat.completions.create({ model: M, logprobs: true, top_logprobs: 2,
			messages: [{ role: "user", content: "one two three" }] });
		const ch = r.choices?.[0];
		t.eq("content", ch?.message?.content, "you said: one two three");
		const lp = ch?.logprobs?.content;
		t.need("choices[0].logprobs.content is an array", Array.isArray(lp), ch?.logprobs);
		t.eq("tokens", lp.map((e) => e.token), ["you", " said:", " one", " two", " three"]);
		t.eq("token bytes", lp.map((e) => Buffer.from(e.bytes ?? []).toString()), lp.map((e) => e.token));
		t.ok("logprob numbers", lp.every((e) => typeof e.logprob === "number" && e.logprob < 0), lp);
		t.eq("top_logprobs per token", lp.map((e) => e.top_logprobs?.length), lp.map(() => 2));
		return ch?.logprobs;
	},

	"logprobs-stream": async (t) => {
		const s = await collect(await client(t).chat.completions.create({ model: M, stream: true,
			logprobs: true, top_logprobs: 2, messages: [{ role: "user", content: "one two" }] }));
		const c = s.choices[0];
		t.eq("content", c?.content, "you said: one two");
		t.eq("tokens, from the chunks' logprobs", c?.logprobs.map((e) => e.token), ["you", " said:", " one", " two"]);
		t.eq("top_logprobs per token", c?.logprobs.map((e) => e.top_logprobs?.length), [2, 2, 2, 2]);
		return c?.logprobs;
	},

	"max-tokens": async (t) => {
		const c = client(t);
		const messages = [{ role: "user", content: "a long answer please" }];
		const r = await c.chat.completions.create({ model: M, messages, max_tokens: 2 });
		t.eq("finish_reason", r.choices?.[0]?.finish_reason, "length");
		t.eq("content", r.choices?.[0]?.message?.content, "you said:");
		const s = await collect(await c.chat.completions.create({ model: M, messages, max_tokens: 2, stream: true }));
		t.eq("streamed: finish_reason", s.choices[0]?.finish_reason, "length");
		t.eq("streamed: content", s.choices[0]?.content, "you said:");
		const r2 = await c.chat.completions.create({ model: M, messages, max_completion_tokens: 3 });
		t.eq("max_completion_tokens: finish_reason", r2.choices?.[0]?.finish_reason, "length");
		t.eq("max_completion_tokens: content", r2.choices?.[0]?.message?.content, "you said: a");
		const s2 = await collect(await c.chat.completions.create({ model: M, messages, max_completion_tokens: 3, stream: true }));
		t.eq("max_completion_tokens streamed: finish_reason", s2.choices[0]?.finish_reason, "length");
		return [r.choices?.[0]?.message?.content, s.choices[0]?.content, r2.choices?.[0]?.message?.content];
	},

	// usage is the upstream's (prompt bytes / 4 + 3), not a count of words
	"usage": async (t) => {
		const c = client(t);
		const messages = [{ role: "system", content: "Be brief and kind." },
			{ role: "user", content: "count these tokens for me" }];
		const want = { prompt_tokens: promptTokens(messages), completion_tokens: 7,
			total_tokens: promptTokens(messages) + 7, ...details };
		const r = await c.chat.completions.create({ model: M, messages, service_tier: "default" });
		t.eq("usage", r.usage, want);
		t.eq("system_fingerprint", r.system_fingerprint, "fp_fake");
		t.eq("service_tier", r.service_tier, "default");
		const s = await collect(await c.chat.completions.create({ model: M, messages, stream: true,
			stream_options: { include_usage: true } }));
		t.eq("streamed: usage", s.usage, want);
		t.eq("streamed: the usage chunk's choices", s.usageChunkHadChoices, 0);
		t.eq("streamed: system_fingerprint", s.fingerprints, ["fp_fake"]);
		t.eq("streamed: content", s.choices[0]?.content, "you said: count these tokens for me");
		return { whole: r.usage, streamed: s.usage };
	},

	"n-choices": async (t) => {
		const r = await client(t).chat.completions.create({ model: M, n: 2,
			messages: [{ role: "user", content: "two ways" }] });
		t.eq("choices", (r.choices ?? []).map((c) => [c.index, c.message?.content, c.finish_reason]),
			[[0, "you said: two ways", "stop"], [1, "choice 2: you said: two ways", "stop"]]);
		t.eq("usage.completion_tokens (both choices)", r.usage?.completion_tokens, 4 + 6);
		return r.choices?.map((c) => c.message?.content);
	},

	// every field a client may send, and one no one knows
	"every-field": async (t) => {
		const r = await client(t).chat.completions.create({ model: M,
			messages: [{ role: "developer", content: "Be exact." }, { role: "user", content: "hello", name: "alice" }],
			tools: [weatherTool], tool_choice: "none", seed: 42, temperature: 0.5, top_p: 0.75,
			stop: ["\n\n", "END"], presence_penalty: 0.25, frequency_penalty: -0.5,
			logit_bias: { "50256": -100, "15339": 5 }, user: "user-1234",
			metadata: { purpose: "gateway-test", run: "1" }, store: false, service_tier: "auto",
			x_custom: { a: 1 } });
		t.eq("content", r.choices?.[0]?.message?.content, "you said: hello");
		t.eq("service_tier", r.service_tier, "auto");
		return r.choices?.[0]?.message?.content;
	},
};

// error statuses: the upstream's status, message and code reach the client,
// and the client does not retry what is not to be retried
const upstreamErrors = {
	400: ["bad request", null], 401: ["invalid api key", "invalid_api_key"],
	403: ["Country, region, or territory not supported", "unsupported_country_region_territory"],
	404: ["The model `404` does not exist or you do not have access to it.", "model_not_found"],
	413: ["Request too large: the body is over the limit", "request_too_large"],
	422: ["Unprocessable entity: the request cannot be served", "unprocessable_entity"],
};
for (const [code, [message, ecode]] of Object.entries(upstreamErrors)) {
	scenarios[`error-${code}`] = async (t) => {
		const e = await expectError(t, () => client(t).chat.completions.create({ model: code,
			messages: [{ role: "user", content: "x" }] }));
		t.eq("status", e.status, Number(code));
		t.ok("message is the upstream's", e.message?.includes(message), e.message);
		t.eq("error.code", e.code ?? null, ecode);
		const n = (await t.upstream()).length;
		t.eq(`requests the upstream saw (not retried; the client sent ${t.sent.length})`, n, 1);
		return { status: e.status, code: e.code ?? null };
	};
}
scenarios["error-429"] = async (t) => {
	t.looseCount();
	const e = await expectError(t, () => client(t, { maxRetries: 0 }).chat.completions.create({
		model: "429", messages: [{ role: "user", content: "x" }] }));
	t.eq("status", e.status, 429);
	t.eq("Retry-After", e.headers?.get?.("retry-after") ?? null, "2");
	t.ok("message is the upstream's", e.message?.includes("Rate limit reached for requests"), e.message);
	return { status: e.status };
};

// porch's own /v1/models: the models its workers serve (gateway.xml's one
// worker, the openai worker, serves model "default"), in OpenAI's model
// object; the fake upstream serves no /v1/models, so the direct half
// checks nothing and gives what porch must
scenarios["models"] = async (t) => {
	const want = { ids: ["default"], retrieved: "default", missing: [404, "model_not_found"] };
	if (t.name === "direct") return want;
	const c = client(t);
	const page = await c.models.list();
	const ids = page.data.map((m) => m.id);
	t.eq("models.list(): ids", ids, want.ids);
	for (const m of page.data) {
		t.eq(`models.list(): ${m.id}: object`, m.object, "model");
		t.eq(`models.list(): ${m.id}: owned_by`, m.owned_by, "porch");
		t.eq(`models.list(): ${m.id}: created is a number`, typeof m.created, "number");
	}
	const m = await c.models.retrieve("default");
	t.eq("models.retrieve(default)", m, { id: "default", object: "model", created: 0, owned_by: "porch" });
	const e = await expectError(t, () => c.models.retrieve("no-such-model"));
	t.eq("models.retrieve(no-such-model): status", e.status, 404);
	t.eq("models.retrieve(no-such-model): code", e.code ?? null, "model_not_found");
	return { ids, retrieved: m.id, missing: [e.status, e.code ?? null] };
};

await run("openai", scenarios, process.argv.slice(2));
