"""Generated from proto/mainmast/config/v1 by scripts/gen_proto.py; do not edit."""
