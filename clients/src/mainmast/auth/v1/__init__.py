"""Generated from proto/mainmast/auth/v1 by scripts/gen_proto.py; do not edit."""
