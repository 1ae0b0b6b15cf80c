#!/usr/bin/env python3
"""Writes a synthetic ChatGPT data export (conversations.json) for import benchmarks:
CONVERSATIONS conversations of MESSAGES messages each, alternating user and assistant, 5 to 60
words a message, one linear thread per conversation.

    scripts/gen-chatgpt-export.py CONVERSATIONS MESSAGES OUT
"""
import json
import random
import sys


def main(conversations, messages, out):
    random.seed(1)
    words = ("the launch poster colour teal logo white plan trip cafe rain haiku code "
             "review index search").split()
    with open(out, "w") as file:
        file.write("[")
        for c in range(conversations):
            mapping = {"root": {"id": "root", "parent": None, "children": [], "message": None}}
            parent = "root"
            for m in range(messages):
                node = f"c{c}m{m}"
                text = " ".join(random.choice(words) for _ in range(random.randint(5, 60)))
                mapping[node] = {"id": node, "parent": parent, "children": [], "message": {
                    "id": node, "author": {"role": "user" if m % 2 == 0 else "assistant"},
                    "create_time": 1_700_000_000 + m,
                    "content": {"content_type": "text", "parts": [text]}}}
                parent = node
            conversation = {"id": f"conv{c}", "title": f"Conversation {c}",
                            "create_time": 1_700_000_000, "current_node": parent,
                            "mapping": mapping}
            file.write("," if c else "")
            json.dump(conversation, file)
        file.write("]")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
