//! Where log lines go: stdout, written by a thread of its own in batches.
//!
//! Writing each line to stdout from the thread that logged it costs a
//! `write(2)` per line on the request path (every request logs one). Here a
//! line is appended to a shared buffer under a short lock, and the writer
//! thread takes the whole buffer at once. Waking that thread for every line
//! would cost a context switch per line instead, so it is woken only by the
//! first line after it went idle, then gathers for [`GATHER`] before each
//! write: under load, one `write(2)` and one wakeup carry hundreds of lines,
//! and a line reaches stdout within a few milliseconds. An idle process
//! never wakes it. Nothing is dropped: past [`BACKLOG_LIMIT`] bytes the
//! thread that logs writes the backlog itself, so a stalled stdout slows
//! logging down instead of losing lines or growing memory. [`flush`] writes
//! what is pending at once (at exit, and after a panic is logged).
//!
//! Order is kept: whoever writes takes stdout's lock before taking the
//! buffer, so batches reach stdout in the order they were taken.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Bytes waiting to be written beyond which the logging thread writes them
/// itself.
const BACKLOG_LIMIT: usize = 1 << 20;
/// How long the writer lets lines gather before it writes them.
const GATHER: Duration = Duration::from_millis(5);
/// A batch buffer keeps no more capacity than this between batches.
const KEPT_CAPACITY: usize = 256 * 1024;

pub struct Sink {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// No writer thread could be started: lines are written as they come.
    direct: AtomicBool,
}

struct Pending {
    lines: Vec<u8>,
    /// The writer waits for a line: the next one wakes it.
    idle: bool,
}

static SINK: OnceLock<&'static Sink> = OnceLock::new();

/// The process's sink; the writer thread starts with the first call.
pub fn sink() -> &'static Sink {
    SINK.get_or_init(|| {
        let sink: &'static Sink = Box::leak(Box::new(Sink {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(16 * 1024),
                idle: false,
            }),
            wake: Condvar::new(),
            direct: AtomicBool::new(false),
        }));
        let started = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || sink.run());
        if started.is_err() {
            sink.direct.store(true, Ordering::Relaxed);
        }
        sink
    })
}

/// Writes every pending line now.
pub fn flush() {
    if let Some(sink) = SINK.get() {
        let mut spare = Vec::new();
        sink.write_pending(&mut spare);
    }
}

impl Sink {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut spare = Vec::with_capacity(16 * 1024);
        loop {
            {
                let mut pending = self.pending();
                while pending.lines.is_empty() {
                    pending.idle = true;
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                pending.idle = false;
            }
            std::thread::sleep(GATHER);
            self.write_pending(&mut spare);
        }
    }

    /// Takes the buffer (handing it `spare` to fill next) and writes it.
    fn write_pending(&self, spare: &mut Vec<u8>) {
        let mut stdout = io::stdout().lock();
        std::mem::swap(&mut self.pending().lines, spare);
        if spare.is_empty() {
            return;
        }
        // Nowhere else to report a failed write of the log itself.
        let _ = stdout.write_all(spare).and_then(|()| stdout.flush());
        spare.clear();
        if spare.capacity() > KEPT_CAPACITY {
            spare.shrink_to(KEPT_CAPACITY);
        }
    }

    fn append(&self, line: &[u8]) {
        let backlog = {
            let mut pending = self.pending();
            pending.lines.extend_from_slice(line);
            if pending.idle {
                pending.idle = false;
                self.wake.notify_one();
            }
            pending.lines.len()
        };
        if backlog > BACKLOG_LIMIT || self.direct.load(Ordering::Relaxed) {
            self.write_pending(&mut Vec::new());
        }
    }
}

/// One event's line, handed to the sink in one piece.
pub struct SinkWriter(&'static Sink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for &'static Sink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter(self)
    }
}
