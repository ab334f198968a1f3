#!/usr/bin/env node
// A stand-in MCP server for the agent CLI tests. Dependency-free node: newline-delimited
// JSON-RPC 2.0 over stdio (the MCP stdio transport).
//
//   node tests/agents/stub-mcp.mjs
//
// Offers one tool, `signal`, taking {verdict, payload}. Each tools/call appends one JSON line
// {"tool", "arguments", "env": {MC_LEDGER_SERVER, MC_LEDGER_TOKEN, MC_LEDGER_RUNTIME}} to the file
// named by $STUB_MCP_LOG (if set; the env values are null when unset in this process) and answers
// a text content "recorded". Every message received is logged to stderr as `stub-mcp <- <method>`.
import { appendFileSync } from "node:fs";
import { createInterface } from "node:readline";

const TOOLS = [
  {
    name: "signal",
    description: "Report the outcome of the task to the ledger.",
    inputSchema: {
      type: "object",
      properties: {
        verdict: { type: "string", description: "e.g. REVIEW, DONE, BLOCKED" },
        payload: { type: "string", description: "one line of detail" },
      },
      required: ["verdict", "payload"],
    },
  },
];

const send = (msg) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...msg }) + "\n");
const result = (id, value) => send({ id, result: value });
const error = (id, code, message) => send({ id, error: { code, message } });

function handle(msg) {
  process.stderr.write(`stub-mcp <- ${msg.method ?? "(response)"}\n`);
  const { id, method, params = {} } = msg;
  if (id === undefined || method === undefined) return; // notifications and responses: nothing to answer
  switch (method) {
    case "initialize":
      return result(id, {
        protocolVersion: params.protocolVersion ?? "2025-06-18",
        capabilities: { tools: { listChanged: false } },
        serverInfo: { name: "stub-mcp", version: "0.0.1" },
      });
    case "ping":
      return result(id, {});
    case "tools/list":
      return result(id, { tools: TOOLS });
    case "tools/call": {
      if (params.name !== "signal") return error(id, -32602, `unknown tool ${params.name}`);
      if (process.env.STUB_MCP_LOG) {
        const env = {};
        for (const k of ["MC_LEDGER_SERVER", "MC_LEDGER_TOKEN", "MC_LEDGER_RUNTIME"]) env[k] = process.env[k] ?? null;
        appendFileSync(process.env.STUB_MCP_LOG, JSON.stringify({ tool: params.name, arguments: params.arguments ?? {}, env }) + "\n");
      }
      return result(id, { content: [{ type: "text", text: "recorded" }], isError: false });
    }
    case "resources/list":
      return result(id, { resources: [] });
    case "resources/templates/list":
      return result(id, { resourceTemplates: [] });
    case "prompts/list":
      return result(id, { prompts: [] });
    default:
      return error(id, -32601, `method not found: ${method}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    return send({ id: null, error: { code: -32700, message: "parse error" } });
  }
  for (const m of Array.isArray(msg) ? msg : [msg]) handle(m);
});
rl.on("close", () => process.exit(0));
