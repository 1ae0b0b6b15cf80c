// The official TypeScript MCP SDK (1.x, the client inside Claude Code and many desktop
// hosts) against the real server over stdio: lists tools, resources and prompts, and calls
// tools, letting the SDK validate every structured result against its tool's output schema.
// Usage: node sdk-check.mjs BINARY DATA_DIR WORKSPACE. Prints one JSON summary line; exits 1
// on the first failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [binary, dataDir, workspace] = process.argv.slice(2);
const transport = new StdioClientTransport({
  command: binary,
  args: ["serve", "--data-dir", dataDir, "--workspace", workspace, "--watch", "false", "--embedder", "none"],
  stderr: "ignore",
});
const client = new Client({ name: "sdk-check", version: "1.0.0" });

async function call(name, args) {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) {
    throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  }
  return result.structuredContent;
}

async function main() {
  await client.connect(transport);
  const { tools } = await client.listTools();
  const { resources } = await client.listResources();
  const { resourceTemplates } = await client.listResourceTemplates();
  const { prompts } = await client.listPrompts();
  const saved = await call("save_conversation", {
    session_id: "s1",
    messages: [
      { message_id: "m1", role: "user", content: "Which colour did we pick for the launch poster?" },
      { message_id: "m2", role: "assistant", content: "Teal, with the logo in white." },
    ],
  });
  await call("set_preference", { key: "theme", value: { dark: true, size: 14 } });
  await call("set_preference", { key: "tags", value: ["a", 1, null] });
  const preferences = await call("get_preferences", {});
  await call("index_workspace", {});
  const context = await call("get_context", { query: "launch poster colour", session_id: "s1" });
  const search = await call("search_documents", { query: "launch checklist", mode: "text" });
  const conversation = await call("get_conversation", { conversation_id: saved.conversation_id });
  const history = await call("get_conversation_history", { limit: 5 });
  const status = await call("index_status", {});
  const health = await call("health", {});
  const backup = await call("create_backup", {});
  await call("list_backups", {});
  await call("invalidate_cache", { event: "preference_update", user_id: "default" });
  await call("delete_preference", { key: "tags" });
  const read = await client.readResource({ uri: resources[0].uri });
  const summary = {
    tools: tools.length,
    resources: resources.length,
    resource_templates: resourceTemplates.length,
    prompts: prompts.length,
    preferences: Object.keys(preferences.preferences).length,
    context_history: context.history.length,
    search_hits: search.hits.length,
    messages: conversation.messages.length,
    conversations: history.conversations.length,
    documents: status.documents,
    health: health.status,
    backup_files: Object.keys(backup.manifest.files).length,
    resource_read: read.contents.length,
  };
  if (prompts.length > 0) {
    const prompt = prompts[0];
    const args = Object.fromEntries((prompt.arguments ?? []).filter((a) => a.required).map((a) => [a.name, "launch"]));
    summary.prompt_messages = (await client.getPrompt({ name: prompt.name, arguments: args })).messages.length;
  }
  console.log(JSON.stringify(summary));
  await client.close();
}

main().catch(async (error) => {
  console.error(error?.stack ?? String(error));
  await client.close().catch(() => {});
  process.exit(1);
});
