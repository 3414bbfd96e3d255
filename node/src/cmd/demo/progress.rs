//! The demo's progress indicator: a spinner (or dots, when stderr is not a terminal) on
//! stderr for steps that take more than a second.
//!
//! Owns: drawing and clearing the indicator. Must not: write to stdout (the story is there) or
//! leave anything drawn after the step ends.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Await `work`; if it takes more than a second, show a spinner (or dots, when stderr is not a
/// terminal) on stderr until it is done.
pub(super) async fn with_progress<T>(
    label: &'static str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let _progress = Progress::start(label);
    work.await
}

/// The state a progress task shares with its owner, so nothing is drawn after it is cleared.
#[derive(Default)]
struct ProgressState {
    stopped: bool,
    drawn: bool,
}

/// A progress indicator on stderr; cleared when dropped.
struct Progress {
    state: Arc<Mutex<ProgressState>>,
    task: tokio::task::JoinHandle<()>,
    tty: bool,
}

impl Progress {
    fn start(label: &'static str) -> Progress {
        let state = Arc::new(Mutex::new(ProgressState::default()));
        let tty = std::io::stderr().is_terminal();
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            tokio::time::sleep(Duration::from_secs(1)).await;
            for frame in ['|', '/', '-', '\\'].into_iter().cycle() {
                {
                    let Ok(mut s) = shared.lock() else { return };
                    if s.stopped {
                        return;
                    }
                    if tty {
                        eprint!(
                            "\r   {frame} {label} {:.1} s ",
                            started.elapsed().as_secs_f64()
                        );
                    } else {
                        eprint!(".");
                    }
                    s.drawn = true;
                }
                tokio::time::sleep(Duration::from_millis(if tty { 100 } else { 500 })).await;
            }
        });
        Progress { state, task, tty }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.lock() {
            s.stopped = true;
            if s.drawn {
                if self.tty {
                    eprint!("\r\x1b[2K");
                } else {
                    eprintln!();
                }
            }
        }
        self.task.abort();
    }
}
