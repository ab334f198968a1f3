#!/usr/bin/env node
// Drives a stdio MCP server with the official MCP TypeScript SDK client, for tests/mcp.rs.
//
//   MCP_CLIENT_DIR=target/mcp-client node tests/mcp/client.mjs CALLS_JSON -- COMMAND [ARGS...]
//
// MCP_CLIENT_DIR holds @modelcontextprotocol/sdk (scripts/install-mcp-client.sh). Starts COMMAND
// ARGS as the server with this process's whole environment (the SDK passes only a safe subset
// unless told), connects as `mc-ledger-tests`, lists the tools, then makes each call of
// CALLS_JSON (`[{"name": tool, "arguments": {...}}]`) in order, and prints one JSON document:
//   {"server": {name, version}, "tools": [{name, description, inputSchema}],
//    "calls": [{"name", "arguments", "isError", "content", "structuredContent"} |
//              {"name", "arguments", "error": message}]}
// A tool error does not stop the run; a protocol error is recorded as `error` and the run goes on.
// Exit 0 when it ran, 2 on a usage error, 1 when the server could not be reached or listed.
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const sep = args.indexOf("--");
if (sep !== 1 || args.length < 3 || !process.env.MCP_CLIENT_DIR) {
  console.error("usage: MCP_CLIENT_DIR=DIR node client.mjs CALLS_JSON -- COMMAND [ARGS...]");
  process.exit(2);
}
let calls;
try {
  calls = JSON.parse(args[0]);
  if (!Array.isArray(calls)) throw new Error("not an array");
} catch (e) {
  console.error(`CALLS_JSON: ${e.message}`);
  process.exit(2);
}
const sdk = join(resolve(process.env.MCP_CLIENT_DIR), "node_modules/@modelcontextprotocol/sdk/dist/esm");
const { Client } = await import(pathToFileURL(join(sdk, "client/index.js")).href);
const { StdioClientTransport } = await import(pathToFileURL(join(sdk, "client/stdio.js")).href);

const transport = new StdioClientTransport({
  command: args[2],
  args: args.slice(3),
  env: { ...process.env },
  stderr: "inherit",
});
const client = new Client({ name: "mc-ledger-tests", version: "1.0.0" });
let listed;
try {
  await client.connect(transport);
  listed = await client.listTools();
} catch (e) {
  // No process.exit here: a failed connect has the SDK closing the server already (stdin ended,
  // then SIGTERM, then SIGKILL) and exiting now would leave it running; node exits once it is gone.
  console.error(`cannot connect: ${e.message}`);
  process.exitCode = 1;
  await client.close().catch(() => {});
}
if (listed) {
  const out = { server: client.getServerVersion(), tools: [], calls: [] };
  out.tools = listed.tools.map(({ name, description, inputSchema }) => ({ name, description, inputSchema }));
  for (const { name, arguments: callArgs } of calls) {
    try {
      const r = await client.callTool({ name, arguments: callArgs ?? {} });
      out.calls.push({ name, arguments: callArgs, isError: r.isError === true, content: r.content, structuredContent: r.structuredContent });
    } catch (e) {
      out.calls.push({ name, arguments: callArgs, error: e.message });
    }
  }
  await client.close();
  console.log(JSON.stringify(out));
}
// The SDK ends the server with SIGKILL at worst (after ~4 s); should a process the server started
// still hold its pipes, node would wait for it: exit anyway.
setTimeout(() => process.exit(), 5000).unref();
