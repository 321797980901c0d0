//! The hub layer of one connection: turns the client's hub messages into
//! plugin calls and their results into Completions and StreamItems.
//!
//! As in ASP.NET, plain invocations of one connection run one at a time, in
//! order; streaming calls (and calls with upload streams) run beside them.
//!
//! The tenant's limits on a connection's invocations apply here: the rate
//! per connection (a token bucket) and the invocations running at once per
//! tenant. Reaching either fails the invocation with an error the client
//! sees, and the connection stays open. Each invocation is counted and
//! timed in the metrics (see `crate::metrics`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Instant;

mod error;
mod services;

pub use error::{ConnectError, InvocationError};
pub use services::HubServices;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, warn};

use crate::metrics as names;
use crate::outbound::ConnectionHandle;
use crate::plugin::{CallEnv, CallError, Context, MethodKind, StreamSink, UploadItem};
use crate::protocol::{CompletionOutcome, HubMessage, Json, ProtocolError};
use crate::tenant::limits::{Limit, TenantUsage, TokenBucket};
use crate::tenant::{Identity, Tenant};

/// Items buffered per upload stream before the reader waits (ASP.NET's
/// `StreamBufferCapacity`).
const UPLOAD_BUFFER: usize = 10;
/// Items a server stream may queue ahead of the connection's writer.
const STREAM_BUFFER: usize = 16;
/// Plain invocations queued behind the running one before reading pauses.
const DISPATCH_QUEUE: usize = 32;
/// Streaming calls (and calls with upload streams) one connection may run at
/// once: each holds a task, its buffers and, on a durable connection, a place
/// in the session; a client opening more gets an error for each extra one.
pub const MAX_BACKGROUND_CALLS: usize = 64;

/// What the connection should do after a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading the client's messages.
    Continue,
    /// The client said goodbye.
    Close,
}

/// What every call of this connection shares.
struct Shared {
    services: HubServices,
    env: CallEnv,
    ctx: Context,
    handle: Arc<ConnectionHandle>,
    /// Running streams and background calls, by invocation id, for CancelInvocation.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Plain invocations handed to the dispatcher and not finished yet.
    queued: AtomicUsize,
    /// Streaming calls and calls with upload streams running.
    background: AtomicUsize,
    /// The tenant's use of the node, for its concurrent-invocation limit.
    usage: Arc<TenantUsage>,
    /// Counted per message; handles made once per connection.
    messages_in: metrics::Counter,
    messages_out: metrics::Counter,
    /// Each method's invocation series, looked up once per connection (the
    /// methods are the plugin's, so few).
    method_metrics: Mutex<HashMap<String, MethodMetrics>>,
    /// The connection's span, the parent of its `invoke` spans (which run on
    /// tasks of their own).
    span: tracing::Span,
}

/// The invocation series of one method of one hub.
struct MethodMetrics {
    /// Made on the first call that ran (a refused call has no latency).
    latency: Option<metrics::Histogram>,
    /// By outcome; a handful at most.
    outcomes: Vec<(&'static str, metrics::Counter)>,
}

/// What the in-order dispatcher runs next.
enum Job {
    Call(Call),
    /// A call started on the reader that has to wait for something.
    Started(Pin<Box<dyn Future<Output = ()> + Send>>),
}

/// One call to make.
struct Call {
    invocation_id: Option<String>,
    target: String,
    arguments: Json,
    streaming: bool,
    sink: Option<StreamSink>,
}

impl Call {
    /// A call of a client's invocation; a streaming one gets its sink when it starts.
    fn new(
        invocation_id: Option<String>,
        target: String,
        arguments: Json,
        streaming: bool,
    ) -> Call {
        Call {
            invocation_id,
            target,
            arguments,
            streaming,
            sink: None,
        }
    }
}

/// The hub layer of one connection: runs its invocations and streams against the hub's plugin, in
/// order for plain calls, and writes their Completions and StreamItems back.
pub struct HubSession {
    shared: Arc<Shared>,
    /// Plain invocations for the in-order dispatcher, which starts with the
    /// first invocation: an idle connection holds no task and no queue for it.
    dispatch: Option<mpsc::Sender<Job>>,
    dispatcher: Option<tokio::task::JoinHandle<()>>,
    /// False once draining: no new invocations.
    accepting: bool,
    /// Upload streams the client is still sending, by stream id.
    uploads: HashMap<String, mpsc::Sender<UploadItem>>,
    /// Paces the connection's invocations (`limits.messages_per_second`).
    rate: TokenBucket,
}

impl std::fmt::Debug for HubSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSession")
            .field("accepting", &self.accepting)
            .field("dispatching", &self.dispatch.is_some())
            .field("uploads", &self.uploads.len())
            .finish_non_exhaustive()
    }
}

impl HubSession {
    /// The hub layer of a connection to `tenant`'s hub.
    pub fn new(
        services: HubServices,
        tenant: Arc<Tenant>,
        handle: Arc<ConnectionHandle>,
        identity: &Identity,
    ) -> HubSession {
        let ctx = Context {
            tenant: handle.hub.tenant.to_string(),
            hub: handle.hub.hub.to_string(),
            connection_id: handle.id.to_string(),
            user_id: identity.user_id.clone(),
            claims_json: serde_json::Value::Object(identity.claims.clone()).to_string(),
        };
        let env = CallEnv {
            tenant,
            hub: handle.hub.clone(),
            router: services.router().clone(),
            caller: Some(handle.clone()),
            receipts: Default::default(),
        };
        let limits = env.tenant.limits();
        let labels = [
            ("tenant", handle.hub.tenant.clone()),
            ("hub", handle.hub.hub.clone()),
        ];
        let labels = labels.map(|(k, v)| metrics::Label::new(k, v));
        let shared = Arc::new(Shared {
            usage: services.usage().tenant(&handle.hub.tenant),
            messages_in: metrics::counter!(names::MESSAGES_IN, labels.iter()),
            messages_out: metrics::counter!(names::MESSAGES_OUT, labels.iter()),
            method_metrics: Mutex::new(HashMap::new()),
            services,
            env,
            ctx,
            handle,
            running: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            background: AtomicUsize::new(0),
            span: tracing::Span::current(),
        });
        HubSession {
            shared,
            dispatch: None,
            dispatcher: None,
            accepting: true,
            uploads: HashMap::new(),
            rate: TokenBucket::new(limits.messages_per_second, limits.burst(), Instant::now()),
        }
    }

    /// The largest hub message the tenant's clients may send.
    pub fn max_message_size(&self) -> usize {
        self.shared.env.tenant.limits().max_message_size
    }

    /// Notes a message the connection could not parse (it is about to close);
    /// an oversized one counts as the tenant's message size limit.
    pub fn on_protocol_error(&self, error: &ProtocolError) {
        if let ProtocolError::MessageTooLarge { limit } = error {
            let detail = format!("a client sent a message over {limit} bytes; closed");
            self.shared
                .usage
                .hit(&self.shared.handle.hub, Limit::MessageSize, &detail);
        }
    }

    /// Takes a token for an invocation; false (and counted) when the
    /// connection is over its rate.
    fn within_rate(&mut self) -> bool {
        let limits = self.shared.env.tenant.limits();
        self.rate
            .reconfigure(limits.messages_per_second, limits.burst());
        if self.rate.try_take(Instant::now()) {
            return true;
        }
        self.shared.usage.hit(
            &self.shared.handle.hub,
            Limit::MessagesPerSecond,
            &InvocationError::RateLimited(limits.messages_per_second).to_string(),
        );
        false
    }

    /// Runs the plugin's `on-connected`; an error refuses the connection,
    /// and its text is what the client is told.
    pub async fn connected(&self) -> Result<(), String> {
        self.on_connected().await.map_err(|e| e.to_string())
    }

    async fn on_connected(&self) -> Result<(), ConnectError> {
        let s = &self.shared;
        let plugin = s
            .services
            .registry()
            .get(&s.env.hub)
            .ok_or_else(|| ConnectError::HubUnavailable(s.env.hub.hub.to_string()))?;
        match s
            .services
            .engine()
            .on_connected(&plugin, s.env.clone(), &s.ctx)
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ConnectError::Refused(error)),
            Err(e) => {
                plugin_failed(s, &e);
                Err(ConnectError::Plugin(e))
            }
        }
    }

    /// The in-order dispatcher's queue, started on first use; None once draining.
    fn dispatcher(&mut self) -> Option<mpsc::Sender<Job>> {
        if !self.accepting {
            return None;
        }
        if self.dispatch.is_none() {
            let (dispatch, queue) = mpsc::channel(DISPATCH_QUEUE);
            self.dispatcher = Some(tokio::spawn(dispatch_in_order(self.shared.clone(), queue)));
            self.dispatch = Some(dispatch);
        }
        self.dispatch.clone()
    }

    /// Runs a plain invocation in order after those before it. With none
    /// waiting, it starts right here on the reader, which saves the hand-off to
    /// the dispatcher task (most calls finish without waiting for anything);
    /// one that has to wait (a client result, the KV store, a guest that runs
    /// past an epoch) goes on in the dispatcher, ahead of any later call.
    async fn dispatch_plain(&mut self, call: Call) {
        let Some(dispatch) = self.dispatcher() else {
            let error = InvocationError::ShuttingDown;
            complete(&self.shared, call.invocation_id.as_deref(), Err(error)).await;
            return;
        };
        let job = if self.shared.queued.load(Ordering::Acquire) == 0 {
            let mut started = Box::pin(run_call(self.shared.clone(), call));
            let finished =
                std::future::poll_fn(|cx| Poll::Ready(started.as_mut().poll(cx).is_ready())).await;
            if finished {
                return;
            }
            Job::Started(started)
        } else {
            Job::Call(call)
        };
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        // Reading waits while the queue is full: backpressure.
        if dispatch.send(job).await.is_err() {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Takes no new invocations and ends running streams; returns the
    /// dispatcher, which finishes the invocations already received.
    pub fn stop_accepting(&mut self) -> tokio::task::JoinHandle<()> {
        for (_, token) in self.shared.running.lock().drain() {
            token.cancel();
        }
        self.accepting = false;
        self.dispatch = None;
        self.dispatcher
            .take()
            .unwrap_or_else(|| tokio::spawn(async {}))
    }

    /// Ends running streams and runs the plugin's `on-disconnected`.
    pub async fn disconnected(&mut self, error: Option<String>) {
        let s = &self.shared;
        // Cancelled before their uploads end, so a method reading an upload
        // sees the cancellation, not a stream the client completed.
        for (_, token) in s.running.lock().drain() {
            token.cancel();
        }
        self.uploads.clear();
        let Some(plugin) = s.services.registry().get(&s.env.hub) else {
            return;
        };
        // The connection is closed and gone from the router by now: the
        // handler runs without it, so its sleeps are not cut short by that
        // close and its sends, group changes and KV writes are the node's own
        // (a durable connection's receipts would never be read back now).
        let env = CallEnv {
            caller: None,
            ..s.env.clone()
        };
        if let Err(e) = s
            .services
            .engine()
            .on_disconnected(&plugin, env, &s.ctx, error.as_deref())
            .await
        {
            plugin_failed(s, &e);
            warn!(connection = %s.handle.id, error = %e, "on-disconnected failed");
        }
    }

    /// Handles one message from the client.
    pub async fn on_message(&mut self, message: HubMessage) -> Flow {
        if !matches!(message, HubMessage::Ping) {
            self.shared.messages_in.increment(1);
        }
        if let Some(call) = message.as_call() {
            let id = call.invocation_id;
            // Refused before it runs: the client learns at once (and may back
            // off); its other invocations and the connection go on.
            let refusal = if !self.within_rate() {
                let limits = self.shared.env.tenant.limits();
                Some(InvocationError::RateLimited(limits.messages_per_second))
            } else {
                id.filter(|id| {
                    self.shared.handle.is_durable()
                        && id.len() > crate::durable::MAX_INVOCATION_ID_BYTES
                })
                .map(|long| InvocationError::InvocationIdTooLong(long.len()))
            };
            if let Some(error) = refusal {
                record_invocation(&self.shared, "", error.outcome(), None);
                complete(&self.shared, id, Err(error)).await;
                return Flow::Continue;
            }
        }
        match message {
            HubMessage::Invocation {
                invocation_id,
                target,
                arguments,
                stream_ids,
                ..
            } => {
                let call = Call::new(invocation_id, target, arguments, false);
                if stream_ids.is_empty() {
                    Box::pin(self.dispatch_plain(call)).await;
                } else {
                    self.start_background(call, &stream_ids).await;
                }
            }
            HubMessage::StreamInvocation {
                invocation_id,
                target,
                arguments,
                stream_ids,
                ..
            } => {
                let call = Call::new(Some(invocation_id), target, arguments, true);
                self.start_background(call, &stream_ids).await;
            }
            HubMessage::StreamItem {
                invocation_id,
                item,
                ..
            } => match self.uploads.get(&invocation_id) {
                Some(upload) => {
                    let _ = upload.send(UploadItem::Item(item.get().to_owned())).await;
                }
                None => {
                    debug!(stream = %invocation_id, "item for an unknown upload stream ignored")
                }
            },
            HubMessage::Completion {
                invocation_id,
                outcome,
                ..
            } => {
                if let Some(upload) = self.uploads.remove(&invocation_id) {
                    if let CompletionOutcome::Error(e) = outcome {
                        let _ = upload.send(UploadItem::Error(e)).await;
                    }
                } else if !self
                    .shared
                    .handle
                    .complete_client_result(&invocation_id, outcome)
                {
                    debug!(invocation = %invocation_id, "completion for an unknown invocation ignored");
                }
            }
            HubMessage::CancelInvocation { invocation_id, .. } => {
                if let Some(token) = self.shared.running.lock().get(&invocation_id) {
                    token.cancel();
                }
            }
            HubMessage::Close { .. } => return Flow::Close,
            HubMessage::Ping | HubMessage::Ack { .. } | HubMessage::Sequence { .. } => {}
        }
        Flow::Continue
    }

    /// Starts a streaming call, or one with upload streams, beside the
    /// in-order queue.
    async fn start_background(&mut self, mut call: Call, stream_ids: &[String]) {
        let shared = self.shared.clone();
        // An upload's items are routed by its stream id: a second stream with
        // a live one's id would take or split its items.
        if let Some(reused) = reused_stream_id(&self.uploads, stream_ids) {
            debug!(stream = %reused, "invocation with a stream id in use refused");
            let error = InvocationError::StreamIdInUse(reused.to_owned());
            complete(&shared, call.invocation_id.as_deref(), Err(error)).await;
            return;
        }
        if shared.background.load(Ordering::Acquire) >= MAX_BACKGROUND_CALLS {
            let error = InvocationError::TooManyStreams(MAX_BACKGROUND_CALLS);
            record_invocation(&shared, "", error.outcome(), None);
            complete(&shared, call.invocation_id.as_deref(), Err(error)).await;
            return;
        }
        let cancelled = shared.handle_token();
        if let Some(id) = &call.invocation_id {
            let in_use = {
                let mut running = shared.running.lock();
                let in_use = running.contains_key(id);
                if !in_use {
                    running.insert(id.clone(), cancelled.clone());
                }
                in_use
            };
            if in_use {
                let error = InvocationError::InvocationIdInUse(id.clone());
                complete(&shared, Some(id), Err(error)).await;
                return;
            }
        }
        let mut uploads = Vec::with_capacity(stream_ids.len());
        for stream_id in stream_ids {
            let (tx, rx) = mpsc::channel(UPLOAD_BUFFER);
            self.uploads.insert(stream_id.clone(), tx);
            uploads.push(rx);
        }
        let (items, items_rx) = if call.streaming {
            let (tx, rx) = mpsc::channel(STREAM_BUFFER);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        call.sink = Some(StreamSink {
            items,
            cancelled,
            uploads,
        });
        let upload_streams = stream_ids_len(stream_ids);
        shared.background.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            let id = call.invocation_id.clone();
            let forward = forward_items(&shared, id.as_deref(), items_rx);
            let (result, ()) = tokio::join!(execute(&shared, call, upload_streams), forward);
            if let Some(id) = &id {
                shared.running.lock().remove(id);
            }
            shared.background.fetch_sub(1, Ordering::AcqRel);
            complete(&shared, id.as_deref(), result).await;
        });
    }
}

/// A stream id of `ids` that a live upload has, or that `ids` names twice.
fn reused_stream_id<'a, T>(uploads: &HashMap<String, T>, ids: &'a [String]) -> Option<&'a str> {
    ids.iter().enumerate().find_map(|(i, id)| {
        let twice = ids.get(..i).is_some_and(|before| before.contains(id));
        (twice || uploads.contains_key(id)).then_some(id.as_str())
    })
}

fn stream_ids_len(ids: &[String]) -> u32 {
    u32::try_from(ids.len()).unwrap_or(u32::MAX)
}

impl Shared {
    /// A token cancelled with the connection, or on its own by CancelInvocation.
    fn handle_token(&self) -> CancellationToken {
        self.handle.closing_token().child_token()
    }
}

/// Runs plain invocations one at a time, in the order the client sent them.
async fn dispatch_in_order(shared: Arc<Shared>, mut queue: mpsc::Receiver<Job>) {
    while let Some(job) = queue.recv().await {
        match job {
            Job::Call(call) => run_call(shared.clone(), call).await,
            Job::Started(started) => started.await,
        }
        shared.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One plain invocation, from the call to the client's Completion.
async fn run_call(shared: Arc<Shared>, call: Call) {
    let id = call.invocation_id.clone();
    let result = execute(&shared, call, 0).await;
    complete(&shared, id.as_deref(), result).await;
}

/// Sends a stream's items to the client as they come.
async fn forward_items(shared: &Shared, id: Option<&str>, items: Option<mpsc::Receiver<Json>>) {
    let (Some(id), Some(mut items)) = (id, items) else {
        return;
    };
    while let Some(item) = items.recv().await {
        let message = HubMessage::StreamItem {
            invocation_id: id.to_owned(),
            item,
            headers: Vec::new(),
        };
        if shared.handle.send_message(&message).await.is_err() {
            return;
        }
        shared.messages_out.increment(1);
    }
}

/// Answers the client, unless the call was fire-and-forget.
async fn complete(
    shared: &Shared,
    id: Option<&str>,
    result: Result<Option<Json>, InvocationError>,
) {
    let Some(id) = id else {
        if let Err(error) = result {
            debug!(connection = %shared.handle.id, %error, "non-blocking invocation failed");
        }
        return;
    };
    let outcome = match result {
        Ok(Some(value)) => CompletionOutcome::Result(value),
        Ok(None) => CompletionOutcome::Void,
        Err(error) => {
            CompletionOutcome::Error(error.client_message(shared.env.tenant.config.detailed_errors))
        }
    };
    let message = HubMessage::completion(id, outcome);
    if shared.handle.send_message(&message).await.is_ok() {
        shared.messages_out.increment(1);
    }
}

/// Calls a hub method in an `invoke` span (a child of the connection's):
/// tenant, hub, method, the plugin's digest, outcome and duration. At debug
/// level, so that it costs nothing unless spans are exported or logged.
async fn execute(
    shared: &Shared,
    call: Call,
    upload_streams: u32,
) -> Result<Option<Json>, InvocationError> {
    let span = tracing::debug_span!(
        parent: &shared.span,
        "invoke",
        tenant = %shared.env.hub.tenant,
        hub = %shared.env.hub.hub,
        method = %call.target,
        plugin.sha256 = tracing::field::Empty,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    run_method(shared, call, upload_streams)
        .instrument(span)
        .await
}

/// Records `value` on the current `invoke` span, when debug spans are on at all.
fn note_on_span<V: tracing::Value>(field: &str, value: V) {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        tracing::Span::current().record(field, value);
    }
}

/// Finds the method and calls it, within the tenant's limit of invocations
/// running at once.
async fn run_method(
    shared: &Shared,
    call: Call,
    upload_streams: u32,
) -> Result<Option<Json>, InvocationError> {
    let services = &shared.services;
    let target = call.target.as_str();
    let plugin = services
        .registry()
        .get(&shared.env.hub)
        .ok_or_else(|| InvocationError::HubUnavailable(shared.env.hub.hub.to_string()))?;
    let Some(method) = plugin.method(target) else {
        // No method label: the name is the client's, not the plugin's.
        let error = InvocationError::UnknownMethod(target.to_owned());
        record_invocation(shared, "", error.outcome(), None);
        return Err(error);
    };
    let name = method.name.clone();
    note_on_span(
        "plugin.sha256",
        plugin.digest.get(..12).unwrap_or(&plugin.digest),
    );
    let refusal = match (call.streaming, method.kind) {
        (false, MethodKind::ServerStream) => {
            Some(InvocationError::StreamingMethod(target.to_owned()))
        }
        (true, MethodKind::Unary) => Some(InvocationError::NotStreamingMethod(target.to_owned())),
        _ if method.upload_streams != upload_streams => Some(InvocationError::UploadCount {
            target: target.to_owned(),
            sent: upload_streams,
            expected: method.upload_streams,
        }),
        _ => None,
    };
    if let Some(error) = refusal {
        record_invocation(shared, &name, error.outcome(), None);
        return Err(error);
    }
    let started = Instant::now();
    let limits = shared.env.tenant.limits();
    let Some(_slot) = shared.usage.invocation_slot(&limits).await else {
        let error = InvocationError::TooManyInvocations(limits.concurrent_invocations);
        shared.usage.hit(
            &shared.env.hub,
            Limit::ConcurrentInvocations,
            &error.to_string(),
        );
        record_invocation(shared, &name, error.outcome(), None);
        return Err(error);
    };
    let env = CallEnv {
        receipts: Default::default(),
        ..shared.env.clone()
    };
    let receipts = env.receipts.clone();
    let answered = call.invocation_id.is_some();
    let outcome = services
        .engine()
        .invoke(
            &plugin,
            env,
            &shared.ctx,
            &name,
            call.arguments.get(),
            call.sink,
        )
        .await;
    // What the call sent to other nodes is stored before it reports success
    // (a non-blocking invocation reports nothing, so it does not wait).
    let stored = match &outcome {
        Ok(Ok(_)) if answered => receipts.settle().await,
        _ => Ok(()),
    };
    let elapsed = Some(started.elapsed());
    let result = match outcome {
        Ok(Ok(_)) if stored.is_err() => Err(InvocationError::NotStored {
            target: target.to_owned(),
            cause: stored.err().map(|e| e.to_string()).unwrap_or_default(),
        }),
        Ok(Ok(None)) => Ok(None),
        Ok(Ok(Some(text))) if call.streaming => {
            debug!(method = %name, result = %crate::error_text::truncate(&text, 64), "a stream's result is not sent");
            Ok(None)
        }
        Ok(Ok(Some(text))) => serde_json::from_str::<Json>(&text).map(Some).map_err(|e| {
            InvocationError::InvalidResult {
                target: target.to_owned(),
                cause: e.to_string(),
            }
        }),
        Ok(Err(error)) => Err(InvocationError::Hub(error)),
        Err(cause) => {
            plugin_failed(shared, &cause);
            warn!(connection = %shared.handle.id, method = %name, error = %cause, "plugin call failed");
            Err(InvocationError::Plugin {
                target: target.to_owned(),
                cause,
            })
        }
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) => error.outcome(),
    };
    record_invocation(shared, &name, outcome, elapsed);
    result
}

/// Counts an invocation by outcome and, when it ran, its latency. `method`
/// is one the plugin declared (empty when the call never matched one).
fn record_invocation(
    shared: &Shared,
    method: &str,
    outcome: &'static str,
    elapsed: Option<std::time::Duration>,
) {
    note_on_span("outcome", outcome);
    if let Some(elapsed) = elapsed {
        note_on_span("duration_ms", elapsed.as_secs_f64() * 1000.0);
    }
    let hub = &shared.env.hub;
    let mut cache = shared.method_metrics.lock();
    if !cache.contains_key(method) {
        let series = MethodMetrics {
            latency: None,
            outcomes: Vec::new(),
        };
        cache.insert(method.to_owned(), series);
    }
    let Some(series) = cache.get_mut(method) else {
        return;
    };
    if let Some(elapsed) = elapsed {
        series
            .latency
            .get_or_insert_with(|| {
                metrics::histogram!(
                    names::INVOCATION_SECONDS,
                    "tenant" => hub.tenant.clone(),
                    "hub" => hub.hub.clone(),
                    "method" => method.to_owned()
                )
            })
            .record(elapsed.as_secs_f64());
    }
    match series.outcomes.iter().find(|(o, _)| *o == outcome) {
        Some((_, counter)) => counter.increment(1),
        None => {
            let counter = metrics::counter!(
                names::INVOCATIONS,
                "tenant" => hub.tenant.clone(),
                "hub" => hub.hub.clone(),
                "method" => method.to_owned(),
                "outcome" => outcome
            );
            counter.increment(1);
            series.outcomes.push((outcome, counter));
        }
    }
}

/// Counts a plugin failure (and a CPU or memory limit reached); returns its
/// kind, which is also the invocation's outcome.
fn plugin_failed(shared: &Shared, error: &CallError) -> &'static str {
    let hub = &shared.env.hub;
    let kind = error.kind();
    metrics::counter!(
        names::PLUGIN_ERRORS,
        "tenant" => hub.tenant.clone(),
        "hub" => hub.hub.clone(),
        "kind" => kind
    )
    .increment(1);
    let limit = match error {
        CallError::CpuLimit(_) => Some(Limit::InvocationCpu),
        CallError::MemoryLimit(_) => Some(Limit::Memory),
        _ => None,
    };
    if let Some(limit) = limit {
        shared.usage.hit(hub, limit, &error.to_string());
    }
    kind
}

#[cfg(test)]
mod tests;
