"""Thin Telegram entry points: parse the update, call one service, render the answer."""
