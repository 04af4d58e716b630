"""Channels: the port the core speaks (`bot.channels.port`) and its adapters.

The domain, services and scheduler know recipients `(channel, address)` and messages (text plus
neutral actions and flags); each adapter (`telegram`, `email`) owns everything about its wire.
"""
