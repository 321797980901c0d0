"""The switchboard:hub world's imports, as the SDK calls its host. Only the component has
them (componentize-py generates ``wit_world`` at build time); ``export_hub`` binds this."""

from typing import Optional

from componentize_py_types import Err
from wit_world.imports import clients as _clients
from wit_world.imports import connection as _connection
from wit_world.imports import groups as _groups
from wit_world.imports import invocation as _invocation
from wit_world.imports import kv as _kv
from wit_world.imports import log as _log
from wit_world.imports import streaming as _streaming
from wit_world.imports import types as _types

from . import HostError, UploadError

_LEVELS = {
    "trace": _types.LogLevel.TRACE,
    "debug": _types.LogLevel.DEBUG,
    "info": _types.LogLevel.INFO,
    "warn": _types.LogLevel.WARN,
    "error": _types.LogLevel.ERROR,
}


def _call(fn, *args):
    try:
        return fn(*args)
    except Err as e:
        raise HostError(str(e.value)) from None


def _target(target: tuple):
    kind = target[0]
    if kind == "all":
        return _types.Target_All(target[1])
    if kind == "connections":
        return _types.Target_Connections(target[1])
    if kind == "users":
        return _types.Target_Users(target[1])
    return _types.Target_Groups(_types.GroupTarget(target[1], target[2]))


def hub_info(sdk_version: str, methods) -> "_types.HubInfo":
    kind = {True: _types.MethodKind.SERVER_STREAM, False: _types.MethodKind.UNARY}
    return _types.HubInfo(sdk_version, [_types.MethodInfo(m.name, kind[m.stream], m.uploads) for m in methods])


class WitHost:
    def send(self, target: tuple, method: str, args_json: str) -> None:
        _call(_clients.send, _target(target), method, args_json)

    def invoke(self, connection_id: str, method: str, args_json: str, timeout_ms: int) -> str:
        return _call(_clients.invoke, connection_id, method, args_json, timeout_ms)

    def group_add(self, connection_id: str, group: str) -> None:
        _call(_groups.add, connection_id, group)

    def group_remove(self, connection_id: str, group: str) -> None:
        _call(_groups.remove, connection_id, group)

    def kv_get(self, key: str) -> Optional[str]:
        return _call(_kv.get, key)

    def kv_set(self, key: str, value: str, ttl_ms: Optional[int]) -> None:
        _call(_kv.set, key, value, ttl_ms)

    def kv_delete(self, key: str) -> None:
        _call(_kv.delete, key)

    def kv_compare_and_set(self, key: str, expected: Optional[str], value: str, ttl_ms: Optional[int]) -> bool:
        return _call(_kv.compare_and_set, key, expected, value, ttl_ms)

    def emit(self, item_json: str) -> None:
        _call(_streaming.emit, item_json)

    def next_upload(self, index: int) -> Optional[str]:
        try:
            return _streaming.next_upload_item(index)
        except Err as e:
            reason = e.value
            if isinstance(reason, _streaming.UploadError_Client):
                raise UploadError("client", reason.value) from None
            if isinstance(reason, _streaming.UploadError_Cancelled):
                raise UploadError("cancelled", "the call was cancelled") from None
            raise UploadError("host", str(getattr(reason, "value", reason))) from None

    def cancelled(self) -> bool:
        return _invocation.cancelled()

    def sleep(self, ms: int) -> None:
        _call(_invocation.sleep, ms)

    def detailed_errors(self) -> bool:
        return _invocation.detailed_errors()

    def query(self) -> list:
        return _connection.query()

    def header(self, name: str) -> Optional[str]:
        return _connection.header(name)

    def cookie(self, name: str) -> Optional[str]:
        return _connection.cookie(name)

    def transport(self) -> Optional[str]:
        return _connection.transport()

    def get_item(self, key: str) -> Optional[str]:
        return _connection.get_item(key)

    def set_item(self, key: str, value: Optional[str]) -> None:
        _call(_connection.set_item, key, value)

    def log(self, level: str, message: str) -> None:
        _log.log(_LEVELS[level], message)
