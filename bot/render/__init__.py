"""Turning state into localized text and buttons. Used by handlers and the scheduler alike,
so a reminder looks the same whether it is sent on time or re-rendered after an edit."""
