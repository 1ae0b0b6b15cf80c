"""The official Python MCP SDK against the real server over stdio: lists tools, resources and
prompts and calls tools, letting the SDK validate each structured result against its tool's
output schema. Usage: python sdk_check.py BINARY DATA_DIR WORKSPACE. Prints one JSON summary
line; exits 1 on the first failure."""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def call(session, name, arguments):
    result = await session.call_tool(name, arguments)
    if result.isError:
        raise RuntimeError(f"{name} failed: {result.content}")
    return result.structuredContent


async def main(binary, data_dir, workspace):
    server = StdioServerParameters(
        command=binary,
        args=["serve", "--data-dir", data_dir, "--workspace", workspace,
              "--watch", "false", "--embedder", "none"],
    )
    with open("/dev/null", "w") as quiet:
        async with stdio_client(server, errlog=quiet) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = (await session.list_tools()).tools
                resources = (await session.list_resources()).resources
                prompts = (await session.list_prompts()).prompts
                saved = await call(session, "save_conversation", {"messages": [
                    {"message_id": "m1", "role": "user", "content": "Teal for the launch poster?"},
                    {"message_id": "m2", "role": "assistant", "content": "Teal, logo in white."},
                ]})
                await call(session, "set_preference", {"key": "theme", "value": {"dark": True}})
                await call(session, "index_workspace", {})
                context = await call(session, "get_context", {"query": "launch poster"})
                search = await call(session, "search_documents",
                                    {"query": "launch checklist", "mode": "text"})
                conversation = await call(session, "get_conversation",
                                          {"conversation_id": saved["conversation_id"]})
                health = await call(session, "health", {})
                print(json.dumps({
                    "tools": len(tools),
                    "resources": len(resources),
                    "prompts": len(prompts),
                    "context_preferences": len(context["preferences"]),
                    "search_hits": len(search["hits"]),
                    "messages": len(conversation["messages"]),
                    "health": health["status"],
                }))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
