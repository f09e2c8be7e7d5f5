//! Serving accepted connections: HTTP/2 (gRPC) and HTTP/1 on one port, each connection one
//! task that also runs the requests that arrive on it.
//!
//! Given tokio's executor, hyper runs every HTTP/2 stream as a task of its own: each request
//! wakes another worker thread to run it, and each reply wakes the connection's thread again to
//! write it. Here a connection's requests run on its own task instead ([`Driver`]): the
//! connection reads what has arrived, the requests it started run at once, and the replies that
//! are ready are written when the connection is polled again in the same round (together, when
//! several are), without waking any other thread. A request that waits (for the disk, a sync, a peer) waits as
//! a future of that task, woken by what it waits for.
//!
//! The requests of one connection share one thread that way. A connection with more work than
//! that thread does (it used all `ROUNDS_PER_POLL` rounds of a poll) runs the requests it
//! starts in its next poll as tasks of their own, which the runtime's other threads take, as
//! hyper does by default: one busy client connection still gets every core.
//!
//! Limits: at most [`Limits::max_concurrent_streams`] requests at once per connection (HTTP/2's
//! own setting), and across every connection of the node the permits of `in_flight`; a request
//! past them is refused at once, before its body is read, with gRPC's `RESOURCE_EXHAUSTED` (an
//! HTTP `503` for a plain HTTP request).
//!
//! Size: about half of this file is its tests (a connection's life: admission, the limits, idle
//! and silent peers), kept beside the code they drive.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};
use tokio_stream::Stream;

use crate::conn::{Conn, ConnInfo};

/// The HTTP/2 settings of every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Streams (requests) open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Largest header block of a request.
    pub max_header_list_bytes: u32,
    /// Streams a client may reset before the server has accepted them. A peer cut off for a
    /// while has requests queued on its connection that timed out meanwhile: when the network
    /// heals they arrive with their resets, more than h2's default of 20 (its guard against
    /// "rapid reset" floods), which would tear the connection down and fail the requests on it.
    pub max_pending_accept_reset_streams: usize,
    /// How often an idle connection is pinged, and how long the answer may take: a client or
    /// peer that vanished without closing gives its connection slot back.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

/// What a node serves on a connection: an axum router (gRPC services and HTTP routes), or any
/// service like it.
pub trait App:
    tower::Service<
        Request<Incoming>,
        Response = Response<axum::body::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<A> App for A where
    A: tower::Service<
            Request<Incoming>,
            Response = Response<axum::body::Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Rounds of "read, run, write" a connection makes in one poll before it lets other tasks run.
/// A connection that needs them all is busy: the streams it starts in its next poll run as
/// tasks of their own, on whichever threads are free.
const ROUNDS_PER_POLL: usize = 16;

/// Serves the connections of `incoming` with `app` until `shutdown` completes; then stops
/// accepting, tells every connection to finish (HTTP/2 `GOAWAY`: requests in flight complete,
/// new ones go elsewhere) and returns once all are closed.
pub async fn serve<A>(
    incoming: impl Stream<Item = io::Result<Conn>>,
    app: A,
    limits: Limits,
    in_flight: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
) where
    A: App,
{
    let (stop, stopping) = watch::channel(false);
    {
        let mut incoming = std::pin::pin!(incoming);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let conn = tokio::select! {
                () = &mut shutdown => break,
                c = incoming.next() => match c {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "connection not accepted");
                        continue;
                    }
                    None => break,
                },
            };
            let admit = Admit {
                app: app.clone(),
                in_flight: Arc::clone(&in_flight),
                info: conn.info().clone(),
            };
            tokio::spawn(serve_connection(conn, admit, limits, stopping.clone()));
        }
        // `incoming` is dropped here: the listener stops taking connections at once.
    }
    let _ = stop.send(true);
    drop(stopping);
    stop.closed().await;
}

/// One connection, until it closes (or, once `stopping` turns true, until its requests in
/// flight are answered).
async fn serve_connection<A>(
    conn: Conn,
    admit: Admit<A>,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) where
    A: App,
{
    let streams = OnConnection::default();
    let mut builder = hyper_util::server::conn::auto::Builder::new(streams.clone());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_bytes)
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    // hyper enforces its HTTP/1 header read timeout (30 s) only with a timer.
    builder.http1().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(conn), admit);
    let mut connection = std::pin::pin!(connection);
    let mut driver = Driver::new(streams);
    // Held until the connection is closed: the server waits for every one of them.
    let open = stopping.clone();
    let mut stop = std::pin::pin!(async move {
        // Also when the server is gone.
        let _ = stopping.wait_for(|s| *s).await;
    });
    let mut told_to_stop = false;
    let result = std::future::poll_fn(|cx| {
        if !told_to_stop && stop.as_mut().poll(cx).is_ready() {
            connection.as_mut().graceful_shutdown();
            told_to_stop = true;
        }
        driver.poll(cx, connection.as_mut())
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection closed with an error");
    }
    drop(open);
}

/// The node's service for one connection: refuses requests past the node's budget, tells each
/// admitted request what its connection is ([`ConnInfo`] in its extensions), and holds its
/// permit until its reply is made.
#[derive(Clone)]
struct Admit<A> {
    app: A,
    in_flight: Arc<Semaphore>,
    info: ConnInfo,
}

type Reply = Pin<Box<dyn Future<Output = Result<Response<axum::body::Body>, Infallible>> + Send>>;

impl<A> hyper::service::Service<Request<Incoming>> for Admit<A>
where
    A: App,
{
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = Reply;

    fn call(&self, mut request: Request<Incoming>) -> Reply {
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            return Box::pin(std::future::ready(Ok(overloaded(&request))));
        };
        request.extensions_mut().insert(self.info.clone());
        // The app (an axum router) is always ready: no poll_ready needed.
        let reply = self.app.clone().call(request);
        Box::pin(async move {
            let reply = reply.await;
            drop(permit);
            reply
        })
    }
}

/// The refusal of a request past the node's budget: gRPC's `RESOURCE_EXHAUSTED` (a trailers-only
/// reply) for a gRPC request, `503 Service Unavailable` for any other.
fn overloaded<B>(request: &Request<B>) -> Response<axum::body::Body> {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
    const MESSAGE: &str = "server busy: too many requests in flight on this node";
    if grpc {
        tonic::Status::resource_exhausted(MESSAGE).into_http()
    } else {
        let mut reply = Response::new(axum::body::Body::from(MESSAGE));
        *reply.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        reply
    }
}

/// hyper's executor for a connection's streams: keeps them for the connection's [`Driver`]
/// to run on the connection's own task, instead of spawning each as a task.
#[derive(Clone, Default)]
pub struct OnConnection(Arc<Spawned>);

#[derive(Default)]
struct Spawned {
    queue: Mutex<Vec<Pin<Box<dyn Future<Output = ()> + Send>>>>,
    /// The connection's task, when a stream is spawned while the driver is not polling (hyper
    /// spawns streams while the connection is polled, so in practice never).
    waker: AtomicWaker,
}

impl<F> hyper::rt::Executor<F> for OnConnection
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        // A request that panics fails alone (its stream is reset when dropped), as it would in
        // a task of its own, instead of unwinding through the connection and every request on it.
        let stream = std::panic::AssertUnwindSafe(stream)
            .catch_unwind()
            .map(|outcome| {
                if outcome.is_err() {
                    tracing::error!("a request panicked: its stream is reset");
                }
            });
        self.0.queue.lock().push(Box::pin(stream));
        self.0.waker.wake();
    }
}

/// Runs a connection and the streams it starts on one task.
///
/// Each poll makes rounds: poll the connection (it reads the frames that arrived, starts
/// streams, writes what is ready), run the streams it started and those woken since, and poll
/// the connection again when a stream gave it something to write. The connection is polled
/// with a waker of its own (`ConnWaker`) so that a stream that replies during the rounds does
/// not reschedule the task: the next round writes the reply. Wake-ups from elsewhere (the
/// socket, a timer, a stream's reply while the task is idle) wake the task as usual.
pub struct Driver {
    spawned: OnConnection,
    running: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send>>>,
    conn_waker: Arc<ConnWaker>,
    /// The last poll used all its rounds: the connection has more work than one thread does,
    /// so the streams it starts now go to the runtime as tasks of their own (other threads
    /// take them), as hyper would run them.
    busy: bool,
}

/// The connection's waker: notes a wake-up, and passes it on to the task only when the task is
/// not in the middle of its rounds (which look at the note).
struct ConnWaker {
    woken: AtomicBool,
    polling: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl Driver {
    pub fn new(spawned: OnConnection) -> Self {
        Driver {
            spawned,
            running: FuturesUnordered::new(),
            conn_waker: Arc::new(ConnWaker {
                woken: AtomicBool::new(false),
                polling: AtomicBool::new(false),
                task: AtomicWaker::new(),
            }),
            busy: false,
        }
    }

    /// Polls `connection` and the streams it started; ready with the connection's result once
    /// it is closed (streams still running then are dropped: they have no one to answer).
    pub fn poll<F: Future>(
        &mut self,
        cx: &mut Context<'_>,
        mut connection: Pin<&mut F>,
    ) -> Poll<F::Output> {
        // Streams spawned during the rounds are picked up by the rounds themselves.
        let _ = self.spawned.0.waker.take();
        self.conn_waker.task.register(cx.waker());
        self.conn_waker.polling.store(true, Ordering::SeqCst);
        let conn_waker = Waker::from(Arc::clone(&self.conn_waker));
        let mut conn_cx = Context::from_waker(&conn_waker);
        let mut rounds = 0;
        let spill = self.busy;
        let outcome = loop {
            self.conn_waker.woken.store(false, Ordering::SeqCst);
            if let Poll::Ready(done) = connection.as_mut().poll(&mut conn_cx) {
                break Poll::Ready(done);
            }
            let started = std::mem::take(&mut *self.spawned.0.queue.lock());
            if spill {
                for stream in started {
                    tokio::spawn(stream);
                }
            } else {
                self.running.extend(started);
            }
            while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {}
            rounds += 1;
            let again = self.conn_waker.woken.load(Ordering::SeqCst)
                || !self.spawned.0.queue.lock().is_empty();
            if !again {
                break Poll::Pending;
            }
            if rounds == ROUNDS_PER_POLL {
                // Busy: let other tasks run, and come back.
                cx.waker().wake_by_ref();
                break Poll::Pending;
            }
        };
        self.busy = rounds == ROUNDS_PER_POLL;
        self.conn_waker.polling.store(false, Ordering::SeqCst);
        if outcome.is_pending() {
            self.spawned.0.waker.register(cx.waker());
            // A wake-up that came between the last round and now was only noted.
            if self.conn_waker.woken.load(Ordering::SeqCst)
                || !self.spawned.0.queue.lock().is_empty()
            {
                cx.waker().wake_by_ref();
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper::client::conn::http2::SendRequest;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Notify;

    use super::*;
    use crate::conn::Accept;

    const LIMITS: Limits = Limits {
        max_concurrent_streams: 256,
        max_header_list_bytes: 64 * 1024,
        max_pending_accept_reset_streams: 256,
        keepalive_interval: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(20),
    };
    const DEADLINE: Duration = Duration::from_secs(10);

    /// A test app: `/fast` answers at once; `/slow` answers once `release` is notified (and
    /// notes it has started in `started`); `/panic` panics; `/peer` says whether the request
    /// carries its connection's info.
    fn app(release: Arc<Notify>, started: Arc<Notify>) -> axum::Router {
        axum::Router::new()
            .route("/fast", get(|| async { "fast" }))
            .route(
                "/slow",
                get(move || {
                    let release = Arc::clone(&release);
                    let started = Arc::clone(&started);
                    async move {
                        started.notify_one();
                        release.notified().await;
                        "slow"
                    }
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("a handler that panics");
                    }
                    "never"
                }),
            )
            .route(
                "/info",
                get(|request: Request<axum::body::Body>| async move {
                    match request.extensions().get::<ConnInfo>() {
                        Some(info) if info.remote.is_some() && !info.tls => "plain",
                        _ => "none",
                    }
                }),
            )
    }

    struct Server {
        address: std::net::SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        served: tokio::task::JoinHandle<()>,
        /// Closes every connection when dropped.
        _close: watch::Sender<bool>,
    }

    async fn start(app: axum::Router, in_flight: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (accept, close) = Accept::new(None, 64, Arc::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(
            crate::conn::incoming(listener, accept),
            app,
            LIMITS,
            Arc::new(Semaphore::new(in_flight)),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            address,
            stop: Some(stop),
            served,
            _close: close,
        }
    }

    async fn h2(address: std::net::SocketAddr) -> SendRequest<Empty<Bytes>> {
        let tcp = TcpStream::connect(address).await.unwrap();
        let (send, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        send
    }

    /// GETs `path`: the status and body, or the error of a reset stream.
    async fn fetch(
        send: &SendRequest<Empty<Bytes>>,
        path: &str,
        content_type: Option<&str>,
    ) -> Fetched {
        let mut request = Request::get(format!("http://test{path}"));
        if let Some(t) = content_type {
            request = request.header(http::header::CONTENT_TYPE, t);
        }
        let reply = send
            .clone()
            .send_request(request.body(Empty::new()).unwrap())
            .await?;
        let status = reply.status().as_u16();
        let headers = reply.headers().clone();
        let body = reply.into_body().collect().await?.to_bytes();
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    }

    type Fetched = Result<(u16, http::HeaderMap, String), hyper::Error>;

    /// A server with a budget of `in_flight` requests, a connection to it, and a `/slow`
    /// request started on it that answers once the returned `Notify` is notified.
    async fn slow_request_in_flight(
        in_flight: usize,
    ) -> (
        Server,
        SendRequest<Empty<Bytes>>,
        tokio::task::JoinHandle<Fetched>,
        Arc<Notify>,
    ) {
        let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let server = start(app(Arc::clone(&release), Arc::clone(&started)), in_flight).await;
        let send = h2(server.address).await;
        let slow = tokio::spawn({
            let send = send.clone();
            async move { fetch(&send, "/slow", None).await }
        });
        within("the slow request to start", started.notified()).await;
        (server, send, slow, release)
    }

    async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
        tokio::time::timeout(DEADLINE, f)
            .await
            .unwrap_or_else(|_| panic!("{what} took longer than {DEADLINE:?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_requests_on_one_connection_are_all_answered() {
        let server = start(app(Arc::default(), Arc::default()), 1024).await;
        let send = h2(server.address).await;
        let mut all = Vec::new();
        for _ in 0..500 {
            let send = send.clone();
            all.push(tokio::spawn(
                async move { fetch(&send, "/fast", None).await },
            ));
        }
        for one in all {
            let (status, _, body) = within("a request", one).await.unwrap().unwrap();
            assert_eq!((status, body.as_str()), (200, "fast"));
        }
        let (_, _, body) = fetch(&send, "/info", None).await.unwrap();
        assert_eq!(body, "plain", "a request knows its connection");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_request_holds_up_no_other_on_its_connection() {
        let (_server, send, slow, release) = slow_request_in_flight(1024).await;
        for _ in 0..20 {
            let (_, _, body) = within("a fast request", fetch(&send, "/fast", None))
                .await
                .unwrap();
            assert_eq!(body, "fast");
        }
        assert!(!slow.is_finished());
        release.notify_one();
        let (_, _, body) = within("the slow request", slow).await.unwrap().unwrap();
        assert_eq!(body, "slow");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_request_fails_alone() {
        let server = start(app(Arc::default(), Arc::default()), 1024).await;
        let send = h2(server.address).await;
        assert!(
            within("the panicking request", fetch(&send, "/panic", None))
                .await
                .is_err(),
            "its stream is reset"
        );
        let (_, _, body) = within("the next request", fetch(&send, "/fast", None))
            .await
            .unwrap();
        assert_eq!(body, "fast", "the connection still serves");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_past_the_budget_are_refused_at_once() {
        let (_server, send, slow, release) = slow_request_in_flight(1).await;
        // gRPC: RESOURCE_EXHAUSTED as a trailers-only reply.
        let (status, headers, _) = within(
            "a refused gRPC request",
            fetch(&send, "/fast", Some("application/grpc")),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(headers["grpc-status"], "8");
        let message = headers["grpc-message"].to_str().unwrap();
        assert!(message.contains("server%20busy"), "{message}");
        // Plain HTTP: 503.
        let (status, _, body) = within("a refused HTTP request", fetch(&send, "/fast", None))
            .await
            .unwrap();
        assert_eq!(status, 503);
        assert!(body.contains("server busy"), "{body}");
        // The permit comes back with the reply.
        release.notify_one();
        within("the slow request", slow).await.unwrap().unwrap();
        let (status, _, _) = within("a request after", fetch(&send, "/fast", None))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_lets_requests_in_flight_finish_then_returns() {
        let (mut server, _send, slow, release) = slow_request_in_flight(1024).await;
        server.stop.take().unwrap().send(()).unwrap();
        // The listener is closed at once: new connections are refused.
        let refused = Instant::now() + DEADLINE;
        while TcpStream::connect(server.address).await.is_ok() {
            assert!(Instant::now() < refused, "still accepting after the stop");
            tokio::task::yield_now().await;
        }
        assert!(!server.served.is_finished(), "a request is still in flight");
        release.notify_one();
        let (_, _, body) = within("the slow request", slow).await.unwrap().unwrap();
        assert_eq!(body, "slow");
        within("serve to return", &mut server.served).await.unwrap();
    }

    /// A connection for [`Driver`] alone: each poll starts `per_poll` streams (each notes the
    /// task it runs on) and wakes itself (there is more to read at once); it closes after
    /// `polls` polls.
    struct FakeConnection {
        exec: OnConnection,
        per_poll: usize,
        polls: usize,
        ran_on: Arc<Mutex<Vec<Option<tokio::task::Id>>>>,
    }

    impl Future for FakeConnection {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.polls == 0 {
                return Poll::Ready(());
            }
            self.polls -= 1;
            for _ in 0..self.per_poll {
                let ran_on = Arc::clone(&self.ran_on);
                hyper::rt::Executor::execute(&self.exec, async move {
                    ran_on.lock().push(tokio::task::try_id());
                });
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// Drives a fake connection to its end; the driver's task id, and where its streams ran.
    async fn drive(
        per_poll: usize,
        polls: usize,
    ) -> (tokio::task::Id, Vec<Option<tokio::task::Id>>) {
        let ran_on = Arc::new(Mutex::new(Vec::new()));
        let exec = OnConnection::default();
        let mut fake = Box::pin(FakeConnection {
            exec: exec.clone(),
            per_poll,
            polls,
            ran_on: Arc::clone(&ran_on),
        });
        let driver_task = tokio::spawn(async move {
            let mut driver = Driver::new(exec);
            std::future::poll_fn(|cx| driver.poll(cx, fake.as_mut())).await;
            tokio::task::id()
        });
        let driver_id = within("the driver", driver_task).await.unwrap();
        // Spawned streams may still be running: wait for all of them.
        within("every stream", async {
            while ran_on.lock().len() < per_poll * polls {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let ran_on = ran_on.lock().clone();
        (driver_id, ran_on)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_with_fewer_rounds_than_a_poll_runs_its_streams_on_its_own_task() {
        let (driver, ran_on) = drive(5, 2).await;
        assert_eq!(ran_on, vec![Some(driver); 10]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_connection_hands_its_next_streams_to_other_tasks() {
        let polls = ROUNDS_PER_POLL * 3;
        let (driver, ran_on) = drive(1, polls).await;
        // The first poll's rounds run inline; it used them all, so the next poll's streams
        // are tasks of their own, and so on while the connection stays busy.
        assert_eq!(
            ran_on[..ROUNDS_PER_POLL],
            vec![Some(driver); ROUNDS_PER_POLL]
        );
        let inline = ran_on.iter().filter(|t| **t == Some(driver)).count();
        let elsewhere = ran_on
            .iter()
            .filter(|t| t.is_some() && **t != Some(driver))
            .count();
        assert_eq!(inline + elsewhere, polls);
        assert!(
            elsewhere >= ROUNDS_PER_POLL,
            "{elsewhere} of {polls} spilled"
        );
    }
}
