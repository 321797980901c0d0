//! The test hub: one method per SignalR feature, for the conformance suite
//! (tests/e2e) to drive with the official clients over every transport and
//! protocol. Not a sample: each method does one thing a test asserts.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_guest::streaming::UploadError;
use switchboard_guest::{Binary, Timestamp};
use switchboard_guest::{
    Context, Hub, HubError, Methods, Stream, clients, connection, groups, invocation, kv, streaming,
};

/// How long `clientResult` waits for the client's answer.
const CLIENT_RESULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The test hub.
pub struct TestHub;

impl Hub for TestHub {
    fn methods(m: &mut Methods) {
        m.method("echo", echo);
        m.method("echoArgs", echo_args);
        m.method("echoTyped", echo_typed);
        m.method("throw", throw);
        m.method("crash", crash);
        m.method("void", void);
        m.stream("counter", counter);
        m.stream("infinite", infinite);
        m.stream("failingStream", failing_stream);
        m.method("concat", concat).uploads(1);
        m.method("concatTwo", concat_two).uploads(2);
        m.method("uploadOutcome", upload_outcome).uploads(1);
        m.stream("uploadEcho", upload_echo).uploads(1);
        m.method("clientResult", client_result);
        m.method("joinGroup", join_group);
        m.method("leaveGroup", leave_group);
        m.method("sendToGroup", send_to_group);
        m.method("broadcast", broadcast);
        m.method("sendToUser", send_to_user);
        m.method("sendToCaller", send_to_caller);
        m.method("context", context);
        m.method("request", request);
        m.method("setItem", set_item);
        m.method("getItem", get_item);
        m.method("sendToConnection", send_to_connection);
        m.method("addToGroup", add_to_group);
        m.method("invokeConnection", invoke_connection);
        m.method("kvGet", kv_get);
        m.method("kvSet", kv_set);
        m.stream("ticks", ticks);
        m.method("wait", wait);
        m.method("waitUntilCancelled", wait_until_cancelled);
        m.method("sendToGroupAfter", send_to_group_after);
        m.method("kvSetAfter", kv_set_after);
    }
}

switchboard_guest::export_hub!(TestHub);

/// `echo(value)`: any JSON value back, unchanged.
fn echo(_: &Context, (value,): (Value,)) -> Result<Value, HubError> {
    Ok(value)
}

/// `echoArgs(...)`: all arguments back as an array.
fn echo_args(_: &Context, args: Vec<Value>) -> Result<Vec<Value>, HubError> {
    Ok(args)
}

/// `throw(message)`: fails with `message` as the client's error text.
fn throw(_: &Context, (message,): (String,)) -> Result<(), HubError> {
    Err(HubError::new(message))
}

/// `crash(message)`: panics with `message`, an error the method did not mean
/// to raise: the client reads it only when the tenant shows detailed errors.
fn crash(_: &Context, (message,): (String,)) -> Result<(), HubError> {
    panic!("{message}")
}

/// `void()`: returns nothing.
fn void(_: &Context, (): ()) -> Result<(), HubError> {
    Ok(())
}

/// `counter(count)`, a stream: `0..count`, then completes.
fn counter(_: &Context, (count,): (u32,), stream: &Stream) -> Result<(), HubError> {
    for i in 0..count {
        stream.emit(&i)?;
    }
    Ok(())
}

/// `infinite()`, a stream: `0, 1, 2, ...` until the client cancels. The
/// item in progress when it cancels is the last; the method then returns.
fn infinite(_: &Context, (): (), stream: &Stream) -> Result<(), HubError> {
    let mut i: u64 = 0;
    while stream.emit(&i).is_ok() {
        i += 1;
    }
    Ok(())
}

/// `failingStream(count, message)`, a stream: `count` items, then fails.
fn failing_stream(
    _: &Context,
    (count, message): (u32, String),
    stream: &Stream,
) -> Result<(), HubError> {
    for i in 0..count {
        stream.emit(&i)?;
    }
    Err(HubError::new(message))
}

/// `concat(strings)`: joins an upload stream of strings.
fn concat(_: &Context, (): ()) -> Result<String, HubError> {
    let mut out = String::new();
    for item in streaming::upload::<String>(0) {
        out.push_str(&item?);
    }
    Ok(out)
}

/// `concatTwo(a, separator, b)`: joins two upload streams, the first's items
/// first, with `separator` between them. (The JS client skips a stream that
/// directly follows another in the argument list, so tests put a plain
/// argument between them.)
fn concat_two(_: &Context, (separator,): (String,)) -> Result<String, HubError> {
    let mut out = String::new();
    for index in 0..2 {
        if index > 0 {
            out.push_str(&separator);
        }
        for item in streaming::upload::<String>(index) {
            out.push_str(&item?);
        }
    }
    Ok(out)
}

/// `echoTyped(data, at)`: a binary value and a timestamp back, in the
/// caller's own types, as the result and as `typed(data, at)` sent to it.
fn echo_typed(
    ctx: &Context,
    (data, at): (Binary, Timestamp),
) -> Result<(Binary, Timestamp), HubError> {
    clients::caller(ctx).send("typed", (&data, &at))?;
    Ok((data, at))
}

/// `uploadOutcome(key, items)`: how the upload stream ended, as the plugin
/// saw it (its items, and the client's error or the cancellation), returned
/// and also stored under `key` (a cancelled call's result reaches nobody),
/// where `"started"` stands while it waits.
fn upload_outcome(_: &Context, (key,): (String,)) -> Result<Value, HubError> {
    kv::set(&key, "started")?;
    let mut items = Vec::new();
    let mut outcome = json!({});
    for item in streaming::upload::<Value>(0) {
        match item {
            Ok(item) => items.push(item),
            Err(UploadError::Client(error)) => outcome = json!({ "client": error }),
            Err(UploadError::Cancelled) => outcome = json!({ "cancelled": true }),
            Err(other) => return Err(other.into()),
        }
    }
    outcome["items"] = Value::Array(items);
    kv::set(&key, &outcome.to_string())?;
    Ok(outcome)
}

/// `uploadEcho(items)`, a stream fed by an upload stream: each item back.
fn upload_echo(_: &Context, (): (), stream: &Stream) -> Result<(), HubError> {
    for item in streaming::upload::<Value>(0) {
        stream.emit(&item?)?;
    }
    Ok(())
}

/// `clientResult(method, arg)`: invokes `method(arg)` on the caller and
/// returns what the client returned; a client error becomes this call's error.
fn client_result(ctx: &Context, (method, arg): (String, Value)) -> Result<Value, HubError> {
    let answer: Value = clients::caller(ctx).invoke(&method, (arg,), CLIENT_RESULT_TIMEOUT)?;
    Ok(answer)
}

/// `joinGroup(group)`.
fn join_group(ctx: &Context, (group,): (String,)) -> Result<(), HubError> {
    groups::add(ctx.connection_id(), &group)?;
    Ok(())
}

/// `leaveGroup(group)`.
fn leave_group(ctx: &Context, (group,): (String,)) -> Result<(), HubError> {
    groups::remove(ctx.connection_id(), &group)?;
    Ok(())
}

/// `sendToGroup(group, value)`: members receive `message(value)`.
fn send_to_group(_: &Context, (group, value): (String, Value)) -> Result<(), HubError> {
    clients::group(&group).send("message", (value,))?;
    Ok(())
}

/// `broadcast(value)`: every connection receives `message(value)`.
fn broadcast(_: &Context, (value,): (Value,)) -> Result<(), HubError> {
    clients::all().send("message", (value,))?;
    Ok(())
}

/// `sendToUser(user, value)`: the user's connections receive `message(value)`.
fn send_to_user(_: &Context, (user, value): (String, Value)) -> Result<(), HubError> {
    clients::user(&user).send("message", (value,))?;
    Ok(())
}

/// `sendToCaller(method, value)`: the caller receives `method(value)`.
fn send_to_caller(ctx: &Context, (method, value): (String, Value)) -> Result<(), HubError> {
    clients::caller(ctx).send(&method, (value,))?;
    Ok(())
}

/// `context()`: what the hub knows of the caller's connection.
fn context(ctx: &Context, (): ()) -> Result<Value, HubError> {
    let query: serde_json::Map<String, Value> = connection::query()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(json!({
        "connectionId": ctx.connection_id(),
        "userId": ctx.user_id(),
        "tenant": ctx.tenant(),
        "hub": ctx.hub(),
        "claims": ctx.claims(),
        "query": query,
        "userAgent": connection::header("user-agent"),
        "authorization": connection::header("authorization"),
    }))
}

/// `request(headers, cookies)`: the caller's transport, and what the hub sees
/// of each named header and cookie of its request (null when not visible).
fn request(_: &Context, (headers, cookies): (Vec<String>, Vec<String>)) -> Result<Value, HubError> {
    let seen = |names: Vec<String>, read: fn(&str) -> Option<String>| {
        names
            .into_iter()
            .map(|name| {
                let value = read(&name).map_or(Value::Null, Value::String);
                (name, value)
            })
            .collect::<serde_json::Map<_, _>>()
    };
    Ok(json!({
        "transport": connection::transport().map(|t| t.as_str()),
        "headers": seen(headers, connection::header),
        "cookies": seen(cookies, connection::cookie),
    }))
}

/// `setItem(key, value)`: keeps a value on the connection.
fn set_item(_: &Context, (key, value): (String, String)) -> Result<(), HubError> {
    connection::set_item(&key, &value)?;
    Ok(())
}

/// `getItem(key)`: a value kept by an earlier call of this connection.
fn get_item(_: &Context, (key,): (String,)) -> Result<Option<String>, HubError> {
    Ok(connection::item(&key))
}

/// `sendToConnection(connectionId, value)`: that connection receives `message(value)`.
fn send_to_connection(_: &Context, (id, value): (String, Value)) -> Result<(), HubError> {
    clients::connection(&id).send("message", (value,))?;
    Ok(())
}

/// `addToGroup(connectionId, group)`: adds any connection (by id) to a group.
fn add_to_group(_: &Context, (id, group): (String, String)) -> Result<(), HubError> {
    groups::add(&id, &group)?;
    Ok(())
}

/// `invokeConnection(connectionId, method, arg)`: a client result from any
/// connection (by id), waited for briefly.
fn invoke_connection(
    _: &Context,
    (id, method, arg): (String, String, Value),
) -> Result<Value, HubError> {
    let answer: Value = clients::connection(&id).invoke(&method, (arg,), Duration::from_secs(2))?;
    Ok(answer)
}

/// `kvGet(key)`: the tenant's value at `key`, or null.
fn kv_get(_: &Context, (key,): (String,)) -> Result<Option<String>, HubError> {
    Ok(kv::get(&key)?)
}

/// `kvSet(key, value)`: stores `value` at `key` in the tenant's store.
fn kv_set(_: &Context, (key, value): (String, String)) -> Result<(), HubError> {
    kv::set(&key, &value)?;
    Ok(())
}

/// `ticks(count, intervalMs)`, a stream: `0, 1, ...` one every `intervalMs`,
/// sleeping in between. When the client cancels, it stores how many items it
/// sent under `ticks:<connection id>` and returns.
fn ticks(ctx: &Context, (count, interval_ms): (u32, u64), stream: &Stream) -> Result<(), HubError> {
    for i in 0..count {
        stream.emit(&i)?;
        if invocation::sleep(Duration::from_millis(interval_ms)).is_err() {
            kv::set(
                &format!("ticks:{}", ctx.connection_id()),
                &(i + 1).to_string(),
            )?;
            return Ok(());
        }
    }
    Ok(())
}

/// `wait(ms)`: sleeps `ms`, then returns it (sleeping costs no CPU time).
fn wait(_: &Context, (ms,): (u64,)) -> Result<u64, HubError> {
    invocation::sleep(Duration::from_millis(ms))?;
    Ok(ms)
}

/// `sendToGroupAfter(ms, group, value)`: sleeps `ms`, then members of
/// `group` receive `message(value)`, even when the caller's connection ended
/// meanwhile: a plugin need not honour cancellation, and the host must keep
/// what it sends that late in bounds (a durable connection taken over by
/// another node in between must not be able to send).
fn send_to_group_after(
    _: &Context,
    (ms, group, value): (u64, String, Value),
) -> Result<(), HubError> {
    let _cancelled = invocation::sleep(Duration::from_millis(ms));
    clients::group(&group).send("message", (value,))?;
    Ok(())
}

/// `kvSetAfter(ms, key, value)`: sleeps `ms`, then stores `value` under
/// `key`, even when the caller's connection ended meanwhile (as
/// `sendToGroupAfter`, for a write outside the cluster's message stream).
fn kv_set_after(_: &Context, (ms, key, value): (u64, String, String)) -> Result<(), HubError> {
    let _cancelled = invocation::sleep(Duration::from_millis(ms));
    kv::set(&key, &value)?;
    Ok(())
}

/// `waitUntilCancelled()`: sleeps until its connection ends, then stores
/// whether it saw the cancellation under `waited:<connection id>`.
fn wait_until_cancelled(ctx: &Context, (): ()) -> Result<(), HubError> {
    while invocation::sleep(Duration::from_millis(50)).is_ok() {}
    let seen = if invocation::cancelled() {
        "cancelled"
    } else {
        "not cancelled"
    };
    kv::set(&format!("waited:{}", ctx.connection_id()), seen)?;
    Ok(())
}
