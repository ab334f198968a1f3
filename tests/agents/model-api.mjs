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
// $MODEL_DELAY_MS (default 0) holds every model call (messages, responses) that long before answering:
// an agent that stays alive for a while, for tests that kill it mid-run.
// Every request is logged to stderr as `<METHOD> <path>`; with $MODEL_API_LOG=FILE each request's
// method, path, headers and JSON body are also appended to FILE as one JSON line.
//
// Scripted tool calls: $MODEL_SCRIPT (a JSON array), or $MODEL_SCRIPT_FILE (a path to one; re-read on
// every request, so a test may rewrite it between runs), makes main-conversation calls follow a script:
//   [{"tool": "signal", "input": {"verdict": "REVIEW", "payload": "done"}}, {"text": "All done."}]
// A step is {"text": "..."} (final assistant text, ends the turn) or {"tool": NAME, "input": {...}} (one
// tool call). Step k answers the request that already carries k tool results (Anthropic: `tool_result`
// content blocks across all messages; Responses: `input` items whose type ends in `_output`, such as
// `function_call_output` and `custom_tool_call_output`). Past the end of the script, the reply is REPLY.
// NAME is matched against the tools the request offers: exact name first, else the unique tool whose
// name ends with NAME, so `signal` finds `mcp__mc-ledger__signal` (Claude Code) and `signal` inside the
// Responses namespace `mcp__mc_ledger` (Codex; matched as `mcp__mc_ledger__signal`).
// Deferred tools: both CLIs hide MCP tools (Claude Code also TodoWrite/TaskCreate/...) behind a tool
// search. If NAME is not offered, the mock first loads it the way a model would: Claude Code's
// `ToolSearch` tool with {"query": "select:<full name>"} (the name taken from the deferred-tools list in
// the messages), or a Codex `tool_search_call` (tools then come back in a `tool_search_output` item).
// These look-ups are extra model turns but are not counted as tool results. Still no match (or an
// ambiguous one): the reply is a text naming the tools offered, also logged to stderr.
// Tool calls are streamed as Anthropic `tool_use` blocks (stop_reason "tool_use") and as Responses
// `function_call` items (`custom_tool_call` for a tool of type "custom"; `namespace` set for a namespaced
// tool). Requests without `tools` (side calls) always get the plain REPLY. Each scripted answer is
// logged to stderr as `  -> step K: ...`. Without a script, nothing changes.
//
// Served:
//   POST /v1/messages               Anthropic Messages API: SSE when "stream": true, else JSON
//   POST /v1/messages/count_tokens  {"input_tokens": N}
//   POST /v1/responses              OpenAI Responses API, SSE (what Codex's wire_api="responses" reads)
//   GET  /v1/models[/ID]            a model list / one model, in both vendors' shapes
//   HEAD / GET / and /api/hello     200 (connectivity checks)
//   anything else                   404 with a JSON error
import http from "node:http";
import { appendFileSync, readFileSync } from "node:fs";

const port = Number(process.argv[2] || 0);
const reply = process.argv[3] ?? process.env.MODEL_REPLY ?? "OK";
const env = (name, dflt) => (process.env[name] !== undefined ? Number(process.env[name]) : dflt);
let seq = 0;

function usageFor(body, text = reply) {
  const input = env("MODEL_INPUT_TOKENS", Math.ceil(JSON.stringify(body).length / 4));
  const output = env("MODEL_OUTPUT_TOKENS", Math.ceil(text.length / 4) + 1);
  return {
    input,
    output,
    cacheRead: env("MODEL_CACHE_READ_TOKENS", 0),
    cacheCreation: env("MODEL_CACHE_CREATION_TOKENS", 0),
  };
}

// The scripted steps, or null when no script is configured.
function script() {
  let raw = process.env.MODEL_SCRIPT;
  if (raw === undefined && process.env.MODEL_SCRIPT_FILE) raw = readFileSync(process.env.MODEL_SCRIPT_FILE, "utf8");
  if (raw === undefined || raw.trim() === "") return null;
  const steps = JSON.parse(raw);
  if (!Array.isArray(steps)) throw new Error("MODEL_SCRIPT must be a JSON array");
  return steps;
}

// Tools as {name (as the model calls it), full (for matching), namespace?, kind}, from a `tools` list.
function flatten(tools, out = []) {
  for (const t of tools || []) {
    if (t.type === "namespace" && Array.isArray(t.tools)) {
      const sep = t.name.endsWith("_") ? "" : "__";
      for (const inner of t.tools) {
        if (inner.name) out.push({ name: inner.name, full: `${t.name}${sep}${inner.name}`, namespace: t.name, kind: inner.type });
      }
    } else if (t.name) out.push({ name: t.name, full: t.name, kind: t.type });
  }
  return out;
}

// The tools offered: the request's `tools`, plus those Codex's tool search loaded (`tool_search_output`).
function offeredTools(body) {
  const out = flatten(body.tools);
  for (const i of Array.isArray(body.input) ? body.input : []) if (i?.type === "tool_search_output") flatten(i.tools, out);
  return out;
}

// Ids of Claude Code's ToolSearch calls (the mock's own look-ups of deferred tools).
function searchIds(body) {
  const ids = new Set();
  for (const m of body.messages || []) {
    if (m.role === "assistant" && Array.isArray(m.content)) {
      for (const b of m.content) if (b?.type === "tool_use" && b.name === "ToolSearch") ids.add(b.id);
    }
  }
  return ids;
}

// Tool results so far, not counting tool-search round trips.
function countToolResults(body) {
  let n = 0;
  const searches = searchIds(body);
  for (const m of body.messages || []) {
    if (Array.isArray(m.content)) n += m.content.filter((b) => b?.type === "tool_result" && !searches.has(b.tool_use_id)).length;
  }
  if (Array.isArray(body.input)) {
    n += body.input.filter((i) => typeof i?.type === "string" && i.type.endsWith("_output") && i.type !== "tool_search_output").length;
  }
  return n;
}

// Was the latest tool result a tool search? (Then searching again would loop.)
function justSearched(body) {
  if (Array.isArray(body.input)) return body.input.at(-1)?.type === "tool_search_output";
  const last = (body.messages || []).at(-1);
  const searches = searchIds(body);
  return Array.isArray(last?.content) && last.content.some((b) => b?.type === "tool_result" && searches.has(b.tool_use_id));
}

// Names Claude Code lists as deferred ("... load tool schemas before calling them:\nA\nB\n</system-reminder>").
function deferredNames(body) {
  const names = [];
  for (const m of body.messages || []) {
    for (const b of Array.isArray(m.content) ? m.content : [{ type: "text", text: m.content }]) {
      if (b?.type !== "text" || typeof b.text !== "string") continue;
      const at = b.text.indexOf("before calling them:");
      if (at < 0) continue;
      const list = b.text.slice(at).split("\n").slice(1);
      for (const line of list) {
        if (line.startsWith("<")) break;
        if (/^[\w.:-]+$/.test(line.trim())) names.push(line.trim());
      }
    }
  }
  return names;
}

function pick(names, want, full = (x) => x, short = full) {
  let hits = names.filter((t) => full(t) === want || short(t) === want);
  if (hits.length !== 1) hits = names.filter((t) => full(t).endsWith(want));
  return hits;
}

// What to answer: {text}, {tool: {name, namespace?, kind}, input} or {search: QUERY} (a deferred tool).
function plan(body) {
  let steps;
  try {
    steps = script();
  } catch (e) {
    process.stderr.write(`  -> bad script: ${e.message}\n`);
    return { text: `mock: bad MODEL_SCRIPT: ${e.message}` };
  }
  const offered = offeredTools(body);
  if (!steps || offered.length === 0) return { text: reply };
  const k = countToolResults(body);
  const step = steps[k];
  if (!step) {
    process.stderr.write(`  -> step ${k}: past the script, reply text\n`);
    return { text: reply };
  }
  if (step.tool === undefined) {
    process.stderr.write(`  -> step ${k}: text\n`);
    return { text: String(step.text ?? reply) };
  }
  const hits = pick(offered, step.tool, (t) => t.full, (t) => t.name);
  if (hits.length === 1) {
    process.stderr.write(`  -> step ${k}: tool ${hits[0].full}\n`);
    return { tool: hits[0], input: step.input ?? {} };
  }
  // Not loaded yet: the CLIs defer MCP tools (and Claude Code most built-ins) behind a tool search.
  if (hits.length === 0 && !justSearched(body)) {
    const codexSearch = (body.tools || []).some((t) => t.type === "tool_search");
    if (codexSearch) {
      const query = step.tool.replace(/_+/g, " ").trim();
      process.stderr.write(`  -> step ${k}: tool_search "${query}" (for ${step.tool})\n`);
      return { search: query };
    }
    const ts = offered.find((t) => t.full === "ToolSearch");
    const deferred = ts ? pick(deferredNames(body), step.tool) : [];
    if (deferred.length === 1) {
      process.stderr.write(`  -> step ${k}: ToolSearch select:${deferred[0]} (for ${step.tool})\n`);
      return { tool: ts, input: { query: `select:${deferred[0]}` } };
    }
  }
  const names = offered.map((t) => t.full).join(", ");
  const why = hits.length ? `is ambiguous (${hits.map((t) => t.full).join(", ")})` : "matches no tool";
  const text = `mock: scripted tool "${step.tool}" ${why}; tools offered: ${names}`;
  process.stderr.write(`  -> step ${k}: ${text}\n`);
  return { text };
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
  const p = plan(body);
  const u = usageFor(body, p.text ?? JSON.stringify(p.input));
  const n = ++seq;
  const id = `msg_mock_${n}`;
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
  if (p.tool) {
    const block = { type: "tool_use", id: `toolu_mock_${n}`, name: p.tool.name, input: p.input };
    if (!body.stream) return json(res, 200, { ...message, content: [block], stop_reason: "tool_use", usage });
    return sse(res, [
      { type: "message_start", message: { ...message, usage: { ...usage, output_tokens: 1 } } },
      { type: "content_block_start", index: 0, content_block: { ...block, input: {} } },
      { type: "ping" },
      { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: JSON.stringify(p.input) } },
      { type: "content_block_stop", index: 0 },
      { type: "message_delta", delta: { stop_reason: "tool_use", stop_sequence: null }, usage: { output_tokens: u.output } },
      { type: "message_stop" },
    ]);
  }
  const reply = p.text;
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
  const p = plan(body);
  const reply = p.text ?? "";
  const u = usageFor(body, p.text ?? JSON.stringify(p.input ?? p.search));
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
  if (p.tool || p.search) return responsesToolCall(res, body, p, n, base, usage);
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

function responsesToolCall(res, body, p, n, base, usage) {
  const itemId = `fc_mock_${n}`;
  const callId = `call_mock_${n}`;
  const ns = p.tool?.namespace ? { namespace: p.tool.namespace } : {};
  let done, deltas;
  if (p.search) {
    // Codex's client-side tool search: it answers with a `tool_search_output` carrying the tools found.
    done = { type: "tool_search_call", id: `ts_mock_${n}`, call_id: callId, status: "completed", execution: "client", arguments: { query: p.search } };
    deltas = [];
  } else if (p.tool.kind === "custom") {
    const input = typeof p.input === "string" ? p.input : JSON.stringify(p.input);
    done = { type: "custom_tool_call", id: itemId, status: "completed", call_id: callId, name: p.tool.name, ...ns, input };
    deltas = [
      { type: "response.custom_tool_call_input.delta", item_id: itemId, output_index: 0, delta: input },
      { type: "response.custom_tool_call_input.done", item_id: itemId, output_index: 0, input },
    ];
  } else {
    const args = JSON.stringify(p.input);
    done = { type: "function_call", id: itemId, status: "completed", call_id: callId, name: p.tool.name, ...ns, arguments: args };
    deltas = [
      { type: "response.function_call_arguments.delta", item_id: itemId, output_index: 0, delta: args },
      { type: "response.function_call_arguments.done", item_id: itemId, output_index: 0, arguments: args },
    ];
  }
  const added = { ...done, status: "in_progress", ...{ function_call: { arguments: "" }, custom_tool_call: { input: "" } }[done.type] };
  const ev = [
    { type: "response.created", response: { ...base, status: "in_progress", output: [] } },
    { type: "response.in_progress", response: { ...base, status: "in_progress", output: [] } },
    { type: "response.output_item.added", output_index: 0, item: added },
    ...deltas,
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
    const delay = env("MODEL_DELAY_MS", 0);
    if (delay > 0 && post && (path === "/v1/messages" || path === "/v1/responses")) {
      return setTimeout(() => (path === "/v1/messages" ? messages : responses)(req, res, body), delay);
    }
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
