//! The driver loop: one task owns the [`Node`], feeds it every socket event, timer expiry
//! and application call, and performs its outputs in order. It makes no protocol
//! decision: what to send, dial or close is the node's.
//!
//! Tasks: the node task; an accept loop; per connection a reader and a writer; one task
//! per dial in progress. All of them hold a guard so that shutdown can wait for every
//! one to end.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use futures_util::future::{self, Either};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use mesh_proto::{ConnId, Event, Instant, Member, Node, Output};
use tracing::{Instrument, debug, info, info_span, trace, warn};

use crate::api::{EventItem, Snapshot};
use crate::runtime::Runtime;

thread_local! {
    /// Set while this thread runs a node's code, and so its gossipers' callbacks.
    static IN_NODE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller is running inside a node call (a gossiper callback), where waiting
/// for any node would wait for ever on the one that is busy running it.
pub(crate) fn in_callback() -> bool {
    IN_NODE.with(Cell::get)
}

/// Marks the thread as running node code until dropped. Nothing in its scope awaits, so
/// no other task runs on the thread meanwhile.
struct NodeScope(bool);

impl NodeScope {
    fn enter() -> Self {
        NodeScope(IN_NODE.with(|f| f.replace(true)))
    }
}

impl Drop for NodeScope {
    fn drop(&mut self) {
        IN_NODE.with(|f| f.set(self.0));
    }
}

/// One `events()` subscriber: a bounded queue and what it missed while the queue was full.
pub(crate) struct Subscriber {
    pub tx: async_channel::Sender<EventItem>,
    /// Events dropped since the queue filled; the receiver reports them as `Lagged` once
    /// it has read everything before them, and nothing is queued meanwhile.
    pub missed: Arc<AtomicU64>,
}

/// One membership watcher: the latest members and a wake-up (capacity one: a pending
/// wake-up already covers any later change).
pub(crate) struct Watcher {
    pub current: Arc<Mutex<Vec<Member>>>,
    pub changed: async_channel::Sender<()>,
}

/// Read buffer of a quiet connection: an idle mesh sends frames of a few hundred bytes,
/// and every connection keeps its buffer for as long as it is open.
const READ_BUFFER_MIN: usize = 4 * 1024;
/// Read buffer of a busy connection, reached by doubling while reads fill the buffer.
const READ_BUFFER_MAX: usize = 64 * 1024;
/// Reads in a row that fit in [`READ_BUFFER_MIN`] before a grown buffer is given back.
const READ_SHRINK_AFTER: u32 = 16;
/// Bytes the writer gathers from its queue into one write.
const WRITE_BATCH: usize = 256 * 1024;
/// A read at least this large hands its buffer to the node task instead of a copy.
const HAND_OVER_MIN: usize = 16 * 1024;
/// A queued transmit at least this large is written as it is instead of copied into a
/// batch: a copy of it costs more than the system call it saves.
const WRITE_DIRECT_MIN: usize = 16 * 1024;
/// Inputs handled back to back before the outputs are performed.
const INPUT_BATCH: usize = 256;
/// Inputs waiting for the node task; readers wait when it is full.
const INPUT_QUEUE: usize = 1024;
/// Events buffered per subscriber before they are dropped for it.
pub(crate) const EVENT_QUEUE: usize = 1024;

/// A call into the node from the application, run on the node task.
pub(crate) type Call = Box<dyn FnOnce(&mut Node, Instant) + Send>;

pub(crate) enum Input<S> {
    Accepted(S, SocketAddr),
    Dialed(ConnId, std::io::Result<S>),
    Data(ConnId, Bytes),
    Written(ConnId, usize),
    Closed(ConnId, String),
    Call(Call),
    Subscribe(Subscriber),
    WatchMembers(Watcher),
    Shutdown(async_channel::Sender<()>),
}

struct ConnHandle {
    writer: async_channel::Sender<Bytes>,
    /// Dropping it stops the reader.
    _stop_reader: async_channel::Sender<()>,
}

/// Keeps the shutdown wait open while a task runs.
#[derive(Clone)]
pub(crate) struct TaskGuard(#[allow(dead_code)] async_channel::Sender<()>);

pub(crate) struct Driver<R: Runtime> {
    pub rt: R,
    pub node: Node,
    pub origin: StdInstant,
    pub inputs: async_channel::Receiver<Input<R::Stream>>,
    pub input_tx: async_channel::Sender<Input<R::Stream>>,
    pub stop: async_channel::Receiver<()>,
    pub stop_tx: Option<async_channel::Sender<()>>,
    pub guard: TaskGuard,
    /// Closed when the last application handle is dropped: the mesh shuts down.
    pub alive: async_channel::Receiver<()>,
    conns: BTreeMap<ConnId, ConnHandle>,
    subscribers: Vec<Subscriber>,
    watchers: Vec<Watcher>,
    /// The members last sent to the watchers.
    members: Vec<Member>,
    /// Whether membership may have changed since the watchers were last updated.
    members_dirty: bool,
}

/// Channels a mesh's tasks share.
pub(crate) struct Wiring<S> {
    pub input_tx: async_channel::Sender<Input<S>>,
    pub inputs: async_channel::Receiver<Input<S>>,
    pub stop_tx: async_channel::Sender<()>,
    pub stop: async_channel::Receiver<()>,
    pub guard: TaskGuard,
    pub all_done: async_channel::Receiver<()>,
    pub alive_tx: async_channel::Sender<()>,
    pub alive: async_channel::Receiver<()>,
}

impl<S> Wiring<S> {
    pub(crate) fn new() -> Self {
        let (input_tx, inputs) = async_channel::bounded(INPUT_QUEUE);
        let (stop_tx, stop) = async_channel::bounded(1);
        let (guard, all_done) = async_channel::bounded(1);
        let (alive_tx, alive) = async_channel::bounded(1);
        Wiring { input_tx, inputs, stop_tx, stop, guard: TaskGuard(guard), all_done, alive_tx, alive }
    }
}

/// Waits for `fut`, or returns `None` when `stop` is closed.
async fn or_stop<T>(stop: &async_channel::Receiver<()>, fut: impl Future<Output = T>) -> Option<T> {
    let fut = std::pin::pin!(fut);
    let stopped = std::pin::pin!(stop.recv());
    match future::select(fut, stopped).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}

// Each task takes its guard as the first parameter: parameters are dropped in reverse
// order, so the guard goes last, after the socket. Shutdown waits for the guards, and a
// listener dropped after its guard could still accept a connection once `shutdown`
// had returned.

/// The accept loop: hands every accepted socket to the node task. Errors (such as
/// running out of file descriptors) are logged and retried after a pause, never in a
/// hot loop as Go's.
pub(crate) async fn accept_loop<R: Runtime>(
    _guard: TaskGuard,
    listener: R::Listener,
    tx: async_channel::Sender<Input<R::Stream>>,
    stop: async_channel::Receiver<()>,
    rt: R,
) {
    loop {
        match or_stop(&stop, R::accept(&listener)).await {
            None => break,
            Some(Ok((s, addr))) => {
                if tx.send(Input::Accepted(s, addr)).await.is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                warn!(error = %e, "accept failed");
                let pause = StdInstant::now() + Duration::from_millis(50);
                if or_stop(&stop, rt.sleep_until(pause)).await.is_none() {
                    break;
                }
            }
        }
    }
    debug!("listener closed");
}

/// A connection's read buffer, sized to its traffic: small while it is quiet, doubled up
/// to [`READ_BUFFER_MAX`] whenever a read fills it, and back to [`READ_BUFFER_MIN`] after
/// [`READ_SHRINK_AFTER`] reads in a row that the small one would have held. A busy
/// connection thus reads in large chunks, and a cluster of idle ones holds little.
struct ReadBuffer {
    buf: Vec<u8>,
    small_reads: u32,
}

impl ReadBuffer {
    fn new() -> Self {
        ReadBuffer { buf: vec![0; READ_BUFFER_MIN], small_reads: 0 }
    }

    /// The `n` bytes just read, and the buffer adapted for the next read. A large read
    /// hands its buffer over and gets a fresh one: copying out 64 KiB costs more than
    /// zeroing a new buffer, while a small read is copied so its buffer stays.
    fn take(&mut self, n: usize) -> Bytes {
        let data = if n >= HAND_OVER_MIN {
            let len = self.buf.len();
            let mut full = std::mem::replace(&mut self.buf, vec![0; len]);
            full.truncate(n);
            Bytes::from(full)
        } else {
            Bytes::copy_from_slice(&self.buf[..n])
        };
        self.after_read(n);
        data
    }

    /// Adapts the size to a read of `n` bytes, once its bytes have been taken.
    fn after_read(&mut self, n: usize) {
        let len = self.buf.len();
        if n == len && len < READ_BUFFER_MAX {
            // A fresh buffer, not a resize: the old contents need no copy.
            self.buf = vec![0; (len * 2).min(READ_BUFFER_MAX)];
            self.small_reads = 0;
        } else if len > READ_BUFFER_MIN {
            self.small_reads = if n <= READ_BUFFER_MIN { self.small_reads + 1 } else { 0 };
            if self.small_reads >= READ_SHRINK_AFTER {
                self.buf = vec![0; READ_BUFFER_MIN];
                self.small_reads = 0;
            }
        }
    }
}

async fn read_loop<S: futures_io::AsyncRead + Unpin>(
    _guard: TaskGuard,
    mut rd: S,
    conn: ConnId,
    tx: async_channel::Sender<Input<impl Send>>,
    stop: async_channel::Receiver<()>,
) {
    let mut buf = ReadBuffer::new();
    loop {
        let input = match or_stop(&stop, rd.read(&mut buf.buf)).await {
            None => return,
            Some(Ok(0)) => Input::Closed(conn, "connection closed by the remote".into()),
            Some(Ok(n)) => Input::Data(conn, buf.take(n)),
            Some(Err(e)) => Input::Closed(conn, e.to_string()),
        };
        let last = matches!(input, Input::Closed(..));
        // Waiting here when the node task is behind is the back-pressure on readers.
        if tx.send(input).await.is_err() || last {
            return;
        }
    }
}

/// Writes `parts` in order: runs of small ones copied into one buffer per write, large
/// ones written directly.
async fn write_parts<S: futures_io::AsyncWrite + Unpin>(
    wr: &mut S,
    parts: Vec<Bytes>,
) -> std::io::Result<()> {
    if let [one] = &parts[..] {
        return wr.write_all(one).await;
    }
    let small = parts.iter().map(Bytes::len).filter(|&n| n < WRITE_DIRECT_MIN).sum();
    let mut batch: Vec<u8> = Vec::with_capacity(small);
    for part in parts {
        if part.len() >= WRITE_DIRECT_MIN {
            if !batch.is_empty() {
                wr.write_all(&batch).await?;
                batch.clear();
            }
            wr.write_all(&part).await?;
        } else {
            batch.extend_from_slice(&part);
        }
    }
    if !batch.is_empty() {
        wr.write_all(&batch).await?;
    }
    Ok(())
}

async fn write_loop<S: futures_io::AsyncWrite + Unpin>(
    _guard: TaskGuard,
    mut wr: S,
    conn: ConnId,
    rx: async_channel::Receiver<Bytes>,
    tx: async_channel::Sender<Input<impl Send>>,
) {
    while let Ok(first) = rx.recv().await {
        // Everything queued (up to WRITE_BATCH) goes out and is reported once. Small
        // transmits are gathered into one write, large ones written as they are. The
        // batch is gathered afresh each time: a buffer kept for the connection's life
        // would stay resident on every connection that was busy once.
        let mut parts = vec![first];
        let mut total = parts[0].len();
        while total < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => {
                    total += more.len();
                    parts.push(more);
                }
                Err(_) => break,
            }
        }
        if let Err(e) = write_parts(&mut wr, parts).await {
            let _ = tx.send(Input::Closed(conn, e.to_string())).await;
            return;
        }
        if tx.send(Input::Written(conn, total)).await.is_err() {
            break;
        }
    }
    let _ = wr.close().await;
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(rt: R, node: Node, origin: StdInstant, wiring: &Wiring<R::Stream>) -> Self {
        Driver {
            rt,
            node,
            origin,
            inputs: wiring.inputs.clone(),
            input_tx: wiring.input_tx.clone(),
            stop: wiring.stop.clone(),
            stop_tx: Some(wiring.stop_tx.clone()),
            guard: wiring.guard.clone(),
            alive: wiring.alive.clone(),
            conns: BTreeMap::new(),
            subscribers: Vec::new(),
            watchers: Vec::new(),
            members: Vec::new(),
            members_dirty: false,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn std_instant(&self, t: Instant) -> StdInstant {
        self.origin + t.since_origin()
    }

    /// Runs until shutdown completes.
    pub(crate) async fn run(mut self) {
        let mut shutdown_reply = None;
        let mut shutting_down = false;
        // Whatever the node produced before the loop started (the first dials).
        {
            let _scope = NodeScope::enter();
            self.perform_outputs();
        }
        while !shutting_down {
            let wake = self.node.poll_timeout().map(|t| self.std_instant(t));
            let next = {
                let recv = std::pin::pin!(self.inputs.recv());
                let timer = std::pin::pin!(async {
                    match wake {
                        Some(t) => self.rt.sleep_until(t).await,
                        None => future::pending::<()>().await,
                    }
                });
                // Nobody sends on it: it completes when the last handle is dropped.
                let orphaned = std::pin::pin!(self.alive.recv());
                match future::select(recv, future::select(timer, orphaned)).await {
                    Either::Left((Ok(input), _)) => Some(input),
                    Either::Left((Err(_), _)) | Either::Right((Either::Left(_), _)) => None,
                    Either::Right((Either::Right(_), _)) => {
                        info!("the last handle was dropped: shutting down");
                        Some(Input::Shutdown(async_channel::bounded(1).0))
                    }
                }
            };
            let _scope = NodeScope::enter();
            let now = self.now();
            let mut next = next;
            let mut handled = 0;
            loop {
                match next {
                    None => {
                        self.node.handle_timeout(now);
                        // Routes are recomputed on timers: members may have changed.
                        self.members_dirty = true;
                    }
                    Some(Input::Shutdown(reply)) => {
                        info!("shutting down");
                        self.node.shutdown(now);
                        shutdown_reply = Some(reply);
                        shutting_down = true;
                        break;
                    }
                    Some(input) => self.handle(input, now),
                }
                // Take whatever else is ready, so its frames share writes.
                handled += 1;
                match self.inputs.try_recv() {
                    Ok(input) if handled < INPUT_BATCH => next = Some(input),
                    Ok(input) => {
                        self.perform_outputs();
                        next = Some(input);
                        handled = 0;
                    }
                    Err(_) => break,
                }
            }
            self.perform_outputs();
            self.update_watchers();
        }
        // Stop the listener and dials, close every socket, and let the tasks end.
        self.stop_tx.take();
        self.conns.clear();
        self.subscribers.clear();
        self.watchers.clear();
        // Application handles keep the input channel alive: close it so that tasks still
        // sending fail and drop what they hold, and drop the sockets of accepts and dials
        // that completed while we were stopping instead of leaving them in the queue.
        self.inputs.close();
        while self.inputs.try_recv().is_ok() {}
        drop(self);
        if let Some(reply) = shutdown_reply {
            let _ = reply.try_send(());
        }
    }

    fn handle(&mut self, input: Input<R::Stream>, now: Instant) {
        match input {
            Input::Accepted(stream, addr) => {
                let conn = self.node.handle_accepted(addr, now);
                debug!(%conn, %addr, "accepted");
                if let Some(local) = R::stream_local_addr(&stream) {
                    self.node.handle_local_addr(conn, local);
                }
                self.start_io(conn, stream);
            }
            Input::Dialed(conn, Ok(stream)) => {
                debug!(%conn, "dialled");
                if let Some(local) = R::stream_local_addr(&stream) {
                    self.node.handle_local_addr(conn, local);
                }
                self.start_io(conn, stream);
                self.node.handle_dialed(conn, now);
            }
            Input::Dialed(conn, Err(e)) => {
                debug!(%conn, error = %e, "dial failed");
                self.node.handle_dial_failed(conn, e, now);
            }
            Input::Data(conn, data) => {
                trace!(%conn, len = data.len(), "read");
                self.node.handle_data(conn, &data, now);
            }
            Input::Written(conn, n) => self.node.handle_written(conn, n, now),
            Input::Closed(conn, why) => {
                if self.conns.remove(&conn).is_some() {
                    self.node.handle_closed(conn, why, now);
                }
            }
            Input::Call(f) => f(&mut self.node, now),
            Input::Subscribe(sub) => {
                // Empty and new: the snapshot fits.
                let status = self.node.status();
                let snapshot = Snapshot { members: self.node.members(), connections: status.connections };
                let _ = sub.tx.try_send(EventItem::Snapshot(snapshot));
                self.subscribers.push(sub);
            }
            Input::WatchMembers(w) => {
                let members = self.node.members();
                *w.current.lock().unwrap_or_else(|e| e.into_inner()) = members.clone();
                let _ = w.changed.try_send(());
                self.members = members;
                self.watchers.push(w);
            }
            Input::Shutdown(_) => {}
        }
    }

    fn start_io(&mut self, conn: ConnId, stream: R::Stream) {
        let (rd, wr) = stream.split();
        let (writer, rx) = async_channel::unbounded();
        let (stop_reader, stop) = async_channel::bounded(1);
        let span = info_span!("conn", %conn);
        let tx = self.input_tx.clone();
        self.rt.spawn(read_loop(self.guard.clone(), rd, conn, tx.clone(), stop).instrument(span.clone()));
        self.rt.spawn(write_loop(self.guard.clone(), wr, conn, rx, tx).instrument(span));
        self.conns.insert(conn, ConnHandle { writer, _stop_reader: stop_reader });
    }

    fn perform_outputs(&mut self) {
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::Transmit { conn, data } => {
                    if let Some(c) = self.conns.get(&conn) {
                        // The node bounds what it hands over, so the queue is bounded too.
                        let _ = c.writer.try_send(data);
                    }
                }
                Output::Dial { conn, addr } => {
                    debug!(%conn, %addr, "dialling");
                    let (rt, tx, stop, guard) =
                        (self.rt.clone(), self.input_tx.clone(), self.stop.clone(), self.guard.clone());
                    // No timer here: the node gives the dial up at its connect timeout
                    // and answers a connection that arrives later with a close.
                    self.rt.spawn(async move {
                        let _guard = guard;
                        if let Some(result) = or_stop(&stop, rt.connect(addr)).await {
                            let _ = tx.send(Input::Dialed(conn, result)).await;
                        }
                    });
                }
                Output::Close { conn } => {
                    debug!(%conn, "closing");
                    // Dropping the handle stops the reader; the writer flushes what it
                    // was given, then closes the socket.
                    self.conns.remove(&conn);
                }
                Output::Event(event) => {
                    log_event(&event);
                    self.members_dirty = true;
                    self.subscribers.retain(|s| {
                        if s.tx.is_closed() {
                            return false;
                        }
                        // Once one was missed, the rest wait until the receiver has read
                        // up to the gap, so that `Lagged` stands where the gap is.
                        if s.missed.load(Ordering::Acquire) > 0 || s.tx.is_full() {
                            s.missed.fetch_add(1, Ordering::AcqRel);
                            return true;
                        }
                        match s.tx.try_send(EventItem::Event(event.clone())) {
                            Ok(()) => true,
                            Err(async_channel::TrySendError::Full(_)) => {
                                s.missed.fetch_add(1, Ordering::AcqRel);
                                true
                            }
                            Err(async_channel::TrySendError::Closed(_)) => false,
                        }
                    });
                }
            }
        }
    }

    /// Tells the membership watchers if the members changed.
    fn update_watchers(&mut self) {
        if !std::mem::take(&mut self.members_dirty) || self.watchers.is_empty() {
            return;
        }
        let members = self.node.members();
        if members == self.members {
            return;
        }
        self.watchers.retain(|w| {
            *w.current.lock().unwrap_or_else(|e| e.into_inner()) = members.clone();
            !matches!(w.changed.try_send(()), Err(async_channel::TrySendError::Closed(_)))
        });
        self.members = members;
    }
}

fn log_event(e: &Event) {
    match e {
        Event::ConnectionEstablished { conn, peer, addr, outbound, .. } => {
            info!(%conn, %peer, %addr, outbound, "connection established")
        }
        Event::ConnectionClosed { conn, peer, addr, reason, .. } => match peer {
            Some(p) => info!(%conn, peer = %p, %addr, %reason, "connection closed"),
            None => info!(%conn, %addr, %reason, "connection failed"),
        },
        Event::PeerAdded(p) => debug!(peer = %p, "peer added"),
        Event::PeerRemoved(p) => debug!(peer = %p, "peer removed"),
        other => debug!(event = %other, "event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Hands out its chunks, each over as many reads as the caller's buffer needs.
    struct Chunks(VecDeque<Vec<u8>>);

    impl futures_io::AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            let Some(chunk) = self.0.front_mut() else { return Poll::Ready(Ok(0)) };
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.0.pop_front();
            }
            Poll::Ready(Ok(n))
        }
    }

    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn read_buffer_grows_while_reads_fill_it_and_shrinks_when_quiet() {
        let mut b = ReadBuffer::new();
        assert_eq!(b.buf.len(), READ_BUFFER_MIN);
        b.after_read(100);
        assert_eq!(b.buf.len(), READ_BUFFER_MIN);
        let mut len = READ_BUFFER_MIN;
        while len < READ_BUFFER_MAX {
            b.after_read(len);
            len = (len * 2).min(READ_BUFFER_MAX);
            assert_eq!(b.buf.len(), len);
        }
        b.after_read(READ_BUFFER_MAX);
        assert_eq!(b.buf.len(), READ_BUFFER_MAX, "never beyond the maximum");
        // A read larger than the small buffer resets the count of small ones.
        for _ in 0..READ_SHRINK_AFTER - 1 {
            b.after_read(10);
        }
        b.after_read(READ_BUFFER_MIN + 1);
        for _ in 0..READ_SHRINK_AFTER - 1 {
            b.after_read(10);
        }
        assert_eq!(b.buf.len(), READ_BUFFER_MAX);
        b.after_read(10);
        assert_eq!(b.buf.len(), READ_BUFFER_MIN);
    }

    /// Records each write it takes whole.
    struct Writes(Vec<Vec<u8>>);

    impl futures_io::AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn small_transmits_are_batched_and_large_ones_written_as_they_are() {
        let part = |len: usize, b: u8| Bytes::from(vec![b; len]);
        let big = WRITE_DIRECT_MIN;
        let parts = vec![part(10, 1), part(20, 2), part(big, 3), part(30, 4), part(big + 1, 5), part(5, 6)];
        let all: Vec<u8> = parts.iter().flatten().copied().collect();
        let mut w = Writes(Vec::new());
        block_on(write_parts(&mut w, parts)).unwrap();
        let lens: Vec<usize> = w.0.iter().map(Vec::len).collect();
        assert_eq!(lens, [30, big, 30, big + 1, 5], "runs of small ones gathered, large ones alone");
        assert_eq!(w.0.concat(), all, "every byte, in order");
    }

    #[test]
    fn a_large_read_hands_its_buffer_over_and_a_small_one_is_copied() {
        let mut b = ReadBuffer { buf: vec![7; READ_BUFFER_MAX], small_reads: 0 };
        let before = b.buf.as_ptr();
        let data = b.take(HAND_OVER_MIN);
        assert_eq!((data.len(), data.as_ptr()), (HAND_OVER_MIN, before), "the read's own buffer, not a copy");
        assert_eq!(b.buf.len(), READ_BUFFER_MAX, "a fresh buffer of the same size for the next read");
        assert!(b.buf.iter().all(|&x| x == 0));
        b.buf[..3].copy_from_slice(&[1, 2, 3]);
        let kept = b.buf.as_ptr();
        assert_eq!(&b.take(3)[..], [1, 2, 3]);
        assert_eq!(b.buf.as_ptr(), kept, "a small read keeps the buffer");
    }

    #[test]
    fn large_messages_arrive_intact_across_growing_and_shrinking() {
        let big = |seed: u8| (0..300_000u32).map(|i| (i % 251) as u8 ^ seed).collect::<Vec<u8>>();
        let mut chunks = VecDeque::new();
        for round in 0..3u8 {
            for i in 0..2 * READ_SHRINK_AFTER {
                chunks.push_back(vec![round.wrapping_add(i as u8); 100]);
            }
            chunks.push_back(big(round));
        }
        let sent: Vec<u8> = chunks.iter().flatten().copied().collect();
        let (tx, rx) = async_channel::unbounded::<Input<()>>();
        let (guard, _all_done) = async_channel::bounded(1);
        let (_stop_tx, stop) = async_channel::bounded(1);
        block_on(read_loop(TaskGuard(guard), Chunks(chunks), ConnId(1), tx, stop));
        let (mut got, mut sizes) = (Vec::new(), Vec::new());
        while let Ok(input) = rx.try_recv() {
            match input {
                Input::Data(_, d) => {
                    sizes.push(d.len());
                    got.extend_from_slice(&d);
                }
                Input::Closed(..) => break,
                _ => panic!("unexpected input"),
            }
        }
        assert!(got == sent, "{} bytes read, {} sent", got.len(), sent.len());
        assert_eq!(sizes.iter().max(), Some(&READ_BUFFER_MAX), "the buffer grew under load");
        // After each big message the small reads came back one per read.
        assert_eq!(sizes.iter().filter(|&&n| n == 100).count(), 6 * READ_SHRINK_AFTER as usize);
    }
}
