//! Where log lines go: stderr, through a bounded queue and a thread of their own, so that a
//! broken stderr loses log lines and nothing else.
//!
//! A client that never reads our stderr pipe fills it, and every later write would block the
//! thread that logs (a runtime worker, until the server stops answering); a full disk or a
//! closed pipe fails writes, and `tracing-subscriber` reports a failed write with
//! `eprintln!`, which panics. Here an event is formatted into memory and queued; when the
//! queue is full the event is dropped and counted, and the writer thread ignores write errors.

use std::{
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    time::{Duration, Instant},
};

use tracing_subscriber::fmt::MakeWriter;

/// Log lines that may wait for stderr; later ones are dropped until it catches up.
const QUEUE_LINES: usize = 1024;
/// How long the process waits at exit for queued lines to be written.
const FLUSH_WAIT: Duration = Duration::from_millis(500);

/// A `MakeWriter` for `tracing-subscriber` that queues each event for the writer thread.
#[derive(Clone)]
pub struct LossyStderr {
    queue: SyncSender<Entry>,
    dropped: Arc<AtomicU64>,
}

enum Entry {
    Line(Vec<u8>),
    /// Answered once every line queued before it is written (or failed).
    Flush(SyncSender<()>),
}

impl LossyStderr {
    /// Starts the writer thread on the process's stderr.
    pub fn start() -> io::Result<Self> {
        Self::start_with(io::stderr())
    }

    /// Starts the writer thread on `output`.
    pub fn start_with(output: impl Write + Send + 'static) -> io::Result<Self> {
        let (queue, entries) = mpsc::sync_channel(QUEUE_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_entries(entries, output, &counter))?;
        Ok(Self { queue, dropped })
    }

    /// Waits up to half a second for queued lines to reach stderr (at exit).
    pub fn flush(&self) {
        let (done, finished) = mpsc::sync_channel(1);
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut entry = Entry::Flush(done);
        loop {
            match self.queue.try_send(entry) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    entry = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => return,
            }
        }
        let _ = finished.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }

    fn queue_line(&self, line: Vec<u8>) {
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Entry::Line(line)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes queued lines until every sender is gone; a line dropped for a full queue is
/// reported, in a line of its own, once stderr takes lines again.
fn write_entries(entries: Receiver<Entry>, mut output: impl Write, dropped: &AtomicU64) {
    for entry in entries {
        match entry {
            Entry::Line(line) => {
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    let note = format!("context-store: {lost} log lines dropped (stderr slow)\n");
                    let _ = output.write_all(note.as_bytes());
                }
                let _ = output.write_all(&line);
            }
            Entry::Flush(done) => {
                let _ = output.flush();
                let _ = done.try_send(());
            }
        }
    }
}

/// One event's bytes, queued when `tracing-subscriber` drops the writer after the event.
pub struct QueuedLine {
    target: LossyStderr,
    line: Vec<u8>,
}

impl Write for QueuedLine {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.target.queue_line(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = QueuedLine;

    fn make_writer(&'a self) -> QueuedLine {
        QueuedLine {
            target: self.clone(),
            line: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// An output that fails every write, as stderr on a full disk or a closed pipe does.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    /// An output that blocks until the test lets it go, as a pipe nobody reads does; it
    /// says when the writer thread is inside a write.
    struct Stuck {
        gate: Arc<Mutex<()>>,
        entered: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Write for Stuck {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.entered.store(true, Ordering::SeqCst);
            drop(self.gate.lock());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log(writer: &LossyStderr, text: &str) {
        let mut line = writer.make_writer();
        line.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn a_broken_output_loses_lines_without_an_error() {
        let writer = LossyStderr::start_with(Broken).unwrap();
        for _ in 0..10 {
            log(&writer, "lost\n");
        }
        writer.flush();
    }

    #[test]
    fn a_stuck_output_never_blocks_the_caller_and_counts_what_it_drops() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let entered = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stuck = Stuck {
            gate: gate.clone(),
            entered: entered.clone(),
        };
        let writer = LossyStderr::start_with(stuck).unwrap();
        // Once the thread is stuck writing the first line, every drop stays counted (the
        // count is taken, and reset, only as a line is written).
        log(&writer, "first\n");
        let waiting = Instant::now();
        while !entered.load(Ordering::SeqCst) {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "the writer never wrote"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        for _ in 0..QUEUE_LINES * 3 {
            log(&writer, "waiting\n");
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(writer.dropped.load(Ordering::Relaxed) >= QUEUE_LINES as u64);
        drop(held);
    }
}
