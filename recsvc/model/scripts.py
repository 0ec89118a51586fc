"""The Lua scripts that read a version and move pointers atomically, one ``.lua`` file
each under ``scripts/`` (each file's header says its KEYS, ARGV and reply). The scripts
that move a pointer run after ``guards.lua``'s checks (the caller still holds the lock;
the version is whole)."""

from __future__ import annotations

from importlib import resources


def _lua(name: str) -> str:
    return (resources.files("recsvc.model") / "scripts" / f"{name}.lua").read_text("utf-8")


_GUARDS_LUA = _lua("guards")
FETCH_SCRIPT = _lua("fetch")
CUSTOMERS_SCRIPT = _lua("customers")
ORDER_EVENT_SCRIPT = _lua("order_event")
SWITCH_SCRIPT = _GUARDS_LUA + _lua("switch")
ROLLBACK_SCRIPT = _GUARDS_LUA + _lua("rollback")
CANDIDATE_SCRIPT = _GUARDS_LUA + _lua("candidate")
PROMOTE_SCRIPT = _GUARDS_LUA + _lua("promote")
ABORT_SCRIPT = _GUARDS_LUA + _lua("abort")
RENEW_LOCK_SCRIPT = _lua("renew_lock")
RELEASE_LOCK_SCRIPT = _lua("release_lock")
