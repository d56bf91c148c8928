"""Generated from proto/mainmast/llm/v1 by scripts/gen_proto.py; do not edit."""
