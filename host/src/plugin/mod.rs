//! The wasmtime side: one engine for the node, each tenant hub's compiled and
//! validated component, and calls into it with a CPU and memory budget.
//!
//! Calls reuse a warm instance of the plugin version when one is idle (see
//! `pool`), else get a fresh one from the pooling allocator (about 16 µs here;
//! `cargo bench --bench polyglot` measures fresh and warm calls). A trapped instance is simply dropped, and a hot
//! reload only swaps the `Arc` that new calls pick up while running calls
//! finish on the version they pinned.

mod bindings;
pub mod bundled;
mod host;
pub mod pool;
pub mod registry;
pub mod store;
mod validate;
pub mod versions;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};

use crate::error_text::truncate;
use bindings::switchboard::hub::streaming::UploadError;
pub use bindings::{Context, MethodKind};
pub use host::CallEnv;
pub use registry::Registry;

use bindings::{Hub, HubPre};
use host::HostState;
use pool::{AfterCall, IdleBudget, WarmPool};

/// Largest plugin a deploy accepts, in bytes.
pub const MAX_PLUGIN_BYTES: usize = 32 << 20;

/// How often the epoch advances: the granularity of CPU limits, and of the
/// time slices a running plugin yields to other tasks.
pub const TICK: Duration = Duration::from_millis(10);

/// Plugin instances that may exist at once; further calls wait for a slot.
const MAX_INSTANCES: u32 = 1000;

/// Why a `.wasm` file could not become a [`HubPlugin`]; a deploy refuses it and
/// the running version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component (a core module, or not Wasm at all).
    #[error("not a valid WebAssembly component: {0}")]
    NotComponent(#[from] validate::HeaderError),
    /// Wasmtime could not compile the component (its root cause).
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// The component imports something the host's linker does not provide.
    #[error("imports what this host does not provide: {0}")]
    UnsupportedImport(String),
    /// The component's exports do not match the `hub` world.
    #[error("does not implement the switchboard:hub world: {0}")]
    WrongWorld(String),
    /// The plugin's `describe` call failed or hit a limit.
    #[error("describe() failed: {0}")]
    Describe(String),
    /// The load could not run: unknown tenant, node shutting down, compile task
    /// lost, or a rollback target's bytes no longer kept.
    #[error("{0}")]
    Io(String),
}

/// Why a call into a plugin failed, other than the plugin returning an error.
/// The texts are whole sentences: with the tenant's `detailed_errors`, the
/// client sees them after "An unexpected error occurred invoking ...".
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// Guest code ran longer than the tenant's `invocation_cpu_ms` (carried).
    #[error("The hub method exceeded the CPU time limit of {0} ms.")]
    CpuLimit(u64),
    /// Linear memory would grow past the tenant's `memory_mb` (carried).
    #[error("The hub method exceeded the memory limit of {0} MiB.")]
    MemoryLimit(u64),
    /// Running, sleeping and waiting together took longer than the tenant allows.
    #[error("The hub method exceeded its time limit of {0} ms.")]
    WallLimit(u64),
    /// The guest panicked (its panic message, or the first line of it on stderr).
    #[error("The plugin panicked: {0}")]
    Panicked(String),
    /// The guest trapped for another reason (the trap or its root cause).
    #[error("The plugin trapped ({0}).")]
    Trapped(String),
    /// No instance could be made for the call (or the node is shutting down).
    #[error("The plugin could not be started: {0}")]
    Instantiate(String),
}

impl CallError {
    /// The failure's kind, as the metrics and the dashboard name it.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::CpuLimit(_) | CallError::WallLimit(_) => "timeout",
            CallError::MemoryLimit(_) => "memory",
            CallError::Instantiate(_) => "instantiate",
            CallError::Panicked(_) | CallError::Trapped(_) => "trap",
        }
    }
}

/// What a plugin says of itself; read once at load.
#[derive(Debug, Clone)]
pub struct MethodSpec {
    /// The SignalR method name clients call, as the plugin spells it.
    pub name: String,
    /// Whether the method returns one result or a stream of items.
    pub kind: MethodKind,
    /// How many of its parameters are client-to-server streams.
    pub upload_streams: u32,
}

/// One loaded version of a hub's plugin. Immutable: a reload builds a new one.
pub struct HubPlugin {
    pre: HubPre<HostState>,
    /// Methods by lowercased name (SignalR matches names case-insensitively).
    methods: HashMap<String, MethodSpec>,
    /// The SDK version that built the plugin, as its `describe` reports it.
    pub sdk_version: String,
    /// Where it came from (a path, or "bundled"), for logs.
    pub source: String,
    /// SHA-256 of the `.wasm` bytes, hex.
    pub digest: String,
    /// Idle instances of this version, ready for the next call.
    warm: WarmPool<Instance>,
}

impl std::fmt::Debug for HubPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubPlugin")
            .field("source", &self.source)
            .field("methods", &self.methods.len())
            .finish_non_exhaustive()
    }
}

impl HubPlugin {
    /// The method clients call `name`, matched case-insensitively.
    pub fn method(&self, name: &str) -> Option<&MethodSpec> {
        self.methods.get(&name.to_ascii_lowercase())
    }

    /// Every method the plugin offers, in no order.
    pub fn methods(&self) -> impl Iterator<Item = &MethodSpec> {
        self.methods.values()
    }

    /// Idle warm instances of this version.
    pub fn warm_instances(&self) -> usize {
        self.warm.len()
    }
}

/// The node's wasmtime engine and linker, shared by every tenant.
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<HostState>,
    instances: Arc<Semaphore>,
    idle: Arc<IdleBudget>,
    /// Whether finished instances go back to their pool (on by default; the
    /// benchmark turns it off to measure fresh instances).
    reuse: AtomicBool,
    stopped: Arc<AtomicBool>,
}

debug_fields!(PluginEngine {});

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl PluginEngine {
    /// Builds the engine; `max_memory_mb` is the largest memory limit of any tenant.
    pub fn new(max_memory_mb: u64, cache: &CompileCache) -> anyhow::Result<PluginEngine> {
        let engine = match Engine::new(&config(Some(max_memory_mb), cache)) {
            Ok(engine) => engine,
            Err(e) => {
                // The pool reserves address space up front; where that is not
                // allowed, allocate on demand (slower instantiation) instead.
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                Engine::new(&config(None, cache)).map_err(|e| anyhow::anyhow!("{e:#}"))?
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Hub::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let stopped = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), stopped.clone());
        Ok(PluginEngine {
            engine,
            linker,
            instances: Arc::new(Semaphore::new(MAX_INSTANCES as usize)),
            idle: IdleBudget::new(pool::MAX_IDLE_TOTAL),
            reuse: AtomicBool::new(true),
            stopped,
        })
    }

    /// Turns reuse of warm instances on or off (for measurements).
    pub fn set_instance_reuse(&self, on: bool) {
        self.reuse.store(on, Ordering::Relaxed);
    }

    /// Idle warm instances on the node.
    pub fn idle_instances(&self) -> usize {
        self.idle.idle()
    }

    /// Compiles and validates a component and reads its methods. CPU-heavy
    /// (tens of milliseconds): call it off the async workers.
    pub fn load_blocking(&self, wasm: &[u8], source: &str) -> Result<HubPlugin, LoadError> {
        validate::require_component(wasm)?;
        let component =
            Component::new(&self.engine, wasm).map_err(|e| LoadError::Compile(root_cause(&e)))?;
        // Imports are checked first (the linker holds what the host provides),
        // then the exports against the hub world.
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::UnsupportedImport(truncate(&format!("{e:#}"), 2048).to_owned())
        })?;
        let pre = HubPre::new(pre).map_err(|e| LoadError::WrongWorld(root_cause(&e)))?;
        Ok(HubPlugin {
            pre,
            methods: HashMap::new(),
            sdk_version: String::new(),
            source: source.to_owned(),
            digest: sha256_hex(wasm),
            warm: WarmPool::new(pool::MAX_IDLE_PER_PLUGIN, self.idle.clone()),
        })
    }

    /// Asks a freshly loaded plugin which methods it offers.
    pub async fn describe(&self, plugin: &mut HubPlugin, env: CallEnv) -> Result<(), LoadError> {
        let limits = env.tenant.limits();
        let info = async {
            let mut call = self.instance(plugin, env, None).await?;
            let result = call.hub.call_describe(&mut call.store).await;
            self.finish(plugin, call, result, limits)
        }
        .await
        .map_err(|e| LoadError::Describe(e.to_string()))?;
        plugin.sdk_version = info.sdk_version;
        plugin.methods = info
            .methods
            .into_iter()
            .map(|m| {
                (
                    m.name.to_ascii_lowercase(),
                    MethodSpec {
                        name: m.name,
                        kind: m.kind,
                        upload_streams: m.upload_streams,
                    },
                )
            })
            .collect();
        Ok(())
    }

    /// Runs the plugin's `on-connected` for a client that finished its handshake:
    /// `Ok(Err(text))` refuses the connection with the plugin's text.
    pub async fn on_connected(
        &self,
        plugin: &HubPlugin,
        env: CallEnv,
        ctx: &Context,
    ) -> Result<Result<(), String>, CallError> {
        let limits = env.tenant.limits();
        let mut call = self.instance(plugin, env, None).await?;
        let result = call.hub.call_on_connected(&mut call.store, ctx).await;
        self.finish(plugin, call, result, limits)
    }

    /// Runs the plugin's `on-disconnected`; `error` says why the connection ended
    /// when it did not end cleanly.
    pub async fn on_disconnected(
        &self,
        plugin: &HubPlugin,
        env: CallEnv,
        ctx: &Context,
        error: Option<&str>,
    ) -> Result<(), CallError> {
        let limits = env.tenant.limits();
        let mut call = self.instance(plugin, env, None).await?;
        let result = call
            .hub
            .call_on_disconnected(&mut call.store, ctx, error)
            .await;
        self.finish(plugin, call, result, limits)
    }

    /// Calls a hub method. `Ok(Ok(None))` is a void result; `Ok(Err(text))`
    /// is the plugin's own error for the client.
    pub async fn invoke(
        &self,
        plugin: &HubPlugin,
        env: CallEnv,
        ctx: &Context,
        method: &str,
        args_json: &str,
        stream: Option<StreamSink>,
    ) -> Result<Result<Option<String>, String>, CallError> {
        let limits = env.tenant.limits();
        // Streams are meant to run long; plain calls are not.
        let wall_ms = if stream.is_some() {
            limits.stream_wall_ms
        } else {
            limits.invocation_wall_ms
        };
        let mut call = self.instance(plugin, env, stream).await?;
        let running = call
            .hub
            .call_invoke(&mut call.store, ctx, method, args_json);
        // The guest yields every epoch tick and sleeps in the host, so the
        // deadline is noticed while it runs or waits. A call stopped midway
        // leaves its instance in an unknown state: it is dropped, not reused.
        match tokio::time::timeout(Duration::from_millis(wall_ms), running).await {
            Ok(result) => self.finish(plugin, call, result, limits),
            Err(_) => Err(CallError::WallLimit(wall_ms)),
        }
    }

    /// The linear memory a fresh instance of `plugin` holds after one call of
    /// `method`, in bytes (for measurements: what each instance costs).
    pub async fn memory_after_call(
        &self,
        plugin: &HubPlugin,
        env: CallEnv,
        ctx: &Context,
        method: &str,
        args_json: &str,
    ) -> Result<usize, CallError> {
        let limits = env.tenant.limits();
        let mut call = self.fresh_instance(plugin, env, None).await?;
        let result = call
            .hub
            .call_invoke(&mut call.store, ctx, method, args_json)
            .await;
        let memory = call.store.data().limits.memory_high;
        // The plugin's own error still completed the call.
        let _ = result.map_err(|e| classify(&call.store, &e, limits))?;
        Ok(memory)
    }

    /// An instance for one call with the tenant's CPU and memory limits: a
    /// warm one when the version has one idle, else a fresh one.
    async fn instance(
        &self,
        plugin: &HubPlugin,
        env: CallEnv,
        stream: Option<StreamSink>,
    ) -> Result<Instance, CallError> {
        let (memory_bytes, cpu_budget) = call_budget(&env.tenant.limits());
        let warm = match self.reuse.load(Ordering::Relaxed) {
            true => plugin.warm.take(),
            false => None,
        };
        if let Some(mut warm) = warm {
            warm.store
                .data_mut()
                .reset(env, memory_bytes, cpu_budget, stream);
            warm.store.set_epoch_deadline(1);
            return Ok(warm);
        }
        self.fresh_instance(plugin, env, stream).await
    }

    /// A new instance from the pooling allocator, with the tenant's limits.
    async fn fresh_instance(
        &self,
        plugin: &HubPlugin,
        env: CallEnv,
        stream: Option<StreamSink>,
    ) -> Result<Instance, CallError> {
        let limits = env.tenant.limits();
        let (memory_bytes, cpu_budget) = call_budget(&limits);
        let permit = self
            .instances
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CallError::Instantiate("the node is shutting down".into()))?;
        let mut state = HostState::new(env, memory_bytes, cpu_budget);
        state.stream = stream;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.guest_time() > state.cpu_budget {
                state.cpu_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            // Yield every tick, so a busy plugin shares the worker thread.
            Ok(UpdateDeadline::Yield(1))
        });
        match plugin.pre.instantiate_async(&mut store).await {
            Ok(hub) => Ok(Instance {
                store,
                hub,
                uses: 0,
                _permit: permit,
            }),
            Err(e) => Err(classify(&store, &e, limits)),
        }
    }

    /// A call's result, with a trap turned into the reason it happened. An
    /// instance that finished cleanly goes back to its version's pool.
    fn finish<R>(
        &self,
        plugin: &HubPlugin,
        mut call: Instance,
        result: wasmtime::Result<R>,
        limits: crate::config::Limits,
    ) -> Result<R, CallError> {
        let value = result.map_err(|e| classify(&call.store, &e, limits))?;
        call.uses = call.uses.saturating_add(1);
        if self.reuse.load(Ordering::Relaxed) {
            let state = call.store.data();
            let after = AfterCall {
                returned: true,
                limit_or_panic: state.cpu_exceeded
                    || state.limits.memory_exceeded
                    || state.panic_message.is_some(),
                wrote_stderr: !state.stderr.contents().is_empty(),
                memory_high: state.limits.memory_high,
                memory_limit: state.limits.memory_bytes,
                uses: call.uses,
            };
            if after.reusable() {
                call.store.data_mut().release();
                // A full pool hands the instance back; dropping it frees its slot.
                let _ = plugin.warm.put(call);
            }
        }
        Ok(value)
    }
}

/// One instance, for one call at a time; dropping it frees its allocator slot.
struct Instance {
    store: Store<HostState>,
    hub: Hub,
    /// Calls it has served.
    uses: u32,
    _permit: OwnedSemaphorePermit,
}

/// Why a call trapped, from what the store saw.
fn classify(
    store: &Store<HostState>,
    error: &wasmtime::Error,
    limits: crate::config::Limits,
) -> CallError {
    let state = store.data();
    if state.cpu_exceeded {
        return CallError::CpuLimit(limits.invocation_cpu_ms);
    }
    if state.limits.memory_exceeded {
        return CallError::MemoryLimit(limits.memory_mb);
    }
    if let Some(message) = &state.panic_message {
        return CallError::Panicked(message.clone());
    }
    let stderr = state.stderr.contents();
    let stderr = String::from_utf8_lossy(&stderr);
    if let Some(at) = stderr.find("panicked") {
        let line = stderr[at..].lines().next().unwrap_or_default();
        return CallError::Panicked(truncate(line, 1024).to_owned());
    }
    match error.downcast_ref::<Trap>() {
        Some(trap) => CallError::Trapped(trap.to_string()),
        None => CallError::Trapped(root_cause(error)),
    }
}

fn root_cause(error: &wasmtime::Error) -> String {
    let text = error.root_cause().to_string();
    truncate(&text, 2048).to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether and where compiled components are kept on disk.
#[derive(Debug, Clone, Default)]
pub enum CompileCache {
    /// Every load compiles.
    #[default]
    Off,
    /// In the user's cache folder.
    UserDefault,
    /// In this folder.
    Dir(std::path::PathBuf),
}

/// The on-disk cache of compiled components, when it can be had: a cache that
/// cannot start (no home folder, a folder not writable) only costs compile time.
fn compile_cache(setting: &CompileCache) -> Option<wasmtime::Cache> {
    let mut cache = wasmtime::CacheConfig::new();
    match setting {
        CompileCache::Off => return None,
        CompileCache::UserDefault => {}
        CompileCache::Dir(dir) => {
            cache.with_directory(dir);
        }
    }
    match wasmtime::Cache::new(cache) {
        Ok(cache) => Some(cache),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "compile cache unavailable; plugins compile on every load");
            None
        }
    }
}

fn config(pool_memory_mb: Option<u64>, cache: &CompileCache) -> Config {
    let mut c = Config::new();
    c.cache(compile_cache(cache));
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    // Synchronous component calls cost 2-3x more with it on (measured here when chosen).
    c.concurrency_support(false);
    if let Some(mb) = pool_memory_mb {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(MAX_INSTANCES)
            .total_core_instances(MAX_INSTANCES * 8)
            .total_memories(MAX_INSTANCES * 2)
            .total_tables(MAX_INSTANCES * 4)
            .max_memory_size(usize::try_from(mb.max(1) << 20).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            // Resets only the pages an instance touched (Linux 6.7+; ignored
            // elsewhere): the largest single saving on a fresh instance.
            .pagemap_scan(wasmtime::Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

fn spawn_epoch_ticker(engine: Engine, stopped: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch ticker; plugin CPU limits will not apply");
    }
}

/// An item of a client's upload stream.
#[derive(Debug)]
pub enum UploadItem {
    /// One item, as its JSON text.
    Item(String),
    /// The client completed the stream with an error.
    Error(String),
}

/// Connects a streaming call to its connection: items out, uploads in.
#[derive(Debug)]
pub struct StreamSink {
    /// Items of a server-to-client stream; none when the method is unary.
    pub items: Option<mpsc::Sender<crate::protocol::Json>>,
    /// Cancelled when the client sends CancelInvocation or disconnects.
    pub cancelled: CancellationToken,
    /// The call's upload streams, in argument order.
    pub uploads: Vec<mpsc::Receiver<UploadItem>>,
}

impl StreamSink {
    async fn emit(&self, item: String) -> Result<(), String> {
        let Some(items) = &self.items else {
            return Err("this method was not called as a stream".into());
        };
        if self.cancelled.is_cancelled() {
            return Err("the stream was cancelled".into());
        }
        let item: crate::protocol::Json = serde_json::from_str(&item)
            .map_err(|e| format!("stream item is not valid JSON: {e}"))?;
        tokio::select! {
            sent = items.send(item) => sent.map_err(|_| "the stream was closed".to_owned()),
            () = self.cancelled.cancelled() => Err("the stream was cancelled".into()),
        }
    }

    async fn next_upload(&mut self, index: u32) -> Result<Option<String>, UploadError> {
        let Some(upload) = self.uploads.get_mut(index as usize) else {
            return Err(UploadError::Host(no_upload(index)));
        };
        // A connection that ends drops the uploads too: that is not the
        // client completing them, so cancellation is looked at first.
        tokio::select! {
            biased;
            () = self.cancelled.cancelled() => Err(UploadError::Cancelled),
            item = upload.recv() => match item {
                Some(UploadItem::Item(item)) => Ok(Some(item)),
                Some(UploadItem::Error(e)) => Err(UploadError::Client(e)),
                None => Ok(None),
            },
        }
    }
}

/// The error of a read from an upload stream the call does not have.
fn no_upload(index: u32) -> String {
    format!("this call has no upload stream {index}")
}

impl UploadError {
    /// The text of the untyped `next-upload`: the client's own error, or
    /// what the host says.
    fn into_text(self) -> String {
        match self {
            UploadError::Client(text) | UploadError::Host(text) => text,
            UploadError::Cancelled => "the call was cancelled".into(),
        }
    }
}

/// A call's memory cap in bytes and CPU budget, from its tenant's limits.
fn call_budget(limits: &crate::config::Limits) -> (usize, Duration) {
    let memory_bytes =
        usize::try_from(limits.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    (
        memory_bytes,
        Duration::from_millis(limits.invocation_cpu_ms),
    )
}
