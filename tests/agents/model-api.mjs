#!/usr/bin/env node
// A scripted model API on loopback, for running the real Claude Code and Codex CLIs offline.
// Dependency-free (node:http only). See tests/agents/FINDINGS.md for how the CLIs are pointed here.
//
//   node tests/agents/model-api.mjs [PORT] [REPLY]
//
// PORT: 0 or absent picks a free port. The first stdout line is `listening <port>`.
// REPLY: the assistant's text for every model call; else $MODEL_REPLY; else "OK".
// Usage reported per call: input tokens are estimated from the request body (~4 chars/token)
// unless fixed with $MODEL_INPUT_TOKENS; output tokens likewise ($MODEL_OUTPUT_TOKENS);
// $MODEL_CACHE_READ_TOKENS and $MODEL_CACHE_CREATION_TOKENS (default 0) fill the cache fields.
// Every request is logged to stderr as `<METHOD> <path>`; with $MODEL_API_LOG=FILE each request's
// method, path, headers and JSON body are also appended to FILE as one JSON line.
//
// Served:
//   POST /v1/messages               Anthropic Messages API: SSE when "stream": true, else JSON
//   POST /v1/messages/count_tokens  {"input_tokens": N}
//   POST /v1/responses              OpenAI Responses API, SSE (what Codex's wire_api="responses" reads)
//   GET  /v1/models[/ID]            a model list / one model, in both vendors' shapes
//   HEAD / GET / and /api/hello     200 (connectivity checks)
//   anything else                   404 with a JSON error
import http from "node:http";
import { appendFileSync } from "node:fs";

const port = Number(process.argv[2] || 0);
const reply = process.argv[3] ?? process.env.MODEL_REPLY ?? "OK";
const env = (name, dflt) => (process.env[name] !== undefined ? Number(process.env[name]) : dflt);
let seq = 0;

function usageFor(body) {
  const input = env("MODEL_INPUT_TOKENS", Math.ceil(JSON.stringify(body).length / 4));
  const output = env("MODEL_OUTPUT_TOKENS", Math.ceil(reply.length / 4) + 1);
  return {
    input,
    output,
    cacheRead: env("MODEL_CACHE_READ_TOKENS", 0),
    cacheCreation: env("MODEL_CACHE_CREATION_TOKENS", 0),
  };
}

function json(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sse(res, events) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  for (const data of events) res.write(`event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`);
  res.end();
}

// Anthropic Messages API.
function messages(req, res, body) {
  const u = usageFor(body);
  const id = `msg_mock_${++seq}`;
  const model = body.model || "claude-mock";
  const usage = {
    input_tokens: u.input,
    cache_creation_input_tokens: u.cacheCreation,
    cache_read_input_tokens: u.cacheRead,
    cache_creation: { ephemeral_5m_input_tokens: u.cacheCreation, ephemeral_1h_input_tokens: 0 },
    output_tokens: u.output,
    service_tier: "standard",
  };
  const message = { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null };
  if (!body.stream) {
    return json(res, 200, {
      ...message,
      content: [{ type: "text", text: reply }],
      stop_reason: "end_turn",
      usage,
    });
  }
  sse(res, [
    { type: "message_start", message: { ...message, usage: { ...usage, output_tokens: 1 } } },
    { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
    { type: "ping" },
    { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: reply } },
    { type: "content_block_stop", index: 0 },
    {
      type: "message_delta",
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { output_tokens: u.output },
    },
    { type: "message_stop" },
  ]);
}

// OpenAI Responses API (streamed, as Codex asks for it).
function responses(req, res, body) {
  const u = usageFor(body);
  const n = ++seq;
  const id = `resp_mock_${n}`;
  const itemId = `msg_mock_${n}`;
  const model = body.model || "gpt-mock";
  const base = { id, object: "response", created_at: Math.floor(Date.now() / 1000), model };
  const part = { type: "output_text", text: reply, annotations: [] };
  const done = { type: "message", id: itemId, role: "assistant", status: "completed", content: [part] };
  // OpenAI counts cached and cache-written tokens inside input_tokens (Anthropic does not).
  const input = u.input + u.cacheRead + u.cacheCreation;
  const usage = {
    input_tokens: input,
    input_tokens_details: { cached_tokens: u.cacheRead, cache_write_tokens: u.cacheCreation },
    output_tokens: u.output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + u.output,
  };
  const ev = [
    { type: "response.created", response: { ...base, status: "in_progress", output: [] } },
    { type: "response.in_progress", response: { ...base, status: "in_progress", output: [] } },
    {
      type: "response.output_item.added",
      output_index: 0,
      item: { ...done, status: "in_progress", content: [] },
    },
    { type: "response.content_part.added", item_id: itemId, output_index: 0, content_index: 0, part: { ...part, text: "" } },
    { type: "response.output_text.delta", item_id: itemId, output_index: 0, content_index: 0, delta: reply },
    { type: "response.output_text.done", item_id: itemId, output_index: 0, content_index: 0, text: reply },
    { type: "response.content_part.done", item_id: itemId, output_index: 0, content_index: 0, part },
    { type: "response.output_item.done", output_index: 0, item: done },
    { type: "response.completed", response: { ...base, status: "completed", output: [done], usage } },
  ];
  ev.forEach((e, i) => (e.sequence_number = i));
  if (body.stream === false) return json(res, 200, ev.at(-1).response);
  sse(res, ev);
}

function models(req, res, id) {
  const ids = ["claude-sonnet-4-5", "claude-haiku-4-5", "gpt-5", "gpt-mock"];
  const one = (m) => ({ id: m, type: "model", object: "model", display_name: m, created_at: "2025-01-01T00:00:00Z", owned_by: "mock" });
  if (id) return json(res, 200, one(id));
  json(res, 200, { object: "list", data: ids.map(one), models: [], has_more: false, first_id: ids[0], last_id: ids.at(-1) });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const path = req.url.split("?")[0];
    const raw = Buffer.concat(chunks).toString();
    let body = {};
    try {
      body = raw ? JSON.parse(raw) : {};
    } catch {
      body = { unparsed: raw.slice(0, 200) };
    }
    process.stderr.write(`${req.method} ${req.url}\n`);
    if (process.env.MODEL_API_LOG) {
      appendFileSync(process.env.MODEL_API_LOG, JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }) + "\n");
    }
    const post = req.method === "POST";
    if (post && path === "/v1/messages") return messages(req, res, body);
    if (post && path === "/v1/messages/count_tokens") return json(res, 200, { input_tokens: usageFor(body).input });
    if (post && path === "/v1/responses") return responses(req, res, body);
    if (req.method === "GET" && (path === "/v1/models" || path === "/models")) return models(req, res);
    if (req.method === "GET" && path.startsWith("/v1/models/")) return models(req, res, path.slice(11));
    const probe = path === "/" || path === "/api/hello"; // Claude Code HEADs /api/hello at start-up
    if ((req.method === "HEAD" || req.method === "GET") && probe) return json(res, 200, { ok: true });
    process.stderr.write(`  -> 404\n`);
    json(res, 404, { type: "error", error: { type: "not_found_error", message: `mock: no ${req.method} ${path}` } });
  });
});

server.listen(port, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
