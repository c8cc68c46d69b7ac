// tests/gateway/aisdk.mjs -- the Vercel AI SDK (npm ai, with
// @ai-sdk/openai-compatible as the provider) against an OpenAI-compatible
// gateway: a whole tool loop (the model asks for the tool, the SDK runs it
// and sends its result, the model answers) with generateText and with
// streamText, straight against tests/fake-upstream (model "strict") and then
// through porch, with the same results both ways.
//
//   node aisdk.mjs UPSTREAM-BASE-URL [PORCH-BASE-URL|-] [SCENARIO...]
//
// Run it from a folder where `npm install ai @ai-sdk/openai-compatible zod`
// was run, with harness.mjs beside it.  Written for ai 5 and 6 (tool's
// inputSchema, stopWhen: stepCountIs(N)); with ai 4 (parameters, maxSteps)
// too.  See harness.mjs for the output.

import * as ai from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { z } from "zod";
import { run } from "./harness.mjs";

const { generateText, streamText, tool, jsonSchema } = ai;

const model = (t, opts = {}) => createOpenAICompatible({ baseURL: t.base, name: "gateway",
	apiKey: "sk-gateway-test", fetch: t.fetch, ...opts }).chatModel("strict");

// the loop's bound, in the installed version's words
const steps = ai.stepCountIs ? { stopWhen: ai.stepCountIs(5) } : { maxSteps: 5 };

// a tool whose schema is zod's or JSON schema's, whichever the test asks
function weather(schema, calls) {
	const s = schema === "zod" ? z.object({ city: z.string().describe("the city") }) :
		jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"],
			additionalProperties: false });
	return tool({ description: "The weather in a city", inputSchema: s, parameters: s,
		execute: async ({ city }) => { calls.push(city); return `sunny in ${city}`; } });
}

// what a run of the loop gave, as the same for both halves
async function summary(t, r, calls) {
	const st = await r.steps;
	const text = await r.text;
	const finish = await r.finishReason;
	t.eq("the tool ran once, for Paris", calls, ["Paris"]);
	t.eq("steps", st.length, 2);
	t.eq("step 1: finish reason", st[0]?.finishReason, "tool-calls");
	const tc = st[0]?.toolCalls?.[0];
	t.eq("step 1: tool call", [tc?.toolName, tc?.toolCallId, tc?.input ?? tc?.args],
		["weather", "call_1", { city: "Paris" }]);
	t.eq("step 2: finish reason", st[1]?.finishReason, "stop");
	t.ok("the final text uses the tool's result", /^The weather is: .*sunny in Paris/.test(text), text);
	t.eq("finish reason", finish, "stop");
	const usage = await (r.totalUsage ?? r.usage);
	const inTok = usage?.inputTokens ?? usage?.promptTokens;
	t.ok("usage: input tokens counted", typeof inTok === "number" && inTok > 0, usage);
	return { text, steps: st.map((s) => s.finishReason), usage: [inTok, usage?.outputTokens ?? usage?.completionTokens] };
}

const scenarios = {
	"generateText-tool-loop": async (t) => {
		const calls = [];
		const r = await generateText({ model: model(t), tools: { weather: weather("zod", calls) }, ...steps,
			system: "You answer weather questions.", prompt: "What is the weather in Paris?" });
		return summary(t, r, calls);
	},

	"generateText-jsonSchema-tool": async (t) => {
		const calls = [];
		const r = await generateText({ model: model(t), tools: { weather: weather("json", calls) }, ...steps,
			toolChoice: "auto", prompt: "What is the weather in Paris?" });
		return summary(t, r, calls);
	},

	"streamText-tool-loop": async (t) => {
		const calls = [];
		let error;
		const r = streamText({ model: model(t, { includeUsage: true }), tools: { weather: weather("zod", calls) },
			...steps, prompt: "What is the weather in Paris?", onError: ({ error: e }) => { error = e; } });
		let deltas = 0;
		for await (const part of r.fullStream) {
			if (part.type === "text-delta") deltas++;
			if (part.type === "error") error ??= part.error;
		}
		t.need("no stream error", error === undefined, error?.message ?? error);
		t.ok("the text came in pieces", deltas > 1, deltas);
		const s = await summary(t, r, calls);
		const u = await r.totalUsage;
		t.ok("usage from the streams (include_usage)", (u?.inputTokens ?? 0) > 0, u);
		return s;
	},
};

await run("aisdk", scenarios, process.argv.slice(2));
