"""Telegram as one channel adapter: the Bot API courier (`channel`), neutral actions as inline
keyboards (`keyboards`), the flood gate (`floodgate`) and reachability (`reachability`).
Handlers and `bot/render` still speak Telegram directly; they move here in later steps."""
