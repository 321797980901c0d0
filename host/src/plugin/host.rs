//! What a plugin can call: the host side of the WIT imports. Every call acts
//! within the caller's own tenant and hub, whatever names the plugin passes.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, error, info, trace, warn};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::switchboard::hub::{
    clients, connection, groups, invocation, kv, log, streaming, types,
};
use super::bindings::{GroupTarget, LogLevel, Target};
use crate::address::{self, HubKey, OutboundInvocation};
use crate::backplane::Fence;
use crate::outbound::ConnectionHandle;
use crate::router::Router;
use crate::tenant::Tenant;

/// Largest arguments a plugin may send in one call, in bytes.
pub(super) const MAX_SEND_ARGS: usize = 1024 * 1024;

/// What a call runs against: the caller's tenant, hub and connection.
#[derive(Debug, Clone)]
pub struct CallEnv {
    /// The tenant the call runs for: its limits, KV store and config apply.
    pub tenant: Arc<Tenant>,
    /// The hub the plugin serves; its sends and group changes stay within it.
    pub hub: HubKey,
    /// Carries out the plugin's sends, group changes and closes, here and on other nodes.
    pub router: Arc<Router>,
    /// The connection the call is made for, held from the call's start; none
    /// for server-side calls. Held, not looked up by id when the plugin first
    /// asks: a durable connection that another node took over is dropped here,
    /// and a lookup after that would find nothing, so an effect would go out
    /// without the connection's fence.
    pub caller: Option<Arc<ConnectionHandle>>,
    /// The receipts of the call's sends to other nodes: the caller awaits
    /// them before it reports success (give each call its own).
    pub receipts: crate::backplane::Receipts,
}

/// State of one store: one plugin instance for one call.
pub(super) struct HostState {
    pub(super) env: CallEnv,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) stderr: MemoryOutputPipe,
    pub(super) limits: InstanceLimits,
    /// When the call started, how long it waited on the host for clients
    /// (stream backpressure, uploads, client results), and how long it may
    /// run guest code: the difference is what the CPU limit counts.
    pub(super) started: std::time::Instant,
    pub(super) waited: Duration,
    pub(super) cpu_budget: Duration,
    pub(super) cpu_exceeded: bool,
    /// The message of a guest panic, as the SDK logs it before aborting.
    pub(super) panic_message: Option<String>,
    /// Where a server-stream method's items go; none for other calls.
    pub(super) stream: Option<super::StreamSink>,
}

/// A durable caller's effect refused: its record was not stored, or the
/// connection is no longer this node's.
const NOT_OURS: &str =
    "the connection ended, or another node took it over, before its message was stored";

impl HostState {
    /// Keeps the receipt of a send or group change to other nodes for the
    /// call to await before it reports success; a refusal known now is the
    /// host call's error.
    fn collect(&self, receipt: crate::backplane::Receipt) -> Result<(), String> {
        let refused = match receipt.ready() {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        self.env.receipts.push(receipt);
        refused.map_or(Ok(()), Err)
    }

    /// The tenant's key-value store.
    fn kv(&self) -> &crate::backplane::kv::KvStore {
        &self.env.tenant.kv
    }

    /// Guest time so far: time since the call started, less host waits.
    pub(super) fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.waited)
    }

    /// Runs a host operation that waits on a client; its time is not the plugin's.
    async fn waiting<T>(&mut self, op: impl std::future::Future<Output = T>) -> T {
        let start = std::time::Instant::now();
        let out = op.await;
        self.waited += start.elapsed();
        out
    }

    /// What cancels the call: its stream's token (CancelInvocation or the
    /// connection's end), else the caller's connection ending; none for a
    /// call no connection made.
    fn cancellation(&mut self) -> Option<tokio_util::sync::CancellationToken> {
        if let Some(stream) = &self.stream {
            return Some(stream.cancelled.clone());
        }
        self.caller().map(|c| c.closing_token().clone())
    }

    /// Before an effect anyone else may see (a send, a group change, a
    /// client invocation, a KV write): a durable caller's receipt is stored
    /// and read back first, so a node taking the connection over knows the
    /// call ran, and an owner that was fenced meanwhile has no effect. The
    /// durable caller's fence is the condition of the effect's own record.
    async fn receipt_first(&mut self) -> Result<Option<Fence>, String> {
        let Some(caller) = self.caller().cloned() else {
            return Ok(None);
        };
        caller
            .receipt_applied()
            .await
            .map_err(|()| NOT_OURS.to_owned())?;
        Ok(caller.durable_fence())
    }

    /// Before an effect outside the stream (a KV write, a client invocation
    /// of another connection): as [`Self::receipt_first`], and a durable
    /// caller's node checks in the store that it still owns the connection
    /// (see [`ConnectionHandle::still_owner`]).
    async fn owner_first(&mut self) -> Result<(), String> {
        let Some(caller) = self.caller().cloned() else {
            return Ok(());
        };
        caller.still_owner().await.map_err(|()| NOT_OURS.to_owned())
    }

    /// A plugin's group change (`add`, else remove), after its receipt.
    async fn change_group(
        &mut self,
        connection_id: String,
        group: String,
        add: bool,
    ) -> Result<(), String> {
        let fence = self.receipt_first().await?;
        let change =
            self.env
                .router
                .change_group_under(&self.env.hub, &connection_id, &group, add, fence);
        self.collect(change.map_err(|e| e.to_string())?)
    }

    /// The connection the call is made for.
    fn caller(&self) -> Option<&Arc<ConnectionHandle>> {
        self.env.caller.as_ref()
    }
}

impl HostState {
    pub(super) fn new(env: CallEnv, memory_bytes: usize, cpu_budget: Duration) -> HostState {
        let stderr = MemoryOutputPipe::new(8 * 1024);
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .build();
        HostState {
            env,
            wasi,
            table: ResourceTable::new(),
            stderr,
            limits: InstanceLimits {
                memory_bytes,
                memory_exceeded: false,
                memory_high: 0,
            },
            started: std::time::Instant::now(),
            waited: Duration::ZERO,
            cpu_budget,
            cpu_exceeded: false,
            panic_message: None,
            stream: None,
        }
    }
}

impl HostState {
    /// Prepares a warm instance's state for its next call.
    pub(super) fn reset(
        &mut self,
        env: CallEnv,
        memory_bytes: usize,
        cpu_budget: Duration,
        stream: Option<super::StreamSink>,
    ) {
        self.env = env;
        self.limits.memory_bytes = memory_bytes;
        self.limits.memory_exceeded = false;
        self.started = std::time::Instant::now();
        self.waited = Duration::ZERO;
        self.cpu_budget = cpu_budget;
        self.cpu_exceeded = false;
        self.panic_message = None;
        self.stream = stream;
    }

    /// Lets go of what belonged to the call that just ended: its stream (so
    /// the client sees it complete) and its connection.
    pub(super) fn release(&mut self) {
        self.stream = None;
        self.env.caller = None;
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The memory limit of one instance; it remembers that it refused, so the
/// resulting trap can be reported as what it is.
pub(super) struct InstanceLimits {
    pub(super) memory_bytes: usize,
    pub(super) memory_exceeded: bool,
    /// The largest linear memory granted so far.
    pub(super) memory_high: usize,
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::msg("memory limit reached"));
        }
        self.memory_high = self.memory_high.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

fn to_route_target(target: Target) -> address::Target {
    match target {
        Target::All(except) => address::Target::All { except },
        Target::Connections(ids) => address::Target::Connections(ids),
        Target::Users(users) => address::Target::Users(users),
        Target::Groups(GroupTarget { groups, except }) => {
            address::Target::Groups { groups, except }
        }
    }
}

impl types::Host for HostState {}

impl clients::Host for HostState {
    async fn send(
        &mut self,
        target: Target,
        method: String,
        args_json: String,
    ) -> Result<(), String> {
        if method.is_empty() {
            return Err("method name must not be empty".into());
        }
        if args_json.len() > MAX_SEND_ARGS {
            return Err(format!("arguments are larger than {MAX_SEND_ARGS} bytes"));
        }
        let message = OutboundInvocation::from_json(&method, &args_json)?;
        let fence = self.receipt_first().await?;
        let receipt = self.env.router.send_under(
            &self.env.hub,
            &to_route_target(target),
            Arc::new(message),
            fence,
        );
        self.collect(receipt)
    }

    async fn invoke(
        &mut self,
        connection_id: String,
        method: String,
        args_json: String,
        timeout_ms: u32,
    ) -> Result<String, String> {
        let connection = self
            .env
            .router
            .local_connection(&self.env.hub, &connection_id)
            .ok_or_else(|| format!("connection '{connection_id}' not found"))?;
        let message = OutboundInvocation::from_json(&method, &args_json)?;
        self.owner_first().await?;
        let timeout = Duration::from_millis(u64::from(timeout_ms.clamp(1, 300_000)));
        self.waiting(connection.invoke_client(message, timeout))
            .await
    }
}

impl groups::Host for HostState {
    async fn add(&mut self, connection_id: String, group: String) -> Result<(), String> {
        self.change_group(connection_id, group, true).await
    }

    async fn remove(&mut self, connection_id: String, group: String) -> Result<(), String> {
        self.change_group(connection_id, group, false).await
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<String>, String> {
        self.kv().get(&key).await.map_err(|e| e.to_string())
    }

    async fn set(&mut self, key: String, value: String, ttl_ms: Option<u64>) -> Result<(), String> {
        self.owner_first().await?;
        self.kv()
            .set(&key, &value, ttl_ms.map(Duration::from_millis))
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete(&mut self, key: String) -> Result<(), String> {
        self.owner_first().await?;
        self.kv().delete(&key).await.map_err(|e| e.to_string())
    }

    async fn compare_and_set(
        &mut self,
        key: String,
        expected: Option<String>,
        value: String,
        ttl_ms: Option<u64>,
    ) -> Result<bool, String> {
        self.owner_first().await?;
        self.kv()
            .compare_and_set(
                &key,
                expected.as_deref(),
                &value,
                ttl_ms.map(Duration::from_millis),
            )
            .await
            .map_err(|e| e.to_string())
    }
}

impl streaming::Host for HostState {
    async fn emit(&mut self, item_json: String) -> Result<(), String> {
        let Some(sink) = self.stream.take() else {
            return Err("this method was not called as a stream".into());
        };
        let result = self.waiting(sink.emit(item_json)).await;
        self.stream = Some(sink);
        result
    }

    async fn next_upload(&mut self, index: u32) -> Result<Option<String>, String> {
        self.next_upload_item(index)
            .await
            .map_err(streaming::UploadError::into_text)
    }

    async fn next_upload_item(
        &mut self,
        index: u32,
    ) -> Result<Option<String>, streaming::UploadError> {
        let Some(mut sink) = self.stream.take() else {
            return Err(streaming::UploadError::Host(super::no_upload(index)));
        };
        let result = self.waiting(sink.next_upload(index)).await;
        self.stream = Some(sink);
        result
    }
}

/// The error of a host call made after the call was cancelled.
const CANCELLED: &str = "the call was cancelled";

impl invocation::Host for HostState {
    async fn cancelled(&mut self) -> bool {
        self.cancellation().is_some_and(|t| t.is_cancelled())
    }

    async fn sleep(&mut self, ms: u32) -> Result<(), String> {
        let wait = tokio::time::sleep(Duration::from_millis(u64::from(ms)));
        let Some(token) = self.cancellation() else {
            self.waiting(wait).await;
            return Ok(());
        };
        self.waiting(async {
            tokio::select! {
                biased;
                () = token.cancelled() => Err(CANCELLED.to_owned()),
                () = wait => Ok(()),
            }
        })
        .await
    }

    async fn detailed_errors(&mut self) -> bool {
        self.env.tenant.config.detailed_errors
    }
}

impl connection::Host for HostState {
    async fn query(&mut self) -> Vec<(String, String)> {
        self.caller()
            .map(|c| {
                c.request
                    .query()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn header(&mut self, name: String) -> Option<String> {
        self.caller()?.request.header(&name).map(str::to_owned)
    }

    async fn transport(&mut self) -> Option<String> {
        let transport = self.caller()?.request.transport()?;
        Some(transport.name().to_owned())
    }

    async fn cookie(&mut self, name: String) -> Option<String> {
        self.caller()?.request.cookie(&name).map(str::to_owned)
    }

    async fn get_item(&mut self, key: String) -> Option<String> {
        self.caller()?.item(&key)
    }

    async fn set_item(&mut self, key: String, value: Option<String>) -> Result<(), String> {
        self.receipt_first().await?;
        match self.caller() {
            Some(caller) => caller.set_item(&key, value).await,
            None => Err("this call has no connection".into()),
        }
    }
}

impl log::Host for HostState {
    async fn log(&mut self, level: LogLevel, message: String) {
        let tenant = &*self.env.hub.tenant;
        let hub = &*self.env.hub.hub;
        let message = crate::error_text::truncate(&message, 4096);
        match level {
            LogLevel::Trace => trace!(tenant, hub, plugin_log = message),
            LogLevel::Debug => debug!(tenant, hub, plugin_log = message),
            LogLevel::Info => info!(tenant, hub, plugin_log = message),
            LogLevel::Warn => warn!(tenant, hub, plugin_log = message),
            LogLevel::Error => {
                if message.contains("panicked") {
                    self.panic_message = Some(message.to_owned());
                }
                error!(tenant, hub, plugin_log = message)
            }
        }
    }
}
